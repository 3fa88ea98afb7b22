"""The work-dir watchdog without a kernel: the running estimate inotify keeps between full scans, and the loop that
stops a writer only once a full scan agrees (a renamed directory makes the estimate run high; that must not kill)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from qwen_agent.tools.code_interpreter import hostfs
from qwen_agent.tools.code_interpreter.dirwatch import DirChanges
from qwen_agent.tools.code_interpreter.watchdog import UsageEstimate, run_watchdog

_MiB = 1024**2


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def follow(changes: DirChanges, estimate: UsageEstimate) -> None:
    """Apply everything reported so far."""
    while (touched := changes.wait(0.05)) is not None:
        estimate.update(touched)


def test_the_estimate_follows_writes_appends_renames_and_deletes(work):
    (work / "old.bin").write_bytes(os.urandom(64 * 1024))
    changes = DirChanges.open(work)
    assert changes is not None
    estimate = UsageEstimate(work)
    estimate.rescan(10**12, 10**6)
    try:
        (work / "new" / "deeper").mkdir(parents=True)
        (work / "new" / "deeper" / "a.bin").write_bytes(os.urandom(300 * 1024))
        with open(work / "old.bin", "ab") as f:
            f.write(os.urandom(200 * 1024))
        os.rename(work / "new" / "deeper" / "a.bin", work / "new" / "b.bin")
        (work / "gone.bin").write_bytes(os.urandom(100 * 1024))
        (work / "gone.bin").unlink()
        follow(changes, estimate)
        assert (estimate.bytes, estimate.entries) == hostfs.usage(work)
        assert estimate.entries == 4  # old.bin, new, new/deeper, new/b.bin
    finally:
        changes.close()


def test_the_estimate_does_not_follow_a_directory_swapped_for_a_link(work, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "big.bin").write_bytes(b"\0" * _MiB)
    (work / "d").mkdir()
    estimate = UsageEstimate(work)
    estimate.rescan(10**12, 10**6)
    (work / "d").rmdir()
    (work / "d").symlink_to(host, target_is_directory=True)
    estimate.update(["d", "d/big.bin"])
    assert estimate.bytes < _MiB
    assert (estimate.bytes, estimate.entries) == hostfs.usage(work)


def watch(work: Path, budget: int) -> tuple[threading.Event, list[str], threading.Thread]:
    stop, reasons = threading.Event(), []

    def judge(used: int, entries: int, scanned: bool) -> str | None:
        return "disk quota" if used > budget else None

    def exceeded(reason: str) -> None:
        reasons.append(reason)
        stop.set()

    thread = threading.Thread(target=run_watchdog, args=(work, judge, exceeded, stop),
                              kwargs={"limits": lambda: (budget + 1, 10**6)}, daemon=True)
    thread.start()
    time.sleep(0.2)  # its first scan and watches
    return stop, reasons, thread


def test_a_writer_past_the_budget_is_reported(work):
    stop, reasons, thread = watch(work, 8 * _MiB)
    try:
        (work / "made").mkdir()
        for i in range(200):
            if stop.is_set():
                break
            (work / "made" / f"{i}.bin").write_bytes(b"0" * _MiB)
        assert stop.wait(5), "the watchdog never stopped the writer"
        assert reasons == ["disk quota"]
    finally:
        stop.set()
        thread.join(5)


def test_a_renamed_directory_makes_the_estimate_run_high_but_kills_nothing(work):
    (work / "a").mkdir()
    (work / "a" / "data.bin").write_bytes(os.urandom(5 * _MiB))
    stop, reasons, thread = watch(work, 8 * _MiB)
    try:
        os.rename(work / "a", work / "b")  # the estimate keeps a/data.bin until its next full scan
        with open(work / "b" / "data.bin", "ab") as f:  # and now counts b/data.bin too: 10 MiB > 8
            f.write(b"x")
        time.sleep(1.0)
        assert reasons == []
        assert not stop.is_set()
    finally:
        stop.set()
        thread.join(5)
