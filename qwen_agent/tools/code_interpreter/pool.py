"""A small pool of pre-started, pre-loaded sandboxed kernels, so a new session gets a ready kernel at once.

Kernels warm up on the framework's background event loop (``qwen_agent.sync``) and are handed to whichever loop
asks; the kernel reconnects its client there (a few ms). Each pooled kernel has its own fresh work dir, which
becomes the session's work dir, so sandboxes never share writable state.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import ClassVar

from qwen_agent.sync import background_loop
from qwen_agent.tools.code_interpreter.kernel import Kernel
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig

__all__ = ["KernelPool"]

logger = logging.getLogger(__name__)


class KernelPool:
    """Keeps ``size`` started kernels ready. ``acquire()`` takes one (or starts one if none is ready yet)."""

    _shared: ClassVar[dict[str, KernelPool]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, size: int = 1, config: SandboxConfig | None = None, *, preload: bool = True) -> None:
        self.size = size
        self.config = config or SandboxConfig()
        self.preload = preload
        self._ready: deque[Kernel] = deque()
        self._warming: set[Future[Kernel]] = set()
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @classmethod
    def shared(cls, config: SandboxConfig | None = None, size: int = 1) -> KernelPool:
        """One process-wide pool per sandbox configuration (started on first use)."""
        config = config or SandboxConfig()
        key = config.model_dump_json()
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None or pool._closed:
                pool = cls._shared[key] = cls(size, config)
            return pool

    def fill(self) -> None:
        """Start warming kernels until ``size`` are ready or warming (returns at once)."""
        with self._lock:
            missing = self.size - len(self._ready) - len(self._warming)
            for _ in range(max(missing, 0) if not self._closed else 0):
                fut = asyncio.run_coroutine_threadsafe(self._warm(), background_loop())
                self._warming.add(fut)
                fut.add_done_callback(self._warmed)

    async def _warm(self) -> Kernel:
        kernel = Kernel(self.config, preload=self.preload)
        try:
            await kernel.start()
        except BaseException:
            kernel.close(remove_work_dir=True)
            raise
        return kernel

    def _warmed(self, fut: Future[Kernel]) -> None:
        with self._lock:
            self._warming.discard(fut)
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                logger.warning("could not pre-start a kernel: %s", exc)
                return
            kernel = fut.result()
            if self._closed:
                kernel.close(remove_work_dir=True)
            else:
                self._ready.append(kernel)

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    async def wait_ready(self, n: int | None = None, timeout: float = 60.0) -> None:
        """Wait until ``n`` (default: ``size``) kernels are ready (for benchmarks and eager warm-up)."""
        self.fill()
        n = self.size if n is None else n
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.ready_count() < n:
            if loop.time() > end:
                raise TimeoutError(f"kernel pool: {self.ready_count()}/{n} kernels ready after {timeout:g} s")
            with self._lock:
                warming = list(self._warming)
            if not warming:
                self.fill()
            await asyncio.sleep(0.01)

    async def acquire(self) -> Kernel:
        """A started kernel connected on the running loop; the pool refills itself in the background."""
        kernel = None
        with self._lock:
            while self._ready and kernel is None:
                candidate = self._ready.popleft()
                if candidate.is_alive():
                    kernel = candidate
                else:
                    candidate.close(remove_work_dir=True)
        self.fill()
        if kernel is None:
            kernel = Kernel(self.config, preload=self.preload)
            await kernel.start()
        else:
            await kernel.ensure_connected()
        return kernel

    def close(self) -> None:
        """Stop every idle kernel (kernels already handed out belong to their sessions)."""
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready), deque()
            warming = list(self._warming)
        for fut in warming:
            fut.cancel()
        for kernel in ready:
            kernel.close(remove_work_dir=True)  # never handed out: nothing of a user's in there
