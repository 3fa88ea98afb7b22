"""`PgVectorStore`: chunk vectors in PostgreSQL with pgvector's HNSW index, for collections that outgrow one
process's memory or are shared by several processes (the extra ``[pgvector]``: psycopg 3 + pgvector).

Why it stays crash-safe next to the SQLite store: every change (the chunks a knowledge-base write removes and
adds) is one PostgreSQL transaction that also records the store generation it produces. It commits just before
the SQLite transaction; if the process dies in between, PostgreSQL is one generation ahead of SQLite, which the
next open notices (generation or row count differ) and answers by rebuilding the table from SQLite, the source of
truth. BM25 stays the existing bm25s index; hybrid search fuses both as before.

Tests and benchmarks start a private server with the ``pgserver`` wheel (PostgreSQL 16 with pgvector 0.6.2 bundled,
its own data directory, a Unix socket and no TCP listener); any PostgreSQL with ``CREATE EXTENSION vector`` works.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from qwen_agent.retrieval.errors import StoreError

if TYPE_CHECKING:
    from qwen_agent.retrieval.store import Store

__all__ = ["DSN_ENV", "HNSW_EF_SEARCH", "PgVectorStore", "default_table", "open_synced"]

#: Where the knowledge base finds the DSN when its config names none (a DSN may hold a password: never stored).
DSN_ENV = "QWEN_AGENT_PG_DSN"

logger = logging.getLogger(__name__)

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 96
#: Memory for building the HNSW index in one go (pgvector builds in memory up to this, then slower on disk).
MAINTENANCE_WORK_MEM = "1GB"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


class PgVectorStore:
    """A ``(id bigint, embedding vector(dim))`` table with an HNSW index on inner product, and its generation."""

    kind = "pgvector"

    def __init__(self, dsn: str, table: str, dim: int, *, ef_search: int = HNSW_EF_SEARCH) -> None:
        if not _NAME.match(table):
            raise StoreError(f"pgvector table name {table!r}: use lower-case letters, digits and _ (max 51)")
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError as exc:
            raise StoreError("the pgvector store needs psycopg and pgvector: pip install 'qwen-agent[pgvector]'") \
                from exc
        self.table, self.dim = table, dim
        self._lock = threading.RLock()
        try:
            self._db: Any = psycopg.connect(dsn, autocommit=True)
            self._db.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(self._db)
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, embedding vector({dim}))")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table}_meta (key text PRIMARY KEY, value text NOT NULL)")
            self._create_index()
            self._db.execute(f"SET hnsw.ef_search = {int(ef_search)}")
            stored = self._meta("dim")
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {_safe(dsn)}: {exc}".strip()) from exc
        if stored is not None and int(stored) != dim:
            raise StoreError(f"pgvector table {table} holds {stored}-dim vectors, expected {dim}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- VectorStore ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    @property
    def can_add(self) -> bool:
        return True

    @property
    def can_remove(self) -> bool:
        return True

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.apply(np.zeros(0, dtype=np.int64), ids, vectors, generation=None)

    def remove(self, ids: np.ndarray) -> None:
        self.apply(ids, np.zeros(0, dtype=np.int64), None, generation=None)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, (embedding <#> %s) * -1 FROM {self.table} ORDER BY embedding <#> %s LIMIT %s",
                (q, q, int(k))).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    # ---- generations and bulk changes -------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute(f"SELECT value FROM {self.table}_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def generation(self) -> int:
        """The knowledge-base generation this table matches (0: never written)."""
        with self._lock:
            return int(self._meta("generation") or 0)

    def apply(self, removed: np.ndarray, new_ids: np.ndarray, vectors: np.ndarray | None,
              generation: int | None) -> None:
        """Remove and add in one transaction, recording ``generation`` with it (None: leave it)."""
        with self._lock, self._db.transaction():
            if len(removed):
                self._db.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (list(map(int, removed)),))
            if len(new_ids) and vectors is not None:
                self._copy(new_ids, vectors)
            self._set_meta("dim", str(self.dim))
            if generation is not None:
                self._set_meta("generation", str(generation))

    def _create_index(self) -> None:
        self._db.execute(
            f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray, generation: int) -> None:
        """Replace the whole table with ``vectors`` (the SQLite store's), in one transaction. The HNSW index is
        dropped and built once after the copy: an order of magnitude faster than growing it row by row."""
        logger.info("pgvector table %s: rebuilding %d vectors for generation %d", self.table, len(ids), generation)
        with self._lock, self._db.transaction():
            self._db.execute(f"DROP INDEX IF EXISTS {self.table}_hnsw")
            self._db.execute(f"TRUNCATE {self.table}")
            if len(ids):
                self._copy(ids, vectors)
            self._db.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            self._create_index()
            self._set_meta("dim", str(self.dim))
            self._set_meta("generation", str(generation))

    def _copy(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._db.cursor().copy(f"COPY {self.table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for cid, vec in zip(ids, matrix, strict=True):
                copy.write_row((int(cid), vec))

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(f"INSERT INTO {self.table}_meta VALUES (%s, %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))

    def drop(self) -> None:
        """Delete the table and its metadata."""
        with self._lock:
            self._db.execute(f"DROP TABLE IF EXISTS {self.table}")
            self._db.execute(f"DROP TABLE IF EXISTS {self.table}_meta")


def default_table(store: Store) -> str:
    """One table per knowledge-base folder: ``qa_<hash of the folder's absolute path>``."""
    return "qa_" + hashlib.sha256(str(store.folder.resolve()).encode()).hexdigest()[:20]


def open_synced(store: Store, dsn: str | None, table: str | None, dim: int) -> PgVectorStore:
    """The pgvector table of ``store``, rebuilt from the store's vectors when its generation or row count does
    not match (a crash between the two commits, a table dropped or restored from elsewhere)."""
    dsn = dsn or os.environ.get(DSN_ENV)
    if not dsn:
        raise StoreError(f"{store.folder} keeps its vectors in PostgreSQL: pass KnowledgeBaseConfig(pg_dsn=...) or "
                         f"set {DSN_ENV}")
    pg = PgVectorStore(dsn, table or default_table(store), dim)
    generation = store.generation
    _, total, _ = store.counts()
    if pg.generation != generation or len(pg) != total:
        logger.warning("pgvector table %s is at generation %d with %d rows, the store at %d with %d; rebuilding",
                       pg.table, pg.generation, len(pg), generation, total)
        ids, matrix = store.all_vectors(dim)
        pg.rebuild(ids, matrix, generation)
    return pg


def _safe(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
