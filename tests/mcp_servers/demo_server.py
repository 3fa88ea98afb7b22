"""A small MCP server for the tests, examples and benchmark: stdio by default, ``--http PORT`` for streamable HTTP.

Tools: add, echo, lookup_capital (a tiny fact table), crash (the process exits mid-call), hang (never answers
in time). One resource: ``notes://today``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("demo", instructions="A demo server for qwen-agent tests.", log_level="WARNING")

CAPITALS = {"wakanda": "Birnin Zana", "genovia": "Pyrus", "freedonia": "Fredonia City"}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    return " ".join([text] * times)


@server.tool()
def lookup_capital(country: str) -> str:
    """The capital city of a (fictional) country."""
    try:
        return f"The capital of {country.strip().title()} is {CAPITALS[country.strip().lower()]}."
    except KeyError:
        raise ToolError(f"unknown country {country!r}; known: {', '.join(sorted(CAPITALS))}") from None


@server.tool()
def crash() -> str:
    """Exit the server process abruptly (simulates a crash mid-call)."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
async def hang(seconds: float = 3600.0) -> str:
    """Sleep for a long time (simulates a hung server)."""
    await asyncio.sleep(seconds)
    return "woke up"


@server.resource("notes://today")
def today_notes() -> str:
    """Today's notes."""
    return "Buy milk. Call Shuri."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on 127.0.0.1:PORT")
    ns = parser.parse_args()
    if ns.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=ns.http)


if __name__ == "__main__":
    main()
