"""Report what changed under the work dir the moment it changes (Linux inotify), for the work-dir watchdog.

Without a tmpfs the work-dir limit is a watchdog that measures the directory (see ``volume.py``). Polling alone
reacts late: at page-cache speed a writer adds 1–8 GiB/s, so a 50 ms poll let a background thread write 40–180 MiB
past an 8 MiB budget before it was stopped, and even a scan after every wake-up, rate-limited so that a directory made
slow to scan cannot take a core, let up to 78 MiB through. inotify names the entries that were created, written, moved
or deleted, so the watchdog can re-measure just those (``usage_estimate``) between its full scans.

This is a hint, never the limit itself: the watchdog keeps scanning, so what inotify misses (directories past
``max_dirs``, a full event queue, a kernel without inotify) is still caught, only later. Watches are added without
following symlinks: a subdirectory is opened from its parent's fd with ``O_NOFOLLOW`` (``hostfs.parent_dir``) and
watched through ``/proc/self/fd``, so a directory swapped for a link to a host path gains no watch there. A watch
reads nothing; the worst a hostile work dir can do with one is cause wake-ups, which the rate limit absorbs.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
from pathlib import Path

from qwen_agent.tools.code_interpreter import hostfs

__all__ = ["DirChanges"]

logger = logging.getLogger(__name__)

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x2, 0x8, 0x40, 0x80, 0x100, 0x200
_IN_ONLYDIR, _IN_DONT_FOLLOW, _IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_ONLYDIR
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)
MAX_TOUCHED = 4096  # paths reported by one wait (a flood of new names costs memory, not a missed limit)


class DirChanges:
    """An inotify instance watching a directory tree (up to ``max_dirs`` directories). ``wait`` returns, as soon as
    something under it was created, written, moved or deleted, the paths (relative to the root, as ``hostfs.walk``
    names them) of what changed."""

    def __init__(self, fd: int, root: Path, max_dirs: int) -> None:
        self._fd = fd
        self._root = root
        self._max_dirs = max_dirs
        self._dirs: dict[int, list[str]] = {}  # watch descriptor -> path relative to root ([] is the root)
        self._touched: set[str] = set()

    @classmethod
    def open(cls, root: Path, max_dirs: int = 256) -> DirChanges | None:
        """Watch ``root`` and the directories already under it; None where inotify is unavailable (then the
        watchdog only polls)."""
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            logger.debug("inotify unavailable: %s", os.strerror(ctypes.get_errno()))
            return None
        changes = cls(fd, root, max_dirs)
        if not changes._add(str(root), [], _IN_DONT_FOLLOW):
            changes.close()
            return None
        try:
            with hostfs.opened_dir(root) as root_fd, os.scandir(root_fd) as entries:
                subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
                for name in subdirs:
                    changes._add_tree(root_fd, [name])
        except OSError:
            pass  # the root went away; the watchdog's own scan reports what matters
        changes._touched.clear()  # what is there now is the first full scan's to count
        return changes

    @property
    def watched_dirs(self) -> int:
        return len(self._dirs)

    def wait(self, timeout: float) -> set[str] | None:
        """Block until something changed or ``timeout`` seconds passed; None if nothing did, else the paths that
        changed (possibly none we can name: an event on a directory no longer watched). Watches new subdirectories as
        their creation is reported, and reports the entries already inside them."""
        if self._fd < 0:
            return None
        try:
            ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        except (OSError, ValueError):
            return None
        if not ready:
            return None
        self._drain()
        touched, self._touched = self._touched, set()
        return touched

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _drain(self) -> None:
        new_dirs: list[list[str]] = []
        for _ in range(16):  # a bounded drain: a writer making events as fast as we read cannot keep us here
            try:
                buf = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            except OSError:
                return
            offset = 0
            while offset + _EVENT.size <= len(buf):
                wd, mask, _, length = _EVENT.unpack_from(buf, offset)
                name = buf[offset + _EVENT.size: offset + _EVENT.size + length].split(b"\0", 1)[0]
                offset += _EVENT.size + length
                if wd not in self._dirs or not name:
                    continue
                parts = [*self._dirs[wd], os.fsdecode(name)]
                self._touch(parts)
                if mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
                    new_dirs.append(parts)
        for parts in new_dirs:
            if len(self._dirs) >= self._max_dirs:
                break
            self._add_under_root(parts)

    def _add_under_root(self, parts: list[str]) -> None:
        """Watch the directory at ``parts`` under the root and the directories already inside it (made before the
        watch existed, so their creation was never reported), reached without following any symlink."""
        try:
            with hostfs.opened_dir(self._root) as root_fd, hostfs.parent_dir(root_fd, parts) as dir_fd:
                self._add_tree(dir_fd, parts)
        except OSError:
            return  # gone, or a parent replaced by a link: nothing to watch

    def _add_tree(self, parent_fd: int, parts: list[str]) -> None:
        if len(self._dirs) >= self._max_dirs:
            return
        try:
            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return  # gone, replaced by a link, or not a directory
        try:
            if not self._add(f"/proc/self/fd/{fd}", parts, 0):
                return
            with os.scandir(fd) as entries:
                listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for name, is_dir in listed:
                self._touch([*parts, name])  # made before the watch existed: never reported
                if is_dir:
                    self._add_tree(fd, [*parts, name])
        except OSError:
            return
        finally:
            os.close(fd)

    def _touch(self, parts: list[str]) -> None:
        if len(self._touched) < MAX_TOUCHED:  # past it the caller's estimate runs low until its next full scan
            self._touched.add("/".join(parts))

    def _add(self, path: str, parts: list[str], flags: int) -> bool:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), _MASK | flags)
        if wd < 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:
                logger.debug("inotify watch on %s failed: %s", path, os.strerror(err))
            return False
        self._dirs[wd] = parts
        return True
