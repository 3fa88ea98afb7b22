"""On-disk knowledge base: SQLite for files, sections, chunks, tokens and vectors; generation-numbered index files.

Crash safety: a write happens inside one SQLite transaction (BEGIN IMMEDIATE, so one writer at a time). The
new FAISS and BM25 files are written under the *next* generation number, fsync'd, and only then does the
transaction commit the new generation together with the chunk rows. A kill -9 at any point leaves either the
old generation (transaction rolled back, new files orphaned and swept by the next writer) or the new one.
Index files are caches: if one is missing or damaged it is rebuilt from the vectors and tokens in SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.models import Chunk, Section

__all__ = ["DB_NAME", "SCHEMA_VERSION", "FileRecord", "Store"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
DB_NAME = "kb.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER, heading TEXT, sheet TEXT, n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER, heading TEXT, sheet TEXT,
    n_tokens INTEGER NOT NULL, tokens TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS sections_file ON sections(file_id);
"""


class FileRecord(dict[str, Any]):
    """Row of the files table (id, path, source, sha256, size, n_tokens)."""


class Store:
    """SQLite-backed storage of one knowledge base directory. Thread-safe through one connection and a lock."""

    def __init__(self, folder: Path, *, create: bool) -> None:
        self.folder = folder
        db = folder / DB_NAME
        if not db.exists():
            if not create:
                raise StoreError(
                    f"No knowledge base at {folder}: build one first (`qwen-agent index DIR --store {folder}` or "
                    "KnowledgeBase.build(docs, store_path))."
                )
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{db} is not a readable knowledge base ({exc}); delete the folder and re-index.") from exc
        if version is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{db} has schema {version}, this version reads {SCHEMA_VERSION}; re-index the folder.")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- meta -------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def faiss_path(self, generation: int) -> Path:
        return self.folder / f"vectors.{generation}.faiss"

    def bm25_path(self, generation: int) -> Path:
        return self.folder / f"bm25.{generation}"

    # --- transactions -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """One atomic write: BEGIN IMMEDIATE (takes the writer lock) ... COMMIT, or ROLLBACK on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._sweep_stale_files()
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _sweep_stale_files(self) -> None:
        """Delete index files of other generations: leftovers of a crash. Safe because we hold the writer lock."""
        current = self.generation
        for entry in self.folder.iterdir():
            parts = entry.name.split(".")
            if parts[0] in {"vectors", "bm25"} and len(parts) >= 2 and parts[1] != str(current):
                logger.info("removing stale index file %s", entry)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    # --- files ------------------------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        """All indexed files keyed by absolute path."""
        with self._lock:
            cur = self._db.execute("SELECT id, path, source, sha256, size, n_tokens FROM files")
            cols = [c[0] for c in cur.description]
            return {row[1]: FileRecord(zip(cols, row, strict=True)) for row in cur.fetchall()}

    def delete_file(self, file_id: int) -> list[int]:
        """Delete a file and its sections/chunks; returns the removed chunk ids (for the vector index)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE file_id = ?", (file_id,))]
            self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        return ids

    def insert_file(
        self,
        *,
        path: str,
        source: str,
        sha256: str,
        size: int,
        sections: Sequence[Section],
        section_tokens: Sequence[int],
        chunks: Sequence[Chunk],
        tokens: Sequence[list[str]],
        vectors: np.ndarray,
    ) -> list[int]:
        """Insert one document with its sections and embedded chunks; returns the new chunk ids in order."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO files (path, source, sha256, size, n_tokens) VALUES (?, ?, ?, ?, ?)",
                (path, source, sha256, size, int(sum(section_tokens))),
            )
            file_id = cur.lastrowid
            self._db.executemany(
                "INSERT INTO sections (file_id, ord, text, page, heading, sheet, n_tokens) VALUES (?,?,?,?,?,?,?)",
                [
                    (file_id, i, s.text, s.page, s.heading, s.sheet, n)
                    for i, (s, n) in enumerate(zip(sections, section_tokens, strict=True))
                ],
            )
            ids = []
            for chunk, toks, vec in zip(chunks, tokens, vectors, strict=True):
                cur = self._db.execute(
                    "INSERT INTO chunks (file_id, position, text, page, heading, sheet, n_tokens, tokens, vector) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        file_id, chunk.position, chunk.text, chunk.page, chunk.heading, chunk.sheet,
                        chunk.n_tokens, " ".join(toks), np.asarray(vec, dtype=np.float32).tobytes(),
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    # --- bulk reads for (re)building indexes ------------------------------------------------------------------
    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, matrix

    def iter_vectors(self, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every chunk in id order, ``batch`` at a time: for indexes built without holding them
        all (IVF-PQ on disk)."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
                                        (last, batch)).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            last = int(ids[-1])

    def sample_vectors(self, k: int, seed: int = 0) -> np.ndarray:
        """``k`` stored vectors chosen at random (all of them when there are fewer): training data for IVF-PQ."""
        with self._lock:
            all_ids = np.fromiter((r[0] for r in self._db.execute("SELECT id FROM chunks ORDER BY id")),
                                  dtype=np.int64)
        chosen = all_ids if len(all_ids) <= k else np.sort(np.random.default_rng(seed).choice(all_ids, k,
                                                                                               replace=False))
        found = self.vectors_for([int(i) for i in chosen])
        return np.stack([found[int(i)] for i in chosen if int(i) in found])

    def all_tokens(self) -> tuple[np.ndarray, list[list[str]]]:
        with self._lock:
            rows = self._db.execute("SELECT id, tokens FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, [r[1].split(" ") if r[1] else [] for r in rows]

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored (exact) vectors of some chunks: what re-ranks the candidates of a compressed index."""
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                for cid, blob in self._db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
                    out[int(cid)] = np.frombuffer(blob, dtype=np.float32)
        return out

    # --- lookups for search results ---------------------------------------------------------------------------
    def chunk_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        with self._lock:
            out: dict[int, dict[str, Any]] = {}
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                cur = self._db.execute(
                    "SELECT c.id, c.text, c.page, c.heading, c.sheet, c.position, c.n_tokens, f.source, f.path "
                    f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
                    part,
                )
                cols = [c[0] for c in cur.description]
                for row in cur.fetchall():
                    out[int(row[0])] = dict(zip(cols, row, strict=True))
        return out

    def all_sections(self) -> list[dict[str, Any]]:
        """Every section in reading order (file, then position): the whole-document context."""
        with self._lock:
            cur = self._db.execute(
                "SELECT s.text, s.page, s.heading, s.sheet, s.ord, s.n_tokens, f.source, f.path "
                "FROM sections s JOIN files f ON f.id = s.file_id ORDER BY f.source, f.id, s.ord"
            )
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> tuple[int, int, int]:
        """(documents, chunks, total section tokens)."""
        with self._lock:
            docs, tokens = self._db.execute("SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM files").fetchone()
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks), int(tokens)
