"""Optional cross-encoder reranking of the fused candidates (fusion itself lives in fusion.py)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Protocol, runtime_checkable

__all__ = ["CrossEncoderReranker", "Reranker"]

logger = logging.getLogger(__name__)

@runtime_checkable
class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    def score(self, query: str, passages: list[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder (e.g. a local ms-marco MiniLM or bge-reranker directory), loaded lazily.

    Re-scoring the top candidates jointly with the query catches passages that embeddings and BM25 both
    under-rank; it costs one forward pass per candidate, so keep the candidate list short (20-50).
    """

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 16, max_length: int = 512) -> None:
        self._name = model
        self._device = device
        self._batch_size = batch_size
        self._max_length = max_length
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from qwen_agent.retrieval.errors import EmbeddingError

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(
                        self._name, device=self._device, max_length=self._max_length, local_files_only=True
                    )
                except Exception as exc:
                    raise EmbeddingError(
                        f"Could not load cross-encoder '{self._name}' ({type(exc).__name__}: {exc}); pass a local "
                        "model directory (nothing is downloaded at run time)."
                    ) from exc
            return self._model

    def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        model = self._load()
        scores = model.predict(
            [(query, p) for p in passages], batch_size=self._batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]
