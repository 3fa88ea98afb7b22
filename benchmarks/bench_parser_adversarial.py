"""Worst-case time to read a hostile model reply, per reply size, for every reader, against json.loads.

For each size (default 1 kB, 10 kB, 100 kB) every generator below builds a reply of exactly that size, and each
reader reads it: the three prompted formats' full parse (``nous``, ``qwen``, ``react``), the streaming reader
(each format's stream parser fed 16-character deltas, about four tokens, then flush + finish; the worst of the
three) and ``native`` (the text as a native tool call's ``arguments`` string, read by ``parse_completion`` as an
OpenAI-compatible body). Each figure is the best of a few runs (the machine is shared and noisy); the table shows
the worst generator per reader, the baseline is ``json.loads`` of a valid JSON document of the same size in the
same run, and ms/kB shows whether growth is linear. Target (issue 10): linear, under 50 ms at 100 kB.

    python benchmarks/bench_parser_adversarial.py [--sizes 1000 10000 100000] [--detail]
    python benchmarks/bench_parser_adversarial.py --sizes 1000 --before /path/to/old/checkout [--timeout 10]

``--before`` reads the same replies with the code of another checkout (a directory holding ``qwen_agent``), one
subprocess per case, cut off after ``--timeout`` seconds (reported as ">Ns"), to compare with the code before.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CALL = '{"name": "add", "arguments": {"a": 1, "b": 2}}'
TOOLS = [{"name": "add", "description": "Add two numbers.",
          "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}]
FORMATS = ("nous", "qwen", "react")
READERS = (*FORMATS, "stream", "native")
STREAM_DELTA = 16


def fill(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


GENERATORS: dict[str, Callable[[int], str]] = {
    "deep [": lambda n: "[" * n,
    'deep [{"a":': lambda n: fill('[{"a":', n),
    'unclosed [{" x n': lambda n: fill('[{"', n),
    "unclosed {'a x n": lambda n: fill("{'a", n),
    "unclosed object, many keys": lambda n: fill("{" + ", ".join(f'"k{i}": "v{i}"' for i in range(n // 10)), n),
    "many ```json fences": lambda n: fill('```json\n{"name\n', n),
    "many <tool_call> tags": lambda n: fill('<tool_call>{"name": "add", ', n),
    "many complete calls": lambda n: fill(f"<tool_call>{CALL}</tool_call>\n", n),
    "JSON objects in prose": lambda n: fill('{"x": 1} ', n),
    "qwen marks, open args": lambda n: fill('✿FUNCTION✿: add\n✿ARGS✿: {"a": [', n),
    "react Action {": lambda n: fill('Action: add {"a": [\n', n),
    "react Action Input {": lambda n: fill('Action: add\nAction Input: {"a\n', n),
    "orphan </think>": lambda n: fill("a</think>", n),
    "quotes and apostrophes": lambda n: fill("{\"a\": 'it's [x", n),
    "backslashes": lambda n: fill('{"a": "\\\\\\"[', n),
    "spaces after a name": lambda n: "<tool_call>add" + " " * (n - 27) + "x</tool_call>",
    "list of junk in a tag": lambda n: "<tool_call>[" + fill("1, ", n - 26) + "1]</tool_call>",
    "valid call, big argument": lambda n: '{"name": "add", "arguments": {"a": 1, "note": "' + "x" * (n - 50) + '"}}',
}


def make_readers() -> dict[str, list[Callable[[str], object]]]:
    """Each reader's variants (the streaming reader: one per format); a reader's time is its slowest variant's."""
    from qwen_agent.llm.backends.openai_wire import parse_completion
    from qwen_agent.messages import ToolSchema
    from qwen_agent.prompting import get_format

    tools = [ToolSchema.model_validate(t) for t in TOOLS]

    def parse(fmt: str) -> Callable[[str], object]:
        return lambda text: get_format(fmt).parse(text, tools)

    def stream(fmt: str) -> Callable[[str], object]:
        def read(text: str) -> object:
            parser = get_format(fmt).stream_parser(tools)
            for i in range(0, len(text), STREAM_DELTA):
                parser.feed(text[i:i + STREAM_DELTA])
            parser.flush()
            return parser.finish()
        return read

    def native(text: str) -> object:
        body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": text}}]}}]}
        return parse_completion(body, "http://127.0.0.1/v1/chat/completions")

    return {**{fmt: [parse(fmt)] for fmt in FORMATS}, "stream": [stream(fmt) for fmt in FORMATS],
            "native": [native]}


def best_of(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def baseline_doc(n: int) -> str:
    """A valid JSON document of exactly ``n`` characters: an object of short string fields, then a padding field."""
    items: list[str] = []
    size = 1
    while size + 40 < n:
        items.append(f'"key{len(items)}": "value {len(items)}"')
        size += len(items[-1]) + 2
    head = "{" + ", ".join(items) + (", " if items else "")
    return head + '"pad": "' + "p" * max(0, n - len(head) - len('"pad": ""}')) + '"}'


def run_here(sizes: list[int], detail: bool) -> None:
    readers = make_readers()
    for variants in readers.values():  # warm-up: imports, regex and template compilation
        for fn in variants:
            fn(CALL + " <think>x</think>")
    for n in sizes:
        reps = 5 if n <= 10_000 else 3
        doc = baseline_doc(n)
        json.loads(doc)
        base = best_of(lambda doc=doc: json.loads(doc), 20)
        times: dict[str, dict[str, float]] = {}
        for name, gen in GENERATORS.items():
            text = gen(n)
            assert len(text) == n, (name, len(text))
            times[name] = {r: max(best_of(lambda fn=fn, text=text: fn(text), reps) for fn in variants)
                           for r, variants in readers.items()}
        print(f"\n== reply size {n:,} characters; json.loads of a valid {len(doc):,}-character JSON document: "
              f"{base * 1000:.3f} ms")
        if detail:
            print(f"{'generator':28}" + "".join(f"{r:>9}" for r in READERS) + "   (ms)")
            for name, row in times.items():
                print(f"{name:28}" + "".join(f"{row[r] * 1000:9.2f}" for r in READERS))
        print(f"{'reader':8}{'worst ms':>10}{'ms/kB':>9}{'x json.loads':>14}  worst generator")
        for r in READERS:
            name = max(times, key=lambda g: times[g][r])
            worst = times[name][r]
            print(f"{r:8}{worst * 1000:10.2f}{worst * 1000 / (n / 1000):9.3f}{worst / base:14.0f}  {name}")


_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import bench_parser_adversarial as b
variants = b.make_readers()[sys.argv[3]]
text = b.GENERATORS[sys.argv[4]](int(sys.argv[5]))
worst = 0.0
for fn in variants:
    fn(b.CALL)
    t0 = time.perf_counter()
    fn(text)
    worst = max(worst, time.perf_counter() - t0)
print(worst)
"""


def run_before(checkout: Path, sizes: list[int], timeout: float) -> None:
    """The same cases with the code of ``checkout``, one subprocess each, cut off after ``timeout`` seconds."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    print(f"code under test: {checkout} (one run per case, cut off after {timeout:g} s)")
    for n in sizes:
        print(f"\n== reply size {n:,} characters")
        print(f"{'generator':28}" + "".join(f"{r:>9}" for r in READERS) + "   (ms)")
        for name in GENERATORS:
            cells = []
            for r in READERS:
                try:
                    out = subprocess.run([sys.executable, "-c", _CHILD, str(checkout), str(Path(__file__).parent),
                                          r, name, str(n)], env=env, capture_output=True, text=True, timeout=timeout)
                    error = out.stderr.strip().splitlines()[-1].split(":")[0] if out.returncode else ""
                    cell = f"{float(out.stdout.split()[-1]) * 1000:.2f}" if not error else error[:8]
                except subprocess.TimeoutExpired:
                    cell = f">{timeout:g}s"
                cells.append(f" {cell:>8}")
            print(f"{name:28}" + "".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--detail", action="store_true", help="print every generator, not only the worst")
    ap.add_argument("--before", type=Path, help="a checkout whose qwen_agent to measure instead (subprocesses)")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    if a.before is not None:
        run_before(a.before.resolve(), a.sizes, a.timeout)
        return
    sys.path.insert(0, str(ROOT))
    run_here(a.sizes, a.detail)


if __name__ == "__main__":
    main()
