"""IVF-PQ with its inverted lists on disk: built, saved with the generation, memory-mapped on load, chosen by size
or option, and the knowledge base's incremental updates and exact re-ranking on top of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qwen_agent.retrieval import KnowledgeBase
from qwen_agent.retrieval.index import FLAT_MAX, ONDISK_MIN, VectorIndex, choose_kind, ondisk_path
from qwen_agent.retrieval.knowledge_base import KnowledgeBaseConfig

DIM = 64


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((50, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class HashEmbedder:
    """A deterministic stand-in for the embedding model: what is under test is the index, not the embeddings."""

    model_id = "hash-64"
    dim = DIM

    def _vec(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_documents(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(text)


def word(i: int) -> str:
    """A distinct letters-only code word per note (BM25 finds it as one token)."""
    return "zz" + "".join(chr(ord("a") + int(d)) for d in str(i))


def notes(tmp_path: Path, n: int) -> Path:
    """A folder of ``n`` one-line notes, each with its own code word."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"note{i:04d}.txt").write_text(f"The code word of this note is {word(i)}.\n")
    return docs


def test_auto_keeps_lists_on_disk_only_for_large_collections() -> None:
    assert choose_kind(FLAT_MAX) == "flat"
    assert choose_kind(ONDISK_MIN - 1) == "hnsw"
    assert choose_kind(ONDISK_MIN) == "ivfpq"
    assert choose_kind(10, "ivfpq") == "ivfpq"


def test_ivfpq_lists_live_on_disk_and_load_memory_mapped(tmp_path: Path) -> None:
    x, queries = clustered(5000, 1), clustered(50, 2)
    ids = np.arange(1000, 6000)
    path = tmp_path / "vectors.1.faiss"
    index = VectorIndex.build(x, ids, DIM, "ivfpq", ondisk=ondisk_path(path))
    index.save(path)
    exact = VectorIndex.build(x, ids, DIM, "flat")
    lists = ondisk_path(path)
    assert lists.exists() and lists.stat().st_size >= 5000 * (DIM // 8 + 8), "codes and ids are in the file"
    assert path.stat().st_size < lists.stat().st_size, "the index file holds only centroids and codebooks"
    moved = tmp_path / "moved"
    moved.mkdir()
    path.rename(moved / path.name)
    lists.rename(moved / lists.name)
    loaded = VectorIndex.load(moved / path.name, "ivfpq", DIM)
    assert len(loaded) == 5000 and not loaded.can_add and not loaded.can_remove
    overlap = []
    for q in queries:
        assert loaded.search(q, 10) == index.search(q, 10), "the loaded index answers as the built one"
        overlap.append(len({i for i, _ in loaded.search(q, 10)} & {i for i, _ in exact.search(q, 10)}) / 10)
    assert np.mean(overlap) > 0.3, "compressed codes still find the neighbourhood (re-ranking does the rest)"


def test_a_knowledge_base_on_ivfpq_updates_and_reranks_exactly(tmp_path: Path) -> None:
    docs = notes(tmp_path, 1100)
    config = KnowledgeBaseConfig(index_kind="ivfpq")
    store = tmp_path / "kb"
    with KnowledgeBase.build(docs, store, embedder=HashEmbedder(), config=config) as kb:
        assert kb.stats()["index_kind"] == "ivfpq" and kb.stats()["chunks"] == 1100
        assert (store / "vectors.1.ivfdata").exists()
        hit = kb.search(word(417), k=1, mode="bm25")[0]
        assert hit.source.endswith("note0417.txt")
        (docs / "note0417.txt").unlink()
        (docs / "extra.txt").write_text("An extra note with the code word qqqq.\n")
        report = kb.add(docs)
        assert report.chunks_added == 1 and report.chunks_removed == 1
    assert sorted(p.name for p in store.glob("vectors.*")) == ["vectors.2.faiss", "vectors.2.ivfdata"], \
        "the previous generation's files are gone"
    with KnowledgeBase.open(store, embedder=HashEmbedder(), config=config) as kb:
        assert kb.search("qqqq", k=1, mode="bm25")[0].source.endswith("extra.txt")
        assert all(not h.source.endswith("note0417.txt") for h in kb.search(word(417), k=5))
        assert len(kb.search("note", k=5, mode="hybrid")) == 5
        # vector mode: the exact re-ranking puts a chunk's own vector first
        rows = kb._store.chunk_rows(list(range(1, 1200)))
        some = next(iter(rows))
        own = kb._store.vectors_for([some])[some]
        assert kb.search("anything", k=1, mode="vector", query_vector=own)[0].chunk_id == some


@pytest.mark.parametrize("n", [999])
def test_too_few_vectors_for_ivfpq_fall_back_to_flat(n: int) -> None:
    x = clustered(n, 3)
    assert VectorIndex.build(x, np.arange(n), DIM, "ivfpq").kind == "flat"


def test_an_ivfpq_write_and_a_repair_never_hold_every_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond RAM: a write trains on a sample and fills the lists from SQLite batch by batch; so does the rebuild
    of a damaged index on open. Loading every vector at once would fail this test."""
    from qwen_agent.retrieval import store_indexes
    from qwen_agent.retrieval.store import Store

    def refuse(self: Store, dim: int) -> None:
        pytest.fail("every vector was loaded at once")

    batches: list[int] = []
    real_iter = Store.iter_vectors

    def spy(self: Store, batch: int):  # type: ignore[no-untyped-def]
        for ids, vectors in real_iter(self, batch):
            batches.append(len(ids))
            yield ids, vectors

    monkeypatch.setattr(Store, "all_vectors", refuse)
    monkeypatch.setattr(Store, "iter_vectors", spy)
    monkeypatch.setattr(store_indexes, "ADD_BATCH", 300)
    monkeypatch.setattr(store_indexes, "IVFPQ_TRAIN_MAX", 500)
    docs = notes(tmp_path, 1100)
    config = KnowledgeBaseConfig(index_kind="ivfpq")
    store = tmp_path / "kb"
    with KnowledgeBase.build(docs, store, embedder=HashEmbedder(), config=config) as kb:
        assert kb.stats()["index_kind"] == "ivfpq"
        assert batches == [300, 300, 300, 200]
        some = next(iter(kb._store.chunk_rows(list(range(1, 50)))))
        own = kb._store.vectors_for([some])[some]
        assert kb.search("x", k=1, mode="vector", query_vector=own)[0].chunk_id == some
    (store / "vectors.1.faiss").write_bytes(b"damaged")
    batches.clear()
    with KnowledgeBase.open(store, embedder=HashEmbedder(), config=config) as kb:
        assert kb.search("x", k=1, mode="vector", query_vector=own)[0].chunk_id == some
        assert batches == [300, 300, 300, 200], "the repair streamed too"


def test_faiss_lines_about_growing_the_lists_file_stay_off_stdout(tmp_path: Path,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """faiss printf()s "resizing <file>" to stdout as the lists file grows; a CLI's stdout is its output."""
    x = clustered(3000, 4)
    print("before", flush=True)
    VectorIndex.build(x, np.arange(3000), DIM, "ivfpq", ondisk=ondisk_path(tmp_path / "v.faiss"))
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert "resizing" in err
