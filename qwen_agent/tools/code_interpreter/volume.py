"""The work dir's size and file-count limit: a capped tmpfs mounted on it when we can, a watchdog when we cannot.

A watchdog that measures the directory now and then can only stop code after the fact: a fast writer overshoots,
a background thread keeps writing once the cell has returned, and a flood of empty files costs no bytes but a slow
scan. A tmpfs mounted on the work dir with ``size=`` and ``nr_inodes=`` is a limit the kernel enforces on every
write (``ENOSPC``), for the sandbox and for the host's own writes (figures) alike. Mounting needs root (CAP_SYS_ADMIN
in the initial namespaces); without it the watchdog runs in its own thread — never on the event loop — counting
bytes and entries and stopping the kernel when either budget is exceeded (``watchdog``). Between its full scans it
re-measures what inotify reports written, which keeps a fast writer's overshoot to a few MiB on a quiet machine
(not on a loaded one: see ``watchdog``).

The tmpfs lives as long as the kernel's work dir (restarts keep it). Files already in the directory are copied in
when it is mounted; when the session ends the files are copied back to the directory on disk (regular files and
directories only), unless the work dir is being removed anyway. Its pages count as memory, not disk.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from qwen_agent.tools.code_interpreter import hostfs
from qwen_agent.tools.code_interpreter.watchdog import run_watchdog
from qwen_agent.tools.errors import SandboxError

__all__ = ["MNT_DETACH", "WorkVolume"]

logger = logging.getLogger(__name__)

MS_NOSUID, MS_NODEV, MS_BIND = 0x2, 0x4, 0x1000
MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)
_warned = False


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


class WorkVolume:
    """The limit on one work dir. ``kind`` says how it is enforced: ``"tmpfs"`` or ``"watchdog"``."""

    def __init__(self, path: Path, max_bytes: int, max_files: int, *,
                 mode: Literal["auto", "tmpfs", "watchdog"] = "auto", owner_uid: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.owner_uid = owner_uid
        self.kind: Literal["tmpfs", "watchdog"] = "watchdog"
        self._mode = mode
        self._mounted = False
        self.last_bytes = 0  # the watchdog's latest measurement
        self._allow_bytes, self._allow_entries = max_bytes, max_files
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- tmpfs ---------------------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Mount the capped tmpfs on the work dir (once; restarts of the kernel keep it)."""
        if self._mounted or self._mode == "watchdog":
            return
        if os.geteuid() != 0:
            if self._mode == "tmpfs":
                raise SandboxError("quota='tmpfs' needs root (mounting a tmpfs); use quota='auto' or 'watchdog'")
            return
        staging = Path(tempfile.mkdtemp(prefix="qa-vol-"))
        try:
            opts = f"size={self.max_bytes},nr_inodes={self.max_files + 1},mode=0755"
            if self.owner_uid is not None:
                opts += f",uid={self.owner_uid},gid={self.owner_uid}"
            _mount("qwen-agent-work", str(staging), "tmpfs", MS_NOSUID | MS_NODEV, opts)
        except OSError as exc:
            staging.rmdir()
            if self._mode == "tmpfs":
                raise SandboxError(f"could not mount the work dir's tmpfs ({exc})") from exc
            _warn_once(f"the work dir quota falls back to a watchdog: {exc}")
            return
        try:
            try:
                hostfs.copy_tree(self.path, staging, self.owner_uid)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise SandboxError(f"the files in {self.path} do not fit the work dir quota "
                                       f"({self.max_bytes:,} bytes, {self.max_files:,} files)") from exc
                raise
            _mount(str(staging), str(self.path), None, MS_BIND, None)
        finally:
            _umount(str(staging))
            staging.rmdir()
        self._mounted = True
        self.kind = "tmpfs"

    def detach(self, keep_files: bool) -> None:
        """Unmount; with ``keep_files`` the files are first copied back to the directory on disk."""
        self.stop_watch()
        if not self._mounted:
            return
        self._mounted = False
        if not keep_files:
            _umount(str(self.path))
            return
        staging = Path(tempfile.mkdtemp(prefix="qa-vol-"))
        try:
            _mount(str(self.path), str(staging), None, MS_BIND, None)
            _umount(str(self.path))
            hostfs.copy_tree(staging, self.path, self.owner_uid)
        except OSError as exc:
            logger.error("could not copy the work dir back to disk (%s); files stay under %s", exc, staging)
            return
        _umount(str(staging))
        staging.rmdir()

    # ---- watchdog ------------------------------------------------------------------------------------------------

    def over_budget(self) -> str | None:
        """Why the work dir is over its limits now, or None (one full scan). A tmpfs cannot be (writes fail
        instead)."""
        if self.kind == "tmpfs":
            return None
        used, entries = hostfs.usage(self.path, stop_bytes=self._allow_bytes + 1, stop_entries=self._allow_entries)
        return self._judge(used, entries, True)

    def _judge(self, used: int, entries: int, scanned: bool) -> str | None:
        """Why ``used`` bytes and ``entries`` are over budget, or None.

        A work dir already over budget (files left before a restart) is allowed to shrink: the allowance starts at
        what is there and ratchets down to the limit as full scans (``scanned``) find files deleted, so code can
        clean up but never grow it.
        """
        if used > self._allow_bytes:
            return f"disk quota ({self.max_bytes:,} bytes)"
        if entries > self._allow_entries:
            return f"file count limit ({self.max_files:,} files and directories)"
        if scanned:
            self.last_bytes = used
            self._allow_bytes = max(self.max_bytes, min(self._allow_bytes, used))
            self._allow_entries = max(self.max_files, min(self._allow_entries, entries))
        return None

    def reserve(self, n_bytes: int) -> bool:
        """Whether the host may add ``n_bytes`` (a figure) without passing the quota, counting it as used if so.

        With a tmpfs the write itself decides (``ENOSPC``); with the watchdog its last measurement plus what the
        host added since is the estimate.
        """
        if self.kind == "tmpfs":
            return True
        if self.last_bytes + n_bytes > self.max_bytes:
            return False
        self.last_bytes += n_bytes
        return True

    def start_watch(self, on_exceeded: Callable[[str], None], poll_interval: float = 0.05,
                    min_gap: float = 0.002) -> None:
        """Watch in a thread until ``stop_watch``: ``on_exceeded(reason)`` once a budget is passed (``watchdog``:
        full scans every ``poll_interval`` seconds, and between them an estimate kept current by inotify)."""
        if self.kind == "tmpfs" or self._watch is not None:
            return
        self._stop.clear()
        used, entries = hostfs.usage(self.path)
        self._allow_bytes, self._allow_entries = max(self.max_bytes, used), max(self.max_files, entries)
        self._watch = threading.Thread(
            target=run_watchdog, name=f"qwen-agent-quota-{self.path.name}", daemon=True,
            args=(self.path, self._judge, on_exceeded, self._stop),
            kwargs={"limits": lambda: (self._allow_bytes + 1, self._allow_entries),
                    "poll_interval": poll_interval, "min_gap": min_gap})
        self._watch.start()

    def stop_watch(self) -> None:
        self._stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(timeout=5)
        self._watch = None

    def remove(self) -> None:
        """Delete the directory (after ``detach``)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(message)
