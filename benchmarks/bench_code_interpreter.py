"""Code-interpreter figures in one run: warm print(1) round trip (tool vs a bare unsandboxed jupyter-client kernel),
cold start of a sandboxed kernel, time to take one from the pool, and idle kernel memory.

Targets (issue 3): p50 <= 5 ms and <= 1.2x bare; cold start <= 1.5 s; pool acquire <= 50 ms.
Run: .venv/bin/python benchmarks/bench_code_interpreter.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time

import psutil
from jupyter_client.manager import AsyncKernelManager

from qwen_agent.tools.code_interpreter import CodeInterpreter, Kernel, KernelPool


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


async def bare_round_trips(rounds: int) -> tuple[list[float], int]:
    """A plain jupyter-client kernel (TCP on 127.0.0.1, no sandbox): execute + wait for idle, like the tool does."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    times = []
    for i in range(rounds + 10):
        t0 = time.perf_counter()
        msg_id = kc.execute("print(1)")
        while True:
            msg = await kc.get_iopub_msg(timeout=10)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                    and msg["content"]["execution_state"] == "idle":
                break
        await kc.get_shell_msg(timeout=10)
        if i >= 10:
            times.append(time.perf_counter() - t0)
    rss = psutil.Process(km.provisioner.process.pid).memory_info().rss
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    return times, rss


async def tool_round_trips(rounds: int) -> list[float]:
    tool = CodeInterpreter(preload=False)
    await tool.ensure_started()
    times = []
    for i in range(rounds + 10):
        t0 = time.perf_counter()
        out = await tool.execute({"code": "print(1)"})
        if i >= 10:
            times.append(time.perf_counter() - t0)
        assert out.text == "1", out.text
    work_dir = tool.work_dir
    await tool.aclose()
    shutil.rmtree(work_dir, ignore_errors=True)
    return times


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


async def main(rounds: int) -> None:
    bare, bare_rss = await bare_round_trips(rounds)
    tool = await tool_round_trips(rounds)
    cold, rss_plain = await cold_starts(3, preload=False)
    cold_pre, rss_pre = await cold_starts(3, preload=True)
    acquire = await pool_acquires(3)
    ms = 1000
    print(f"warm print(1) round trip, {rounds} rounds (p50 / p90 ms):")
    print(f"  bare jupyter-client kernel (tcp, no sandbox): {statistics.median(bare) * ms:6.2f} / "
          f"{pct(bare, .9) * ms:6.2f}")
    print(f"  CodeInterpreter tool (bwrap sandbox, ipc)    : {statistics.median(tool) * ms:6.2f} / "
          f"{pct(tool, .9) * ms:6.2f}")
    print(f"  ratio tool/bare p50: {statistics.median(tool) / statistics.median(bare):.2f}x   "
          "(target <= 5 ms, <= 1.2x)")
    print(f"cold start, sandboxed kernel (median of 3): {statistics.median(cold):.3f} s bare ipykernel, "
          f"{statistics.median(cold_pre):.3f} s with numpy/pandas/matplotlib preloaded   (target <= 1.5 s)")
    print(f"take a ready kernel from the pool (median of 3): {statistics.median(acquire) * ms:.2f} ms   "
          "(target <= 50 ms)")
    print(f"idle kernel memory (RSS of all sandbox processes): {rss_plain / 2**20:.0f} MiB plain, "
          f"{rss_pre / 2**20:.0f} MiB preloaded; bare unsandboxed ipykernel {bare_rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
