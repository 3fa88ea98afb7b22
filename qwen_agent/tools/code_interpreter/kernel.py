"""One sandboxed IPython kernel driven over jupyter-client: start, execute, interrupt, restart, detect death, stop.

The kernel's process is the outer bwrap process: killing it takes the whole pid namespace down, and
``--die-with-parent`` covers our own sudden death. How the host talks to it is ``channel``; the work dir's limit is
``volume`` (a watchdog thread stops the kernel when the directory outgrows it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from qwen_agent.tools.code_interpreter.channel import (
    UNDECODABLE,
    Channel,
    StartFiles,
    pin_sockets,
    prepare_start,
    sockets_ready,
)
from qwen_agent.tools.code_interpreter.result import ExecutionResult, OutputCollector, Status
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig, SandboxedProcess, spawn
from qwen_agent.tools.code_interpreter.volume import WorkVolume
from qwen_agent.tools.errors import SandboxError

__all__ = ["INTERRUPT_GRACE_S", "PRELOAD", "STATE_LOST", "Kernel"]

logger = logging.getLogger(__name__)

PRELOAD = "import numpy as np, pandas as pd, matplotlib\nimport matplotlib.pyplot as plt\n"
INTERRUPT_GRACE_S = 3.0
_POLL_S = 0.02  # how often a waiting execution checks that the kernel process is alive and the disk quota holds

_MiB = 1024 * 1024

STATE_LOST = "All variables, imports and definitions were lost; files in the work directory were kept."


_SPAWNER: ThreadPoolExecutor | None = None


def _spawner() -> ThreadPoolExecutor:
    """One long-lived thread spawns every sandbox: bwrap's --die-with-parent fires when the *thread* that forked it
    ends, so a short-lived worker thread (or a closed event loop's executor) would take its kernels down with it."""
    global _SPAWNER
    if _SPAWNER is None:
        _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen-agent-sandbox-spawner")
    return _SPAWNER


def _reap(proc_box: list[SandboxedProcess | None], private_dir: Path) -> None:
    """Finalizer (GC or interpreter exit): kill the sandbox and remove its host dir. Must not reference the kernel."""
    proc = proc_box[0]
    if proc is not None:
        proc.kill()
        proc_box[0] = None
    shutil.rmtree(private_dir, ignore_errors=True)


#: What `Kernel._collect` reports beyond a result's own status: output flooded, or the work dir over its quota.
Collected = Literal["flood", "quota"]


def _final(status: Status | Collected) -> Status:
    """The status a result reports: a flood or a quota stop ended the cell like a timeout."""
    if status == "flood" or status == "quota":
        return "timeout"
    return status


class Kernel:
    """A stateful IPython kernel in a sandbox, bound to one work dir (which survives restarts)."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        work_dir: Path | str | None = None,
        *,
        preload: bool = True,
        startup_timeout: float = 30.0,
        flood_chars: int = 20_000_000,
    ) -> None:
        self.config = config or SandboxConfig()
        self.sandboxed = self.config.mode != "none"
        if not self.sandboxed:
            logger.warning("code interpreter kernel runs WITHOUT a sandbox (sandbox='none'): model code has full "
                           "access")
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="qwen-agent-work-")).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.preload = preload
        self.startup_timeout = startup_timeout
        self.flood_chars = flood_chars
        limits = self.config.limits
        # as root the sandbox uid is an unprivileged host uid, which must own what the code may change
        self.owner_uid = self.config.host_uid if self.sandboxed and os.geteuid() == 0 else None
        self.volume = WorkVolume(self.work_dir, limits.work_dir_bytes, limits.work_dir_files,
                                 mode=self.config.quota, owner_uid=self.owner_uid)
        self._proc_box: list[SandboxedProcess | None] = [None]
        self._files: StartFiles | None = None
        self._finalizer: weakref.finalize[..., Kernel] | None = None
        self._channel: Channel | None = None
        self._lock: asyncio.Lock | None = None
        self._quota_reason: str | None = None
        self._unsettled: str | None = None  # msg_id of an execution whose caller was cancelled
        self._volume_finalizer: weakref.finalize[..., Kernel] | None = None
        self.restarts = 0

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def process(self) -> SandboxedProcess | None:
        return self._proc_box[0]

    def is_alive(self) -> bool:
        proc = self.process
        return proc is not None and proc.poll() is None

    async def start(self) -> None:
        """Spawn the sandbox and wait until the kernel answers (and has imported the scientific stack)."""
        if self.sandboxed and self._volume_finalizer is None:
            await asyncio.to_thread(self.volume.attach)  # once: the tmpfs outlives restarts
            # a kernel never closed (interpreter exit, GC) still puts its files back on disk and unmounts
            self._volume_finalizer = weakref.finalize(self, self.volume.detach, True)
            if self.owner_uid is not None and self.volume.kind != "tmpfs":
                os.chown(self.work_dir, self.owner_uid, self.owner_uid, follow_symlinks=False)
        files = self._files = prepare_start(self.sandboxed, self.config.sandbox_uid)
        self._quota_reason = None
        log_fd = os.open(files.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            spawning = _spawner().submit(spawn, self.config, files.argv, self.work_dir, files.dirs, log_fd)
            try:
                proc = await asyncio.wrap_future(spawning)
            except BaseException:
                # cancelled while bwrap was starting: the spawn still completes in its thread, so reap it then
                spawning.add_done_callback(lambda f: _reap([None if f.cancelled() or f.exception() else f.result()],
                                                           files.dirs.private))
                raise
        finally:
            os.close(log_fd)
        self._proc_box[0] = proc
        self._finalizer = weakref.finalize(self, _reap, self._proc_box, files.dirs.private)
        try:
            deadline = time.monotonic() + self.startup_timeout
            while not sockets_ready(files.dirs):
                self._check_started(deadline)
                await asyncio.sleep(0.005)
            # before any user code runs: from now on the host reaches the kernel only through these links
            pin_sockets(files.dirs, self.owner_uid if self.owner_uid is not None else os.geteuid())
            await self._connect(time.monotonic() + self.startup_timeout)
            if self.preload:
                res = await self._execute(PRELOAD, self.startup_timeout, silent=True)
                if res.status != "ok":
                    logger.warning("kernel preload failed: %s", res.error or res.notice)
        except BaseException:
            self._kill()
            raise
        if self.sandboxed:
            self.volume.start_watch(self._quota_exceeded)
        logger.debug("kernel started (pid %d, work dir %s, quota by %s)", proc.pid, self.work_dir, self.volume.kind)

    def _check_started(self, deadline: float) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            raise SandboxError(f"The kernel process exited during start-up. Its log:\n{self._log_tail()}")
        if time.monotonic() > deadline:
            raise SandboxError(f"The kernel did not start within {self.startup_timeout:g} s. Log:\n{self._log_tail()}")

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self._files.log_path.read_text(errors="replace")[-chars:] if self._files else ""
        except OSError:
            return ""

    async def _connect(self, deadline: float) -> None:
        """(Re)connect a client on the running loop and make sure iopub delivers (kernel_info round trip)."""
        self._close_channel()
        assert self._files is not None
        channel = self._channel = Channel(self._files.host_conn, self.config.limits.output_bytes + _MiB)
        self._lock = asyncio.Lock()
        while True:
            self._check_started(deadline)
            msg_id = channel.client.kernel_info()
            if await channel.await_idle(msg_id, min(0.25, max(deadline - time.monotonic(), 0.01))):
                await channel.drain_shell()
                return

    async def ensure_connected(self) -> None:
        """Make the client usable on the running event loop (a pooled kernel was started on another one)."""
        if self._channel is None or self._channel.loop is not asyncio.get_running_loop():
            if not self.is_alive():
                await self.restart()
            else:
                await self._connect(time.monotonic() + self.startup_timeout)

    async def restart(self) -> None:
        """Kill and start again on the same work dir (variables are lost, files stay)."""
        self._kill()
        self.restarts += 1
        await self.start()

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _kill(self) -> None:
        self._unsettled = None
        self.volume.stop_watch()
        self._close_channel()
        if self._finalizer is not None:
            self._finalizer()  # kills the process and removes the private dir
            self._finalizer = None

    def _quota_exceeded(self, reason: str) -> None:
        """Called by the watchdog thread: stop the sandbox now; the waiting execution reports why."""
        self._quota_reason = reason
        proc = self.process
        if proc is not None:
            proc.stop_now()

    async def shutdown(self, remove_work_dir: bool = False) -> None:
        """Stop the kernel and its sandbox for good. The work dir (figures, outputs) stays unless
        ``remove_work_dir`` and the kernel created it itself."""
        self.close(remove_work_dir)

    def close(self, remove_work_dir: bool = False) -> None:
        """Synchronous ``shutdown`` (for atexit/pool cleanup)."""
        self._kill()
        remove = remove_work_dir and self._own_work_dir
        if self._volume_finalizer is not None:
            self._volume_finalizer.detach()
            self._volume_finalizer = None
            self.volume.detach(keep_files=not remove)
        if remove:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # ---- execution -----------------------------------------------------------------------------------------------

    async def execute(self, code: str, timeout: float | None = 60.0) -> ExecutionResult:
        """Run ``code`` in the kernel. Never raises for problems of the code itself; see ``ExecutionResult.status``.

        On timeout the kernel is interrupted; if it does not come back it is killed and restarted (state lost).
        A kernel that died (segfault, OOM kill, ``os._exit``) is restarted the same way and the result says so.
        """
        await self.ensure_connected()
        assert self._lock is not None
        async with self._lock:
            notice = await self._settle()
            if not self.is_alive():
                code_ = self._exit_description()
                quota = self._quota_reason
                await self.restart()
                if quota:
                    notice = (f"The kernel was stopped after this session's last code because the work directory "
                              f"exceeded its {quota}, and restarted. {STATE_LOST} Delete files you do not need.")
                else:
                    notice = f"The kernel had died ({code_}) and was restarted before this code ran. {STATE_LOST}"
            result = await self._execute(code, timeout)
            if notice:
                result.notice = f"{notice} {result.notice or ''}".strip()
                result.restarted = result.restarted or "restarted" in notice
            return result

    async def _settle(self) -> str | None:
        """Finish what a cancelled execution left behind before running anything else.

        A caller that gives up (a client disconnects, a run is cancelled) leaves its code running in the kernel;
        it was interrupted when the caller went, and here we wait for it to end, so the next code is neither
        queued behind it nor answered "aborted" by ipykernel. Code that ignores the interrupt costs a restart.
        """
        msg_id, self._unsettled = self._unsettled, None
        if msg_id is None or self._channel is None or not self.is_alive():
            return None
        if await self._channel.await_idle(msg_id, INTERRUPT_GRACE_S):
            await self._channel.drain_shell()
            return None
        await self.restart()
        return (f"The previous code was abandoned while running and did not stop when interrupted, so the kernel "
                f"was restarted. {STATE_LOST}")

    async def _execute(self, code: str, timeout: float | None, silent: bool = False) -> ExecutionResult:
        assert self._channel is not None
        t0 = time.monotonic()
        limits = self.config.limits
        collector = OutputCollector(rich_bytes=limits.output_bytes, image_bytes=limits.image_bytes)
        msg_id = self._channel.client.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        deadline = None if timeout is None else t0 + timeout
        try:
            status: Status | Collected = await self._collect(msg_id, collector, deadline)
        except asyncio.CancelledError:  # the caller gave up: stop the code now, settle before the next execution
            self._unsettled = msg_id
            self._send_interrupt()
            raise
        notice = None
        restarted = False
        if status == "quota":  # the watchdog already stopped the kernel
            reason = self._quota_reason or "disk quota"
            await self.restart()
            restarted = True
            notice = (f"The work directory exceeded its {reason}; the kernel was stopped and restarted. "
                      f"{STATE_LOST} Delete files you do not need.")
            status = "timeout"
        elif status == "timeout" or status == "flood":
            why = {
                "timeout": f"Execution timed out after {timeout:g} s",
                "flood": f"Execution produced more than {self.flood_chars:,} characters of output",
            }[status]
            await self.interrupt()
            status = await self._collect(msg_id, collector, time.monotonic() + INTERRUPT_GRACE_S, interrupting=True)
            if status in ("ok", "error"):
                notice = f"{why} and was interrupted (KeyboardInterrupt); the kernel state was kept."
            else:
                await self.restart()
                restarted = True
                notice = f"{why}; the kernel did not respond to an interrupt and was restarted. {STATE_LOST}"
            status = "timeout"
        elif status == "died":
            why = self._exit_description()
            await self.restart()
            restarted = True
            notice = (f"The kernel died while running this code ({why}: e.g. out of memory, a crash or os._exit) "
                      f"and was restarted. {STATE_LOST}")
        if status in ("ok", "error") and self._channel is not None:
            await self._channel.drain_shell()
        outputs = collector.finish()
        return ExecutionResult(
            status=_final(status), execution_count=collector.execution_count, outputs=outputs, error=collector.error,
            dropped_chars=collector.dropped_chars, dropped_outputs=collector.dropped_outputs, restarted=restarted,
            notice=notice,
            elapsed_s=time.monotonic() - t0,
        )

    async def _collect(self, msg_id: str, collector: OutputCollector, deadline: float | None,
                       interrupting: bool = False) -> Status | Collected:
        """Feed iopub messages of ``msg_id`` to the collector until idle; returns ok/error/timeout/died/flood/quota."""
        channel = self._channel
        assert channel is not None
        last_check = time.monotonic()
        while True:
            now = time.monotonic()
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - now)
            if wait <= 0:
                return "timeout"
            try:
                msg = await channel.iopub(wait)
            except UNDECODABLE:
                collector.dropped_outputs += 1  # undecodable or badly signed: hostile input, not our crash
                msg = None
            parent = msg.get("parent_header") if isinstance(msg, dict) else None
            if isinstance(msg, dict) and isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                collector.add(msg)
                if collector.idle:
                    return "error" if collector.error is not None else "ok"
            now = time.monotonic()
            if msg is None or now - last_check >= _POLL_S:
                last_check = now
                if not self.is_alive():
                    return "quota" if self._quota_reason else "died"
                if not interrupting and collector.received_chars > self.flood_chars:
                    return "flood"

    def _exit_description(self) -> str:
        proc = self.process
        rc = proc.poll() if proc is not None else None
        if rc is None:
            return "no process"
        return f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"

    async def interrupt(self) -> None:
        """Ask the kernel to raise KeyboardInterrupt in the running code (``interrupt_request`` on control)."""
        self._send_interrupt()

    def _send_interrupt(self) -> None:
        if self._channel is None:
            return
        client = self._channel.client
        client.control_channel.send(client.session.msg("interrupt_request", content={}))

    def memory_rss(self) -> int:
        """Resident memory of every process in this kernel's sandbox (bytes; needs psutil)."""
        import psutil

        proc = self.process
        if proc is None:
            return 0
        root = psutil.Process(proc.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
