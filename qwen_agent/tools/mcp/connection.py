"""One live MCP session (stdio child process or streamable-HTTP endpoint), owned by a background task.

The SDK's client lives inside anyio task groups that must be entered and left by the same task, while tool calls
arrive from many tasks. So one owner task holds ``async with Client(...)`` open until ``aclose()``; calls use the
session from any task on the same event loop. A call that finds the connection dead (the server crashed) fails
with a clear ``MCPServerError`` and the next call reconnects; a hung call is abandoned after its timeout.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from typing import Any, TextIO, cast

try:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("MCP support needs the official SDK: pip install 'mcp==2.3.0' (qwen-agent's mcp extra)") from exc

from qwen_agent.tools.errors import ToolError, ToolStartError
from qwen_agent.tools.mcp.config import HttpServerConfig, ServerConfig, StdioServerConfig, expand_env

logger = logging.getLogger(__name__)

_STDERR_TAIL = 600
_CLOSE_GRACE_S = 5.0


class MCPServerError(ToolError):
    """The MCP server failed (crashed, closed the connection, answered with a protocol error)."""


class MCPTimeoutError(ToolError):
    """The MCP server did not answer a call in time (it may be hung); the call was abandoned."""


class MCPConnection:
    """A lazily (re)connected session to one configured MCP server."""

    def __init__(self, name: str, config: ServerConfig) -> None:
        self.name = name
        self.config = config
        self.client: Client | None = None
        self.ready_s: float | None = None  # start-to-ready time of the last connection, for benchmarks and logs
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._dead = False
        self._failure: BaseException | None = None
        self._errlog: TextIO | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def connect(self) -> Client:
        """The live client, connecting (or reconnecting after a crash) when needed."""
        async with self._lock:
            if self.client is not None and not self._dead and self._task is not None and not self._task.done():
                return self.client
            await self._stop()
            return await self._start()

    async def _start(self) -> Client:
        self._dead, self._failure = False, None
        self._closing = asyncio.Event()
        ready = asyncio.Event()
        started = time.perf_counter()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp-{self.name}")
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, self._task}, timeout=self.config.startup_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.client is None:
            await self._stop()
            why = (f"{type(self._failure).__name__}: {self._failure}" if self._failure is not None
                   else f"no answer within {self.config.startup_timeout:g} s")
            raise ToolStartError(f"MCP server '{self.name}' could not be started ({why}).{self.stderr_tail()} "
                                 "Check its command/url in the mcpServers configuration.")
        self.ready_s = time.perf_counter() - started
        logger.info("MCP server %s ready in %.3f s", self.name, self.ready_s)
        return self.client

    async def _own(self, ready: asyncio.Event) -> None:
        """Hold the SDK client open until asked to close; record why it ended if it ended early."""
        assert self._closing is not None
        try:
            async with AsyncExitStack() as stack:
                client = Client(self._transport(), cache=None)
                self.client = await stack.enter_async_context(client)
                ready.set()
                await self._closing.wait()
        except BaseException as exc:
            self._failure = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
            logger.debug("MCP server %s session ended: %r", self.name, exc)
        finally:
            self.client = None
            self._dead = True
            ready.set()

    def _transport(self) -> Any:
        cfg = self.config
        if isinstance(cfg, StdioServerConfig):
            if self._errlog is None:
                # kept open as long as the connection: error messages quote the server's last stderr lines
                self._errlog = cast(TextIO, tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace"))  # noqa: SIM115
            params = StdioServerParameters(command=cfg.command or sys.executable, args=cfg.args,
                                           env=expand_env(cfg.env) or None, cwd=cfg.cwd)
            return stdio_client(params, errlog=self._errlog)
        assert isinstance(cfg, HttpServerConfig)
        if cfg.headers:
            from mcp.shared._httpx_utils import create_mcp_http_client

            return streamable_http_client(cfg.url, http_client=create_mcp_http_client(headers=expand_env(cfg.headers)))
        return streamable_http_client(cfg.url)

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._closing is not None:
            self._closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), _CLOSE_GRACE_S)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except BaseException as exc:  # noqa: BLE001 - the session's own failure was already recorded
            logger.debug("MCP server %s closed with %r", self.name, exc)
        self.client = None

    async def aclose(self) -> None:
        """Close the session; a stdio server's process (and its children) is terminated by the SDK."""
        async with self._lock:
            await self._stop()
            if self._errlog is not None:
                self._errlog.close()
                self._errlog = None

    # ---- calls ---------------------------------------------------------------------------------------------------

    async def call_tool(self, tool: str, arguments: dict[str, Any], timeout: float | None) -> Any:
        client = await self.connect()
        try:
            async with asyncio.timeout(timeout):
                return await client.call_tool(tool, arguments)
        except TimeoutError as exc:
            raise MCPTimeoutError(
                f"MCP server '{self.name}' did not answer {tool} within {timeout:g} s (it may be hung); the call "
                "was abandoned. Try again later or use another tool."
            ) from exc
        except MCPError as exc:
            raise self._server_error(tool, exc) from exc
        except Exception as exc:  # transport failures (broken pipe, refused connection, closed stream)
            raise self._server_error(tool, exc) from exc

    async def request(self, what: str, coro_fn: Any, timeout: float | None) -> Any:
        """Run ``coro_fn(client)`` (list_tools, read_resource ...) with the same error handling as a call."""
        client = await self.connect()
        try:
            async with asyncio.timeout(timeout):
                return await coro_fn(client)
        except TimeoutError as exc:
            raise MCPTimeoutError(f"MCP server '{self.name}' did not answer {what} within {timeout:g} s.") from exc
        except Exception as exc:
            raise self._server_error(what, exc) from exc

    def _server_error(self, what: str, exc: BaseException) -> MCPServerError:
        message = str(exc) or type(exc).__name__
        closed = "closed" in message.lower() or not isinstance(exc, MCPError) or self._task is None or self._task.done()
        if closed:
            self._dead = True  # the next call reconnects (restarting a stdio server)
            return MCPServerError(
                f"MCP server '{self.name}' stopped answering during {what} ({message}); it crashed or closed the "
                f"connection. It will be restarted on the next call.{self.stderr_tail()}"
            )
        return MCPServerError(f"MCP server '{self.name}' refused {what}: {message}")

    def stderr_tail(self) -> str:
        """The end of a stdio server's stderr, as a hint in error messages (empty when there is none)."""
        if self._errlog is None:
            return ""
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            text = self._errlog.read().strip()
            self._errlog.seek(0, 2)
        except (OSError, ValueError):
            return ""
        return f" Its stderr ends with: {text[-_STDERR_TAIL:]!r}" if text else ""


__all__ = ["MCPConnection", "MCPServerError", "MCPTimeoutError"]
