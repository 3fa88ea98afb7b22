"""ONNX Runtime embeddings (int8 dynamic quantization by default), exported locally from a sentence-transformers folder.

Why not sentence-transformers' own ``backend="onnx"``: it needs optimum-onnx, which pins transformers < 4.58 while
this project runs transformers 5. So the same recipe is done with the libraries underneath it: ``torch.onnx``
exports the encoder with mean/CLS pooling and L2 normalisation inside the graph, onnxruntime's transformer
optimizer fuses attention/LayerNorm/GELU, and ``onnxruntime.quantization.quantize_dynamic`` stores int8 weights
(activations are quantised per batch at run time). The export is cached under the framework's cache folder keyed by
the source weights, so it happens once per model (~20-60 s). Texts are tokenised by the model's ``tokenizer.json``
(tokenizers), sorted by length and batched so padding stays small.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from qwen_agent.paths import cache_dir
from qwen_agent.retrieval.errors import EmbeddingError

__all__ = ["OnnxRunner", "exported_model", "max_length"]

logger = logging.getLogger(__name__)

OnnxPrecision = Literal["int8", "fp32"]
EXPORT_VERSION = "1"  # bump when the export recipe changes, so old caches are not reused
_EXPORT_LOCK = threading.Lock()


def _pooling(model_dir: Path) -> str:
    for entry in _read_json(model_dir / "modules.json", []):
        if entry.get("type", "").endswith("Pooling"):
            cfg = _read_json(model_dir / entry["path"] / "config.json", {})
            if cfg.get("pooling_mode_cls_token"):
                return "cls"
            if cfg.get("pooling_mode_mean_tokens", True):
                return "mean"
            raise EmbeddingError(f"{model_dir}: only mean or CLS pooling can be exported to ONNX")
    return "mean"


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def max_length(model_dir: Path) -> int:
    """The model's maximum input length in tokens (sentence-transformers' max_seq_length)."""
    return int(_read_json(model_dir / "sentence_bert_config.json", {}).get("max_seq_length", 256))


def _source_key(model_dir: Path, precision: str) -> str:
    import onnxruntime

    candidates = (model_dir / n for n in ("model.safetensors", "pytorch_model.bin"))
    weights = next((p for p in candidates if p.is_file()), None)
    if weights is None:
        raise EmbeddingError(f"{model_dir} has no model.safetensors / pytorch_model.bin to export to ONNX")
    st = weights.stat()
    raw = f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}|{precision}|{onnxruntime.__version__}|{EXPORT_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def exported_model(model_dir: Path, precision: OnnxPrecision = "int8", cache: Path | None = None) -> Path:
    """Path of the cached ONNX file for ``model_dir`` (exported, optimised and quantised on first call)."""
    root = (cache or cache_dir() / "onnx") / f"{model_dir.name}-{_source_key(model_dir, precision)}"
    target = root / f"model-{precision}.onnx"
    with _EXPORT_LOCK:
        if target.is_file():
            return target
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="export.", dir=root))
        try:
            _export(model_dir, work, precision)
            os.replace(work / target.name, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        logger.info("exported %s to %s", model_dir, target)
        return target


class _Pooled:
    """Encoder + pooling + L2 normalisation as one traced module."""

    def __new__(cls, encoder: Any, pooling: str) -> Any:
        import torch

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                if pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

        return Pooled()


def _export(model_dir: Path, work: Path, precision: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    encoder = AutoModel.from_pretrained(model_dir, local_files_only=True, attn_implementation="eager").eval()
    module = _Pooled(encoder, _pooling(model_dir)).eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    raw = work / "model-raw.onnx"
    with torch.no_grad():
        torch.onnx.export(
            module, (ids, mask), str(raw), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "embedding": {0: "batch"}},
        )
    fused = work / "model-fp32.onnx"
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        opt = optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                             hidden_size=config.hidden_size, opt_level=1)
        opt.save_model_to_file(str(fused))
    except Exception as exc:  # noqa: BLE001 - fusion is an optimisation; the plain graph is correct too
        logger.warning("onnxruntime transformer fusion failed (%s); using the unfused graph", exc)
        shutil.copyfile(raw, fused)
    if precision == "fp32":
        return
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fused), str(work / "model-int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
        # fused contrib ops (Attention, SkipLayerNorm) carry no shape-inferred types; their tensors are float
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


class OnnxRunner:
    """Runs an exported model: tokenise, sort by length, batch, pad, run; returns normalised float32 vectors."""

    def __init__(self, onnx_path: Path, tokenizer_file: Path, *, max_length: int, threads: int | None = None,
                 batch_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = Tokenizer.from_file(str(tokenizer_file))
        tok.no_padding()
        tok.enable_truncation(max_length)
        self._tok = tok
        self._batch_size = batch_size
        shape = self._session.get_outputs()[0].shape[-1]
        self.dim = shape if isinstance(shape, int) else int(self.encode(["dimension probe"]).shape[1])

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tok.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            vectors = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out
