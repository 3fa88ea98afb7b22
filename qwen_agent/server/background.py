"""Run the server: in the foreground (the CLI), or on a background thread for tests, benchmarks and notebooks."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any, Self

import uvicorn

from qwen_agent.server.app import create_app
from qwen_agent.server.config import ConfigError, ServeConfig, is_loopback
from qwen_agent.server.profiles import ModelFactory

logger = logging.getLogger(__name__)

__all__ = ["BackgroundServer", "check_exposure", "serve"]


def check_exposure(config: ServeConfig) -> None:
    """Refuse to listen beyond loopback without an API key: anyone who reaches the port could run code."""
    s = config.server
    if not is_loopback(s.host) and not s.api_keys:
        raise ConfigError(
            f"refusing to listen on {s.host}: that address is reachable from other machines, and without an API "
            "key anyone who reaches it could run code in this server's sandboxes and read its documents. Give "
            "--api-key (or api_keys in the server table of the config, or $QWEN_AGENT_SERVE_API_KEY), or listen on "
            "127.0.0.1.")


def _uvicorn_config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False,
                          timeout_graceful_shutdown=5, proxy_headers=False, server_header=False)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket whose accepted connections have TCP_NODELAY: uvicorn writes headers and body apart, and
    without it each small response waits ~40 ms for the client's delayed ACK (measured: 44 ms vs 1 ms)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def serve(config: ServeConfig, *, log_level: str = "info", model_factory: ModelFactory | None = None) -> None:
    """Serve in the foreground until interrupted; sessions and kernels are closed on the way out."""
    check_exposure(config)
    app = create_app(config, model_factory=model_factory)
    sock = listen(config.server.host, config.server.port)
    server = uvicorn.Server(_uvicorn_config(app, config.server.host, config.server.port, log_level))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """The server on its own thread and event loop (``port=0`` picks a free port); a context manager.

        with BackgroundServer(config) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="...")
    """

    def __init__(self, config: ServeConfig, *, model_factory: ModelFactory | None = None,
                 log_level: str = "warning") -> None:
        check_exposure(config)
        self.config = config
        self.app = create_app(config, model_factory=model_factory)
        self.host = config.server.host
        self.port = config.server.port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def state(self) -> Any:
        return self.app.state.server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> Self:
        sock = listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.host, self.port, self._log_level))
        # the host application owns the signals (uvicorn's Server has this hook; its stubs do not declare it)
        setattr(self._server, "install_signal_handlers", lambda: None)  # noqa: B010
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[sock]))  # type: ignore[union-attr]
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                errors.append(exc)

        self._thread = threading.Thread(target=run, name="qwen-agent-serve", daemon=True)
        self._thread.start()
        while not self._server.started:
            if errors or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {errors[0] if errors else 'thread ended'}")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
