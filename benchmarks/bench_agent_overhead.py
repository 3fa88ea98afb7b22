"""Framework overhead per agent step against an instant scripted OpenAI-compatible server.

Each agent step sends one streaming chat request (the scripted model answers at once with a tool call), parses the
reply, validates and runs one trivial tool and appends the observation. The baseline is a bare ``httpx`` client
sending the very same request bodies (recorded by the server) and reading the same SSE streams, in the same run,
so what remains is what the framework adds: rendering, parsing, validation, tool dispatch, events.

The default function-calling mode (``FunctionCalling()``: prompted) is measured first, then native ``tools``;
the scripted server streams token-sized deltas (4 characters, about one token of this text) as a real model
server does, so per-chunk parsing costs what it costs in use.

    python benchmarks/bench_agent_overhead.py [--steps 20] [--reps 15] [--modes prompted,native] [--chunk-chars 4]

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


CHUNK_CHARS = 4  # set from --chunk-chars


def script(server: ScriptedServer, steps: int, mode: str) -> None:
    for i in range(steps - 1):
        if mode == "native":
            server.script(ScriptedReply.call("lookup", {"key": f"k{i}"}, chunk_size=CHUNK_CHARS))
        else:
            server.script(ScriptedReply.text(f'{{"name": "lookup", "arguments": {{"key": "k{i}"}}}}',
                                             chunk_size=CHUNK_CHARS))
    server.script(ScriptedReply.text("All keys looked up.", chunk_size=CHUNK_CHARS))


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


async def measure(mode: str, steps: int, reps: int) -> tuple[float, float]:
    """Median ms per step of the agent and of bare httpx on the same bodies, interleaved run by run."""
    with ScriptedServer(models=["bench"]) as server:
        model = OpenAICompatible(server.base_url, model="bench")
        agent = Agent(model, tools=[lookup], max_steps=steps + 1, function_calling=FunctionCalling(mode=mode))
        await agent_run(agent, server, steps, mode)  # warm-up: connection, templates, schema
        server.reset()
        await agent_run(agent, server, steps, mode)
        bodies = [r.body for r in server.chat_requests]
        async with httpx.AsyncClient() as client:
            await bare_run(client, server, bodies, steps, mode)  # warm-up
            agent_t, bare_t = [], []
            for _ in range(reps):  # interleaved so machine noise hits both alike
                server.reset()
                agent_t.append(await agent_run(agent, server, steps, mode))
                server.reset()
                bare_t.append(await bare_run(client, server, bodies, steps, mode))
        await agent.aclose()
    return statistics.median(agent_t) / steps * 1000, statistics.median(bare_t) / steps * 1000


async def main() -> None:
    global CHUNK_CHARS
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--modes", default="prompted,native", help="the default mode (prompted) first")
    ap.add_argument("--chunk-chars", type=int, default=4, help="characters per streamed delta (4: token-sized)")
    a = ap.parse_args()
    CHUNK_CHARS = a.chunk_chars
    print(f"steps/run={a.steps} reps={a.reps} streamed deltas of {a.chunk_chars} characters")
    for mode in a.modes.split(","):
        per_agent, per_bare = await measure(mode, a.steps, a.reps)
        default = " (the default)" if mode == FunctionCalling().mode else ""
        print(f"mode={mode}{default}")
        print(f"  agent step (request + parse + tool + bookkeeping): {per_agent:.3f} ms  (median)")
        print(f"  bare httpx request, same bodies and streams:        {per_bare:.3f} ms  (median)")
        print(f"  framework overhead per step: {per_agent - per_bare:.3f} ms   ratio agent/bare: "
              f"{per_agent / per_bare:.2f}x   target <= 1 ms", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
