"""The search indexes of a store's generation: built from SQLite, updated in place, loaded (or rebuilt) from disk.

SQLite (``store.py``) is the source of truth; the FAISS file and the BM25 folder of each generation are derived from
it, so any of them that is missing or damaged is rebuilt from the store rather than trusted. ``KnowledgeBase``
decides when; this module knows how.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from qwen_agent.retrieval.bm25 import BM25Index
from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.index import ADD_BATCH, IVFPQ_MIN, IVFPQ_TRAIN_MAX, VectorIndex, choose_kind, ondisk_path
from qwen_agent.retrieval.models import IndexKind
from qwen_agent.retrieval.store import Store

__all__ = ["build_bm25", "build_vectors", "drop_generation", "load_bm25", "load_vectors", "updated_vectors"]

logger = logging.getLogger(__name__)


def build_vectors(store: Store, dim: int, total: int, index_kind: IndexKind, ondisk: Path | None) -> VectorIndex:
    """A new vector index of every stored chunk. IVF-PQ is trained on a sample and filled batch by batch from
    SQLite, so a collection larger than RAM never has to fit in it; the other kinds hold their vectors in memory
    anyway, so they are built from one matrix."""
    if choose_kind(total, index_kind) == "ivfpq" and total >= IVFPQ_MIN:
        return VectorIndex.build_ivfpq_streaming(total, store.sample_vectors(IVFPQ_TRAIN_MAX),
                                                 store.iter_vectors(ADD_BATCH), dim, ondisk)
    ids, matrix = store.all_vectors(dim)
    return VectorIndex.build(matrix, ids, dim, index_kind, ondisk=ondisk)


def updated_vectors(store: Store, current: VectorIndex | None, dim: int, index_kind: IndexKind, removed: list[int],
                    new_ids: list[int], vectors: np.ndarray | None) -> VectorIndex:
    """``current`` changed in place when its kind still fits the new size and it supports the change; else a new
    index built from the store (called inside the write, so the store already holds the change)."""
    _, total, _ = store.counts()
    if (
        current is not None
        and current.kind == choose_kind(total, index_kind)
        and current.dim == dim
        and (not removed or current.can_remove)
        and (not new_ids or current.can_add)
    ):
        if removed:
            current.remove(np.asarray(removed, dtype=np.int64))
        if new_ids and vectors is not None:
            current.add(vectors, np.asarray(new_ids, dtype=np.int64))
        return current
    # On-disk IVF-PQ lists go next to the next generation's index file.
    return build_vectors(store, dim, total, index_kind, ondisk_path(store.faiss_path(store.generation + 1)))


def load_vectors(store: Store, dim: int, gen: int, total: int, kind: str, index_kind: IndexKind) -> VectorIndex:
    """Generation ``gen``'s FAISS index, or a new one from the store when the file is missing or does not match."""
    try:
        vectors = VectorIndex.load(store.faiss_path(gen), kind, dim)
        if len(vectors) != total:
            raise StoreError(f"vector index holds {len(vectors)} vectors, store has {total} chunks")
        return vectors
    except Exception as exc:  # noqa: BLE001 - any damage means: rebuild from the store
        logger.warning("vector index of generation %d unusable (%s); rebuilding from the store", gen, exc)
        return build_vectors(store, dim, total, index_kind, None)


def build_bm25(store: Store) -> BM25Index:
    chunk_ids, token_lists = store.all_tokens()
    return BM25Index.build(token_lists, chunk_ids)


def load_bm25(store: Store, gen: int, total: int) -> BM25Index:
    """Generation ``gen``'s BM25 index, or a new one from the store when it is missing or does not match."""
    try:
        bm25 = BM25Index.load(store.bm25_path(gen))
        if len(bm25) != total:
            raise StoreError(f"BM25 index holds {len(bm25)} chunks, store has {total}")
        return bm25
    except Exception as exc:  # noqa: BLE001
        logger.warning("BM25 index of generation %d unusable (%s); rebuilding from the store", gen, exc)
        return build_bm25(store)


def drop_generation(store: Store, gen: int) -> None:
    """Delete generation ``gen``'s index files (readers hold their indexes in memory, so none still needs them)."""
    store.faiss_path(gen).unlink(missing_ok=True)
    ondisk_path(store.faiss_path(gen)).unlink(missing_ok=True)
    shutil.rmtree(store.bm25_path(gen), ignore_errors=True)
