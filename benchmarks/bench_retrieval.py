"""Retrieval benchmark: indexing chunks/s vs raw sentence-transformers, query latency at 10k/100k, recall@5.

Run: .venv/bin/python benchmarks/bench_retrieval.py [--index-chunks 400] [--sizes 10000 100000] [--queries 200]

- Indexing: ~200-token passages (sentences of our own corpus, reshuffled) written as Markdown files and indexed
  by KnowledgeBase.build; the same passages are encoded by SentenceTransformer.encode directly in the same run,
  so the ratio shows our overhead above the model's own ceiling on this machine.
- Latency: stores of N synthetic chunks whose vectors are random unit vectors (embedding 100k real chunks takes
  too long here); FAISS index chosen automatically (flat <= 20k, HNSW above); every query IS embedded for real
  with all-MiniLM-L6-v2, and the figure is the whole KnowledgeBase.search call (embedding + FAISS + SQLite).
- Recall: the 63 labelled questions of tests/fixtures/retrieval_corpus.json over the documents generated from it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT))

import retrieval_docgen as docgen  # noqa: E402

from qwen_agent.retrieval import KnowledgeBase, SentenceTransformerEmbedder  # noqa: E402
from qwen_agent.retrieval.bm25 import tokenize  # noqa: E402
from qwen_agent.retrieval.models import Chunk, Section  # noqa: E402


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


def bench_indexing(embedder: SentenceTransformerEmbedder, n: int) -> None:
    counter = embedder.token_counter()
    texts = passages(n, 200, counter)
    model = embedder._load()
    model.encode(texts[:16], batch_size=32)  # warm-up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    raw = n / (time.perf_counter() - t0)
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
        chunks = kb.last_report.total_chunks if kb.last_report else 0
        kb.close()
    mean_tokens = statistics.mean(counter(t) for t in texts)
    print(f"indexing: {chunks} chunks (~{mean_tokens:.0f} tokens) in {elapsed:.1f} s = {chunks / elapsed:.1f} chunks/s")
    print(f"  raw SentenceTransformer.encode, same passages, same run: {raw:.1f} passages/s")
    print(f"  ratio (ours / raw encode) = {chunks / elapsed / raw:.2f}  (target >= 300 chunks/s)")


def synthetic_store(path: Path, n: int, embedder: SentenceTransformerEmbedder) -> KnowledgeBase:
    """N chunks of reshuffled corpus sentences with random unit vectors, written through the real Store."""
    kb = KnowledgeBase.open(path, create=True, embedder=embedder)
    store = kb._store
    texts = passages(min(n, 2000), 60, lambda s: len(s.split()), seed=1)
    rng = np.random.default_rng(0)
    per_doc = 1000
    with store.write():
        for d in range(0, n, per_doc):
            m = min(per_doc, n - d)
            chunk_texts = [texts[(d + i) % len(texts)] + f" Record {d + i}." for i in range(m)]
            vectors = rng.standard_normal((m, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.insert_file(
                path=str(path / f"synthetic{d}.md"), source=f"synthetic{d}.md", sha256=str(d), size=0,
                sections=[Section(text="(synthetic)")], section_tokens=[1],
                chunks=[Chunk(text=t, position=i, n_tokens=60) for i, t in enumerate(chunk_texts)],
                tokens=[tokenize(t) for t in chunk_texts], vectors=vectors,
            )
        store.set_meta("model_id", embedder.model_id)
        store.set_meta("dim", "384")
        store.set_meta("generation", "1")
    return KnowledgeBase.open(path, embedder=embedder)  # indexes are built from the store on first search


def bench_latency(embedder: SentenceTransformerEmbedder, sizes: list[int], queries: int) -> None:
    qs = [q["q"] for q in docgen.load_corpus()["questions"] if q["q"].isascii()]
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            kb = synthetic_store(Path(tmp) / "kb", n, embedder)
            kb.search("warm up", k=5, mode="vector")
            build = time.perf_counter() - t0
            kind = kb.stats()["index_kind"]
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
            print(f"  query embedding alone: mean {(time.perf_counter() - t) * 1000 / queries:.1f} ms "
                  f"(store+index build {build:.0f} s)")
            kb.close()


def bench_recall(embedder: SentenceTransformerEmbedder) -> None:
    data = docgen.load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        docgen.write_corpus(Path(tmp) / "docs")
        kb = KnowledgeBase.build(Path(tmp) / "docs", Path(tmp) / "kb", embedder=embedder)
        qs = data["questions"]
        vecs = embedder.embed_documents([q["q"] for q in qs])
        for mode in ("vector", "bm25", "hybrid"):
            r1 = r5 = 0
            mrr = 0.0
            for q, v in zip(qs, vecs, strict=True):
                hits = kb.search(q["q"], k=5, mode=mode, query_vector=v)
                ranks = [i for i, h in enumerate(hits) if h.source == q["source"] and q["needle"] in h.text]
                r1 += bool(ranks and ranks[0] == 0)
                r5 += bool(ranks)
                mrr += 1 / (ranks[0] + 1) if ranks else 0
            n = len(qs)
            print(f"recall mode={mode:<6}: recall@1 {r1 / n:.3f}  recall@5 {r5 / n:.3f}  MRR@5 {mrr / n:.3f}  ({n} q)")
        kb.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index-chunks", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder(threads=2)
    bench_recall(embedder)
    bench_indexing(embedder, args.index_chunks)
    bench_latency(embedder, args.sizes, args.queries)


if __name__ == "__main__":
    main()
