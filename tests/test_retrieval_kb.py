"""KnowledgeBase with the real default embedder and real FAISS/BM25: build, reload, incremental, search."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_docgen as docgen

from qwen_agent.retrieval import KnowledgeBase, KnowledgeBaseConfig, StoreError, format_passages
from qwen_agent.retrieval.embeddings import DEFAULT_MODEL, default_model_path
from qwen_agent.retrieval.search import CrossEncoderReranker
from qwen_agent.tools import ToolArgumentsError
from qwen_agent.tools.retrieval import NOTHING_FOUND, RetrievalTool


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    docgen.write_corpus(folder)
    docgen.write_encrypted_pdf(folder / "secret.pdf")
    docgen.write_corrupt_files(folder / "broken")
    return folder


@pytest.fixture(scope="module")
def kb(docs: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return KnowledgeBase.build(docs, tmp_path_factory.mktemp("store") / "kb", embedder=docgen.shared_embedder())


def test_build_reports_per_file_errors_and_indexes_the_rest(kb: KnowledgeBase) -> None:
    report = kb.last_report
    assert report is not None
    assert len(report.added) == 12 and report.total_documents == 12
    assert sorted((Path(e.path).name, e.kind) for e in report.errors) == [
        ("broken.docx", "corrupt"), ("broken.pdf", "corrupt"), ("broken.xlsx", "corrupt"), ("secret.pdf", "encrypted")
    ]
    assert report.total_chunks >= 30 and report.index_kind == "flat"


def test_hybrid_ranks_the_labelled_chunk_first(kb: KnowledgeBase) -> None:
    questions = docgen.load_corpus()["questions"]
    first = top5 = 0
    vectors = docgen.shared_embedder().embed_documents([q["q"] for q in questions])  # one batch: faster
    for q, vector in zip(questions, vectors, strict=True):
        hits = kb.search(q["q"], k=5, mode="hybrid", query_vector=vector)
        ranks = [i for i, h in enumerate(hits) if h.source == q["source"] and q["needle"] in h.text]
        first += bool(ranks and ranks[0] == 0)
        top5 += bool(ranks)
    assert len(questions) >= 50
    assert first / len(questions) >= 0.9, first
    assert top5 == len(questions)


def test_hits_carry_citations_and_metadata(kb: KnowledgeBase) -> None:
    hit = kb.search("Which temperature preset is best for green tea?", k=1)[0]
    assert (hit.source, hit.page, hit.citation) == ("zephyr_kettle_manual.pdf", 2, "[zephyr_kettle_manual.pdf p.2]")
    assert hit.chunk_id is not None and hit.path.endswith("zephyr_kettle_manual.pdf")
    slide = kb.search("on-device bird recognition model size", k=1, mode="vector")[0]
    assert slide.citation == "[heron_roadmap.pptx slide 3]" and slide.heading == "Q3: Species Recognition"
    sheet = kb.search("Ruby Moon sweet pea sowing", k=1, mode="bm25")[0]
    assert sheet.citation == "[seed_prices.xlsx sheet Flowers]"
    zh = kb.search("茶艺课的学费", k=1)[0]
    assert zh.source == "cloud_tea_house.md" and "一百八十元" in zh.text
    text = format_passages([hit, slide])
    assert text.startswith("[zephyr_kettle_manual.pdf p.2]") and "[heron_roadmap.pptx slide 3] (Q3" in text


def test_search_modes_and_edge_cases(kb: KnowledgeBase) -> None:
    vector = kb.search("stolen laptop", k=3, mode="vector")
    bm25 = kb.search("stolen laptop", k=3, mode="bm25")
    assert vector[0].source == bm25[0].source == "helpdesk_faq.html"
    assert 0 < vector[0].score <= 1.0
    assert kb.search("zzqx unknownword", k=3, mode="bm25") == []
    assert kb.search("   ", k=3) == []
    with pytest.raises(ValueError):
        kb.search("x", mode="fuzzy")  # type: ignore[arg-type]


def test_context_for_whole_documents_or_best_hits(kb: KnowledgeBase) -> None:
    whole = kb.context_for("anything", token_budget=100_000)
    assert all(h.chunk_id is None for h in whole)
    assert {h.source for h in whole} == {d["name"] for d in docgen.load_corpus()["documents"]}
    assert [h.page for h in whole if h.source == "travel_policy.pdf"] == [1, 2, 3]
    small = kb.context_for("How long is parental leave?", token_budget=250)
    assert small and small[0].source == "larkspur_handbook.docx" and small[0].chunk_id is not None
    assert sum(len(h.text.split()) for h in small) <= 250


def test_reload_and_incremental_update(docs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("brackenford_history.md", "garden_guide.md", "maple_bakery_recipes.txt", "seed_prices.xlsx"):
        shutil.copy(docs / name, folder / name)
    store = tmp_path / "kb"
    embedder = docgen.shared_embedder()
    KnowledgeBase.build(folder, store, embedder=embedder).close()
    reopened = KnowledgeBase.open(store, embedder=embedder)
    assert reopened.stats()["documents"] == 4
    assert reopened.search("Who designed the three-arch bridge?", k=1)[0].source == "brackenford_history.md"
    generation = reopened._store.generation

    again = reopened.add(folder)
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 4
    assert reopened._store.generation == generation  # nothing changed, nothing rewritten

    (folder / "garden_guide.md").write_text("# Allotment Guide\n\n## Rules\n\nPlot rent is 61 pounds a year now.\n")
    (folder / "maple_bakery_recipes.txt").unlink()
    (folder / "new_note.md").write_text("# Parking\n\nVisitors park in the violet car park behind the depot.\n")
    report = reopened.add(folder)
    assert report.updated == ["garden_guide.md"] and report.added == ["new_note.md"]
    assert report.removed == ["maple_bakery_recipes.txt"] and report.total_documents == 4
    assert "61 pounds" in reopened.search("yearly plot rent", k=1)[0].text
    assert all(h.source != "maple_bakery_recipes.txt" for h in reopened.search("sourdough starter Gertrude", k=10))
    assert reopened.search("where do visitors park?", k=1)[0].source == "new_note.md"
    reopened.close()

    # another process' view: a fresh open sees the same state, stale generation files are gone
    fresh = KnowledgeBase.open(store, embedder=embedder)
    assert fresh.search("where do visitors park?", k=1, mode="bm25")[0].source == "new_note.md"
    assert sorted(p.name for p in store.glob("vectors.*")) == [f"vectors.{fresh._store.generation}.faiss"]


def test_damaged_index_file_is_rebuilt_from_the_store(docs: Path, tmp_path: Path) -> None:
    store = tmp_path / "kb"
    kb = KnowledgeBase.build(docs / "zephyr_kettle_manual.pdf", store, embedder=docgen.shared_embedder())
    gen = kb._store.generation
    kb.close()
    (store / f"vectors.{gen}.faiss").write_bytes(b"garbage")
    shutil.rmtree(store / f"bm25.{gen}")
    kb = KnowledgeBase.open(store, embedder=docgen.shared_embedder())
    assert kb.search("dry boil sensor", k=1)[0].page == 3
    assert kb.search("dry boil sensor", k=1, mode="bm25")[0].page == 3


def test_hnsw_can_be_forced_and_ivf_falls_back_to_flat_when_small(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    corpus = {d["name"]: d for d in docgen.load_corpus()["documents"]}
    for name in ("helpdesk_faq.html", "travel_policy.pdf"):
        docgen.write_document(docs, corpus[name])
    for kind in ("hnsw", "ivf"):
        config = KnowledgeBaseConfig(index_kind=kind)
        kb = KnowledgeBase.build(docs, tmp_path / kind, embedder=docgen.shared_embedder(), config=config)
        # IVF needs >= 256 vectors to train; the small corpus falls back to flat, and says so
        assert kb.last_report is not None and kb.last_report.index_kind == ("hnsw" if kind == "hnsw" else "flat")
        assert kb.search("guest wifi voucher validity", k=1)[0].source == "helpdesk_faq.html"
        (docs / "zz_extra.md").write_text("# Extra\n\nThe extra note mentions a turquoise umbrella.\n")
        try:
            kb.add(docs)  # HNSW cannot delete but can add in place
            assert kb.search("turquoise umbrella", k=1)[0].source == "zz_extra.md"
            (docs / "zz_extra.md").unlink()
            report = kb.add(docs)  # deletion: HNSW is rebuilt from the stored vectors
            assert report.removed == ["zz_extra.md"] and kb.stats()["chunks"] == report.total_chunks
        finally:
            (docs / "zz_extra.md").unlink(missing_ok=True)


COLOURS = ["amber", "cobalt", "crimson", "emerald", "ivory", "jade", "lilac", "ochre", "russet", "teal"]
ITEMS = ["bicycle", "kettle", "lantern", "notebook", "piano", "scooter", "teapot", "umbrella", "violin", "wallet"]
PLACES = ["attic", "garage", "greenhouse"]


def test_ivf_is_built_for_a_corpus_large_enough_to_train_it(tmp_path: Path) -> None:
    """300 one-chunk notes (>= 256 vectors): a real IVF index is trained, searched, added to and deleted from."""
    docs = tmp_path / "docs"
    docs.mkdir()
    notes = list(itertools.product(COLOURS, ITEMS, PLACES))
    for n, (colour, item, place) in enumerate(notes):
        (docs / f"note{n:03d}.md").write_text(f"# Note {n}\n\nThe {colour} {item} is kept in the {place}.\n",
                                              encoding="utf-8")
    n = len(notes)
    config = KnowledgeBaseConfig(index_kind="ivf")
    kb = KnowledgeBase.build(docs, tmp_path / "kb", embedder=docgen.shared_embedder(), config=config)
    try:
        assert kb.last_report is not None and kb.last_report.index_kind == "ivf"
        assert kb.stats()["index_kind"] == "ivf" and kb.stats()["chunks"] == n
        hit = kb.search("Where is the cobalt violin kept?", k=1, mode="vector")[0]
        assert "cobalt violin" in hit.text, hit.text
        (docs / "zz_extra.md").write_text("# Extra\n\nA saffron harpsichord stands in the ballroom.\n")
        kb.add(docs)
        assert kb.search("saffron harpsichord", k=1, mode="vector")[0].source == "zz_extra.md"
        (docs / "zz_extra.md").unlink()
        report = kb.add(docs)
        assert report.removed == ["zz_extra.md"] and kb.stats()["chunks"] == n
        assert all(h.source != "zz_extra.md" for h in kb.search("saffron harpsichord", k=5, mode="vector"))
    finally:
        kb.close()


def test_store_errors_are_clear(tmp_path: Path, kb: KnowledgeBase) -> None:
    with pytest.raises(StoreError, match="build one first"):
        KnowledgeBase.open(tmp_path / "missing")

    class OtherModel:
        model_id = "BAAI/bge-small-en-v1.5"
        dim = 384

    with pytest.raises(StoreError, match=f"indexed with embedding model '{DEFAULT_MODEL}'"):
        KnowledgeBase.open(kb.store_path, embedder=OtherModel())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder made from the shipped MiniLM weights, saved once: its classification head is untrained (random),
    so saving it fixes the head and every later load scores alike."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(str(default_model_path()), device="cpu", max_length=128, local_files_only=True)
    path = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(path))
    return path


def test_cross_encoder_reranker_reorders(kb: KnowledgeBase, cross_encoder_dir: Path) -> None:
    """The plumbing, not the head's quality: the top k after reranking are the fused candidates ordered by the
    cross-encoder's own scores, computed here with sentence-transformers directly (not through our reranker)."""
    from sentence_transformers import CrossEncoder

    query = "telescope loan deposit"
    pool = kb.search(query, k=kb.config.rerank_candidates, rerank=False)  # the candidates the reranker re-scores
    judge = CrossEncoder(str(cross_encoder_dir), device="cpu", max_length=128, local_files_only=True)
    raw = [float(x) for x in judge.predict([(query, h.text) for h in pool], show_progress_bar=False)]
    by_judge = [h.chunk_id for _, h in sorted(zip(raw, pool, strict=True), key=lambda p: -p[0])]

    kb.reranker = CrossEncoderReranker(str(cross_encoder_dir), max_length=128)
    try:
        reranked = kb.search(query, k=5)
    finally:
        kb.reranker = None
    assert [h.chunk_id for h in reranked] == by_judge[:5]
    assert [h.score for h in reranked] == pytest.approx(sorted(raw, reverse=True)[:5], rel=1e-4)
    assert [h.chunk_id for h in reranked] != [h.chunk_id for h in pool[:5]], "reranking changed the order"


async def test_retrieval_tool(kb: KnowledgeBase) -> None:
    tool = RetrievalTool(kb)
    out = await tool.execute({"query": "How long are guest Wi-Fi vouchers valid?", "k": "2"})
    assert not out.is_error
    assert out.text.startswith("[helpdesk_faq.html]") and "12 hours" in out.text
    assert out.data[0]["citation"] == "[helpdesk_faq.html]" and len(out.data) == 2
    nonsense = await tool.execute({"query": "zzqx", "k": 1})
    assert len(nonsense.data) == 1 and nonsense.text != NOTHING_FOUND  # vector search always finds a nearest one
    bad = tool.validate_args
    with pytest.raises(ToolArgumentsError):
        bad({"k": 3})
    assert asyncio.iscoroutinefunction(tool.execute)


async def test_retrieval_tool_on_an_empty_store_says_nothing_was_found(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "only.md").write_text("# Only\n\nThe turquoise umbrella is in the hall.\n", encoding="utf-8")
    kb = KnowledgeBase.build(docs, tmp_path / "kb", embedder=docgen.shared_embedder())
    try:
        (docs / "only.md").unlink()
        kb.add(docs)
        assert kb.stats()["chunks"] == 0
        empty = await RetrievalTool(kb).execute({"query": "turquoise umbrella", "k": 1})
        assert empty.text == NOTHING_FOUND and empty.data == [] and not empty.is_error
    finally:
        kb.close()
