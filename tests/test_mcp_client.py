"""MCP client against a real MCP server (tests/mcp_servers/demo_server.py) over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Toolbox, ToolStartError
from qwen_agent.tools.mcp import MCPConfig, MCPToolset, load_mcp_tools

SERVER = str(Path(__file__).parent / "mcp_servers" / "demo_server.py")
STDIO = {"mcpServers": {"demo": {"command": sys.executable, "args": [SERVER], "timeout": 3, "resources": True}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the HTTP MCP test server did not come up")
    yield url
    proc.kill()
    proc.wait()


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture
async def stdio_tools() -> AsyncIterator[Toolbox]:
    async with MCPToolset(STDIO) as toolset:
        yield Toolbox(toolset)


async def test_stdio_list_and_call(stdio_tools: Toolbox) -> None:
    assert {"add", "echo", "lookup_capital", "crash", "hang", "read_resource"} <= set(stdio_tools.names)
    schema = stdio_tools.get("echo").schema()
    assert schema.parameters["required"] == ["text"] and schema.parameters["properties"]["times"]["default"] == 1
    assert "title" not in schema.parameters["properties"]["text"]
    out = await stdio_tools.execute(ToolCall.make("add", {"a": "2", "b": 40}))  # lenient: "2" -> 2
    assert out.text == "42" and not out.is_error and out.data == {"result": 42}
    out = await stdio_tools.execute(ToolCall.make("echo", {"text": "hi", "times": 3}))
    assert out.text == "hi hi hi"
    out = await stdio_tools.execute(ToolCall.make("read_resource", {"uri": "notes://today"}))
    assert "Call Shuri" in out.text


async def test_bad_arguments_and_tool_errors_are_observations(stdio_tools: Toolbox) -> None:
    out = await stdio_tools.execute(ToolCall.make("add", {"a": 1}))
    assert out.is_error and "argument 'b'" in out.text
    out = await stdio_tools.execute(ToolCall.make("lookup_capital", {"country": "Atlantis"}))
    assert out.is_error and "unknown country" in out.text and "wakanda" in out.text
    out = await stdio_tools.execute(ToolCall.make("lookup_capital", {"country": "Wakanda"}))
    assert out.text == "The capital of Wakanda is Birnin Zana."


async def test_server_crash_mid_call_is_a_clear_error_and_the_next_call_restarts_it(stdio_tools: Toolbox) -> None:
    out = await stdio_tools.execute(ToolCall.make("crash", {}))
    assert out.is_error and "MCP server 'demo'" in out.text and "restarted" in out.text
    out = await stdio_tools.execute(ToolCall.make("add", {"a": 1, "b": 2}))
    assert out.text == "3" and not out.is_error


async def test_hanging_call_times_out_and_the_server_keeps_serving(stdio_tools: Toolbox) -> None:
    t0 = time.perf_counter()
    out = await stdio_tools.execute(ToolCall.make("hang", {}))
    assert out.is_error and "did not answer hang within 3 s" in out.text
    assert time.perf_counter() - t0 < 60, "the call was abandoned at its 3 s timeout, not left to hang"
    out = await stdio_tools.execute(ToolCall.make("add", {"a": 5, "b": 5}))
    assert out.text == "10"


async def test_child_process_is_terminated_on_close() -> None:
    before = _children()
    toolset = await MCPToolset(STDIO).start()
    spawned = _children() - before
    assert spawned, "the stdio server should run as a child process"
    await toolset.aclose()
    deadline = time.monotonic() + 5
    while spawned & _children() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not (spawned & _children())


async def test_closing_the_tool_through_the_toolbox_also_stops_the_server() -> None:
    before = _children()
    async with load_mcp_tools(STDIO) as tools:
        box = Toolbox(tools)
        assert (await box.execute(ToolCall.make("add", {"a": 1, "b": 1}))).text == "2"
        await box.aclose()  # what Agent.aclose does
        assert not (_children() - before)
        # a later call reconnects lazily
        assert (await box.execute(ToolCall.make("add", {"a": 2, "b": 2}))).text == "4"
    assert not (_children() - before)


async def test_streamable_http_list_call_and_crash(http_server: str) -> None:
    config = {"mcpServers": {"web": {"url": http_server, "timeout": 2, "tool_prefix": "web."}}}
    async with MCPToolset(config) as toolset:
        box = Toolbox(toolset)
        assert "web.add" in box.names
        assert (await box.execute(ToolCall.make("web.add", {"a": 20, "b": 22}))).text == "42"
        out = await box.execute(ToolCall.make("web.hang", {}))
        assert out.is_error and "did not answer hang within 2 s" in out.text
        assert (await box.execute(ToolCall.make("web.echo", {"text": "still here"}))).text == "still here"
        out = await box.execute(ToolCall.make("web.crash", {}))
        assert out.is_error and "MCP server 'web'" in out.text
        out = await box.execute(ToolCall.make("web.add", {"a": 1, "b": 1}))  # the server is gone for good
        assert out.is_error and "web" in out.text


async def test_server_that_cannot_start_gives_a_start_error() -> None:
    bad = {"mcpServers": {"broken": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(2)"],
                                     "startup_timeout": 5}}}
    with pytest.raises(ToolStartError, match="MCP server 'broken' could not be started"):
        await MCPToolset(bad).start()


def test_config_shapes() -> None:
    cfg = MCPConfig.load('{"mcpServers": {"a": {"command": "x", "args": ["1"]}, "b": {"url": "http://127.0.0.1:1/mcp"}}}')
    assert type(cfg.servers["a"]).__name__ == "StdioServerConfig"
    assert type(cfg.servers["b"]).__name__ == "HttpServerConfig"
    with pytest.raises(ValueError, match="either 'command' or 'url'"):
        MCPConfig.load({"mcpServers": {"c": {"command": "x", "url": "http://127.0.0.1/"}}})
    with pytest.raises(ValueError):
        MCPConfig.load({"mcpServers": {"d": {"command": "x", "unknown_key": 1}}})
