"""Retrieval benchmark: recall@5/MRR@5 per mode x language x embedder, indexing chunks/s vs raw encode, latency.

Run: .venv/bin/python benchmarks/bench_retrieval.py [--embedders MODEL:BACKEND ...] [--skip latency] [--sizes N ...]

- Recall, our sets: tests/fixtures/retrieval_sets.py generates an English and a Chinese set (~3,100 passages, 120
  dev + 120 test questions each; questions paraphrase the answering passage). Modes: vector, bm25, hybrid with
  reciprocal-rank fusion (the old default) and with adaptive fusion (the new default; tuned on dev, so read test).
- Recall, corpus63: the 63 labelled questions of tests/fixtures/retrieval_corpus.json.
- Indexing: ~200-token passages (English corpus sentences; Chinese set sentences) written as Markdown files and
  indexed by KnowledgeBase.build with each model:backend; the same passages are encoded by the same model's
  SentenceTransformer.encode (torch) in the same run. KB.build makes its own chunks (a different size, headings),
  so the ratio is tokens embedded per second (tokens counted with the model's tokenizer), not chunks per second.
- Latency: stores of N synthetic chunks with clustered synthetic unit vectors (embedding 100k real chunks takes
  too long here), written and indexed the way KnowledgeBase.build leaves a store (FAISS + BM25 files of the
  current generation), so opening it is the normal load path, not a rebuild; FAISS index chosen automatically
  (flat <= 20k, HNSW above); every query IS embedded for real with the default embedder, and the figure is the
  whole KnowledgeBase.search call (embedding + FAISS + SQLite).
- Vector recall of the index: recall@10 of the store's own index (HNSW at 100k) against exact search over the same
  vectors, for fresh query vectors drawn from the same clusters. (corpus63's recall@5 is 12 documents on an exact
  index: it says nothing about HNSW.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT))

import retrieval_docgen as docgen  # noqa: E402 - after the fixtures dir is put on sys.path
import retrieval_sets  # noqa: E402 - after the fixtures dir is put on sys.path

from qwen_agent.retrieval import FusionConfig, KnowledgeBase, SentenceTransformerEmbedder  # noqa: E402 - after the fixtures dir is put on sys.path
from qwen_agent.retrieval.bm25 import BM25Index, tokenize  # noqa: E402 - after the fixtures dir is put on sys.path
from qwen_agent.retrieval.embeddings import E5_MODEL, MINILM_MODEL  # noqa: E402 - after the fixtures dir is put on sys.path
from qwen_agent.retrieval.index import VectorIndex  # noqa: E402 - after the fixtures dir is put on sys.path
from qwen_agent.retrieval.models import Chunk, Section  # noqa: E402 - after the fixtures dir is put on sys.path


def corpus_sentences() -> list[str]:
    sentences = []
    for doc in docgen.load_corpus()["documents"]:
        for sec in doc.get("sections", []):
            sentences += [s.strip() + "." for s in sec["text"].split(". ") if s.strip() and s.isascii()]
    return sentences


def passages(n: int, tokens: int, counter, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pool = corpus_sentences()
    out = []
    for _ in range(n):
        text, used = [], 0
        while used < tokens - 15:
            s = rng.choice(pool)
            text.append(s)
            used += counter(s)
        out.append(" ".join(text))
    return out


def zh_sentences() -> list[str]:
    data = retrieval_sets.build("zh", towns=300, fillers=0, questions=2)
    return [s + "。" for p in data.passages for s in p.text.split("。") if s]


def passages_from(pool: list[str], n: int, tokens: int, counter, seed: int = 0, sep: str = " ") -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text, used = [], 0
        while used < tokens - 15:
            s = rng.choice(pool)
            text.append(s)
            used += counter(s)
        out.append(sep.join(text))
    return out


def bench_indexing(specs: list[tuple[str, str]], n: int) -> None:
    """KnowledgeBase.build chunks/s per model x backend vs raw SentenceTransformer.encode of the same model, in the
    same run."""
    print("| lang | model | backend | tokens/chunk | chunks/s | tokens/s | x raw encode of same model (tokens/s) |")
    print("|---|---|---|---|---|---|---|")
    raw_rates: dict[tuple[str, str], float] = {}
    for lang in ("en", "zh"):
        for model in dict.fromkeys(m for m, _ in specs):
            ref = SentenceTransformerEmbedder(model, backend="torch", threads=2)
            counter = ref.token_counter()
            pool = corpus_sentences() if lang == "en" else zh_sentences()
            texts = passages_from(pool, n, 200, counter, sep=" " if lang == "en" else "")
            st = ref._load()
            prefixed = [ref._document_prefix + t for t in texts]
            st.encode(prefixed[:16], batch_size=32)  # warm-up
            t0 = time.perf_counter()
            st.encode(prefixed, batch_size=32, normalize_embeddings=True)
            raw = n / (time.perf_counter() - t0)
            raw_rates[(lang, model)] = raw
            mean_tokens = statistics.mean(counter(t) for t in texts)
            print(f"| {lang} | {model} | raw SentenceTransformer.encode | {mean_tokens:.0f} | {raw:.1f} | "
                  f"{raw * mean_tokens:.0f} | 1.00 |")
            for m, backend in specs:
                if m != model:
                    continue
                embedder = ref if backend == "torch" else SentenceTransformerEmbedder(model, backend=backend, threads=2)
                embedder.embed_documents(texts[:16])  # warm-up (and the one-time ONNX export, not timed)
                with tempfile.TemporaryDirectory() as tmp:
                    docs = Path(tmp) / "docs"
                    docs.mkdir()
                    per_file = 20
                    for i in range(0, n, per_file):
                        body = "\n\n".join(f"## Part {j}\n\n{t}" for j, t in enumerate(texts[i : i + per_file]))
                        (docs / f"doc{i // per_file:04d}.md").write_text(f"# Document {i}\n\n{body}\n")
                    t0 = time.perf_counter()
                    kb = KnowledgeBase.build(docs, Path(tmp) / "kb", embedder=embedder)
                    elapsed = time.perf_counter() - t0
                    chunk_texts = [r[0] for r in kb._store._db.execute("SELECT text FROM chunks")]
                    kb.close()
                # KB.build re-chunks the files (headings, its own chunk size), so its chunks are not the raw
                # side's passages: compare tokens embedded per second, not chunks per second.
                chunk_tokens = [counter(t) for t in chunk_texts]
                rate = len(chunk_texts) / elapsed
                tok_rate = sum(chunk_tokens) / elapsed
                print(f"| {lang} | {model} | KB.build {backend} | {statistics.mean(chunk_tokens):.0f} | {rate:.1f} | "
                      f"{tok_rate:.0f} | {tok_rate / (raw * mean_tokens):.2f} |")


DIM = 384


def clustered_vectors(rng: np.random.Generator, n: int, centroids: np.ndarray, noise: float = 0.6) -> np.ndarray:
    """Unit vectors around random centroids (cosine ~0.85 to their centroid): neighbourhoods like real embeddings
    have, unlike uniform random vectors (which have no near neighbours and are HNSW's worst case)."""
    picks = rng.integers(0, len(centroids), n)
    v = centroids[picks] + rng.standard_normal((n, centroids.shape[1])).astype(np.float32) * (
        noise / np.sqrt(centroids.shape[1]))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def synthetic_store(path: Path, n: int, embedder: SentenceTransformerEmbedder, centroids: np.ndarray) -> float:
    """N chunks of reshuffled corpus sentences with clustered unit vectors, written through the real Store and
    indexed (FAISS + BM25 files of generation 1) as KnowledgeBase.build leaves a store; returns the seconds the
    index build took (once, at indexing time)."""
    kb = KnowledgeBase.open(path, create=True, embedder=embedder)
    store = kb._store
    texts = passages(min(n, 2000), 60, lambda s: len(s.split()), seed=1)
    rng = np.random.default_rng(0)
    per_doc = 1000
    with store.write():
        for d in range(0, n, per_doc):
            m = min(per_doc, n - d)
            chunk_texts = [texts[(d + i) % len(texts)] + f" Record {d + i}." for i in range(m)]
            store.insert_file(
                path=str(path / f"synthetic{d}.md"), source=f"synthetic{d}.md", sha256=str(d), size=0,
                sections=[Section(text="(synthetic)")], section_tokens=[1],
                chunks=[Chunk(text=t, position=i, n_tokens=60) for i, t in enumerate(chunk_texts)],
                tokens=[tokenize(t) for t in chunk_texts], vectors=clustered_vectors(rng, m, centroids),
            )
        store.set_meta("model_id", embedder.model_id)
        store.set_meta("dim", str(DIM))
        t0 = time.perf_counter()
        ids, matrix = store.all_vectors(DIM)
        vindex = VectorIndex.build(matrix, ids, DIM)
        chunk_ids, token_lists = store.all_tokens()
        bm25 = BM25Index.build(token_lists, chunk_ids)
        vindex.save(store.faiss_path(1))
        bm25.save(store.bm25_path(1))
        store.set_meta("index_kind", vindex.kind)
        store.set_meta("generation", "1")
        built = time.perf_counter() - t0
    kb.close()
    return built


def index_recall(kb: KnowledgeBase, centroids: np.ndarray, queries: int, k: int = 10) -> float:
    """recall@k of the store's loaded vector index against exact inner-product search over the same vectors."""
    vindex = kb._vectors
    assert vindex is not None
    ids, matrix = kb._store.all_vectors(DIM)
    qv = clustered_vectors(np.random.default_rng(1), queries, centroids)
    exact = np.argsort(-(qv @ matrix.T), axis=1)[:, :k]
    found = 0
    for q, row in zip(qv, exact, strict=True):
        got = {i for i, _ in vindex.search(q, k)}
        found += len(got & {int(ids[j]) for j in row})
    return found / (queries * k)


def bench_latency(embedder: SentenceTransformerEmbedder, sizes: list[int], queries: int) -> None:
    qs = [q["q"] for q in docgen.load_corpus()["questions"] if q["q"].isascii()]
    centroids = np.random.default_rng(7).standard_normal((1000, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            built = synthetic_store(Path(tmp) / "kb", n, embedder, centroids)
            embedder.embed_query("warm up")  # the model is loaded before the clock starts: this times the store
            t0 = time.perf_counter()
            kb = KnowledgeBase.open(Path(tmp) / "kb", embedder=embedder)  # the normal load path
            kb.search("warm up", k=5, mode="vector")
            load = time.perf_counter() - t0
            kind = kb.stats()["index_kind"]
            print(f"store n={n}: open + first search (loads the saved indexes) {load:.2f} s; index build at "
                  f"indexing time {built:.1f} s; vector recall@10 of the {kind} index vs exact search "
                  f"{index_recall(kb, centroids, min(queries, 200)):.3f}", flush=True)
            for mode in ("vector", "hybrid", "bm25"):
                times = []
                for i in range(queries):
                    t = time.perf_counter()
                    kb.search(qs[i % len(qs)], k=5, mode=mode)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
                print(f"latency n={n:>6} index={kind:<4} mode={mode:<6}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
            qvecs = embedder.embed_documents([qs[i % len(qs)] for i in range(queries)])
            times = []
            for i in range(queries):
                t = time.perf_counter()
                kb.search(qs[i % len(qs)], k=5, mode="hybrid", query_vector=qvecs[i])
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            print(f"  hybrid without query embedding (pre-embedded): p50 {times[len(times) // 2]:.1f} ms  "
                  f"p99 {times[min(len(times) - 1, int(len(times) * 0.99))]:.1f} ms")
            t = time.perf_counter()
            for i in range(queries):
                embedder.embed_query(qs[i % len(qs)])
            print(f"  query embedding alone: mean {(time.perf_counter() - t) * 1000 / queries:.1f} ms", flush=True)
            kb.close()


def _score(kb: KnowledgeBase, questions, mode: str, fusion: FusionConfig, vecs, gold) -> tuple[float, float]:
    kb.config.fusion = fusion
    r5 = mrr = 0.0
    for q, v in zip(questions, vecs, strict=True):
        hits = kb.search(q.q if hasattr(q, "q") else q["q"], k=5, mode=mode, query_vector=v)
        ranks = [i for i, h in enumerate(hits) if gold(q, h)]
        r5 += bool(ranks)
        mrr += 1 / (ranks[0] + 1) if ranks else 0
    return r5 / len(questions), mrr / len(questions)


MODES = [("vector", "rrf"), ("bm25", "rrf"), ("hybrid", "rrf"), ("hybrid", "adaptive")]


def _label(mode: str, fusion: str) -> str:
    return f"hybrid-{fusion}" if mode == "hybrid" else mode


def bench_recall(embedder: SentenceTransformerEmbedder, name: str) -> None:
    """The 63 labelled questions of tests/fixtures/retrieval_corpus.json (mostly English, a few Chinese)."""
    data = docgen.load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        docgen.write_corpus(Path(tmp) / "docs")
        kb = KnowledgeBase.build(Path(tmp) / "docs", Path(tmp) / "kb", embedder=embedder)
        qs = data["questions"]
        vecs = [embedder.embed_query(q["q"]) for q in qs]
        def gold(q: Any, h: Any) -> bool:
            return bool(h.source == q["source"] and q["needle"] in h.text)

        for mode, fusion in MODES:
            r5, mrr = _score(kb, qs, mode, FusionConfig(method=fusion), vecs, gold)
            print(f"| corpus63 | {name} | {_label(mode, fusion)} | {r5:.3f} | {mrr:.3f} |")
        kb.close()


def bench_sets(embedder: SentenceTransformerEmbedder, name: str, splits: list[str]) -> None:
    """Our generated English and Chinese sets (tests/fixtures/retrieval_sets.py): ~3,100 passages each."""
    for lang in ("en", "zh"):
        data = retrieval_sets.build(lang)
        with tempfile.TemporaryDirectory() as tmp:
            data.write(Path(tmp) / "docs")
            t0 = time.perf_counter()
            kb = KnowledgeBase.build(Path(tmp) / "docs", Path(tmp) / "kb", embedder=embedder)
            built = time.perf_counter() - t0
            chunks = kb.last_report.total_chunks if kb.last_report else 0
            print(f"  ({lang}: {chunks} chunks indexed in {built:.0f} s = {chunks / built:.0f} chunks/s)")
            def gold(q: Any, h: Any) -> bool:
                return bool(Path(h.source).stem == q.pid)

            for split in splits:
                qs = data.questions[split]
                vecs = [embedder.embed_query(q.q) for q in qs]
                for mode, fusion in MODES:
                    r5, mrr = _score(kb, qs, mode, FusionConfig(method=fusion), vecs, gold)
                    print(f"| {lang}-{split} | {name} | {_label(mode, fusion)} | {r5:.3f} | {mrr:.3f} |")
            kb.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index-chunks", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedders", nargs="*", default=[f"{m}:{b}" for m in (MINILM_MODEL, E5_MODEL)
                                                             for b in ("torch", "onnx-int8")],
                        help="model:backend pairs to compare (backend: torch, onnx, onnx-int8)")
    parser.add_argument("--splits", nargs="*", default=["dev", "test"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["recall", "sets", "indexing", "latency"])
    args = parser.parse_args()
    specs = [tuple(e.split(":", 1)) for e in args.embedders]
    if "recall" not in args.skip or "sets" not in args.skip:
        print("| set | model:backend | mode | recall@5 | MRR@5 |")
        print("|---|---|---|---|---|")
        for model, backend in specs:
            embedder = SentenceTransformerEmbedder(model, backend=backend, threads=2)
            if "recall" not in args.skip:
                bench_recall(embedder, f"{model}:{backend}")
            if "sets" not in args.skip:
                bench_sets(embedder, f"{model}:{backend}", args.splits)
    if "indexing" not in args.skip:
        bench_indexing(specs, args.index_chunks)
    if "latency" not in args.skip and args.sizes:
        bench_latency(SentenceTransformerEmbedder(threads=2), args.sizes, args.queries)


if __name__ == "__main__":
    main()
