"""Batch throughput with an instant backend: the in-process runner against Ray with 1 and 2 workers.

The model answers at once (`qwen_agent.testing.InstantModel`), so what is measured is the runner itself: one agent
run per item (render, one model call, parse) plus, on Ray, the remote call per item (pickle the input, schedule on
the actor, pickle the record back). Actors are started and warmed before timing; the cluster is a private local
one on 127.0.0.1 (start-up time printed separately). The overhead per item is Ray's time per item minus the
in-process runner's, both in this run.

    python benchmarks/bench_batch.py [--items 400] [--reps 3] [--in-flight 1]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time

from qwen_agent.agents import Agent
from qwen_agent.batch import AgentWorker, BatchInput, LocalPool, RayOptions, RayPool, connect_ray, disconnect_ray
from qwen_agent.testing import InstantModel


def instant_agent() -> Agent:
    return Agent(InstantModel(), max_steps=1)


async def timed(pool: LocalPool[BatchInput, object] | RayPool[BatchInput, object], items: list[BatchInput]) -> float:
    started = time.perf_counter()
    n = 0
    async for _ in pool.map(items):
        n += 1
    assert n == len(items)
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    items = [BatchInput(id=str(i), input=f"question {i}") for i in range(args.items)]
    factory = functools.partial(AgentWorker, instant_agent)
    rows: list[tuple[str, float]] = []

    local: LocalPool[BatchInput, object] = LocalPool(factory, args.in_flight)
    await timed(local, items[:20])
    rows.append(("in-process", statistics.median([await timed(local, items) for _ in range(args.reps)])))

    t0 = time.perf_counter()
    connect_ray(RayOptions(address="local", num_cpus=2))
    print(f"local Ray cluster on 127.0.0.1 started in {time.perf_counter() - t0:.1f} s")
    try:
        for workers in (1, 2):
            pool: RayPool[BatchInput, object] = RayPool(factory, RayOptions(workers=workers,
                                                                            in_flight=args.in_flight))
            await timed(pool, items[:20])  # actors started, agents built
            rows.append((f"ray, {workers} worker{'s' * (workers > 1)}",
                         statistics.median([await timed(pool, items) for _ in range(args.reps)])))
            pool.shutdown()
    finally:
        disconnect_ray()

    base = rows[0][1] / args.items
    print(f"\n{args.items} items, in flight per worker {args.in_flight}, median of {args.reps}")
    print(f"{'runner':<16} {'items/s':>9} {'ms/item':>9} {'overhead ms/item':>17} {'vs in-process':>14}")
    for name, seconds in rows:
        per = seconds / args.items
        print(f"{name:<16} {args.items / seconds:>9.0f} {per * 1e3:>9.2f} {(per - base) * 1e3:>17.2f} "
              f"{base / per:>13.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
