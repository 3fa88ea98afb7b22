"""Typed errors of the retrieval layer (loading, embedding, storing, searching documents)."""

from __future__ import annotations

from qwen_agent.errors import QwenAgentError

__all__ = ["EmbeddingError", "LoaderError", "RetrievalError", "StoreError"]


class RetrievalError(QwenAgentError):
    """Anything that went wrong indexing or searching a knowledge base."""


class LoaderError(RetrievalError):
    """One file could not be read. Indexing records it per file and goes on with the rest of the folder."""

    def __init__(self, path: str, reason: str, kind: str = "unreadable") -> None:
        self.path = path
        self.reason = reason
        self.kind = kind
        super().__init__(f"{path}: {reason}")


class EmbeddingError(RetrievalError):
    """The embedding model could not be loaded or run."""


class StoreError(RetrievalError):
    """The on-disk knowledge base is missing, locked, incompatible or damaged beyond self-repair."""
