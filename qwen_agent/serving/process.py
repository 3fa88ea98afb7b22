"""Process plumbing for local servers: a child in its own process group that is always killed as a whole.

A model server forks workers (vLLM's engine core is a separate process), so stopping only the child would leave
orphans holding gigabytes of RAM. The child gets its own session (``start_new_session``), is stopped by signalling
the whole group (SIGTERM, a grace period, then SIGKILL), and a `weakref.finalize` does the same at interpreter
exit or when the owner is garbage-collected without being stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["GroupProcess", "cpu_list", "free_port", "group_members", "log_tail"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the OS picks it; a race with another process is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cpu_list(cpus: set[int] | None = None) -> str:
    """The CPUs this process may run on, as a ranges list (``"0-1"``, ``"0-3,8"``) for thread-binding settings."""
    ids = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    parts: list[str] = []
    start = prev = ids[0]
    for cpu in [*ids[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(f"{start}-{prev}" if prev > start else str(start))
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" when it cannot be read)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``, read from /proc. Zombies are ignored: a container's PID 1
    does not always reap the orphans it inherits, and a zombie holds no memory."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` for the leader, then SIGKILL whatever is left of the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        logger.warning("process group %d did not stop within %.0f s of SIGTERM; killing it", pgid, grace)
    # Workers may outlive a leader that exited on SIGTERM; SIGKILL reaches them through the group.
    deadline = time.monotonic() + max(grace, 1.0)
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            break
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
            continue
        if not group_members(pgid):
            break
        if time.monotonic() > deadline:
            logger.error("process group %d survives SIGKILL (stuck in the kernel?)", pgid)
            break
        time.sleep(0.05)


class GroupProcess:
    """A command running in its own process group with output appended to ``log_path``."""

    def __init__(self, cmd: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None,
                 grace: float = 20.0) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(f"$ {' '.join(self.cmd)}\n".encode())
            out.flush()
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self._finalizer = weakref.finalize(self, _kill_group, self.pid, self.proc, grace)
        self.grace = grace

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Stop the whole group (idempotent)."""
        self._finalizer()

    def group_alive(self) -> bool:
        """True while any live process of the group exists (the leader or a worker it forked)."""
        return bool(group_members(self.pid))
