"""bfcl-eval's own checker, run in a private cached venv, to show that our `checker` scores as BFCL does.

bfcl-eval imports every model handler of the leaderboard when its checker is imported (openai, anthropic, the
official ``qwen-agent`` that shares our import name, sentence-transformers ...), so it lives in
``<cache>/venvs/bfcl-eval-<version>-<hash>``, installed from the hash-checked wheel, and is only ever run as a
subprocess that reads cases and writes verdicts as JSON lines. Like the vLLM venv, a folder without its completion
stamp is an interrupted install and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel

from qwen_agent.eval.bfcl.dataset import BFCL_VERSION, bfcl_wheel
from qwen_agent.eval.errors import EvalSourceError
from qwen_agent.llm.distribution.store import cache_dir

__all__ = ["REFERENCE_REQUIREMENTS", "ReferenceCase", "ReferenceVerdict", "ensure_reference_venv",
           "reference_check"]

logger = logging.getLogger(__name__)

#: Besides the wheel: torch pinned to the CPU build (sentence-transformers would pull a CUDA one), and soundfile,
#: which the official qwen-agent imports without declaring it.
REFERENCE_REQUIREMENTS: tuple[str, ...] = ("torch==2.13.0", "soundfile")
STAMP = ".qwen-agent-venv.json"
DRIVER = Path(__file__).with_name("reference_driver.py")


class ReferenceCase(BaseModel):
    """One prediction to score: the category, the functions as BFCL lists them, the calls, the possible answers."""

    category: str
    functions: list[dict[str, Any]]
    calls: list[dict[str, dict[str, Any]]]
    ground_truth: list[dict[str, Any]] | None = None


class ReferenceVerdict(BaseModel):
    valid: bool
    error_type: str | None = None
    #: Set when bfcl-eval's checker raised instead of answering (counted as invalid, as its runner would crash).
    crash: str | None = None


def reference_venv_dir(root: Path | str | None = None) -> Path:
    text = "\n".join([BFCL_VERSION, *REFERENCE_REQUIREMENTS])
    base = Path(root) if root is not None else cache_dir()
    return base / "venvs" / f"bfcl-eval-{BFCL_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def ensure_reference_venv(root: Path | str | None = None) -> Path:
    """The python of a ready bfcl-eval venv, building it first when needed (~2–3 min, ~2 GB once)."""
    venv = reference_venv_dir(root)
    python = venv / "bin" / "python"
    if (venv / STAMP).exists() and python.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv.with_name("." + venv.name + ".lock"))):
        if (venv / STAMP).exists() and python.exists():
            return python
        if venv.exists():
            logger.warning("discarding the unfinished bfcl-eval venv at %s", venv)
            shutil.rmtree(venv)
        wheel = bfcl_wheel(root)
        started = time.monotonic()
        try:
            _step([sys.executable, "-m", "venv", str(venv)], "create the bfcl-eval venv")
            _step([str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check", str(wheel),
                   *REFERENCE_REQUIREMENTS], "install bfcl-eval and its dependencies")
            _step([str(python), "-I", "-c", "import bfcl_eval.eval_checker.ast_eval.ast_checker"],
                  "import bfcl-eval's checker", cwd=venv)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        stamp = {"bfcl_version": BFCL_VERSION, "requirements": list(REFERENCE_REQUIREMENTS),
                 "seconds": round(time.monotonic() - started)}
        (venv / STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        logger.info("bfcl-eval venv ready at %s in %.0f s", venv, time.monotonic() - started)
    return python


def _step(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                          check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise EvalSourceError(f"could not {what} (`{' '.join(cmd[:4])} ...` exited {proc.returncode}):\n{tail}")


def reference_check(cases: list[ReferenceCase], *, root: Path | str | None = None) -> list[ReferenceVerdict]:
    """bfcl-eval's verdict on every case, in order (one subprocess for all of them)."""
    python = ensure_reference_venv(root)
    with tempfile.TemporaryDirectory() as tmp:
        cases_path, verdicts_path = Path(tmp) / "cases.jsonl", Path(tmp) / "verdicts.jsonl"
        cases_path.write_text("".join(c.model_dump_json() + "\n" for c in cases), encoding="utf-8")
        _step([str(python), "-I", str(DRIVER), str(cases_path), str(verdicts_path)],
              "run bfcl-eval's checker", cwd=Path(tmp))
        lines = verdicts_path.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(cases):
        raise EvalSourceError(f"bfcl-eval's checker answered {len(lines)} of {len(cases)} cases")
    return [ReferenceVerdict.model_validate_json(line) for line in lines]
