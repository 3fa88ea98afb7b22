"""A memory and process budget for the whole sandbox, where the host lets us make a cgroup; first in line for the OOM
killer everywhere.

rlimits are per process: ``RLIMIT_AS`` caps one process's address space, ``RLIMIT_NPROC`` the number of processes,
but together they still allow ``max_processes x memory_bytes`` (hundreds of GiB) — enough to push the host into
its OOM killer. A cgroup caps the sum: as root we create one per sandbox under our own memory (and pids) cgroup,
cgroup v2 when its controllers are delegated to us, else v1, and move the blocked sandbox into it before it runs.
Where no cgroup can be made (not root, no delegation), every sandbox process at least gets ``oom_score_adj=1000``,
so that under memory pressure the kernel kills sandboxed code before anything of the host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

__all__ = ["ROOT", "SandboxCgroup", "prefer_oom_kill"]

logger = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
_warned = False


def prefer_oom_kill(pid: int) -> None:
    """Make ``pid`` (and what it forks) the OOM killer's first choice. Raising the score needs no privilege."""
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
    except OSError as exc:
        logger.debug("could not raise oom_score_adj of %d: %s", pid, exc)


class SandboxCgroup:
    """One sandbox's cgroup(s): a memory limit (no swap) and a process limit. ``create`` returns None if impossible."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, memory_bytes: int, max_processes: int) -> SandboxCgroup | None:
        if os.geteuid() != 0:
            return None
        name = f"qwen-agent-sandbox-{uuid.uuid4().hex[:12]}"
        for make in (_make_v2, _make_v1):
            try:
                made = make(name, memory_bytes, max_processes)
            except OSError as exc:
                logger.debug("cgroup (%s) not available: %s", make.__name__, exc)
                continue
            if made is not None:
                return made
        _warn_once("no cgroup can be made here: the sandbox's total memory is limited per process only (rlimits)")
        return None

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cgroup(s); its future children are born there."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """How often the memory limit made the kernel kill a process in this sandbox."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            fields = (self.dirs[0] / name).read_text().split()
            return int(fields[fields.index("oom_kill") + 1]) if "oom_kill" in fields else 0
        except (OSError, ValueError, IndexError):
            return 0

    def remove(self) -> None:
        """Remove the cgroup(s) once the sandbox is dead (retried briefly: tasks leave asynchronously)."""
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                logger.warning("could not remove cgroup %s", d)


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` (v1), or the unified path for ``""`` (v2)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or (controller == "" and controllers == ""):
            return path
    return None


def _make_v2(name: str, memory_bytes: int, max_processes: int) -> SandboxCgroup | None:
    if not (ROOT / "cgroup.controllers").exists():
        return None  # not a pure v2 hierarchy
    own = _own_path("")
    if own is None:
        return None
    parent = ROOT / own.lstrip("/")
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if "memory" not in enabled or "pids" not in enabled:
        return None  # not delegated to us; enabling would move our own process (no internal processes rule)
    _sweep(parent)
    d = parent / name
    d.mkdir()
    try:
        (d / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(FileNotFoundError):
            (d / "memory.swap.max").write_text("0")
        (d / "pids.max").write_text(str(max_processes))
    except OSError:
        d.rmdir()
        raise
    return SandboxCgroup([d], 2)


def _make_v1(name: str, memory_bytes: int, max_processes: int) -> SandboxCgroup | None:
    mem_own, pids_own = _own_path("memory"), _own_path("pids")
    if mem_own is None or not (ROOT / "memory").is_dir():
        return None
    made: list[Path] = []
    try:
        mem = ROOT / "memory" / mem_own.lstrip("/") / name
        _sweep(mem.parent)
        mem.mkdir()
        made.append(mem)
        (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):  # absent without swap accounting
            (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        if pids_own is not None and (ROOT / "pids").is_dir():
            pids = ROOT / "pids" / pids_own.lstrip("/") / name
            _sweep(pids.parent)
            pids.mkdir()
            made.append(pids)
            (pids / "pids.max").write_text(str(max_processes))
    except OSError:
        SandboxCgroup(made, 1).remove()
        raise
    return SandboxCgroup(made, 1)


def _sweep(parent: Path, min_age_s: float = 60.0) -> None:
    """Remove sandbox cgroups left empty by a process that died without cleaning up (SIGKILL). Only old ones: a
    new one may belong to a sandbox that another process is starting right now (rmdir fails anyway if not empty)."""
    now = time.time()
    for d in parent.glob("qwen-agent-sandbox-*"):
        try:
            if now - d.stat().st_mtime > min_age_s and not (d / "cgroup.procs").read_text().strip():
                d.rmdir()
        except OSError:
            continue


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(message)
