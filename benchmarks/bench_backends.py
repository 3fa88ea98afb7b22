"""The same agent task set on every backend, and what concurrent sessions gain on a batching server.

For each backend (embedded llama.cpp, llama.cpp's server, vLLM, in-process transformers) and each way of getting
calls it supports (prompted nous, native ``tools``, constrained decoding), every task of
``data/tool_tasks.json`` (or a spread of ``--limit`` of them) runs through `Agent` with stand-in tools that return
a canned observation. Printed per backend and mode:

* success: the first step calls the expected tool with schema-valid, expected arguments (or no tool, for the
  tasks that need none) and the run ends with an answer;
* parseable calls: tasks needing a call where the first reply held a call we could read;
* median latency per agent step, and output tokens/s (output tokens over the whole run's wall time; tokens are
  counted the same way on every backend: the replies re-tokenised with the model's tokenizer, +1 end of turn).

Then ``--sessions`` (default 32) concurrent agent sessions against each server backend vs one session alone,
``--concurrency-reps`` (default 3) times alternating: total output tokens/s, the ratio, and their spread.
vLLM batches concurrent requests, so its ratio shows whether our async loop lets it; llama.cpp's server runs one
request at a time and is the baseline for "no batching". Figures are printed, not asserted.

    python benchmarks/bench_backends.py [--backends embedded,llamacpp-server,vllm,transformers] [--limit 12]
                                        [--sessions 32] [--concurrency-reps 3] [--skip-tasks] [--skip-concurrency]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tool_scoring import call_matches

from qwen_agent.agents import Agent, AgentModelError
from qwen_agent.llm.base import ChatModel, FunctionCalling, SamplingParams
from qwen_agent.messages import ToolSchema
from qwen_agent.tools.schema_tool import SchemaTool

DATA = Path(__file__).parent / "data" / "tool_tasks.json"
PARAMS = SamplingParams(temperature=0.0, max_tokens=160, seed=0)
N_CTX = 4096
MODES: dict[str, FunctionCalling] = {
    "prompted": FunctionCalling(mode="prompted", format="nous"),
    "native": FunctionCalling(mode="native"),
    "constrained": FunctionCalling(mode="prompted", format="nous", constrained=True),
}


class CannedTool(SchemaTool):
    """A task-set tool that answers every call with the same small JSON observation."""

    def __init__(self, schema: ToolSchema) -> None:
        super().__init__(name=schema.name, description=schema.description, input_schema=schema.parameters,
                         timeout=10, max_output_chars=None)

    def run(self, args: Any) -> str:
        return json.dumps({"ok": True, "tool": self.name, "arguments": self.wire_args(args), "result": "42"})


ModelMaker = Callable[[FunctionCalling], ChatModel]
_TOKENIZER: Any = None


def completion_tokens(result: Any) -> int:
    """The run's output tokens, counted the same way on every backend: each assistant reply's text re-tokenised
    with the model's own tokenizer (the GGUF's vocabulary, loaded alone) plus one end-of-turn token. Servers'
    own usage figures are not comparable: vLLM reports usage (end token included), llama-cpp-python's server
    sends none in streams, and our embedded backend counts like llama.cpp (end token excluded)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from qwen_agent.llm.backends.llamacpp_runtime import import_llama_cpp
        from qwen_agent.llm.distribution.store import default_model_path

        _TOKENIZER = import_llama_cpp().Llama(str(default_model_path()), vocab_only=True, verbose=False)
    replies = [m for m in result.messages if m.role == "assistant"]
    return sum(len(_TOKENIZER.tokenize(reply_text(m).encode("utf-8"), add_bos=False, special=True)) + 1
               for m in replies)


def reply_text(message: Any) -> str:
    """What the model wrote: the raw generated text when the prompt format kept it, else the text plus each
    native tool call in the Hermes form the model's template writes it in."""
    if message.generated_text:
        return str(message.generated_text)
    calls = "".join(f'\n<tool_call>\n{{"name": {json.dumps(c.name)}, "arguments": {c.function.arguments_json()}}}'
                    "\n</tool_call>" for c in message.tool_calls or [])
    return (message.text or "") + calls


@contextlib.contextmanager
def backend(name: str) -> Iterator[tuple[ModelMaker, list[str]]]:
    """Start a backend; yield a model maker and the modes it supports."""
    if name == "embedded":
        from qwen_agent.llm.backends.llamacpp import LlamaCpp

        llm = LlamaCpp(n_ctx=N_CTX, params=PARAMS)
        llm.load()

        def shared(fc: FunctionCalling) -> ChatModel:
            llm.function_calling = fc
            return llm

        yield shared, ["prompted", "constrained"]
    elif name == "transformers":
        from qwen_agent.llm.backends.transformers import Transformers

        hf = Transformers(params=PARAMS)
        hf.load()

        def shared_hf(fc: FunctionCalling) -> ChatModel:
            hf.function_calling = fc
            return hf

        yield shared_hf, ["prompted"]
    elif name in ("llamacpp-server", "vllm"):
        from qwen_agent.llm.backends.openai_compat import OpenAICompatible

        with _server(name) as (url, served):
            yield (lambda fc: OpenAICompatible(url, served, params=PARAMS, function_calling=fc),
                   ["prompted", "native", "constrained"])
    else:
        raise SystemExit(f"unknown backend {name!r}")


@contextlib.contextmanager
def _server(name: str) -> Iterator[tuple[str, str]]:
    if name == "llamacpp-server":
        from qwen_agent.serving.llamacpp import LlamaCppServer

        with LlamaCppServer(n_ctx=N_CTX) as server:
            print(f"  llama_cpp.server up in {server.startup_seconds:.1f} s", flush=True)
            yield server.base_url, server.model
    else:
        from qwen_agent.llm.distribution.hf_convert import ensure_hf_model
        from qwen_agent.serving.vllm import VLLMServer

        # 32 sessions of ~700-token prompts fit 2 GiB of KV cache at 4K context each with room to spare.
        with VLLMServer(ensure_hf_model(), "qwen2.5-coder-0.5b", max_model_len=N_CTX, kv_cache_space_gib=2,
                        extra_args=["--max-num-seqs", "32"]) as server:
            print(f"  vLLM up in {server.startup_seconds:.1f} s", flush=True)
            yield server.base_url, server.model


async def run_tasks(model: ChatModel, tools: list[CannedTool], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {t.name: t.schema() for t in tools}
    ok = parseable = steps = completion = 0
    step_latencies: list[float] = []
    wall = 0.0
    for task in tasks:
        agent = Agent(model, tools=tools, max_steps=3)
        started = time.perf_counter()
        result = await agent.arun(task["request"])
        elapsed = time.perf_counter() - started
        wall += elapsed
        steps += result.steps
        step_latencies.append(elapsed / max(result.steps, 1))
        completion += completion_tokens(result)
        first = next((m for m in result.messages if m.role == "assistant"), None)
        calls = (first.tool_calls or []) if first is not None else []
        want = task["expected_tool"]
        if want is None:
            good = not calls
        else:
            parseable += bool(calls)
            good = bool(calls) and call_matches(task, calls[0].name, calls[0].arguments, by_name[want].parameters)
        ok += good and result.stop_reason == "answer"
    return {"ok": ok, "parseable": parseable, "p50_step": statistics.median(step_latencies),
            "tok_s": completion / wall if wall else 0.0, "steps": steps}


async def sessions(make: ModelMaker, tools: list[CannedTool], n: int) -> tuple[float, int, float, int]:
    """``n`` concurrent agent sessions (one model client each, as separate users would have): output tokens/s,
    tokens, wall seconds and how many sessions failed (counted, not fatal: a server may drop requests)."""
    cities = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Delhi"]
    models = [make(MODES["prompted"]) for _ in range(n)]

    async def one(i: int, model: ChatModel) -> int | None:
        try:
            result = await Agent(model, tools=tools, max_steps=3).arun(
                f"What's the weather like in {cities[i % len(cities)]} right now?")
        except AgentModelError as exc:
            print(f"    session {i} failed: {exc}", flush=True)
            return None
        return completion_tokens(result)

    started = time.perf_counter()
    done = await asyncio.gather(*(one(i, m) for i, m in enumerate(models)))
    wall = time.perf_counter() - started
    for m in models:
        await m.aclose()
    tokens = sum(t for t in done if t is not None)
    return tokens / wall, tokens, wall, sum(t is None for t in done)


async def bench_backend(name: str, a: argparse.Namespace, tools: list[CannedTool], tasks: list[dict]) -> None:
    n_call = sum(t["expected_tool"] is not None for t in tasks)
    print(f"\n== {name}", flush=True)
    with backend(name) as (make, modes):
        if not a.skip_tasks:
            print(f"  {'mode':12} {'success':>12} {'parseable calls':>16} {'p50 s/step':>10} {'out tok/s':>9}")
            for mode in modes:
                model = make(MODES[mode])
                r = await run_tasks(model, tools, tasks)
                if name in ("llamacpp-server", "vllm"):
                    await model.aclose()
                print(f"  {mode:12} {r['ok']:>4}/{len(tasks)} {r['ok'] / len(tasks):5.0%} "
                      f"{r['parseable']:>8}/{n_call} {r['parseable'] / max(n_call, 1):5.0%} {r['p50_step']:10.2f} "
                      f"{r['tok_s']:9.1f}", flush=True)
        if not a.skip_concurrency and name in ("llamacpp-server", "vllm"):
            await concurrency(make, tools, a.sessions, a.concurrency_reps)


async def concurrency(make: ModelMaker, tools: list[CannedTool], n: int, reps: int) -> None:
    """1 session vs ``n`` concurrent ones, alternated ``reps`` times: median and range of each, and of the ratio
    of each repetition's pair (one run of each is not a figure: a neighbour's load moves either by a lot)."""
    ones: list[float] = []
    manys: list[float] = []
    ratios: list[float] = []
    for rep in range(reps):
        one_tps, one_tok, one_wall, _ = await sessions(make, tools, 1)
        many_tps, many_tok, many_wall, failed = await sessions(make, tools, n)
        ones.append(one_tps)
        manys.append(many_tps)
        ratios.append(many_tps / one_tps)
        print(f"  rep {rep + 1}: 1 session {one_tok} tokens in {one_wall:.1f} s = {one_tps:.1f} tok/s; {n} sessions "
              f"{many_tok} tokens in {many_wall:.1f} s = {many_tps:.1f} tok/s ({failed} failed); "
              f"ratio {ratios[-1]:.2f}x", flush=True)

    def fig(values: list[float], unit: str = "") -> str:
        return f"{statistics.median(values):.1f}{unit} (range {min(values):.1f}-{max(values):.1f})"

    print(f"  over {reps} reps, output tok/s: 1 session {fig(ones)}; {n} sessions {fig(manys)}; "
          f"ratio {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})", flush=True)


def spread(tasks: list[dict], limit: int) -> list[dict]:
    """``limit`` tasks spread evenly over the set (it is ordered by tool), so every tool and no-call case shows."""
    if not limit or limit >= len(tasks):
        return tasks
    step = len(tasks) / limit
    return [tasks[int(i * step)] for i in range(limit)]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="embedded,llamacpp-server,vllm,transformers")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--skip-tasks", action="store_true")
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--concurrency-reps", type=int, default=3, help="1-vs-N session pairs to run (>= 3 for a spread)")
    a = ap.parse_args()
    data = json.loads(DATA.read_text())
    tools = [CannedTool(ToolSchema(**t)) for t in data["tools"]]
    tasks = spread(data["tasks"], a.limit)
    n_call = sum(t["expected_tool"] is not None for t in tasks)
    print(f"{len(tasks)} tasks ({n_call} need a call, {len(tasks) - n_call} need none); greedy decoding; "
          f"Qwen2.5-Coder-0.5B (Q4_K_M GGUF for llama.cpp, its bf16 conversion for vLLM and transformers)")
    for name in a.backends.split(","):
        await bench_backend(name.strip(), a, tools, tasks)


if __name__ == "__main__":
    asyncio.run(main())
