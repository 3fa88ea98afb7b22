"""The knowledge base with its vectors in a real PostgreSQL + pgvector (a private server from the pgserver wheel,
own data directory, Unix socket only, started once for the module): search, incremental updates, reopening, and
a failure between PostgreSQL's commit and SQLite's repaired on the next open."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qwen_agent.retrieval import KnowledgeBase
from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.knowledge_base import KnowledgeBaseConfig
from qwen_agent.retrieval.pgvector_store import PgVectorStore
from qwen_agent.retrieval.store import Store
from qwen_agent.testing.postgres import LocalPostgres

DIM = 64
TOPICS = ["harbour", "glacier", "orchard", "volcano", "library", "desert", "meadow", "canyon"]


class HashEmbedder:
    """Deterministic vectors (what is under test is where they are stored, not what they mean)."""

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


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    with LocalPostgres(tmp_path_factory.mktemp("pg") / "data") as pg:
        yield pg


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for topic in TOPICS:
        (folder / f"{topic}.txt").write_text(f"A note about the {topic}. The {topic} is described here in detail.\n")
    return folder


def _rows(pg: LocalPostgres, table: str) -> int:
    return len(PgVectorStore(pg.dsn, table, DIM))


def test_the_store_alone(postgres: LocalPostgres) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = PgVectorStore(postgres.dsn, "unit_vectors", DIM)
    store.rebuild(np.arange(300), x, generation=4)
    assert len(store) == 300 and store.generation == 4
    assert store.search(x[7], 1)[0][0] == 7 and store.search(x[7], 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    store.apply(np.array([7]), np.array([1000]), x[7:8], generation=5)
    assert store.search(x[7], 1)[0][0] == 1000 and store.generation == 5 and len(store) == 300
    with pytest.raises(StoreError, match="64-dim"):
        PgVectorStore(postgres.dsn, "unit_vectors", 32)
    with pytest.raises(StoreError, match="table name"):
        PgVectorStore(postgres.dsn, "bad; DROP TABLE x", DIM)
    store.drop()
    store.close()


def test_a_knowledge_base_on_pgvector(postgres: LocalPostgres, docs: Path, tmp_path: Path) -> None:
    config = KnowledgeBaseConfig(vector_store="pgvector", pg_dsn=postgres.dsn)
    folder = tmp_path / "kb"
    with KnowledgeBase.build(docs, folder, embedder=HashEmbedder(), config=config) as kb:
        assert kb.stats()["index_kind"] == "pgvector"
        assert not list(folder.glob("vectors.*")), "no FAISS file: the vectors are in PostgreSQL"
        assert kb.search("glacier", k=1, mode="bm25")[0].source == "glacier.txt"
        assert len(kb.search("glacier", k=3, mode="hybrid")) == 3, "hybrid: BM25 fused with pgvector's ranking"
        chunk = kb.search("orchard", k=1, mode="bm25")[0].chunk_id
        assert chunk is not None
        own = kb._store.vectors_for([chunk])[chunk]
        assert kb.search("x", k=1, mode="vector", query_vector=own)[0].chunk_id == chunk
        table = kb._store.get_meta("pg_table")
        assert table is not None and _rows(postgres, table) == len(TOPICS)
        (docs / "desert.txt").unlink()
        (docs / "lagoon.txt").write_text("A note about the lagoon.\n")
        report = kb.add(docs)
        assert (report.chunks_added, report.chunks_removed) == (1, 1)
    # Reopened with the DSN only: the store remembers that its vectors are in PostgreSQL, and in which table.
    with KnowledgeBase.open(folder, embedder=HashEmbedder(), config=KnowledgeBaseConfig(pg_dsn=postgres.dsn)) as kb:
        lagoon = kb.search("lagoon", k=1, mode="bm25")[0]
        assert lagoon.source == "lagoon.txt" and lagoon.chunk_id is not None
        own = kb._store.vectors_for([lagoon.chunk_id])[lagoon.chunk_id]
        assert kb.search("x", k=1, mode="vector", query_vector=own)[0].source == "lagoon.txt"
        assert all(h.source != "desert.txt" for h in kb.search("desert", k=len(TOPICS)))
        assert _rows(postgres, table) == len(TOPICS)


def test_a_failure_between_the_two_commits_is_repaired(postgres: LocalPostgres, docs: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = KnowledgeBaseConfig(vector_store="pgvector", pg_dsn=postgres.dsn)
    folder = tmp_path / "kb"
    KnowledgeBase.build(docs, folder, embedder=HashEmbedder(), config=config).close()
    original = Store.set_meta

    def fail_at_generation(self: Store, key: str, value: str) -> None:
        if key == "generation":
            raise OSError("disk full")  # after PostgreSQL committed generation 2, before SQLite commits it
        original(self, key, value)

    (docs / "volcano.txt").unlink()
    (docs / "tundra.txt").write_text("A note about the tundra.\n")
    with KnowledgeBase.open(folder, embedder=HashEmbedder(), config=config) as kb:
        monkeypatch.setattr(Store, "set_meta", fail_at_generation)
        with pytest.raises(OSError, match="disk full"):
            kb.add(docs)
        monkeypatch.setattr(Store, "set_meta", original)
        table = kb._store.get_meta("pg_table")
        assert table is not None
        ahead = PgVectorStore(postgres.dsn, table, DIM)
        assert ahead.generation == 2 and kb._store.generation == 1, "PostgreSQL ahead of SQLite"
    with KnowledgeBase.open(folder, embedder=HashEmbedder(), config=config) as kb:
        hits = kb.search("volcano tundra", k=len(TOPICS) + 1)
        sources = {h.source for h in hits}
        assert "volcano.txt" in sources and "tundra.txt" not in sources, "the store's (old) generation wins"
        assert ahead.generation == 1 and len(ahead) == len(TOPICS), "the table was rebuilt from SQLite"
        kb.add(docs)  # and the next write goes through
        assert kb.search("tundra", k=1, mode="bm25")[0].source == "tundra.txt"
    ahead.close()
