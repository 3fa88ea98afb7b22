"""Tracing overhead per agent step: no tracer provider, the API without an SDK, the SDK with a no-op exporter and
the SDK with the JSONL exporter, each against the untraced step measured in the same run.

"Untraced" stubs the tracing hooks out at their call sites (the agent's and the chat model's span helpers return
the inert span at once), so it is the loop as it was before tracing existed. Each agent step is one model request
(a tool call), one trivial tool call and the bookkeeping. Backends: ``scripted`` (the instant scripted
OpenAI-compatible server on 127.0.0.1, real HTTP and SSE, as in bench_agent_overhead.py) or ``inproc`` (a ChatModel
that answers in-process without any I/O: the strictest ratio, since the step is only framework code). Modes run
interleaved, repetition by repetition, so machine noise hits them alike; figures are medians.

    python benchmarks/bench_tracing.py [--backend scripted|inproc] [--steps 20] [--reps 15]

Target (issue 14): < 5% over the untraced step with no SDK configured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from qwen_agent.agents import Agent
from qwen_agent.agents import agent as agent_module
from qwen_agent.llm import base as base_module
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import ChatModel, FunctionCalling
from qwen_agent.llm.types import RawChunk, SamplingParams, Usage
from qwen_agent.messages import Message, ToolCall, ToolSchema
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool
from qwen_agent.tracing import api
from qwen_agent.tracing.api import NO_SPAN


@tool
def lookup(key: str) -> str:
    """Return the value stored under a key.

    Args:
        key: the key to look up
    """
    return f"value-of-{key}"


class InstantModel(ChatModel):
    """Answers with a native call to ``lookup`` until ``steps - 1`` calls were made, then with text; no I/O."""

    supports_native_tools = True
    trace_provider = "inproc"

    def __init__(self, steps: int) -> None:
        super().__init__(model="instant", function_calling=FunctionCalling(mode="native"))
        self.steps = steps

    async def _stream_raw(self, messages: list[Message], params: SamplingParams, *,
                          tools: list[ToolSchema] | None = None, grammar: str | None = None
                          ) -> AsyncIterator[RawChunk]:
        done = sum(m.role == "tool" for m in messages)
        usage = Usage(prompt_tokens=10, completion_tokens=3)
        if done < self.steps - 1:
            call = ToolCall.make("lookup", {"key": f"k{done}"}, id=f"call_{done}")
            yield RawChunk(tool_calls=[call], finish_reason="tool_calls", usage=usage)
        else:
            yield RawChunk(text="All keys looked up.")
            yield RawChunk(finish_reason="stop", usage=usage)


class _NoopTrace:
    """The chat model's span object with every method doing nothing (the untraced baseline)."""

    span = NO_SPAN

    @classmethod
    def start(cls, provider: str, model: str) -> _NoopTrace:
        return _NOOP_TRACE

    def request(self, *a: Any) -> None: ...
    def chunk(self) -> None: ...
    def finish(self, *a: Any) -> None: ...
    def fail(self, *a: Any) -> None: ...


_NOOP_TRACE = _NoopTrace()


async def _passthrough(items: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    async for item in items:
        yield item


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Stub the tracing hooks out at their call sites."""
    saved = (agent_module.start_span, agent_module.aiter_with_parent, base_module.ChatTrace)
    agent_module.start_span = lambda *a, **k: NO_SPAN  # type: ignore[assignment]
    agent_module.aiter_with_parent = _passthrough  # type: ignore[assignment]
    base_module.ChatTrace = _NoopTrace  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        agent_module.start_span, agent_module.aiter_with_parent, base_module.ChatTrace = saved  # type: ignore[misc]


def sdk_provider(exporter: Any) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Runner:
    def __init__(self, backend: str, steps: int) -> None:
        self.backend, self.steps = backend, steps
        self.server: ScriptedServer | None = None
        model: ChatModel
        if backend == "scripted":
            self.server = ScriptedServer(models=["bench"]).__enter__()
            model = OpenAICompatible(self.server.base_url, model="bench")
        else:
            model = InstantModel(steps)
        self.agent = Agent(model, tools=[lookup], max_steps=steps + 1, function_calling=FunctionCalling(mode="native"))

    async def run(self) -> float:
        if self.server is not None:
            self.server.reset()
            for i in range(self.steps - 1):
                self.server.script(ScriptedReply.call("lookup", {"key": f"k{i}"}, chunk_size=64))
            self.server.script(ScriptedReply.text("All keys looked up.", chunk_size=64))
        t0 = time.perf_counter()
        result = await self.agent.arun("Look up the keys k0, k1, ... one by one.")
        elapsed = time.perf_counter() - t0
        assert result.steps == self.steps and result.stop_reason == "answer", result
        return elapsed

    async def close(self) -> None:
        await self.agent.aclose()
        if self.server is not None:
            self.server.__exit__(None, None, None)


Mode = tuple[str, Callable[[], contextlib.AbstractContextManager[Any]]]


async def measure(runner: Runner, modes: list[Mode], reps: int) -> dict[str, tuple[float, float]]:
    """Per mode: the median step time (ms) and the median of its per-repetition ratio to ``untraced`` (paired, so
    drift of the machine's load cancels out)."""
    times: dict[str, list[float]] = {name: [] for name, _ in modes}
    for _name, ctx in modes:  # warm-up of every path
        with ctx():
            await runner.run()
    for _ in range(reps):
        for name, ctx in modes:
            with ctx():
                times[name].append(await runner.run())
    base = times["untraced"]
    return {name: (statistics.median(t) / runner.steps * 1e3,
                   statistics.median(x / b for x, b in zip(t, base, strict=True))) for name, t in times.items()}


def hook_cost_ns(n: int = 200_000) -> float:
    """Cost of one start_span + end with no provider (what each traced operation adds), in ns."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        api.start_span("x", None).end()
    return (time.perf_counter_ns() - t0) / n


def report(title: str, figures: dict[str, tuple[float, float]]) -> None:
    print(title)
    for name, (ms, ratio) in figures.items():
        print(f"  {name:<24} {ms * 1000:8.1f} us/step (median)   "
              f"ratio to untraced {ratio:6.3f} ({(ratio - 1) * 100:+5.1f}%)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["scripted", "inproc"], default="scripted")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args()
    assert "opentelemetry.trace" not in sys.modules, "phase 1 needs OpenTelemetry not imported yet"
    runner = Runner(a.backend, a.steps)
    print(f"backend={a.backend} steps/run={a.steps} reps={a.reps}")
    print(f"one start_span()+end() with no provider: {hook_cost_ns():.0f} ns")
    nothing = contextlib.nullcontext
    phase1 = await measure(runner, [("untraced", untraced), ("no provider (default)", nothing)], a.reps)
    report("phase 1: OpenTelemetry not imported", phase1)

    import opentelemetry.trace  # noqa: F401 - phase 2: the API is loaded, still without an SDK
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from qwen_agent.tracing.jsonl import JsonlSpanExporter

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    noop = sdk_provider(NoopExporter())
    folder = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    jsonl = sdk_provider(JsonlSpanExporter(folder / "spans.jsonl"))
    phase2 = await measure(runner, [
        ("untraced", untraced),
        ("API imported, no SDK", nothing),
        ("SDK + no-op exporter", lambda: api.use_tracer_provider(noop)),
        ("SDK + JSONL exporter", lambda: api.use_tracer_provider(jsonl)),
    ], a.reps)
    report("phase 2: OpenTelemetry API imported", phase2)
    noop.shutdown()
    jsonl.shutdown()
    lines = sum(1 for _ in (folder / "spans.jsonl").open())
    print(f"JSONL spans written: {lines} ({folder / 'spans.jsonl'})")
    await runner.close()


if __name__ == "__main__":
    asyncio.run(main())
