"""The work-dir watchdog (the limit without a tmpfs): full scans, and between them a running estimate from inotify.

A full scan costs time in proportion to the entries (100,000 are allowed), so the watchdog may not run one after
every write: it waits ten times the last scan's CPU time between two, or a directory made slow to scan would take a
core. A fast writer gets far in that wait (1–8 GiB/s into the page cache: with a scan after every wake-up, 8–47 MiB
were left against an 8 MiB budget on a quiet machine, 78 MiB in CI). Between scans the estimate re-measures only the
entries inotify reported (one ``lstat`` each, ``dirwatch``), so the watchdog sees the budget passed within a write or
two; it then confirms with a full scan, which is what stops the kernel.

The estimate can run high (a directory renamed leaves its old entries counted until the next scan), which costs a
confirming scan that finds the budget kept: after such a false alarm confirming scans wait for the rate limit again
for a while, so a workload cannot buy unlimited scans with cheap renames. It can run low (directories past the watch
cap, events past the queue), which the periodic scans catch, only later. Wake-ups are at least ``wake_gap`` apart,
so a stream of tiny writes costs the host a bounded share of a core.

Whatever it does, this is a thread on the host: with the CPUs overcommitted it was seen off-CPU for 20–45 ms at a
time while a writer went on (up to ~90 MiB past an 8 MiB budget, against 0–11 MiB quiet). The limit is late, not
hard; the capped tmpfs (root) is the hard one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from qwen_agent.tools.code_interpreter import hostfs
from qwen_agent.tools.code_interpreter.dirwatch import DirChanges

__all__ = ["UsageEstimate", "run_watchdog"]

MAX_TRACKED = 20_000  # entries whose size the estimate remembers (past it, updates can only add)
MAX_OPENS = 512  # directory opens one update may spend reaching the reported entries
FALSE_ALARM_BACKOFF = 0.25  # seconds confirming scans respect the rate limit after one found the budget kept

Judge = Callable[[int, int, bool], "str | None"]  # (bytes, entries, from a full scan) -> why over budget, or None


class UsageEstimate:
    """Bytes allocated and entries under ``root``: measured by ``rescan``, kept current by ``update``."""

    def __init__(self, root: Path, max_tracked: int = MAX_TRACKED) -> None:
        self.root = root
        self.bytes = 0
        self.entries = 0
        self._max_tracked = max_tracked
        self._sizes: dict[str, int] = {}  # relative path -> bytes allocated, as last measured

    def rescan(self, stop_bytes: int, stop_entries: int) -> None:
        """Measure everything (stops early once past ``stop_bytes`` or ``stop_entries``, as ``hostfs.usage``)."""
        sizes: dict[str, int] = {}
        total = entries = 0
        for rel, st in hostfs.walk(self.root, limit=stop_entries + 1):
            entries += 1
            size = st.st_blocks * 512
            total += size
            if entries <= self._max_tracked:
                sizes[rel] = size
            if total > stop_bytes:
                break
        self.bytes, self.entries, self._sizes = total, entries, sizes

    def update(self, paths: Iterable[str]) -> None:
        """Re-measure ``paths`` (relative to the root; reported changed) without following any symlink."""
        by_dir: dict[str, list[str]] = defaultdict(list)
        for rel in paths:
            parent, _, name = rel.rpartition("/")
            by_dir[parent].append(name)
        opens = 0
        with contextlib.ExitStack() as stack:
            try:
                root_fd = stack.enter_context(hostfs.opened_dir(self.root))
            except OSError:
                return
            for parent, names in by_dir.items():
                parts = parent.split("/") if parent else []
                opens += len(parts)
                if opens > MAX_OPENS:
                    return  # a deep, wide burst: the next full scan counts the rest
                try:
                    with hostfs.parent_dir(root_fd, [*parts, "-"]) as dir_fd:
                        for name in names:
                            self._measure(dir_fd, f"{parent}/{name}" if parent else name, name)
                except OSError:
                    continue  # the directory went away or became a link: the next full scan settles it

    def _measure(self, dir_fd: int, rel: str, name: str) -> None:
        try:
            now: int | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
        except FileNotFoundError:
            now = None
        except OSError:
            return
        before = self._sizes.pop(rel, None)
        if before is not None:
            self.bytes -= before
            self.entries -= 1
        if now is not None:
            self.bytes += now
            self.entries += 1
            if len(self._sizes) < self._max_tracked:
                self._sizes[rel] = now


def run_watchdog(root: Path, judge: Judge, on_exceeded: Callable[[str], None], stop: threading.Event, *,
                 limits: Callable[[], tuple[int, int]], poll_interval: float = 0.05, min_gap: float = 0.002,
                 wake_gap: float = 0.0005) -> None:
    """Watch ``root`` until ``stop`` is set or ``judge`` finds a full scan over budget (then ``on_exceeded``).

    ``limits()`` gives the (bytes, entries) past which a scan may stop counting. Full scans run every
    ``poll_interval`` seconds and never closer than ``min_gap`` and ten times the last one's CPU time.
    """
    changes = DirChanges.open(root)
    estimate = UsageEstimate(root)
    scan_at = earliest = trust_from = 0.0  # next scan; earliest the rate limit allows; when confirming may skip it
    confirming = False
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= scan_at:
                cpu = time.thread_time()
                stop_bytes, stop_entries = limits()
                try:
                    estimate.rescan(stop_bytes, stop_entries)
                except OSError:
                    estimate.bytes = estimate.entries = 0
                reason = judge(estimate.bytes, estimate.entries, True)
                if reason is not None:
                    on_exceeded(reason)
                    return
                if confirming:  # the estimate said over budget and the scan disagrees
                    trust_from = time.monotonic() + FALSE_ALARM_BACKOFF
                    confirming = False
                now = time.monotonic()
                earliest = now + max(min_gap, 10 * (time.thread_time() - cpu))
                scan_at = max(now + poll_interval, earliest)
            if changes is None:
                stop.wait(scan_at - now)
                continue
            touched = changes.wait(scan_at - now)
            if touched is None:
                continue
            estimate.update(touched)
            if judge(estimate.bytes, estimate.entries, False) is not None:
                confirming = True
                scan_at = now if now >= trust_from else min(scan_at, earliest)
            else:
                stop.wait(wake_gap)
    finally:
        if changes is not None:
            changes.close()
