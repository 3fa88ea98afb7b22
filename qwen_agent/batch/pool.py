"""`RayPool`: items of a batch run by Ray actors, results handed back in input order, items of a dead actor retried.

Each actor calls the ``factory`` it was given once, in its own process, to build an `ItemWorker` (an agent and its
model client, or an embedded model) and then runs items on it. The driver is the only one that records results, so
an item whose actor died before answering is simply sent to a fresh actor: nothing is lost and, because a result
is only counted when it arrives, nothing is counted twice (the dead actor's half-done work is discarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from qwen_agent.batch.cluster import RayError, RayOptions

__all__ = ["ItemWorker", "PoolStats", "RayPool", "WorkerFactory"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class ItemWorker(Protocol[T_contra, R_co]):
    """Runs one item at a time (or several concurrently) inside an actor. Exceptions are for failures of the whole
    run (they stop it); an item that fails on its own should come back as a result that says so."""

    def __call__(self, item: T_contra) -> Awaitable[R_co]: ...


#: Builds the worker inside the actor; must be picklable (a module-level function, a class, a functools.partial).
WorkerFactory = Callable[[], ItemWorker[T, R]]


class _Actor:
    """The Ray actor body: builds its worker on first use, then runs items on Ray's event loop in this process."""

    def __init__(self, factory: Callable[[], ItemWorker[Any, Any]]) -> None:
        self._factory = factory
        self._worker: ItemWorker[Any, Any] | None = None
        self._lock = asyncio.Lock()

    async def run(self, item: Any) -> Any:
        if self._worker is None:
            async with self._lock:
                if self._worker is None:
                    self._worker = self._factory()
        return await self._worker(item)

    def pid(self) -> int:
        import os

        return os.getpid()


@dataclass
class PoolStats:
    """What happened in a run: items finished, items re-sent after their actor died, actors started."""

    finished: int = 0
    retried: int = 0
    actors_started: int = 0


class _Slot:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.generation = 0


class RayPool(Generic[T, R]):
    """``options.workers`` actors running ``factory``'s worker; `map` streams results back in input order."""

    def __init__(self, factory: WorkerFactory[T, R], options: RayOptions) -> None:
        import ray

        if not ray.is_initialized():
            raise RayError("Ray is not initialised: call qwen_agent.batch.connect_ray first")
        self._ray = ray
        self.options = options
        self._remote = ray.remote(_Actor).options(num_cpus=options.actor_cpus,
                                                  max_concurrency=max(1, options.in_flight))
        self._factory = factory
        self.stats = PoolStats()
        self.slots = [_Slot(self._start()) for _ in range(options.workers)]

    def _start(self) -> Any:
        self.stats.actors_started += 1
        return self._remote.remote(self._factory)

    async def pids(self) -> list[int]:
        """The process id of each actor (for tests and diagnostics)."""
        return list(await asyncio.gather(*(_await(s.handle.pid.remote()) for s in self.slots)))

    def _replace(self, slot: _Slot, generation: int) -> None:
        if slot.generation != generation:
            return  # another lane of this actor replaced it already
        with contextlib.suppress(Exception):  # it is dead already, which is why it is replaced
            self._ray.kill(slot.handle, no_restart=True)
        slot.handle = self._start()
        slot.generation += 1

    async def map(self, items: Sequence[T]) -> AsyncIterator[tuple[int, R]]:
        """Yield ``(index, result)`` for every item, in input order, as soon as the next one in order is done."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        lost = (ActorDiedError, ActorUnavailableError, RayActorError)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(items)):
            queue.put_nowait(index)
        results: dict[int, R] = {}
        attempts = [0] * len(items)
        ready = asyncio.Event()
        failure: list[BaseException] = []

        async def lane(slot: _Slot) -> None:
            while not failure:
                index = await queue.get()  # lanes wait for re-queued items until every result is in
                generation = slot.generation
                attempts[index] += 1
                try:
                    results[index] = await _await(slot.handle.run.remote(items[index]))
                    self.stats.finished += 1
                except RayTaskError as exc:  # the worker raised: a failure of the whole run
                    cause: BaseException = exc.as_instanceof_cause()  # type: ignore[no-untyped-call]
                    failure.append(cause)  # raises as the worker's own exception type (and RayTaskError)
                except lost as exc:
                    if attempts[index] >= self.options.max_attempts:
                        failure.append(RayError(f"item {index} lost its actor {attempts[index]} times: {exc}"))
                    else:
                        logger.warning("actor died running item %d; sending it to a new actor", index)
                        self.stats.retried += 1
                        queue.put_nowait(index)
                        self._replace(slot, generation)
                ready.set()

        lanes = [asyncio.ensure_future(lane(slot)) for slot in self.slots for _ in range(self.options.in_flight)]
        try:
            for index in range(len(items)):
                while True:
                    ready.clear()
                    if index in results:
                        break
                    if failure:
                        raise failure[0]
                    for task in lanes:
                        if task.done() and not task.cancelled() and task.exception() is not None:
                            raise RayError(f"a batch lane crashed: {task.exception()!r}")
                    await _wait_any(ready, lanes)
                yield index, results.pop(index)
        finally:
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    def shutdown(self) -> None:
        """Kill the actors (the cluster stays up)."""
        for slot in self.slots:
            with contextlib.suppress(Exception):  # an actor that is gone already
                self._ray.kill(slot.handle, no_restart=True)


async def _await(ref: Any) -> Any:
    return await asyncio.wrap_future(ref.future())


async def _wait_any(event: asyncio.Event, lanes: Sequence[asyncio.Future[None]]) -> None:
    waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter, *lanes], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
