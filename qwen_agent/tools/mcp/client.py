"""MCP servers' tools as framework Tools: ``MCPToolset`` connects the configured servers and lists their tools.

Usage::

    async with load_mcp_tools({"mcpServers": {"files": {"command": "python", "args": ["server.py"]}}}) as tools:
        agent = Agent(model, tools=tools)
        await agent.arun("...")

Each server's tools keep their input schema (what the model sees) and are validated leniently before the call.
Closing a tool (``Agent.aclose``) or the toolset shuts the sessions down and terminates stdio child processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from qwen_agent.sync import run_sync
from qwen_agent.tools.base import Tool, ToolOutput
from qwen_agent.tools.errors import ToolStartError
from qwen_agent.tools.mcp.config import MCPConfig, ServerConfig
from qwen_agent.tools.mcp.connection import MCPConnection, MCPServerError, MCPTimeoutError
from qwen_agent.tools.output import DEFAULT_MAX_CHARS
from qwen_agent.tools.schema_tool import SchemaTool

logger = logging.getLogger(__name__)

_TIMEOUT_MARGIN_S = 2.0  # the Tool-level timeout is a backstop; the connection's own timeout speaks first


class MCPTool(SchemaTool):
    """One tool of an MCP server."""

    parallel_safe = True  # MCP sessions multiplex concurrent requests

    def __init__(self, connection: MCPConnection, remote: Any, *, name: str | None = None,
                 max_output_chars: int | None = DEFAULT_MAX_CHARS) -> None:
        self.connection = connection
        self.remote_name: str = remote.name
        self.call_timeout = connection.config.timeout
        description = (remote.description or remote.title or remote.name).strip()
        super().__init__(name=name or remote.name, description=description,
                         input_schema=dict(remote.input_schema or {}),
                         timeout=self.call_timeout + _TIMEOUT_MARGIN_S, max_output_chars=max_output_chars)

    async def run(self, args: BaseModel) -> ToolOutput:
        result = await self.connection.call_tool(self.remote_name, self.wire_args(args), self.call_timeout)
        return result_to_output(result)

    async def aclose(self) -> None:
        await self.connection.aclose()


class ResourceArgs(BaseModel):
    uri: str = Field(description="the URI of the resource to read")


class MCPResourceTool(Tool):
    """``read_resource`` for one server: lets the model read the resources the server lists."""

    Args = ResourceArgs

    def __init__(self, connection: MCPConnection, resources: Sequence[Any], *, name: str) -> None:
        self.connection = connection
        listing = "; ".join(f"{r.uri} ({r.description or r.name})" for r in resources[:20])
        super().__init__(name=name, description=f"Read a resource of the '{connection.name}' server. "
                         f"Available: {listing or 'none listed'}.", timeout=connection.config.timeout + 2.0)

    async def run(self, args: ResourceArgs) -> str:
        result = await self.connection.request(
            f"read_resource {args.uri}", lambda c: c.read_resource(args.uri), self.connection.config.timeout
        )
        parts = [getattr(c, "text", None) or f"[{getattr(c, 'mime_type', None) or 'binary'} data]"
                 for c in result.contents]
        return "\n".join(parts)

    async def aclose(self) -> None:
        await self.connection.aclose()


def result_to_output(result: Any) -> ToolOutput:
    """Text parts joined (images and blobs described), structured content as ``data``, ``isError`` kept."""
    texts: list[str] = []
    for part in result.content or []:
        kind = getattr(part, "type", "")
        if kind == "text":
            texts.append(part.text)
        elif kind == "resource":
            texts.append(getattr(part.resource, "text", None) or f"[resource {part.resource.uri}]")
        elif kind == "resource_link":
            texts.append(f"[resource {part.uri}]")
        else:
            texts.append(f"[{kind} {getattr(part, 'mime_type', '')}]".replace(" ]", "]"))
    text = "\n".join(texts)
    if result.is_error:
        return ToolOutput.error(text or "the MCP tool reported an error")
    return ToolOutput(text=text or "(no output)", data=result.structured_content)


class MCPToolset:
    """The tools of every configured MCP server; iterate it or pass it as ``tools=`` to an Agent."""

    def __init__(self, config: MCPConfig | dict[str, Any] | str | Path) -> None:
        self.config = MCPConfig.load(config)
        self.connections = {name: MCPConnection(name, cfg) for name, cfg in self.config.servers.items()}
        self.tools: list[Tool] = []

    async def start(self) -> MCPToolset:
        """Connect every server concurrently and list their tools; one failing server fails with its name."""
        results = await asyncio.gather(*(self._tools_of(c) for c in self.connections.values()),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.aclose()
            raise failures[0]
        self.tools = [t for r in results if not isinstance(r, BaseException) for t in r]
        return self

    async def _tools_of(self, conn: MCPConnection) -> list[Tool]:
        cfg: ServerConfig = conn.config
        listed = await conn.request("list_tools", _list_all_tools, cfg.startup_timeout)
        prefix = cfg.tool_prefix or ""
        tools: list[Tool] = []
        for remote in listed:
            if cfg.include_tools is not None and remote.name not in cfg.include_tools:
                continue
            if remote.name in cfg.exclude_tools:
                continue
            tools.append(MCPTool(conn, remote, name=prefix + remote.name))
        if cfg.resources:
            resources = await conn.request("list_resources", lambda c: c.list_resources(), cfg.startup_timeout)
            tools.append(MCPResourceTool(conn, resources.resources, name=f"{prefix}read_resource"))
        return tools

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connections.values()), return_exceptions=True)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    async def __aenter__(self) -> MCPToolset:  # noqa: PYI034 - start() returns self
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # blocking helpers: they run on the framework's background loop, the same one Agent.run uses
    def start_sync(self) -> MCPToolset:
        return run_sync(self.start())

    def close(self) -> None:
        run_sync(self.aclose())


async def _list_all_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose pagination never ends cannot hang start-up
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


@asynccontextmanager
async def load_mcp_tools(config: MCPConfig | dict[str, Any] | str | Path) -> AsyncIterator[list[Tool]]:
    """Connect the servers of an ``{"mcpServers": ...}`` config, yield their tools, shut everything down after."""
    toolset = MCPToolset(config)
    await toolset.start()
    try:
        yield list(toolset.tools)
    finally:
        await toolset.aclose()


__all__ = [
    "MCPResourceTool",
    "MCPServerError",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolset",
    "ToolStartError",
    "load_mcp_tools",
    "result_to_output",
]
