"""FAISS vector index: exact flat search for small corpora, HNSW (or IVF) when large, IVF-PQ with its inverted
lists on disk beyond RAM; chosen automatically by size.

IVF-PQ on disk (``ivfpq``): vectors are stored as product-quantised codes (``dim / 8`` bytes each, 48 B at 384 dims
instead of 1,536 B) in inverted lists that live in a memory-mapped ``.ivfdata`` file next to the index
(`faiss.OnDiskInvertedLists`), so only the coarse centroids and the codebooks stay in RAM and the OS pages lists in
as queries touch them. It is approximate twice over (probe ``IVFPQ_NPROBE`` of the lists, compare compressed
codes), so it is what ``auto`` picks only above ``ONDISK_MIN`` vectors, where HNSW's full vectors plus graph no
longer fit a normal machine's memory.

The index maps FAISS ids to store chunk ids (IndexIDMap2), and is a derived cache of the vectors kept in the
SQLite store: it can always be rebuilt from them, which is what happens after deletions from HNSW (FAISS's
HNSW cannot remove vectors) or when the file on disk is missing or damaged.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qwen_agent.durable import fsync_dir
from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.models import IndexKind

__all__ = ["ADD_BATCH", "FLAT_MAX", "HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "IVFPQ_MIN", "IVFPQ_NPROBE",
           "IVFPQ_TRAIN_MAX", "IVF_NPROBE", "ONDISK_MIN", "VectorIndex", "choose_kind", "ondisk_path"]

logger = logging.getLogger(__name__)

# Below this many vectors exact search is fast enough (a few ms at 384 dims) and needs no training.
FLAT_MAX = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
IVF_NPROBE = 16
# Above this many vectors (~3 GB of float32 at 384 dims, before HNSW's graph) `auto` keeps the lists on disk.
ONDISK_MIN = 2_000_000
IVFPQ_NPROBE = 32
#: Training points for the coarse quantiser and the PQ codebooks (a sample: training on millions buys little).
IVFPQ_TRAIN_MAX = 100_000
#: Fewer vectors than this are too few to train IVF-PQ; a flat index serves them.
IVFPQ_MIN = 1000
#: Vectors added to an IVF-PQ index at a time (~100 MB of float32 at 384 dimensions).
ADD_BATCH = 65_536


_libc = ctypes.CDLL(None)


def _faiss() -> Any:
    import faiss

    return faiss


def choose_kind(n_vectors: int, requested: IndexKind = "auto") -> str:
    """``auto`` picks flat up to FLAT_MAX vectors, HNSW beyond (sub-millisecond search at 100k, ~99% recall) and
    IVF-PQ with on-disk lists from ONDISK_MIN on."""
    if requested != "auto":
        return requested
    if n_vectors <= FLAT_MAX:
        return "flat"
    return "hnsw" if n_vectors < ONDISK_MIN else "ivfpq"


def ondisk_path(index_path: Path) -> Path:
    """Where the inverted lists of the IVF-PQ index saved at ``index_path`` live (same folder, same stem)."""
    return index_path.with_suffix(".ivfdata")


_REDIRECT_LOCK = threading.Lock()


@contextlib.contextmanager
def _c_stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr while on-disk lists are written.

    faiss's ``OnDiskInvertedLists`` printf()s "resizing <file> to <n> bytes" to stdout every time its file grows,
    unconditionally. A CLI's stdout is its output (answers, JSON), so those lines go to stderr with the other
    diagnostics. C's stdio buffer is flushed before fd 1 is restored, or the lines would come out later on stdout.
    """
    with _REDIRECT_LOCK:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            yield
        finally:
            _libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)


def _pq_subquantizers(dim: int) -> int:
    """Sub-vectors of 8 dimensions (or the largest divisor of ``dim`` up to dim/8): one byte of code each."""
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


class VectorIndex:
    """Inner-product search over normalised vectors, keyed by chunk id."""

    def __init__(self, index: Any, kind: str, dim: int) -> None:
        self._index = index
        self.kind = kind
        self.dim = dim
        #: The on-disk inverted lists of an IVF-PQ index built here (kept alive as long as the index uses them).
        self._lists: Any = None
        self._keep: Any = None

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, dim: int, requested: IndexKind = "auto", *,
              ondisk: Path | None = None) -> VectorIndex:
        """Index ``vectors`` under ``ids``. For ``ivfpq``, ``ondisk`` is the ``.ivfdata`` file its inverted lists
        are written to (`ondisk_path` of where the index will be saved); None keeps them in memory."""
        faiss = _faiss()
        n = len(ids)
        kind = choose_kind(n, requested)
        if kind == "ivfpq":
            if n >= IVFPQ_MIN:
                return cls._build_ivfpq(vectors, ids, dim, ondisk)
            logger.info("IVF-PQ needs training data; %d vectors are too few, using a flat index", n)
            kind = "flat"
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
            raise StoreError(f"Unknown index kind '{kind}'; use auto, flat, ivf, hnsw or ivfpq.")
        index = faiss.IndexIDMap2(inner)
        index_obj = cls(index, kind, dim)
        if n:
            index_obj.add(vectors, ids)
        return index_obj

    @classmethod
    def _build_ivfpq(cls, vectors: np.ndarray, ids: np.ndarray, dim: int, ondisk: Path | None) -> VectorIndex:
        n = len(ids)
        rng = np.random.default_rng(0)
        sample = vectors if n <= IVFPQ_TRAIN_MAX else vectors[np.sort(rng.choice(n, IVFPQ_TRAIN_MAX, replace=False))]
        batches = ((ids[i:i + ADD_BATCH], vectors[i:i + ADD_BATCH]) for i in range(0, n, ADD_BATCH))
        return cls.build_ivfpq_streaming(n, sample, batches, dim, ondisk)

    @classmethod
    def build_ivfpq_streaming(cls, n: int, sample: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                              dim: int, ondisk: Path | None) -> VectorIndex:
        """An IVF-PQ index of ``n`` vectors that never holds them all: trained on ``sample`` (at most
        IVFPQ_TRAIN_MAX of them), then filled from ``batches`` of (ids, vectors). With ``ondisk`` the codes go to
        the lists file as they are added, so the peak is the sample plus one batch, whatever ``n`` is."""
        faiss = _faiss()
        nlist = max(16, min(int(4 * math.sqrt(n)), n // 39, 65_536))
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_subquantizers(dim), 8, faiss.METRIC_INNER_PRODUCT)
        inner.train(np.ascontiguousarray(sample, dtype=np.float32))
        if ondisk is not None:
            ondisk.unlink(missing_ok=True)
            lists = faiss.OnDiskInvertedLists(nlist, inner.code_size, str(ondisk))
            inner.replace_invlists(lists, False)
        inner.nprobe = IVFPQ_NPROBE
        index = cls(inner, "ivfpq", dim)
        index._lists = lists if ondisk is not None else None
        with _c_stdout_to_stderr() if ondisk is not None else contextlib.nullcontext():
            for batch_ids, batch_vectors in batches:  # the codes go to disk, the float copies stay one batch
                index.add(batch_vectors, batch_ids)
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def can_remove(self) -> bool:
        return self.kind not in ("hnsw", "ivfpq")

    @property
    def can_add(self) -> bool:
        """False for on-disk IVF-PQ: its lists belong to one generation, so a change writes a new index."""
        return self.kind != "ivfpq"

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
        """Write to ``path`` atomically: a temp file in the same folder, fsync'd, then renamed over ``path``.
        An on-disk IVF-PQ index must have been built with ``ondisk=ondisk_path(path)``; its lists are fsync'd too."""
        faiss = _faiss()
        if self.kind == "ivfpq" and self._lists is not None:
            lists_file = ondisk_path(path)
            if not lists_file.exists():
                raise StoreError(f"the IVF-PQ lists of {path} must be built at {lists_file}")
            fd = os.open(lists_file, os.O_RDONLY)
            try:
                os.fsync(fd)  # the lists were written through a shared mmap: same page cache, same fsync
            finally:
                os.close(fd)
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
        if kind == "ivfpq" and ondisk_path(path).exists():
            # Lists stay on disk: memory-mapped from the .ivfdata next to the index, wherever the folder moved.
            index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
        else:
            index = faiss.read_index(str(path))
        if index.d != dim:
            raise StoreError(f"{path} holds {index.d}-dim vectors, expected {dim}")
        raw = index
        if kind == "ivfpq":
            index = faiss.downcast_index(raw)  # IVF-PQ carries its own ids: no IDMap around it
        inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
        if kind == "hnsw":
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "ivf":
            inner.nprobe = IVF_NPROBE
        elif kind == "ivfpq":
            inner.nprobe = IVFPQ_NPROBE
        loaded = cls(index, kind, dim)
        loaded._keep = raw  # the downcast proxy does not own the index: the object read from disk must stay alive
        return loaded
