"""Tool-call success of the embedded model on our own task set, for each prompt format, with and without
constrained decoding, and what asking for further calls after the first (`FunctionCalling.next_call_threshold`,
on by default in prompted, unconstrained mode) costs: the unconstrained row of each format runs with it on and off.

A task with an expected tool counts as a success when the first call names that tool, its arguments validate
strictly against the tool's JSON schema and every argument the request determines has the requested value
(normalised strings, evaluated calculator expressions, typed numbers: ``tool_scoring.py``). A task without an
expected tool succeeds when the reply makes no call. Figures are printed, not asserted.

    python benchmarks/bench_tool_calling.py [--limit N] [--formats nous,qwen,react] [--model PATH]
        [--skip-full-grammar] [--skip-next-call-off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from tool_scoring import call_matches  # a sibling module: the script's folder is on sys.path

from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.base import FunctionCalling, SamplingParams
from qwen_agent.messages import Message, ToolSchema

DATA = Path(__file__).parent / "data" / "tool_tasks.json"


async def run_config(model: LlamaCpp, tools: list[ToolSchema], tasks: list[dict], fc: FunctionCalling):
    params = SamplingParams(temperature=0.0, max_tokens=160, seed=0)
    by_name = {t.name: t for t in tools}
    ok = parsed_calls = 0
    latencies = []
    tokens = []
    failures = []
    for task in tasks:
        t0 = time.perf_counter()
        resp = await model.achat([Message.user(task["request"])], tools, params=params, function_calling=fc)
        latencies.append(time.perf_counter() - t0)
        tokens.append(resp.usage.completion_tokens if resp.usage else 0)
        calls = resp.tool_calls
        parsed_calls += bool(calls)
        want = task["expected_tool"]
        if want is None:
            good = not calls
        else:
            good = bool(calls) and call_matches(task, calls[0].name, calls[0].arguments, by_name[want].parameters)
        ok += good
        if not good:
            failures.append((task["id"], resp.raw_text[:120].replace("\n", "\\n")))
    return ok, parsed_calls, statistics.median(latencies), statistics.mean(tokens), failures


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--formats", default="nous,qwen,react")
    ap.add_argument("--model", default=None)
    ap.add_argument("--show-failures", action="store_true")
    ap.add_argument("--skip-full-grammar", action="store_true",
                    help="skip the slow full-vocabulary grammar baseline")
    ap.add_argument("--skip-next-call-off", action="store_true",
                    help="skip the baseline without further calls after the first (next_call_threshold=None)")
    a = ap.parse_args()
    data = json.loads(DATA.read_text())
    tools = [ToolSchema(**t) for t in data["tools"]]
    tasks = data["tasks"][: a.limit or None]
    n_call = sum(t["expected_tool"] is not None for t in tasks)
    model = LlamaCpp(model_path=a.model, n_ctx=4096)
    print(f"{len(tasks)} tasks ({n_call} need a call, {len(tasks) - n_call} need none), model {model.model}")
    print("constrained decoding runs twice: the grammar checked per chosen token (ours, the default) and "
          "llama-cpp-python's full-vocabulary grammar (the baseline); same tokens expected, the time differs")
    print("unconstrained rows run twice: with further calls after the first (the default) and without")
    print(f"{'format':8} {'constrained':16} {'success':>12} {'calls seen':>10} {'p50 s':>6} {'tokens':>7}")
    configs = [(False, "checked", True)] + ([] if a.skip_next_call_off else [(False, "checked", False)])
    configs += ([] if a.skip_full_grammar else [(True, "full", True)]) + [(True, "checked", True)]
    for fmt in a.formats.split(","):
        p50s: dict[str, float] = {}
        for constrained, sampling, more in configs:
            model.grammar_sampling = sampling  # type: ignore[assignment]
            fc = FunctionCalling(mode="prompted", format=fmt, constrained=constrained,
                                 **({} if more else {"next_call_threshold": None}))
            ok, seen, p50, tokens, failures = await run_config(model, tools, tasks, fc)
            label = f"{constrained!s} ({sampling})" if constrained else f"False (more {'on' if more else 'off'})"
            print(f"{fmt:8} {label:16} {ok:>4}/{len(tasks)} {ok / len(tasks):5.0%} {seen:>10} {p50:6.2f} "
                  f"{tokens:7.1f}")
            p50s[f"{constrained}-{sampling}-{more}"] = p50
            if a.show_failures:
                for tid, raw in failures:
                    print(f"    miss #{tid}: {raw}")
            sys.stdout.flush()
        if "True-full-True" in p50s:
            print(f"{fmt:8} constrained p50, full / checked: "
                  f"{p50s['True-full-True'] / p50s['True-checked-True']:.1f}x")
        if "False-checked-False" in p50s:
            print(f"{fmt:8} unconstrained p50, further calls on / off: "
                  f"{p50s['False-checked-True'] / p50s['False-checked-False']:.2f}x")
    await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
