"""Code-interpreter figures in one run: warm print(1) round trip (tool vs a bare unsandboxed jupyter-client kernel),
cold start of a sandboxed kernel, time to take one from the pool, and idle kernel memory.

The bare kernel is set up like the tool's (history off, no colours, ipc) and the two alternate round by round, so
the ratio is like for like on a shared machine. Cold start is shown for the default (``preload=True``) first.

Targets (issue 3): p50 <= 5 ms and <= 1.2x bare; cold start <= 1.5 s; pool acquire <= 50 ms.
Run: .venv/bin/python benchmarks/bench_code_interpreter.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time

import psutil
from jupyter_client.manager import AsyncKernelManager

from qwen_agent.tools.code_interpreter import CodeInterpreter, Kernel, KernelPool


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


class BareKernel:
    """A plain jupyter-client kernel, unsandboxed, set up like the tool's so the ratio measures the tool and the
    sandbox, not kernel settings: IPython history off (the tool starts its kernel with
    ``--HistoryManager.enabled=False``; history on costs an SQLite write per execution), no colours, ZMQ over
    ``ipc`` sockets. One round trip = execute, wait for idle on iopub, read the shell reply, as the tool does."""

    async def start(self, transport: str) -> None:
        if transport == "ipc":
            self.km = AsyncKernelManager(kernel_name="python3", transport="ipc",
                                         ip=tempfile.mkdtemp(prefix="qa-bare-") + "/k")
        else:
            self.km = AsyncKernelManager(kernel_name="python3")
        await self.km.start_kernel(extra_arguments=["--HistoryManager.enabled=False",
                                                    "--InteractiveShell.colors=nocolor"])
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)

    async def round_trip(self) -> None:
        msg_id = self.kc.execute("print(1)")
        while True:
            msg = await self.kc.get_iopub_msg(timeout=10)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                    and msg["content"]["execution_state"] == "idle":
                break
        await self.kc.get_shell_msg(timeout=10)

    def rss(self) -> int:
        return int(psutil.Process(self.km.provisioner.process.pid).memory_info().rss)  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.kc.stop_channels()
        await self.km.shutdown_kernel(now=True)


async def round_trips(rounds: int, transport: str) -> tuple[list[float], list[float], int]:
    """Warm ``print(1)`` round trips, bare kernel and tool alternating round by round, so a neighbour's load on
    this shared machine falls on both sides alike (10 warm-up rounds each are not counted)."""
    bare = BareKernel()
    await bare.start(transport)
    tool = CodeInterpreter(preload=False)
    await tool.ensure_started()
    bare_times, tool_times = [], []
    for i in range(rounds + 10):
        t0 = time.perf_counter()
        await bare.round_trip()
        t1 = time.perf_counter()
        out = await tool.execute({"code": "print(1)"})
        t2 = time.perf_counter()
        assert out.text == "1", out.text
        if i >= 10:
            bare_times.append(t1 - t0)
            tool_times.append(t2 - t1)
    bare_rss = bare.rss()
    await bare.stop()
    work_dir = tool.work_dir
    await tool.aclose()
    shutil.rmtree(work_dir, ignore_errors=True)
    return bare_times, tool_times, bare_rss


async def cold_starts(n: int, preload: bool) -> tuple[list[float], int]:
    times, rss = [], 0
    for _ in range(n):
        k = Kernel(preload=preload)
        t0 = time.perf_counter()
        await k.start()
        times.append(time.perf_counter() - t0)
        await asyncio.sleep(0.3)
        rss = k.memory_rss()
        await k.shutdown(remove_work_dir=True)
    return times, rss


async def pool_acquires(n: int) -> list[float]:
    pool = KernelPool(size=1, preload=True)
    times = []
    try:
        for _ in range(n):
            await pool.wait_ready(timeout=120)
            t0 = time.perf_counter()
            k = await pool.acquire()
            times.append(time.perf_counter() - t0)
            assert (await k.execute("print(np.arange(3).sum())")).stdout == "3\n"
            await k.shutdown(remove_work_dir=True)
    finally:
        pool.close()
    return times


async def main(rounds: int, transport: str) -> None:
    bare, tool, bare_rss = await round_trips(rounds, transport)
    cold, rss_plain = await cold_starts(3, preload=False)
    cold_pre, rss_pre = await cold_starts(3, preload=True)
    acquire = await pool_acquires(3)
    ms = 1000
    print(f"warm print(1) round trip, {rounds} rounds (p50 / p90 ms):")
    print(f"  bare jupyter-client kernel ({transport}, no sandbox): {statistics.median(bare) * ms:6.2f} / "
          f"{pct(bare, .9) * ms:6.2f}")
    print(f"  CodeInterpreter tool (bwrap sandbox, ipc)    : {statistics.median(tool) * ms:6.2f} / "
          f"{pct(tool, .9) * ms:6.2f}")
    print(f"  ratio tool/bare p50: {statistics.median(tool) / statistics.median(bare):.2f}x   "
          "(target <= 5 ms, <= 1.2x)")
    print(f"cold start, sandboxed kernel (median of 3): {statistics.median(cold_pre):.3f} s with the default "
          f"preload (numpy/pandas/matplotlib), {statistics.median(cold):.3f} s with preload=False   (target <= 1.5 s)")
    print(f"take a ready kernel from the pool (median of 3): {statistics.median(acquire) * ms:.2f} ms   "
          "(target <= 50 ms)")
    print(f"idle kernel memory (RSS of all sandbox processes): {rss_plain / 2**20:.0f} MiB plain, "
          f"{rss_pre / 2**20:.0f} MiB preloaded; bare unsandboxed ipykernel {bare_rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--bare-transport", choices=["ipc", "tcp"], default="ipc",
                        help="ZMQ transport of the bare kernel (the tool's is ipc; jupyter's default is tcp)")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.bare_transport))
