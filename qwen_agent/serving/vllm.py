"""`VLLMServer`: vLLM's OpenAI-compatible server (the CPU build) as a child process of this program.

Production serves Qwen models with vLLM on a GPU; this runs the same server on a CPU-only machine from a private
venv (`qwen_agent.serving.venv`) so the `OpenAICompatible` client, vLLM's tokenizer endpoints, its tool parser and
its structured outputs can be used and tested for real. Everything it needs is local: it binds 127.0.0.1 only and
runs with telemetry and every Hugging Face download switched off.

Run it by hand with ``python -m qwen_agent.serving.vllm [--model NAME_OR_DIR] [--port 8000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from qwen_agent.llm.distribution.store import cache_dir
from qwen_agent.serving.errors import ServerStartError
from qwen_agent.serving.process import GroupProcess, cpu_list, free_port, log_tail
from qwen_agent.serving.venv import ensure_vllm_venv, server_env_base

__all__ = ["VLLMServer", "main"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: vLLM's CPU build needs a few tens of seconds to load and warm up even a 0.5B model; a cold disk adds more.
DEFAULT_START_TIMEOUT = 300.0
_TAIL = 40
#: xgrammar with compact JSON: with the default backend choice and free whitespace, the 0.5B model constrained by
#: a JSON schema writes "{" and then spaces until max_tokens (measured); GBNF grammars work with xgrammar too.
DEFAULT_STRUCTURED_OUTPUTS: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}
_POLL = 0.5


class VLLMServer:
    """vLLM serving one local Hugging Face model folder on 127.0.0.1; a sync and async context manager.

    ``python`` is the interpreter of a venv with vLLM installed (default: `ensure_vllm_venv`, built on first use).
    ``port=0`` picks a free port. ``kv_cache_space_gib`` sizes the KV cache (``VLLM_CPU_KVCACHE_SPACE``): it is
    allocated up front, so keep it small on small machines. ``extra_args`` go verbatim to the server's command line.
    Tool calling uses vLLM's ``hermes`` parser, the one that matches Qwen's chat template. ``structured_outputs``
    is the server's ``--structured-outputs-config`` (None: vLLM's default); requests constrain decoding with the
    body field ``structured_outputs: {"grammar": GBNF}`` or ``{"json": schema}``.
    """

    host = HOST

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        served_model_name: str | None = None,
        *,
        port: int = 0,
        max_model_len: int = 4096,
        kv_cache_space_gib: int = 1,
        dtype: str = "bfloat16",
        tool_call_parser: str | None = "hermes",
        structured_outputs: dict[str, Any] | None = DEFAULT_STRUCTURED_OUTPUTS,
        extra_args: Sequence[str] = (),
        python: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_grace: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).expanduser().resolve()
        self.served_model_name = served_model_name or self.model_dir.name
        self.requested_port = port
        self.port = port
        self.max_model_len = max_model_len
        if kv_cache_space_gib < 1 or int(kv_cache_space_gib) != kv_cache_space_gib:
            raise ValueError(f"kv_cache_space_gib must be a whole number of GiB >= 1 (vLLM reads "
                             f"VLLM_CPU_KVCACHE_SPACE as an int), not {kv_cache_space_gib!r}")
        self.kv_cache_space_gib = int(kv_cache_space_gib)
        self.dtype = dtype
        self.tool_call_parser = tool_call_parser
        self.structured_outputs = dict(structured_outputs) if structured_outputs else None
        self.extra_args = list(extra_args)
        self.python = Path(python) if python is not None else None
        self._log_path = Path(log_path) if log_path is not None else None
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.extra_env = dict(env or {})
        self._process: GroupProcess | None = None
        self.startup_seconds: float | None = None

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (vLLM's own endpoints: /health, /tokenize, /metrics)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``, for `OpenAICompatible`."""
        return f"{self.root_url}/v1"

    @property
    def model(self) -> str:
        return self.served_model_name

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            folder = cache_dir() / "logs"
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"vllm-{self.served_model_name}-", suffix=".log", dir=folder)
            os.close(fd)
            self._log_path = Path(name)
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive()

    def __repr__(self) -> str:
        return f"VLLMServer(model={self.served_model_name!r}, base_url={self.base_url!r}, running={self.running})"

    # ---- command line -------------------------------------------------------------------------------------
    def command(self, python: Path) -> list[str]:
        cmd = [os.fspath(python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", os.fspath(self.model_dir), "--served-model-name", self.served_model_name,
               "--host", self.host, "--port", str(self.port), "--max-model-len", str(self.max_model_len),
               "--dtype", self.dtype, "--disable-uvicorn-access-log"]
        if self.tool_call_parser:
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        if self.structured_outputs:
            cmd += ["--structured-outputs-config", json.dumps(self.structured_outputs)]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = server_env_base()
        env.update({
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_space_gib),
            "VLLM_CPU_OMP_THREADS_BIND": cpu_list(),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        })
        env.update(self.extra_env)
        return env

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def _spawn(self) -> None:
        if self._process is not None and self._process.alive():
            raise ServerStartError(f"{self!r} is already running")
        if not (self.model_dir / "config.json").is_file():
            raise ServerStartError(f"{self.model_dir} is not a Hugging Face model folder (no config.json); "
                                   "convert the GGUF first (qwen_agent.llm.distribution.hf_convert.ensure_hf_model)")
        python = self.python or ensure_vllm_venv()
        self.python = Path(python)
        if self.requested_port == 0:
            self.port = free_port(self.host)
        logger.info("starting vLLM for %s on %s (log: %s)", self.model_dir, self.base_url, self.log_path)
        # cwd: a neutral folder, so a local `vllm/` directory cannot shadow the installed package.
        self._process = GroupProcess(self.command(self.python), env=self.environment(), log_path=self.log_path,
                                     cwd=Path(tempfile.gettempdir()), grace=self.stop_grace)
        self._started_at = time.monotonic()

    def _check(self, status: int | None, models: dict[str, Any] | None) -> bool:
        """One readiness poll's verdict; raises when the process died."""
        assert self._process is not None
        if not self._process.alive():
            raise self._start_error(f"vLLM exited with code {self._process.returncode} before it was ready")
        if status != 200 or models is None:
            return False
        ids = [str(m.get("id")) for m in models.get("data", []) if isinstance(m, dict)]
        if self.served_model_name in ids:
            return True
        raise self._start_error(f"vLLM is up but lists {ids}, not {self.served_model_name!r}")

    def _start_error(self, why: str) -> ServerStartError:
        tail = log_tail(self.log_path, _TAIL)
        self.stop()
        return ServerStartError(f"{why} (model {self.model_dir}, log {self.log_path}). Last log lines:\n{tail}",
                                tail, os.fspath(self.log_path))

    def _timed_out(self) -> bool:
        return time.monotonic() - self._started_at > self.start_timeout

    def _timeout_error(self) -> ServerStartError:
        return self._start_error(f"vLLM was not ready after {self.start_timeout:.0f} s; raise start_timeout or "
                                 "check the log for a hang")

    def _ready(self) -> None:
        self.startup_seconds = time.monotonic() - self._started_at
        logger.info("vLLM ready at %s after %.1f s", self.base_url, self.startup_seconds)

    def start(self) -> Self:
        """Start the server and block until ``/health`` answers 200 and ``/v1/models`` lists the model."""
        self._spawn()
        try:
            with httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
                while True:
                    if self._check(*_poll(client, self.root_url)):
                        break
                    if self._timed_out():
                        raise self._timeout_error()
                    time.sleep(_POLL)
        except BaseException:
            self.stop()
            raise
        self._ready()
        return self

    async def astart(self) -> Self:
        """`start` without blocking the event loop; cancelling it stops the half-started server."""
        await asyncio.to_thread(self._spawn)  # may build the venv (minutes) on first use
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
                while True:
                    if self._check(*await _apoll(client, self.root_url)):
                        break
                    if self._timed_out():
                        raise self._timeout_error()
                    await asyncio.sleep(_POLL)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        self._ready()
        return self

    def stop(self) -> None:
        """SIGTERM the server's process group, wait, SIGKILL what is left. Idempotent."""
        if self._process is not None:
            self._process.stop()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def group_alive(self) -> bool:
        """True while any process of the server's group lives (for checks that nothing was orphaned)."""
        return self._process is not None and self._process.group_alive()


def _models_json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _poll(client: httpx.Client, root: str) -> tuple[int | None, dict[str, Any] | None]:
    try:
        health = client.get(f"{root}/health")
        if health.status_code != 200:
            return health.status_code, None
        return 200, _models_json(client.get(f"{root}/v1/models"))
    except httpx.HTTPError:
        return None, None


async def _apoll(client: httpx.AsyncClient, root: str) -> tuple[int | None, dict[str, Any] | None]:
    try:
        health = await client.get(f"{root}/health")
        if health.status_code != 200:
            return health.status_code, None
        return 200, _models_json(await client.get(f"{root}/v1/models"))
    except httpx.HTTPError:
        return None, None


# ---- entry point ----------------------------------------------------------------------------------------------
def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a model in the foreground until Ctrl-C; prints the base URL to give to `OpenAICompatible`."""
    parser = argparse.ArgumentParser(prog="python -m qwen_agent.serving.vllm", description=main.__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b",
                        help="a catalogue model name (converted to a Hugging Face folder on first use) or a folder")
    parser.add_argument("--served-model-name", default=None, help="name clients use (default: --model's name)")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--kv-cache-gib", type=int, default=1, help="KV cache size in GiB (whole number)")
    parser.add_argument("--start-timeout", type=float, default=DEFAULT_START_TIMEOUT)
    parser.add_argument("--prepare-only", action="store_true",
                        help="build the vLLM venv and convert the model, then exit without serving (for set-up/CI)")
    parser.add_argument("vllm_args", nargs=argparse.REMAINDER, help="after --: extra arguments for vLLM")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
    # SIGTERM (service managers, `kill`) and SIGINT (even when inherited as ignored, as in `cmd &`) both unwind
    # through the `with` block below, which stops vLLM's whole process group: no orphaned engine.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    def venv_progress(event: Any) -> None:
        if event.stage != "install" or not re.match(r"\s*(Collecting|Downloading|Installing)", event.line):
            print(f"[vllm venv] {event.line}", file=sys.stderr, flush=True)

    python = ensure_vllm_venv(venv_progress)
    path = Path(args.model).expanduser()
    if path.is_dir():
        model_dir, name = path, args.served_model_name or path.name
    else:
        from qwen_agent.llm.distribution.hf_convert import ensure_hf_model  # heavy (transformers): only when converting

        model_dir, name = ensure_hf_model(args.model), args.served_model_name or args.model
    if args.prepare_only:
        print(f"vLLM venv ready ({python}); model folder ready ({model_dir})", flush=True)
        return 0
    extra = [a for a in args.vllm_args if a != "--"]
    server = VLLMServer(model_dir, name, port=args.port, max_model_len=args.max_model_len,
                        kv_cache_space_gib=args.kv_cache_gib, extra_args=extra, python=python,
                        start_timeout=args.start_timeout)
    print(f"starting vLLM (log: {server.log_path}) ...", file=sys.stderr, flush=True)
    try:
        with server:
            print(f"serving {server.model!r} at {server.base_url} (started in {server.startup_seconds:.0f} s); "
                  "Ctrl-C to stop", flush=True)
            while server.running:
                time.sleep(1.0)
            print(f"vLLM exited; see {server.log_path}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
