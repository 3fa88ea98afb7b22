"""The embedded model through the agent vs llama-cpp-python called directly, and KV-cache reuse across steps.

1. Generation speed: the same chat request (temperature 0, fixed length) through ``Agent`` (no tools, streaming
   events) and through ``llama_cpp.Llama.create_chat_completion(stream=True)`` on a separately loaded copy of the
   same GGUF with the same settings, interleaved. Decode tokens/s = completion tokens / (last - first token time).
   Target (issue 2): agent/direct >= 0.95.
2. Prompt tokens re-evaluated on the second step of a tool-using run: llama.cpp should only evaluate the new
   tokens (the tool result and the template around it), because the KV cache holds the first step's prompt and
   reply.

    python benchmarks/bench_embedded_model.py [--reps 3] [--tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from qwen_agent.agents import Agent, StepFinished, TextDelta
from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.base import SamplingParams
from qwen_agent.llm.distribution.store import default_model_path
from qwen_agent.messages import Message
from qwen_agent.tools import tool

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def direct_llama(n_ctx: int, n_threads: int, n_batch: int):
    """A plain llama_cpp.Llama with the same settings as our backend.

    Like our backend it turns off llama.cpp's extra weight buffers (AMX repacking): with them on, the process
    crashes on this machine's CPU, so that is the only configuration in which a direct call works here.
    """
    from llama_cpp import llama as llama_module

    original = llama_module.llama_cpp.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        return llama_module.Llama(str(default_model_path()), n_ctx=n_ctx, n_threads=n_threads,
                                  n_threads_batch=n_threads, n_batch=n_batch, verbose=False)
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


def direct_once(llm, max_tokens: int) -> tuple[int, float]:
    first = last = None
    n = 0
    for chunk in llm.create_chat_completion([{"role": "user", "content": PROMPT}], stream=True, temperature=0.0,
                                            max_tokens=max_tokens):
        if chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
            n += 1
    return n, (last - first)


async def agent_once(agent: Agent) -> tuple[int, float]:
    first = last = None
    tokens = 0
    async for event in agent.astream(PROMPT):
        if isinstance(event, TextDelta):
            now = time.perf_counter()
            first = first or now
            last = now
        elif isinstance(event, StepFinished):
            tokens = event.response.usage.completion_tokens
    return tokens, (last - first)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"{city}: 18 °C, light rain, wind 12 km/h"


async def kv_cache_check(model: LlamaCpp) -> None:
    agent = Agent(model, tools=[get_weather], params=SamplingParams(temperature=0.0, max_tokens=96))
    question = [Message.user("What's the weather in Oslo?")]
    steps = [e async for e in agent.astream(question) if isinstance(e, StepFinished)]
    print("\nKV cache across steps (one tool-using run):")
    prev_total = None
    for s in steps:
        u = s.response.usage
        new = u.prompt_tokens - (u.cached_prompt_tokens or 0)
        appended = "" if prev_total is None else f"; tokens appended since the previous step's prompt+reply: " \
                                                 f"{u.prompt_tokens - prev_total}"
        print(f"  step {s.step}: prompt {u.prompt_tokens} tokens, served from cache {u.cached_prompt_tokens}, "
              f"evaluated {new}{appended}")
        prev_total = u.prompt_tokens + u.completion_tokens
    if len(steps) < 2:
        print("  (the model answered without a tool call, so there was no second step to measure)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=96)
    a = ap.parse_args()
    model = LlamaCpp(n_ctx=4096, params=SamplingParams(temperature=0.0, max_tokens=a.tokens))
    model.load()
    llm = direct_llama(model.n_ctx, model.n_threads, model.n_batch)
    agent = Agent(model)
    direct_once(llm, 8)
    await agent_once(agent)  # warm-up both
    ours, theirs = [], []
    for _ in range(a.reps):
        n, dt = await agent_once(agent)
        ours.append((n - 1) / dt)
        n, dt = direct_once(llm, a.tokens)
        theirs.append((n - 1) / dt)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"decode speed, {a.tokens} tokens, {a.reps} reps, {model.n_threads} threads:")
    print(f"  through Agent.astream:            {o:6.1f} tok/s  {[f'{x:.1f}' for x in ours]}")
    print(f"  llama_cpp.Llama directly:         {t:6.1f} tok/s  {[f'{x:.1f}' for x in theirs]}")
    print(f"  ratio agent/direct: {o / t:.3f}   target >= 0.95")
    del llm
    await kv_cache_check(model)
    await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
