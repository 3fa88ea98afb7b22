"""llama.cpp's own OpenAI-compatible server (``llama_cpp.server``, extra ``[server]``) on 127.0.0.1, started and
stopped from Python: the second way to serve a GGUF, for tests, benchmarks and examples.

The server runs with llama.cpp's weight-repacking buffers off, as the embedded backend does: on CPUs that
advertise AMX the repack path segfaults at the first decode, and the server has no option for it, so a small
launcher patches the library's default model parameters before handing over to the server's own ``main``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

from qwen_agent.llm.backends.llamacpp_runtime import default_thread_counts
from qwen_agent.llm.distribution.store import cache_dir, resolve
from qwen_agent.serving.errors import ServerStartError
from qwen_agent.serving.process import GroupProcess, free_port, log_tail

__all__ = ["LlamaCppServer"]

HOST = "127.0.0.1"

_LAUNCHER = """\
import sys
import llama_cpp.llama as llama_module
from llama_cpp.server.__main__ import main
original = llama_module.llama_cpp.llama_model_default_params
def default_params():
    params = original()
    params.use_extra_bufts = False
    return params
llama_module.llama_cpp.llama_model_default_params = default_params
sys.argv[0] = "llama_cpp.server"
main()
"""


class LlamaCppServer:
    """``python -m llama_cpp.server`` serving one GGUF (a path or a catalogue name) as ``alias``; a context manager.

    ``port=0`` picks a free port. The process runs in its own process group and is killed as a whole on `stop`,
    on exit from the ``with`` block, and at interpreter exit. Concurrent requests queue (llama.cpp serves one
    at a time); the server's default would instead interrupt a streaming reply when the next request arrives.
    """

    host = HOST

    def __init__(self, model: str | os.PathLike[str] | None = None, *, alias: str = "qwen2.5-coder-0.5b",
                 port: int = 0, n_ctx: int = 4096, n_threads: int | None = None,
                 n_threads_batch: int | None = None,
                 log_path: str | os.PathLike[str] | None = None, start_timeout: float = 120.0) -> None:
        self.model_path = resolve(model if model is not None else "qwen2.5-coder-0.5b")
        self.alias = alias
        self.port = port or free_port(HOST)
        self.n_ctx = n_ctx
        decode_threads, prompt_threads = default_thread_counts()  # as the embedded backend; it says why
        self.n_threads = n_threads or decode_threads
        self.n_threads_batch = n_threads_batch or prompt_threads
        self.start_timeout = start_timeout
        if log_path is None:
            folder = cache_dir() / "logs"
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="llamacpp-server-", suffix=".log", dir=folder)
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self._process: GroupProcess | None = None
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.alias

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive()

    def command(self) -> list[str]:
        return [sys.executable, "-c", _LAUNCHER, "--model", str(self.model_path), "--host", HOST,
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--model_alias", self.alias,
                "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads_batch),
                # Its default cuts off a streaming reply whenever another request arrives; queue them instead.
                "--interrupt_requests", "false"]

    def start(self) -> LlamaCppServer:
        """Start and wait until ``/v1/models`` answers; `ServerStartError` with the log tail otherwise."""
        if self.running:
            return self
        started = time.perf_counter()
        # As the embedded backend: sleep, do not spin, at OpenMP barriers (spinning starves the other processes).
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        self._process = GroupProcess(self.command(), env=env, log_path=self.log_path, grace=10.0)
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self._process.alive():
                    code = self._process.returncode
                    self.stop()
                    raise ServerStartError(
                        f"llama_cpp.server exited with code {code} before it answered (is the [server] extra "
                        f"installed?); log {self.log_path}:\n{log_tail(self.log_path)}",
                        log_tail(self.log_path), str(self.log_path))
                try:
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(
                        f"llama_cpp.server did not answer {self.base_url}/models within {self.start_timeout:.0f} s; "
                        f"log {self.log_path}:\n{log_tail(self.log_path)}", log_tail(self.log_path),
                        str(self.log_path))
                time.sleep(0.2)
        self.startup_seconds = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Stop the server's process group (idempotent)."""
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
