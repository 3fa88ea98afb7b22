"""Overhead of generated OpenAPI tools and MCP tools vs direct httpx / direct MCP SDK calls, and MCP start-up time.

Everything runs against servers this script starts on 127.0.0.1 (an HTTP/1.1 API) or as child processes (the demo
MCP server over stdio). Baselines are measured in the same run, interleaved with the framework calls, and the
figures are printed as ratios (target: <= 1.5x).

    python benchmarks/bench_web_mcp.py [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from mcp import Client, StdioServerParameters

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Toolbox
from qwen_agent.tools.mcp import MCPConnection, MCPToolset, StdioServerConfig
from qwen_agent.tools.web import LOOPBACK_ONLY
from qwen_agent.tools.web.openapi import tools_from_openapi

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "mcp_servers" / "demo_server.py")
SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "bench", "version": "1"},
    "paths": {"/items/{item_id}": {"get": {
        "operationId": "get_item",
        "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                       {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}],
        "responses": {"200": {"description": "ok"}},
    }}},
}


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so both sides reuse one pooled connection
    disable_nagle_algorithm = True  # headers and body go out as two writes: without this, delayed ACKs add 40 ms

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"id": self.path.split("/")[2].split("?")[0], "name": "widget", "price": 3.5}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.3f} ms  mean {statistics.fmean(samples) * 1e3:7.3f} ms"


async def bench_openapi(n: int) -> tuple[float, float]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    box = Toolbox(tools_from_openapi(SPEC, base_url=base, policy=LOOPBACK_ONLY))  # the local API, allowed explicitly
    direct_client = httpx.AsyncClient(base_url=base)
    call = ToolCall.make("get_item", {"item_id": 7, "verbose": True})
    tool_t: list[float] = []
    direct_t: list[float] = []
    for i in range(n + 10):
        t0 = time.perf_counter()
        out = await box.execute(call)
        t1 = time.perf_counter()
        resp = await direct_client.get("/items/7", params={"verbose": "true"})
        data = resp.json()
        t2 = time.perf_counter()
        assert not out.is_error and out.data["body"] == data
        if i >= 10:  # warm-up
            tool_t.append(t1 - t0)
            direct_t.append(t2 - t1)
    await box.aclose()
    await direct_client.aclose()
    httpd.shutdown()
    httpd.server_close()
    print(f"OpenAPI tool call   {_summary(tool_t)}")
    print(f"direct httpx call   {_summary(direct_t)}")
    return statistics.median(tool_t), statistics.median(direct_t)


async def bench_mcp(n: int) -> tuple[float, float]:
    config = {"mcpServers": {"demo": {"command": sys.executable, "args": [SERVER]}}}
    params = StdioServerParameters(command=sys.executable, args=[SERVER])
    async with MCPToolset(config) as toolset, Client(params, cache=None) as direct:
        box = Toolbox(toolset)
        call = ToolCall.make("add", {"a": 2, "b": 40})
        tool_t: list[float] = []
        direct_t: list[float] = []
        for i in range(n + 10):
            t0 = time.perf_counter()
            out = await box.execute(call)
            t1 = time.perf_counter()
            res = await direct.call_tool("add", {"a": 2, "b": 40})
            t2 = time.perf_counter()
            assert out.text == "42" and res.content[0].text == "42"
            if i >= 10:
                tool_t.append(t1 - t0)
                direct_t.append(t2 - t1)
    print(f"MCP tool call       {_summary(tool_t)}")
    print(f"direct SDK call     {_summary(direct_t)}")
    return statistics.median(tool_t), statistics.median(direct_t)


async def bench_startup(rounds: int) -> None:
    ours: list[float] = []
    sdk: list[float] = []
    params = StdioServerParameters(command=sys.executable, args=[SERVER])
    for _ in range(rounds):
        conn = MCPConnection("demo", StdioServerConfig(command=sys.executable, args=[SERVER]))
        await conn.connect()
        assert conn.ready_s is not None
        ours.append(conn.ready_s)
        await conn.aclose()
        t0 = time.perf_counter()
        async with Client(params, cache=None):
            sdk.append(time.perf_counter() - t0)
    print(f"MCP stdio start-to-ready (spawn + handshake), ours: {_summary(ours)}")
    print(f"MCP stdio start-to-ready, direct SDK Client:       {_summary(sdk)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--startup-rounds", type=int, default=5)
    ns = parser.parse_args()
    tool, direct = await bench_openapi(ns.n)
    print(f"  -> OpenAPI overhead ratio {tool / direct:.2f}x (target <= 1.5x), +{(tool - direct) * 1e3:.3f} ms\n")
    tool, direct = await bench_mcp(ns.n)
    print(f"  -> MCP overhead ratio {tool / direct:.2f}x (target <= 1.5x), +{(tool - direct) * 1e3:.3f} ms\n")
    await bench_startup(ns.startup_rounds)


if __name__ == "__main__":
    asyncio.run(main())
