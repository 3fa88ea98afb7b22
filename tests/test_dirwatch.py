"""The watchdog's wake-up hint (inotify): it reports writes anywhere under the work dir, including directories made
after it started, and a link planted in the work dir never gains it a watch on a host directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwen_agent.tools.code_interpreter.dirwatch import DirChanges


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def opened(work: Path, max_dirs: int = 256) -> DirChanges:
    changes = DirChanges.open(work, max_dirs=max_dirs)
    assert changes is not None, "inotify is available on every Linux this project supports"
    return changes


def settle(changes: DirChanges) -> None:
    """Drain what the set-up itself reported."""
    while changes.wait(0.05) is not None:
        pass


def test_quiet_directory_times_out(work):
    changes = opened(work)
    try:
        assert changes.wait(0.05) is None
    finally:
        changes.close()


def test_a_write_in_a_nested_directory_made_after_start_wakes_it(work):
    changes = opened(work)
    try:
        (work / "a" / "b" / "c").mkdir(parents=True)  # faster than one event can be read: b and c come unreported
        assert changes.wait(1.0) is not None
        settle(changes)
        assert changes.watched_dirs == 4
        (work / "a" / "b" / "c" / "data.bin").write_bytes(b"0" * 4096)
        assert changes.wait(1.0) is not None
    finally:
        changes.close()


def test_directories_present_at_start_are_watched(work):
    (work / "old" / "deeper").mkdir(parents=True)
    changes = opened(work)
    try:
        assert changes.watched_dirs == 3
        (work / "old" / "deeper" / "x").write_text("x")
        assert changes.wait(1.0) is not None
    finally:
        changes.close()


def test_a_planted_link_to_a_host_directory_gains_no_watch(work, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (work / "before").symlink_to(host, target_is_directory=True)
    changes = opened(work)
    try:
        (work / "after").symlink_to(host, target_is_directory=True)
        settle(changes)
        assert changes.watched_dirs == 1
        (host / "secret").write_text("written on the host side")
        assert changes.wait(0.2) is None
    finally:
        changes.close()


def test_watches_stop_at_max_dirs_and_the_cap_is_not_an_error(work):
    changes = opened(work, max_dirs=3)
    try:
        for i in range(10):
            os.mkdir(work / f"d{i}")
        settle(changes)
        assert changes.watched_dirs == 3
        (work / "top").write_text("the root is always watched")
        assert changes.wait(1.0) is not None
    finally:
        changes.close()
