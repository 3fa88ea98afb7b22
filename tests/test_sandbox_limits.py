"""Resource limits that hold against code trying to exhaust the host: output floods, figures against the disk quota,
writers that outlive their cell, file-count floods. Each runs with the work-dir limit as a capped tmpfs (as root)
and as the watchdog (the non-root path), through the public tool API.
"""

from __future__ import annotations

import asyncio
import os
import time

import psutil
import pytest

from qwen_agent.tools.code_interpreter import CodeInterpreter, SandboxConfig, SandboxLimits, hostfs
from qwen_agent.tools.output import ToolOutput

_MiB = 1024 * 1024
QUOTAS = ["auto", "watchdog"]  # "auto" is the capped tmpfs when the tests run as root


def limits(**kw: int) -> SandboxLimits:
    base = {"memory_bytes": 2048 * _MiB, "max_processes": 64, "tmp_bytes": 64 * _MiB, "work_dir_bytes": 16 * _MiB,
            "work_dir_files": 2000, "output_bytes": 24 * _MiB, "image_bytes": 6 * _MiB}
    return SandboxLimits(**(base | kw))


async def session(tmp_path, quota: str, **kw: int) -> CodeInterpreter:
    tool = CodeInterpreter(sandbox=SandboxConfig(limits=limits(**kw), quota=quota), work_dir=tmp_path / "work",
                           exec_timeout=30.0, preload=False)
    await tool.ensure_started()
    return tool


async def run(tool: CodeInterpreter, code: str) -> ToolOutput:
    return await tool.execute({"code": code})


@pytest.mark.parametrize("quota", QUOTAS)
async def test_display_flood_is_bounded_on_the_host(tmp_path, quota):
    """The reported flood: 262 MB of display data held on the host. Now a byte budget per execution."""
    tool = await session(tmp_path, quota)
    rss_before = psutil.Process().memory_info().rss
    try:
        out = await run(tool, """
import base64
from IPython.display import display
blob = base64.b64encode(b"\\x89PNG" + b"0" * (5 * 1024**2)).decode()
for i in range(60):
    display({"image/png": blob}, raw=True)
print("done")""")
        grown = psutil.Process().memory_info().rss - rss_before
        assert "dropped" in out.text or out.data["status"] == "timeout", out.text
        assert grown < 200 * _MiB, f"host RSS grew by {grown / _MiB:.0f} MiB"
        used, _ = hostfs.usage(tool.work_dir)
        assert used <= 16 * _MiB + 6 * _MiB  # the quota (the watchdog may overshoot by one image)
        assert (await run(tool, "print('alive')")).data["stdout"] == "alive\n"
    finally:
        await tool.aclose()


async def test_one_message_larger_than_the_budget_is_dropped_unread(tmp_path):
    tool = await session(tmp_path, "auto", output_bytes=8 * _MiB)
    rss_before = psutil.Process().memory_info().rss
    try:
        out = await run(tool, """
from IPython.display import display
display({"text/html": "x" * (60 * 1024**2)}, raw=True)
print("sent")""")
        assert out.data["status"] in ("ok", "timeout")
        assert not any(len(str(f)) > 1_000_000 for f in [out.text])
        assert psutil.Process().memory_info().rss - rss_before < 150 * _MiB
        assert (await run(tool, "print('alive')")).data["stdout"] == "alive\n"
    finally:
        await tool.aclose()


@pytest.mark.parametrize("quota", QUOTAS)
async def test_figures_written_by_the_host_respect_the_quota(tmp_path, quota):
    """The reported gap: 100 MiB of figures written against an 8 MiB quota."""
    tool = await session(tmp_path, quota, work_dir_bytes=8 * _MiB)
    try:
        out = await run(tool, """
import base64, os
from IPython.display import display
for i in range(20):
    display({"image/png": base64.b64encode(b"\\x89PNG" + os.urandom(1024**2)).decode()}, raw=True)""")
        used, _ = hostfs.usage(tool.work_dir)
        assert used <= 8 * _MiB + 2 * _MiB, used
        assert "[image not saved: the work directory is full]" in out.text
        assert len(out.files) < 20
    finally:
        await tool.aclose()


WRITER = """
import os, threading
stopped = []
def fill():
    i = 0
    try:
        os.makedirs({dir!r}, exist_ok=True)
        while True:
            with open(os.path.join({dir!r}, f"bg{{i}}.bin"), "wb") as f:
                f.write(b"0" * 1024**2)
            i += 1
    except OSError as e:
        stopped.append(str(e))
threading.Thread(target=fill, daemon=True).start()
print("returned")"""


@pytest.mark.parametrize("where", [".", "made/after/start"])
@pytest.mark.parametrize("quota", QUOTAS)
async def test_a_writer_that_outlives_its_cell_is_stopped(tmp_path, quota, where):
    """The reported gap: a background thread kept writing 60 MiB against an 8 MiB quota after the cell returned.

    Also from a directory created after the kernel started (the watchdog watches new directories as they appear).
    """
    tool = await session(tmp_path, quota, work_dir_bytes=8 * _MiB)
    try:
        out = await run(tool, WRITER.format(dir=where))
        assert out.data["stdout"] == "returned\n"
        await asyncio.sleep(3)
        used, _ = hostfs.usage(tool.work_dir)
        await asyncio.sleep(0.5)
        assert hostfs.usage(tool.work_dir)[0] == used, "the writer is still writing"
        after = await run(tool, "print(stopped)")
        if tool.kernel.volume.kind == "tmpfs":  # the writes failed with ENOSPC; the kernel lives on
            assert used <= 8 * _MiB, used
            assert "No space left" in after.data["stdout"], after.text
        else:
            # The watchdog stopped the kernel: during the cell if it caught the writer that early, else between
            # calls. Whichever call came next says why. It reacts to inotify within a write or two, and kills the
            # sandbox's pid namespace directly: 9-19 MiB were left on a quiet machine. It is a thread on the host,
            # though, and with the CPUs overcommitted it was measured off-CPU for 20-45 ms while the writer went on
            # at page-cache speed (up to 93 MiB were left with two busy loops beside it), so the bound here is
            # loose; what it keeps out is a writer that is never stopped (gigabytes in these 3 s).
            assert used <= 8 * _MiB + 192 * _MiB, used
            told = [r for r in (out, after) if r.data["restarted"] and "quota" in (r.data["notice"] or "")]
            assert told, (out.text, after.text)
    finally:
        await tool.aclose()


@pytest.mark.parametrize("quota", QUOTAS)
async def test_a_flood_of_empty_files_is_stopped(tmp_path, quota):
    """The reported gap: 100k empty files count as 0 bytes."""
    tool = await session(tmp_path, quota, work_dir_files=2000)
    try:
        out = await run(tool, """
import os
os.makedirs("many", exist_ok=True)
n = 0
try:
    for n in range(100_000):
        open(f"many/{n}", "w").close()
except OSError as e:
    print("stopped at", n, e)""")
        _, entries = hostfs.usage(tool.work_dir)
        if tool.kernel.volume.kind == "tmpfs":
            assert "No space left" in out.data["stdout"] and entries <= 2001
        else:
            assert out.data["status"] == "timeout" and "file count" in (out.data["notice"] or ""), out.text
            assert entries < 100_000
    finally:
        await tool.aclose()


async def test_the_watchdog_never_blocks_the_event_loop(tmp_path):
    """The reported gap: one scan of 100k files took 285 ms on the event loop (a 10 ms timer ticked 26 times in
    3 s). The watchdog now scans in its own thread and paces itself by its scan time."""
    tool = await session(tmp_path, "watchdog", work_dir_files=200_000, work_dir_bytes=512 * _MiB)
    try:
        out = await run(tool, """
import os
os.makedirs("many", exist_ok=True)
for n in range(60_000):
    open(f"many/{n}", "w").close()
print("made")""")
        assert out.data["stdout"] == "made\n", out.text
        ticks = 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            await asyncio.sleep(0.01)
            ticks += 1
        # ~300 on an idle machine; loose for a loaded 2-core CI box, far above the 26 of a blocked loop
        assert ticks > 100, ticks
    finally:
        await tool.aclose()



async def test_memory_of_many_processes_is_capped_together(tmp_path):
    """rlimits cap each process (``memory_bytes``), not their sum: six children touching 512 MiB each would take
    3 GiB. As root a cgroup caps the sandbox at ``total_memory_bytes``; everywhere, sandbox processes are the OOM
    killer's first choice (``oom_score_adj`` 1000)."""
    tool = await session(tmp_path, "auto", total_memory_bytes=1024 * _MiB, memory_bytes=2048 * _MiB)
    try:
        adj = await run(tool, "print(open('/proc/self/oom_score_adj').read().strip())")
        assert adj.data["stdout"] == "1000\n"
        cgroup = tool.kernel.process.cgroup
        if cgroup is None:  # no cgroup here (not root): the bomb would only meet the host's OOM killer; not run
            assert os.geteuid() != 0, "as root a cgroup must be available on the test machines"
            return
        out = await run(tool, """
import os, time, json
kids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(512 * 1024**2)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(3)
        finally:
            os._exit(0)
    kids.append(pid)
killed = sum(os.WIFSIGNALED(os.waitpid(pid, 0)[1]) for pid in kids)
print(json.dumps(killed))""")
        # the kernel itself may be the victim ("died", then restarted); either way the limit made the kernel kill
        assert cgroup.oom_kills() > 0 or out.data["status"] == "died", out.text
        if out.data["status"] == "ok":
            assert int(out.data["stdout"]) >= 3, out.text  # at most two 512 MiB children fit in 1 GiB
        assert (await run(tool, "print('alive')")).data["stdout"] == "alive\n"
    finally:
        await tool.aclose()
