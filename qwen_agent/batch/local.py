"""`LocalPool`: the in-process twin of `RayPool` (same factory, same ordered `map`), the baseline a Ray run is
measured against and what a batch uses without ``ray=``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Generic, TypeVar

from qwen_agent.batch.pool import WorkerFactory

__all__ = ["LocalPool"]

T = TypeVar("T")
R = TypeVar("R")


class LocalPool(Generic[T, R]):
    """One worker built by ``factory`` in this process, ``in_flight`` items on it at once (one shared model: an
    embedded model is loaded once, a server client keeps one connection pool)."""

    def __init__(self, factory: WorkerFactory[T, R], in_flight: int = 1) -> None:
        self._factory = factory
        self.in_flight = max(1, in_flight)

    async def map(self, items: Sequence[T]) -> AsyncIterator[tuple[int, R]]:
        """Yield ``(index, result)`` in input order; an exception from the worker stops the run."""
        worker = self._factory()
        semaphore = asyncio.Semaphore(self.in_flight)

        async def one(item: T) -> R:
            async with semaphore:
                return await worker(item)

        tasks = [asyncio.ensure_future(one(item)) for item in items]
        try:
            for index, task in enumerate(tasks):
                yield index, await task
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            close = getattr(worker, "aclose", None)
            if close is not None:
                await close()
