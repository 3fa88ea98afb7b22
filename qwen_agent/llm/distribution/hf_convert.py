"""Convert a catalogue GGUF model into a verified bf16 Hugging Face folder, for Transformers and vLLM on CPU.

vLLM's CPU build cannot load a GGUF (its GGUF plugin needs CUDA) and transformers' GGUF loader dequantizes the
whole file at every load (~30-45 s), so the GGUF is converted once: transformers reads it
(``from_pretrained(..., gguf_file=...)``, which needs the ``gguf`` package), the weights are saved as bf16
safetensors, and the tokenizer with the GGUF's own chat template (tool calling needs it). The conversion is checked
before it is published: the Hugging Face tokenizer must produce exactly llama.cpp's token ids for a set of samples,
otherwise prompts would differ between backends. A ``qwen-agent-manifest.json`` records the source GGUF, the tool
versions and the sha256 of every file, so a damaged folder is noticed and converted again. Publication is atomic
(a temporary folder renamed into place under a file lock): a killed conversion never leaves a half folder under the
final name, and two processes asking at once convert once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from qwen_agent.durable import fsync_dir
from qwen_agent.llm.distribution import store
from qwen_agent.llm.distribution.catalogue import DEFAULT_MODEL, CatalogueEntry, get_entry
from qwen_agent.llm.errors import ModelError

__all__ = [
    "MANIFEST_NAME",
    "TOKENIZER_SAMPLES",
    "ConversionError",
    "ConvertProgress",
    "HFManifest",
    "ManifestFile",
    "check_tokenizer",
    "ensure_hf_model",
    "hf_model_dir",
    "verify_hf_model",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "qwen-agent-manifest.json"
#: Bumped when the folder layout or the conversion changes, so folders made by an older version are redone.
_FORMAT_VERSION = 1
_CHUNK = 1 << 20

#: Strings whose token ids must be identical in llama.cpp (the GGUF) and the converted tokenizer: plain English,
#: code with indentation, Chinese, odd spacing and emoji (byte fallback), and the chat/tool special tokens.
TOKENIZER_SAMPLES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog. Numbers: 12345, 3.14159!",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\tprint({'a': [1, 2]})\n",
    "你好，世界！今天天气怎么样？北京是中国的首都。",
    "  leading spaces,\ttabs and trailing spaces   \n\n",
    "émoji 🚀 ü ß — “quotes”",
    ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
     "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call><|im_end|><|endoftext|>"),
)


class ConversionError(ModelError):
    """Converting a GGUF into a Hugging Face folder failed or produced a model that differs from the GGUF."""


class ConvertProgress(BaseModel):
    """One progress report. ``done``/``total`` are bytes for the ``pull`` and ``verify`` stages, else None."""

    stage: Literal["pull", "load", "save", "check", "verify"]
    detail: str
    done: int | None = None
    total: int | None = None


ConvertProgressCallback = Callable[[ConvertProgress], None]


class ManifestFile(BaseModel):
    size: int
    sha256: str
    #: mtime of the file when it was last hashed: an unchanged (size, mtime_ns) skips re-hashing it.
    mtime_ns: int


class HFManifest(BaseModel):
    """What a converted folder holds and where it came from (``qwen-agent-manifest.json``)."""

    format_version: int = _FORMAT_VERSION
    name: str
    source_gguf: str
    source_sha256: str
    dtype: str = "bfloat16"
    transformers_version: str
    gguf_version: str
    torch_version: str
    created_at: float
    files: dict[str, ManifestFile]


# ---- locations and verification ----------------------------------------------------------------------------------
def hf_model_dir(name: str = DEFAULT_MODEL, *, cache_dir: Path | str | None = None) -> Path:
    """Where the converted folder of catalogue model ``name`` lives: ``<cache>/hf/<name>``."""
    entry = get_entry(name)
    return (Path(cache_dir) if cache_dir is not None else store.cache_dir()) / "hf" / entry.name


def _sha256(path: Path, progress: ConvertProgressCallback | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(ConvertProgress(stage="verify", detail=path.name, done=done, total=total))
    return digest.hexdigest()


def _read_manifest(folder: Path) -> HFManifest | None:
    try:
        return HFManifest.model_validate_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def _write_manifest(folder: Path, manifest: HFManifest) -> None:
    tmp = folder / (MANIFEST_NAME + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(manifest.model_dump_json(indent=2))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST_NAME)


def verify_hf_model(name: str = DEFAULT_MODEL, *, cache_dir: Path | str | None = None, full: bool = False,
                    progress: ConvertProgressCallback | None = None) -> bool:
    """True when the converted folder is complete and every file matches its manifest entry.

    A file whose size and mtime are those recorded when it was last hashed is trusted without re-hashing (the
    safetensors of even the 0.5B model take seconds to hash); ``full=True`` re-hashes everything. An ordinary
    edit changes a file's mtime and is caught by the quick check; one that puts the old mtime back needs
    ``full=True``. A folder made from another GGUF (the catalogue's
    sha256 changed) or by an older conversion format is reported as not valid.
    """
    entry = get_entry(name)
    return _folder_ok(hf_model_dir(name, cache_dir=cache_dir), entry.sha256, full=full, progress=progress)


def _folder_ok(folder: Path, source_sha256: str, *, full: bool = False,
               progress: ConvertProgressCallback | None = None) -> bool:
    manifest = _read_manifest(folder)
    if manifest is None or manifest.format_version != _FORMAT_VERSION or manifest.source_sha256 != source_sha256:
        return False
    rehashed = False
    for rel, want in manifest.files.items():
        path = folder / rel
        try:
            st = path.stat()
        except OSError:
            logger.warning("converted model: %s is missing", path)
            return False
        if st.st_size != want.size:
            logger.warning("converted model: %s has %d bytes, expected %d", path, st.st_size, want.size)
            return False
        if not full and st.st_mtime_ns == want.mtime_ns:
            continue
        if _sha256(path, progress) != want.sha256:
            logger.warning("converted model: %s does not match its sha256", path)
            return False
        if want.mtime_ns != st.st_mtime_ns:
            want.mtime_ns = st.st_mtime_ns
            rehashed = True
    if rehashed:  # remember the new mtimes so the next check is quick again
        with contextlib.suppress(OSError):
            _write_manifest(folder, manifest)
    return True


# ---- conversion ---------------------------------------------------------------------------------------------------
def ensure_hf_model(name: str | CatalogueEntry = DEFAULT_MODEL, *, progress: ConvertProgressCallback | None = None,
                    cache_dir: Path | str | None = None) -> Path:
    """The verified Hugging Face folder of catalogue model ``name``, converting it once if missing or damaged.

    The GGUF is pulled first when absent (hash-checked). ``cache_dir`` overrides the cache root for both the GGUF
    and the folder, like `store.pull`. ``name`` may be a `CatalogueEntry` of one's own (a test's), in which
    case the folder is ``<cache>/hf/<entry.name>``. Raises `ConversionError` when the conversion fails or its
    tokenizer disagrees with llama.cpp's; nothing is left behind then.
    """
    entry = name if isinstance(name, CatalogueEntry) else get_entry(name)
    root = Path(cache_dir) if cache_dir is not None else store.cache_dir()
    folder = root / "hf" / entry.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{entry.name}.lock")):
        if _folder_ok(folder, entry.sha256, progress=progress):
            return folder
        for stale in folder.parent.glob(f".{entry.name}.converting-*"):  # left by a killed conversion
            shutil.rmtree(stale, ignore_errors=True)
        gguf_path = store.pull(entry, cache_dir=cache_dir, verify=True, progress=_pull_reporter(progress))
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.converting-", dir=folder.parent))
        try:
            _convert(entry, gguf_path, tmp, progress)
            _publish(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("converted %s to %s in %.1fs", entry.name, folder, time.perf_counter() - start)
        return folder


def _pull_reporter(progress: ConvertProgressCallback | None) -> store.ProgressCallback | None:
    if progress is None:
        return None
    return lambda p: progress(ConvertProgress(stage="pull", detail=f"{p.stage} {p.item}", done=p.done, total=p.total))


def _import_converters() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
        importlib.metadata.version("gguf")
        importlib.metadata.version("accelerate")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise ConversionError(
            f"converting a GGUF to a Hugging Face folder needs torch, transformers, gguf and accelerate ({exc}); "
            "install them with `pip install 'qwen-agent[transformers]'`") from exc
    return torch, transformers


def _convert(entry: CatalogueEntry, gguf_path: Path, out: Path, progress: ConvertProgressCallback | None) -> None:
    """Write the bf16 folder for ``gguf_path`` into ``out`` (tokenizer checked, manifest last)."""
    torch, transformers = _import_converters()
    report = progress or (lambda _p: None)
    src, fname = str(gguf_path.parent), gguf_path.name
    try:
        report(ConvertProgress(stage="load", detail=f"tokenizer of {fname}"))
        tokenizer = transformers.AutoTokenizer.from_pretrained(src, gguf_file=fname)
        report(ConvertProgress(stage="load", detail=f"weights of {fname} (dequantizing)"))
        model = transformers.AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.bfloat16)
    except Exception as exc:
        raise ConversionError(f"transformers could not read {gguf_path} ({type(exc).__name__}: {exc}); check that "
                              "it is a GGUF of an architecture transformers supports, or pull it again") from exc
    template = _gguf_chat_template(gguf_path)
    try:
        _make_plain(model)
        if template and tokenizer.chat_template != template:
            tokenizer.chat_template = template  # tool calling in vLLM and transformers renders with this
        context = getattr(model.config, "max_position_embeddings", None)
        if context and not 0 < (tokenizer.model_max_length or 0) <= context:
            tokenizer.model_max_length = context  # the GGUF tokenizer says "unlimited" (1e30)
        _set_stop_tokens(model, tokenizer)
        report(ConvertProgress(stage="save", detail=str(out)))
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"saving the converted {entry.name} to {out} failed: {exc!r}") from exc
    finally:
        del model
    report(ConvertProgress(stage="check", detail="tokenizer ids against llama.cpp"))
    saved = transformers.AutoTokenizer.from_pretrained(str(out))
    if template and saved.chat_template != template:
        raise ConversionError(f"the saved tokenizer of {entry.name} lost the GGUF's chat template")
    check_tokenizer(saved, gguf_path)
    _usual_permissions(out)
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            os.fsync(f.fileno())
        st = path.stat()
        files[path.relative_to(out).as_posix()] = ManifestFile(size=st.st_size, sha256=_sha256(path),
                                                               mtime_ns=st.st_mtime_ns)
    _write_manifest(out, HFManifest(
        name=entry.name, source_gguf=entry.filename, source_sha256=entry.sha256,
        transformers_version=transformers.__version__, gguf_version=importlib.metadata.version("gguf"),
        torch_version=torch.__version__, created_at=time.time(), files=files))


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes a private 0700 folder (and safetensors a 0600 file): give them the umask's usual modes so
    a model server running as another user can read the published folder."""
    umask = _current_umask()
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _current_umask() -> int:
    """The process umask without the set-and-restore dance of os.umask (not thread-safe); 022 if unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _make_plain(model: Any) -> None:
    """Turn the loaded GGUF model into a plain dense one that `save_pretrained` accepts.

    transformers loads a GGUF through its GGUF quantizer and refuses to serialise a quantized model; without the
    ``kernels`` package every weight is dequantized already, so only the quantizer and ``quantization_config``
    have to go. If a weight stayed packed (``kernels`` installed) saving it would be wrong: refuse instead.
    """
    packed = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Gguf")})
    if packed:
        raise ConversionError(f"transformers kept GGUF-packed layers ({', '.join(packed)}) instead of dense weights; "
                              "uninstall the `kernels` package for the conversion and try again")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _set_stop_tokens(model: Any, tokenizer: Any) -> None:
    """End generation at ``<|im_end|>`` and ``<|endoftext|>`` like Qwen's own generation_config.json does."""
    ids = [model.generation_config.eos_token_id]
    ids = [i for x in ids for i in (x if isinstance(x, list) else [x]) if i is not None]
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab]
    model.generation_config.eos_token_id = list(dict.fromkeys(ids))


def _gguf_chat_template(gguf_path: Path) -> str | None:
    """The GGUF's own chat template, read by llama.cpp (vocab only: far faster than gguf's own reader)."""
    from qwen_agent.llm.backends.llamacpp_runtime import load_llama

    llm = load_llama(gguf_path, extra_buffer_types=False, vocab_only=True, n_ctx=256, verbose=False)
    try:
        return llm.metadata.get("tokenizer.chat_template") or None
    finally:
        llm.close()


def check_tokenizer(tokenizer: Any, gguf_path: Path, samples: tuple[str, ...] = TOKENIZER_SAMPLES) -> None:
    """Raise `ConversionError` unless ``tokenizer`` gives llama.cpp's token ids (from ``gguf_path``) for every
    sample, special tokens parsed as such on both sides."""
    from qwen_agent.llm.backends.llamacpp_runtime import load_llama

    llm = load_llama(gguf_path, extra_buffer_types=False, vocab_only=True, n_ctx=256, verbose=False)
    try:
        for text in samples:
            want = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            got = tokenizer.encode(text, add_special_tokens=False)
            if list(got) != list(want):
                raise ConversionError(
                    f"the converted tokenizer disagrees with llama.cpp on {text[:40]!r}: {len(got)} ids vs "
                    f"{len(want)} (first difference at {_first_difference(got, want)}); the conversion is not "
                    "trustworthy with this transformers/gguf version")
    finally:
        llm.close()


def _first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _publish(tmp: Path, folder: Path) -> None:
    """Rename the finished ``tmp`` into ``folder``, moving a damaged old folder out of the way first."""
    fsync_dir(tmp)
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.converting-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    fsync_dir(folder.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
