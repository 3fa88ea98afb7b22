"""Framework overhead per agent step against an instant scripted OpenAI-compatible server.

Each agent step sends one streaming chat request (the scripted model answers at once with a tool call), parses the
reply, validates and runs one trivial tool and appends the observation. The baseline is a bare ``httpx`` client
sending the very same request bodies (recorded by the server) and reading the same SSE streams, in the same run,
so what remains is what the framework adds: rendering, parsing, validation, tool dispatch, events.

    python benchmarks/bench_agent_overhead.py [--steps 20] [--reps 15] [--mode native|prompted]

Target (issue 2): <= 1 ms of overhead per step.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from qwen_agent.agents import Agent
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool


@tool
def lookup(key: str) -> str:
    """Return the value stored under a key.

    Args:
        key: the key to look up
    """
    return f"value-of-{key}"


def script(server: ScriptedServer, steps: int, mode: str) -> None:
    for i in range(steps - 1):
        if mode == "native":
            server.script(ScriptedReply.call("lookup", {"key": f"k{i}"}, chunk_size=64))
        else:
            server.script(ScriptedReply.text(f'{{"name": "lookup", "arguments": {{"key": "k{i}"}}}}', chunk_size=64))
    server.script(ScriptedReply.text("All keys looked up.", chunk_size=64))


async def agent_run(agent: Agent, server: ScriptedServer, steps: int, mode: str) -> float:
    script(server, steps, mode)
    t0 = time.perf_counter()
    result = await agent.arun("Look up the keys k0, k1, ... one by one.")
    elapsed = time.perf_counter() - t0
    assert result.steps == steps and result.stop_reason == "answer", result
    return elapsed


async def bare_run(client: httpx.AsyncClient, server: ScriptedServer, bodies: list[dict], steps: int,
                   mode: str) -> float:
    script(server, steps, mode)
    t0 = time.perf_counter()
    for body in bodies:
        async with client.stream("POST", f"{server.base_url}/chat/completions", json=body) as resp:
            async for _ in resp.aiter_lines():
                pass
    return time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--mode", choices=["native", "prompted"], default="native")
    a = ap.parse_args()
    with ScriptedServer(models=["bench"]) as server:
        model = OpenAICompatible(server.base_url, model="bench")
        agent = Agent(model, tools=[lookup], max_steps=a.steps + 1,
                      function_calling=FunctionCalling(mode=a.mode))
        await agent_run(agent, server, a.steps, a.mode)  # warm-up: connection, templates, schema
        server.reset()
        await agent_run(agent, server, a.steps, a.mode)
        bodies = [r.body for r in server.chat_requests]
        async with httpx.AsyncClient() as client:
            await bare_run(client, server, bodies, a.steps, a.mode)  # warm-up
            agent_t, bare_t = [], []
            for _ in range(a.reps):  # interleaved so machine noise hits both alike
                server.reset()
                agent_t.append(await agent_run(agent, server, a.steps, a.mode))
                server.reset()
                bare_t.append(await bare_run(client, server, bodies, a.steps, a.mode))
        await agent.aclose()
    per_agent = statistics.median(agent_t) / a.steps * 1000
    per_bare = statistics.median(bare_t) / a.steps * 1000
    print(f"mode={a.mode} steps/run={a.steps} reps={a.reps}")
    print(f"agent step (request + parse + tool + bookkeeping): {per_agent:.3f} ms  (median)")
    print(f"bare httpx request, same bodies and streams:        {per_bare:.3f} ms  (median)")
    print(f"framework overhead per step: {per_agent - per_bare:.3f} ms   ratio agent/bare: {per_agent / per_bare:.2f}x"
          f"   target <= 1 ms")


if __name__ == "__main__":
    asyncio.run(main())
