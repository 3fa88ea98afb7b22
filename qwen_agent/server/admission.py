"""Admission control: at most N runs at once, a bounded queue behind them, 429/503 with Retry-After beyond."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from qwen_agent.server.errors import APIError

__all__ = ["Admission", "Slot"]


class Slot:
    """A granted run slot; `release` is idempotent (the response releases it when the run is over)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release()


class Admission:
    """``max_running`` runs at once; up to ``max_queued`` more wait (FIFO) at most ``queue_timeout`` seconds.

    A request that finds the queue full gets 429 at once; one that waited too long gets 503. Both carry
    ``Retry-After``, so OpenAI clients back off and retry by themselves. Memory stays bounded: beyond the queue
    nothing is held but the rejected request's own body.
    """

    def __init__(self, max_running: int, max_queued: int, queue_timeout: float) -> None:
        self.max_running = max_running
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = 0

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Slot:
        if self.running < self.max_running and not self._waiters:
            self.running += 1
            return Slot(self)
        if len(self._waiters) >= self.max_queued:
            self.rejected += 1
            raise APIError.busy(429, f"The server is at capacity ({self.running} runs working, {len(self._waiters)} "
                                     "waiting); retry later.", retry_after=1.0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.queue_timeout)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return Slot(self)  # granted just as the wait ended
            fut.cancel()
            self._drop(fut)
            self.rejected += 1
            raise APIError.busy(503, f"No run slot became free within {self.queue_timeout:g} s; retry later.",
                                retry_after=max(1.0, self.queue_timeout / 4)) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # the slot was handed to a client that has gone away: pass it on
            else:
                fut.cancel()
                self._drop(fut)
            raise
        return Slot(self)

    def _drop(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def _release(self) -> None:
        # Hand the slot straight to the next live waiter (running stays the same), else free it.
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.running -= 1
