"""GGUF -> Hugging Face conversion with the real default model: a loadable, verified folder whose tokenizer is
llama.cpp's, damage detected and repaired, failures leaving nothing behind, and the `models convert` command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry, WheelPart
from qwen_agent.llm.distribution.hf_convert import (
    MANIFEST_NAME,
    TOKENIZER_SAMPLES,
    ConversionError,
    ConvertProgress,
    HFManifest,
    check_tokenizer,
    ensure_hf_model,
    hf_model_dir,
    verify_hf_model,
)

pytestmark = [pytest.mark.model, pytest.mark.transformers]


def _manifest(folder: Path) -> HFManifest:
    return HFManifest.model_validate_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


def test_converted_folder_is_complete_dense_and_verified(hf_folder: Path) -> None:
    assert hf_folder == hf_model_dir() == hf_model_dir(DEFAULT_MODEL)
    manifest = _manifest(hf_folder)
    entry = CATALOGUE[DEFAULT_MODEL]
    assert (manifest.source_gguf, manifest.source_sha256) == (entry.filename, entry.sha256)
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(manifest.files)
    assert manifest.transformers_version and manifest.gguf_version
    assert manifest.files["model.safetensors"].size > 1_000_000_000  # bf16 0.5B with its own lm_head
    config = json.loads((hf_folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    assert config["model_type"] == "qwen2" and config["max_position_embeddings"] == 32768
    generation = json.loads((hf_folder / "generation_config.json").read_text())
    assert {151643, 151645} <= set(generation["eos_token_id"])  # <|endoftext|> and <|im_end|> both end a reply
    assert verify_hf_model(full=True)
    assert not list(hf_folder.parent.glob(".*converting*")), "temporary folders were left behind"
    assert all(os.stat(hf_folder / f).st_mode & 0o044 == 0o044 for f in manifest.files), "files must be readable"


def test_tokenizer_ids_and_chat_template_match_the_gguf(hf_folder: Path, embedded_model_path: Path) -> None:
    from transformers import AutoTokenizer

    from qwen_agent.llm.backends.llamacpp_runtime import load_llama

    tokenizer = AutoTokenizer.from_pretrained(hf_folder)
    llm = load_llama(embedded_model_path, extra_buffer_types=False, vocab_only=True, n_ctx=256, verbose=False)
    try:
        template = llm.metadata["tokenizer.chat_template"]
        assert tokenizer.chat_template == template and "tools" in template
        for text in [*TOKENIZER_SAMPLES, "SELECT * FROM t WHERE x <> 'é';", "<|im_start|>user\n天气<|im_end|>"]:
            assert tokenizer.encode(text, add_special_tokens=False) == llm.tokenize(
                text.encode(), add_bos=False, special=True), text
    finally:
        llm.close()
    # The same check the conversion runs: it passes here, and fails on a tokenizer that differs by one token.
    check_tokenizer(tokenizer, embedded_model_path)
    tokenizer.add_tokens(["Paris"])
    with pytest.raises(ConversionError, match=r"disagrees with llama.cpp"):
        check_tokenizer(tokenizer, embedded_model_path, samples=("The capital of France is Paris.",))


def _private_cache(tmp_path: Path, gguf: Path) -> Path:
    """A cache root whose models/ links to the real GGUF, so pull() finds it in place and never downloads."""
    models = tmp_path / "models"
    models.mkdir()
    (models / gguf.name).symlink_to(gguf)
    note = gguf.with_name(gguf.name + ".sha256")
    if note.is_file():  # saves re-hashing; without it pull() hashes the linked file, which matches
        shutil.copy(note, models / note.name)
    return tmp_path


def test_damaged_folder_is_detected_and_converted_again_once(hf_folder: Path, embedded_model_path: Path,
                                                             tmp_path: Path) -> None:
    root = _private_cache(tmp_path, embedded_model_path)
    copy = hf_model_dir(cache_dir=root)
    shutil.copytree(hf_folder, copy)
    assert verify_hf_model(cache_dir=root, full=True)
    original = _manifest(hf_folder)

    # One byte changed in place (same size, but a new mtime): caught by the quick check.
    weights = copy / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not verify_hf_model(cache_dir=root)

    # A sneaky edit that restores the mtime is caught by a full check.
    config = copy / "config.json"
    st = config.stat()
    config.write_text(config.read_text().replace('"qwen2"', '"qwen3"'))
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not verify_hf_model(cache_dir=root, full=True)

    # Two callers at once: one converts, the other waits for it and gets the same verified folder.
    stages: list[ConvertProgress] = []
    results: list[Path | BaseException] = []

    def call() -> None:
        try:
            results.append(ensure_hf_model(cache_dir=root, progress=stages.append))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [copy, copy], results
    assert sum(1 for p in stages if p.stage == "save") == 1, "the folder must be converted exactly once"
    assert verify_hf_model(cache_dir=root, full=True)
    repaired = _manifest(copy)
    assert repaired.files["model.safetensors"].sha256 == original.files["model.safetensors"].sha256
    assert json.loads(config.read_text())["model_type"] == "qwen2"
    assert sorted(p.name for p in (root / "hf").iterdir() if not p.name.endswith(".lock")) == [DEFAULT_MODEL]


def test_failed_conversion_raises_a_typed_error_and_leaves_no_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    bogus = models / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + bytes(range(256)) * 64)  # the magic, then garbage
    sha = hashlib.sha256(bogus.read_bytes()).hexdigest()
    # A private entry whose file is already in place and matches: pull() only hashes it, never downloads.
    entry = CatalogueEntry(name="bogus-test", filename=bogus.name, size=bogus.stat().st_size, sha256=sha,
                           description="a broken GGUF for this test",
                           parts=(WheelPart(distribution="never-downloaded", version="0", sha256="0" * 64,
                                            member="*.bin"),))
    with pytest.raises(ConversionError, match="could not read"):
        ensure_hf_model(entry, cache_dir=tmp_path)
    left = [p.name for p in (tmp_path / "hf").iterdir() if not p.name.endswith(".lock")]
    assert left == [], left


def test_cli_models_convert_prints_the_folder(hf_folder: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "qwen_agent.cli", "models", "convert"], check=False,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(hf_folder)
