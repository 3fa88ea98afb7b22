"""One worker thread per in-process model: blocking generation streamed to async callers, one request at a time.

llama.cpp and torch generation are blocking and their model objects are not thread-safe, so each in-process backend
(`LlamaCpp`, `Transformers`) owns a `ModelWorker`: every job runs on its single thread under its lock (concurrent
requests queue), streamed pieces travel to the caller's event loop through an asyncio queue, and a consumer that
stops listening (generator closed, task cancelled, loop gone) sets the job's cancel event so generation stops at
the next token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

__all__ = ["Emit", "ModelWorker"]

T = TypeVar("T")
#: ``emit("chunk", value)`` streams a value; ``emit("error", exc)`` raises ``exc`` in the caller.
Emit = Callable[[str, Any], None]


class ModelWorker:
    """A single-thread executor, its lock, and the cancel events of the jobs streaming right now."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._active: set[threading.Event] = set()

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._executor

    def _locked(self, fn: Callable[[], T]) -> Callable[[], T]:
        def job() -> T:
            with self.lock:
                return fn()

        return job

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the lock on the worker thread and wait for it (blocking; from any other thread)."""
        return self._pool().submit(self._locked(fn)).result()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the lock on the worker thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self._locked(fn))

    async def stream(self, job: Callable[[Emit, threading.Event], None]) -> AsyncIterator[Any]:
        """Run ``job(emit, cancel)`` under the lock on the worker thread and yield what it emits as ``"chunk"``.

        The job reports failures with ``emit("error", exc)``; an exception it lets escape is re-raised here too.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the caller's loop is gone: nobody listens any more
                cancel.set()

        def work() -> None:
            try:
                if not cancel.is_set():
                    with self.lock:
                        job(emit, cancel)
            except BaseException as exc:  # noqa: BLE001 - whatever happens must reach the caller
                emit("error", exc)
            finally:
                emit("done", None)

        self._active.add(cancel)
        loop.run_in_executor(self._pool(), work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "chunk":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            cancel.set()  # the consumer stopped (or we are done): the job stops at its next check
            self._active.discard(cancel)

    async def shutdown(self, unload: Callable[[], None]) -> None:
        """Cancel running jobs, run ``unload`` on the worker (after them) and stop the thread. Safe to call twice;
        a later job starts a new thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for event in list(self._active):
            event.set()
        await asyncio.get_running_loop().run_in_executor(executor, self._locked(unload))
        executor.shutdown(wait=False)
