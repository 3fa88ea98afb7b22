"""A cached private virtualenv for a tool the tests drive as a subprocess (a trace backend, a trainer's loader).

Such tools pin libraries that fight the project's own (Phoenix's web stack, LLaMA-Factory's transformers), so each
lives in ``<cache>/venvs/<name>``, built once under a file lock and trusted only with its completion stamp (the same
scheme as the vLLM venv): a folder without the stamp is an interrupted install and is rebuilt from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock

from qwen_agent.llm.distribution.store import cache_dir
from qwen_agent.serving.errors import VenvInstallError

__all__ = ["clean_env", "ensure_private_venv", "private_venv_dir"]

_STAMP = ".qwen-agent-venv.json"


def private_venv_dir(name: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "venvs" / name


def clean_env() -> dict[str, str]:
    """This environment without our project's paths, which must not leak into the venv's interpreter."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _ready(venv: Path, requirements: Sequence[str], no_deps: Sequence[str], remove: Sequence[str]) -> bool:
    try:
        stamp = json.loads((venv / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (stamp.get("requirements") == list(requirements) and stamp.get("no_deps", []) == list(no_deps)
            and stamp.get("removed", []) == list(remove) and (venv / "bin" / "python").exists())


def _check(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise VenvInstallError(f"{what} (`{' '.join(cmd[:4])} ...` exited with {proc.returncode}):\n{tail}", tail)


def ensure_private_venv(name: str, requirements: Sequence[str], *, verify: str, no_deps: Sequence[str] = (),
                        remove: Sequence[str] = (), root: Path | None = None) -> Path:
    """The venv ``name`` with ``requirements`` installed, then ``no_deps`` without their dependencies, then
    ``remove`` uninstalled, built when needed; ``verify`` is Python code that must run in it (imports) before it is
    stamped ready."""
    venv = private_venv_dir(name, root)
    if _ready(venv, requirements, no_deps, remove):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv.with_name("." + venv.name + ".lock"))):
        if _ready(venv, requirements, no_deps, remove):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _check([sys.executable, "-m", "venv", os.fspath(venv)], f"creating the {name} venv failed")
            py = os.fspath(venv / "bin" / "python")
            pip = [py, "-m", "pip", "--no-input", "--disable-pip-version-check"]
            _check([*pip, "install", *requirements],
                   f"pip could not install {' '.join(requirements)}; check the network and package index settings")
            if no_deps:
                _check([*pip, "install", "--no-deps", *no_deps], f"pip could not install {' '.join(no_deps)}")
            if remove:
                _check([*pip, "uninstall", "-y", *remove], f"pip could not uninstall {' '.join(remove)}")
            _check([py, "-I", "-c", verify], f"the {name} venv does not work (`{verify}` failed)", clean_env())
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        stamp = {"requirements": list(requirements), "no_deps": list(no_deps), "removed": list(remove),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (venv / _STAMP).write_text(json.dumps(stamp), encoding="utf-8")
    return venv
