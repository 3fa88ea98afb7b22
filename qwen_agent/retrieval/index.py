"""FAISS vector index: exact flat search for small corpora, HNSW (or IVF) when large; chosen automatically.

The index maps FAISS ids to store chunk ids (IndexIDMap2), and is a derived cache of the vectors kept in the
SQLite store: it can always be rebuilt from them, which is what happens after deletions from HNSW (FAISS's
HNSW cannot remove vectors) or when the file on disk is missing or damaged.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from qwen_agent.durable import fsync_dir
from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.models import IndexKind

__all__ = ["FLAT_MAX", "HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "IVF_NPROBE", "VectorIndex", "choose_kind"]

logger = logging.getLogger(__name__)

# Below this many vectors exact search is fast enough (a few ms at 384 dims) and needs no training.
FLAT_MAX = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
IVF_NPROBE = 16


def _faiss() -> Any:
    import faiss

    return faiss


def choose_kind(n_vectors: int, requested: IndexKind = "auto") -> str:
    """``auto`` picks flat up to FLAT_MAX vectors and HNSW beyond (sub-millisecond search at 100k, ~99% recall)."""
    if requested != "auto":
        return requested
    return "flat" if n_vectors <= FLAT_MAX else "hnsw"


class VectorIndex:
    """Inner-product search over normalised vectors, keyed by chunk id."""

    def __init__(self, index: Any, kind: str, dim: int) -> None:
        self._index = index
        self.kind = kind
        self.dim = dim

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, dim: int, requested: IndexKind = "auto") -> VectorIndex:
        faiss = _faiss()
        n = len(ids)
        kind = choose_kind(n, requested)
        if kind == "ivf" and n < 256:
            logger.info("IVF needs training data; %d vectors are too few, using a flat index", n)
            kind = "flat"
        if kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "ivf":
            nlist = max(8, min(int(4 * math.sqrt(n)), n // 39))
            quantizer = faiss.IndexFlatIP(dim)
            inner = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
            inner.nprobe = IVF_NPROBE
        else:
            raise StoreError(f"Unknown index kind '{kind}'; use auto, flat, ivf or hnsw.")
        index = faiss.IndexIDMap2(inner)
        index_obj = cls(index, kind, dim)
        if n:
            index_obj.add(vectors, ids)
        return index_obj

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def can_remove(self) -> bool:
        return self.kind != "hnsw"

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
        )

    def remove(self, ids: np.ndarray) -> None:
        if not self.can_remove:
            raise StoreError("HNSW indexes cannot remove vectors; rebuild the index instead.")
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if len(self) == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self._index.search(q, min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically: a temp file in the same folder, fsync'd, then renamed over ``path``."""
        faiss = _faiss()
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path, kind: str, dim: int) -> VectorIndex:
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if index.d != dim:
            raise StoreError(f"{path} holds {index.d}-dim vectors, expected {dim}")
        inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
        if kind == "hnsw":
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "ivf":
            inner.nprobe = IVF_NPROBE
        return cls(index, kind, dim)
