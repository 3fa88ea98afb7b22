"""`VectorStore`: what the knowledge base needs from a vector index, so FAISS (the default, `index.VectorIndex`)
and PostgreSQL + pgvector (`pgvector_store.PgVectorStore`) are interchangeable behind it.

Vectors are L2-normalised float32 and keyed by the SQLite store's chunk ids; scores are inner products (cosine).
The SQLite store stays the source of truth: a vector store is a derived copy that can always be rebuilt from it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["VectorStore"]


@runtime_checkable
class VectorStore(Protocol):
    """Nearest-neighbour search over chunk vectors."""

    #: What kind of index answers (``flat``, ``hnsw``, ``ivf``, ``ivfpq``, ``pgvector``).
    kind: str
    dim: int

    def __len__(self) -> int: ...

    @property
    def can_add(self) -> bool: ...

    @property
    def can_remove(self) -> bool: ...

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(chunk id, inner product)`` pairs, best first."""
        ...
