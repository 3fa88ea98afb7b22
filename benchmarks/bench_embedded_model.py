"""Decode speed of the embedded model through the agent vs llama-cpp-python as a user runs it, idle and busy; and
KV-cache reuse across agent steps.

1. Decode speed. Every measurement is its own fresh process, so what one side does to the process (our import
   sets OpenMP's wait policy before libgomp loads; libgomp reads it once) cannot touch the other:

   * ``llama-cpp-python`` (the baseline): ``llama_cpp.Llama(path, n_ctx=4096)`` with its own defaults, streaming
     ``create_chat_completion``, in a process whose environment has no ``OMP_*``/``GOMP_*`` variables. One
     deviation, needed on this machine: llama.cpp's extra weight buffers (AMX repacking) are off, because with them
     on the process segfaults at the first decode here (our backend turns them off for the same reason);
   * ``agent``: ``Agent(LlamaCpp(n_ctx=4096))`` with our defaults, ``Agent.astream``, token-sized text events;
   * extra variants (``--variants``): ``agent+n_threads=2`` is the previous default on 2 cores (every core
     decodes, OpenMP waits PASSIVE); others such as ``agent+GOMP_SPINCOUNT=10000+n_threads=2`` try alternatives:
     ``+NAME=VALUE`` sets an environment variable, ``+n_threads=N`` a backend argument.

   Decode tokens/s = (completion tokens - 1) / (last token time - first token time), greedy, a fixed prompt.
   The runs alternate side by side ``--reps`` times in two phases: *idle* (whatever the machine is doing anyway)
   and *busy* (one CPU hog per core running through the phase, started by this script). Ratios are against the
   baseline's median in the same phase. Targets (issues 2 and 16): agent/baseline >= 0.95 idle, and no collapse
   busy (the old default of spinning OpenMP threads took a 6 s reply to 97 s on 2 busy cores).
2. Prompt tokens re-evaluated on the second step of a tool-using run: llama.cpp should only evaluate the new
   tokens (the tool result and the template around it), because the KV cache holds the first step's prompt and
   reply.

    python benchmarks/bench_embedded_model.py [--reps 3] [--tokens 96] [--variants agent+n_threads=2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
N_CTX = 4096
BASELINE = "llama-cpp-python"
HOG = "while True: pass"


def direct_worker(tokens: int) -> float:
    """llama-cpp-python with its defaults (but the crash-prone extra buffers off): decode tok/s of one request."""
    from llama_cpp import llama as llama_module

    from qwen_agent.llm.distribution.store import default_model_path

    original = llama_module.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    llm = llama_module.Llama(str(default_model_path()), n_ctx=N_CTX, verbose=False)

    def once(max_tokens: int) -> float:
        first = last = 0.0
        n = 0
        for chunk in llm.create_chat_completion([{"role": "user", "content": PROMPT}], stream=True,
                                                temperature=0.0, max_tokens=max_tokens):
            if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
                last = time.perf_counter()
                first = first or last
                n += 1
        return (n - 1) / (last - first)

    once(8)  # warm-up
    return once(tokens)


async def agent_worker(tokens: int, backend_args: dict[str, Any]) -> float:
    """Our agent on the embedded backend with its defaults: decode tok/s of one streamed reply."""
    from qwen_agent.agents import Agent, StepFinished, TextDelta
    from qwen_agent.llm.backends.llamacpp import LlamaCpp
    from qwen_agent.llm.base import SamplingParams

    model = LlamaCpp(n_ctx=N_CTX, params=SamplingParams(temperature=0.0, max_tokens=tokens), **backend_args)
    agent = Agent(model)

    async def once() -> float:
        first = last = 0.0
        n = 0
        async for event in agent.astream(PROMPT):
            if isinstance(event, TextDelta):
                last = time.perf_counter()
                first = first or last
            elif isinstance(event, StepFinished):
                n = event.response.usage.completion_tokens
        return (n - 1) / (last - first)

    await once()  # warm-up (loads the model)
    speed = await once()
    await model.aclose()
    return speed


def variant_env(variant: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The environment and backend arguments of ``variant`` (``side+NAME=VALUE+...``), starting from a user's
    environment without OpenMP settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    backend_args: dict[str, Any] = {}
    for part in variant.split("+")[1:]:
        name, _, value = part.partition("=")
        if name == "n_threads":
            backend_args[name] = int(value)
        else:
            env[name] = value
    return env, backend_args


def measure(variant: str, tokens: int) -> float:
    """One decode-speed measurement of ``variant`` in a fresh process."""
    env, backend_args = variant_env(variant)
    spec = json.dumps({"variant": variant, "tokens": tokens, "backend_args": backend_args})
    out = subprocess.run([sys.executable, __file__, "--worker", spec], env=env, capture_output=True, text=True,
                         timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} worker failed (exit {out.returncode}): {out.stderr[-1500:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["tok_s"])


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    """``n`` busy-looping processes for the duration (the 'busy cores' of the busy phase)."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def phase(name: str, variants: list[str], reps: int, tokens: int) -> None:
    speeds: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(reps):
        for v in variants:  # side by side, so a neighbour's load falls on every variant alike
            speeds[v].append(measure(v, tokens))
    base = statistics.median(speeds[BASELINE])
    print(f"{name}: decode tok/s, {tokens} tokens, median of {reps} fresh processes each (all runs)", flush=True)
    for v in variants:
        med = statistics.median(speeds[v])
        print(f"  {v:38} {med:6.1f}  ratio {med / base:5.2f}  {[round(x, 1) for x in speeds[v]]}", flush=True)


async def kv_cache_check() -> None:
    from qwen_agent.agents import Agent, StepFinished
    from qwen_agent.llm.backends.llamacpp import LlamaCpp
    from qwen_agent.llm.base import SamplingParams
    from qwen_agent.messages import Message
    from qwen_agent.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: the city name
        """
        return f"{city}: 18 °C, light rain, wind 12 km/h"

    model = LlamaCpp(n_ctx=N_CTX)
    agent = Agent(model, tools=[get_weather], params=SamplingParams(temperature=0.0, max_tokens=96))
    steps = [e async for e in agent.astream([Message.user("What's the weather in Oslo?")])
             if isinstance(e, StepFinished)]
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
    await model.aclose()


def worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec["variant"].startswith(BASELINE):
        speed = direct_worker(spec["tokens"])
    else:
        speed = asyncio.run(agent_worker(spec["tokens"], spec["backend_args"]))
    print(json.dumps({"tok_s": speed}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--variants", default="agent+n_threads=1",
                    help="comma-separated extra variants besides the baseline and `agent` ('' for none)")
    ap.add_argument("--phases", default="idle,busy")
    ap.add_argument("--skip-kv", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return
    variants = [BASELINE, "agent", *[v.strip() for v in a.variants.split(",") if v.strip()]]
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    for name in a.phases.split(","):
        if name == "busy":
            with cpu_hogs(cores):
                phase(f"busy ({cores} CPU hogs running)", variants, a.reps, a.tokens)
        else:
            phase("idle (no hog of ours; the machine's other load as it is)", variants, a.reps, a.tokens)
    if not a.skip_kv:
        asyncio.run(kv_cache_check())


if __name__ == "__main__":
    main()
