"""Blocking wrappers over the async core, run on one private event-loop thread.

One long-lived loop (instead of ``asyncio.run`` per call) keeps async resources such as an httpx connection pool
or a kernel client valid across many sync calls, and works even when the caller already runs an event loop
(Jupyter).
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

__all__ = ["background_loop", "iterate_sync", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop that sync wrappers run on (started on first use, stopped at exit)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="qwen-agent-sync", daemon=True)
            thread.start()
            _loop = loop
            atexit.register(_stop, loop, thread)
        return _loop


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run a coroutine on the background loop and wait for its result (exceptions propagate)."""
    loop = background_loop()
    if _running_loop() is loop:
        raise RuntimeError("a sync wrapper was called from inside the framework's own loop; await the async API")
    return asyncio.run_coroutine_threadsafe(_as_coro(awaitable), loop).result()


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator on the background loop, yielding its items here, one at a time.

    Items are handed over through a bounded queue so a slow consumer applies back-pressure; closing the returned
    iterator early closes the async iterator too.
    """
    loop = background_loop()
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=64)
    stop = threading.Event()

    async def pump() -> None:
        try:
            async for item in agen:
                while not stop.is_set():
                    try:
                        q.put_nowait(("item", item))
                        break
                    except queue.Full:
                        await asyncio.sleep(0.001)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer thread
            q.put(("error", exc))
            return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()
        q.put(("done", None))

    future = asyncio.run_coroutine_threadsafe(pump(), loop)
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        while True:  # unblock the producer if it is waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                break
        future.result(timeout=30) if not future.cancelled() else None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _as_coro(awaitable: Awaitable[T]) -> T:
    return await awaitable
