"""An agent using the tools of an MCP server that the example starts itself (stdio, a child process).

The server is tests/mcp_servers/demo_server.py (written with the official `mcp` SDK); the configuration uses the
familiar {"mcpServers": ...} shape. Closing the agent shuts the server process down.

    python examples/mcp_agent.py ["your question"]
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from qwen_agent import Agent, FunctionCalling, SamplingParams, load_model
from qwen_agent.tools.mcp import MCPToolset

SERVER = Path(__file__).resolve().parent.parent / "tests" / "mcp_servers" / "demo_server.py"
CONFIG = {"mcpServers": {"demo": {"command": sys.executable, "args": [str(SERVER)], "timeout": 10,
                                  "include_tools": ["lookup_capital", "echo"]}}}


async def main(question: str) -> None:
    async with MCPToolset(CONFIG) as toolset:
        print("MCP tools:", ", ".join(t.name for t in toolset))
        model = load_model(params=SamplingParams(temperature=0.0, max_tokens=200))
        async with Agent(model, tools=toolset, function_calling=FunctionCalling(format="nous", constrained=True),
                         max_steps=4) as agent:
            result = await agent.arun(question)
    for message in result.messages[1:-1]:
        for call in message.tool_calls or []:
            print(f"   tool: {call.name}({json.dumps(call.arguments)})")
        if message.role == "tool":
            print(f"   result: {message.text}")
    print(f"A: {result.answer}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "What is the capital of Wakanda?"))
