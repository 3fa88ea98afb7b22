"""`qwen-agent serve` against calling `Agent` in-process, in one run (ratios, not absolute speed, are the point).

1. Overhead per request on an instant backend (the scripted rule model on 127.0.0.1): p50 of an agent run called
   in-process vs the same run through the server (httpx keep-alive client; JSON and SSE). Target: <= 2 ms added.
2. 64 concurrent streaming clients x 10 turns through the server: errors, p50/p99 per turn; then the server's RSS
   before and after 1,000 sessions are opened, and after they are ended.
3. The real vLLM CPU server: 32 concurrent clients through the server vs 32 concurrent `Agent` runs in-process,
   output tokens per second (target >= 0.9x). Skipped with --skip-vllm (it needs vLLM's venv; ~1 min start).

    python benchmarks/bench_serve.py [--requests 300] [--skip-vllm]
    python benchmarks/bench_serve.py --processes   # 1. only, the server and the backend in their own processes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from qwen_agent.agents import Agent
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.server import BackgroundServer, ServeConfig
from qwen_agent.testing import RuleModel, ScriptedServer

QUESTION = "What is 6 * 7?"
TOOL_QUESTION = "Use the calculator to compute '17*23'"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def config(model_spec: str, **server: Any) -> ServeConfig:
    return ServeConfig.model_validate({
        "model": model_spec,
        "server": {"port": 0, "kernel_pool": 0, "max_sessions": 5000, "max_concurrent_runs": 64,
                   "max_queued_runs": 256, **server},
        "profiles": {"plain": {}, "calc": {"tools": ["calculator"]}},
    })


async def in_process(model: OpenAICompatible, question: str, tools: list[str], n: int) -> list[float]:
    agent = Agent(model, tools=tools)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await agent.arun(question)
        times.append(time.perf_counter() - t0)
    return times


async def through_server(url: str, profile: str, question: str, n: int, stream: bool) -> list[float]:
    body = {"model": profile, "messages": [{"role": "user", "content": question}], "stream": stream}
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    async for _line in r.aiter_lines():
                        pass
                    assert r.status_code == 200
            else:
                r = await client.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
            times.append(time.perf_counter() - t0)
    return times


def overhead(backend_url: str, server_url: str, n: int) -> None:
    print(f"\n1. overhead per request, instant rule-model backend ({n} requests each, after 30 warm-up)")
    print(f"{'case':<38}{'in-process p50':>16}{'serve p50':>12}{'added':>10}")
    model = OpenAICompatible(backend_url, "rule-model")
    for label, profile, question, tools in (("plain answer (1 model call)", "plain", QUESTION, []),
                                            ("calculator step (2 model calls)", "calc", TOOL_QUESTION,
                                             ["calculator"])):
        asyncio.run(in_process(model, question, tools, 30))
        base = statistics.median(asyncio.run(in_process(model, question, tools, n)))
        for stream in (False, True):
            asyncio.run(through_server(server_url, profile, question, 30, stream))
            served = statistics.median(asyncio.run(through_server(server_url, profile, question, n, stream)))
            name = f"{label}, {'SSE' if stream else 'JSON'}"
            print(f"{name:<38}{base * 1e3:>13.2f} ms{served * 1e3:>9.2f} ms{(served - base) * 1e3:>7.2f} ms")
    model.close()


async def _client(url: str, cid: int, turns: int, latencies: list[float], errors: list[str]) -> None:
    history: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for turn in range(turns):
            history.append({"role": "user", "content": f"What is {cid} + {turn}?"})
            body = {"model": "plain", "messages": history, "stream": True}
            t0 = time.perf_counter()
            text = ""
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body,
                                         headers={"X-Session-Id": f"bench-{cid}"}) as r:
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                        continue
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            chunk = json.loads(line[6:])
                            if "error" in chunk:
                                errors.append(chunk["error"]["message"])
                            for c in chunk.get("choices", []):
                                text += c["delta"].get("content") or ""
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
                continue
            latencies.append(time.perf_counter() - t0)
            if str(cid + turn) not in text:
                errors.append(f"wrong answer: {text!r}")
            history.append({"role": "assistant", "content": text})


def concurrency(server: BackgroundServer) -> None:
    clients, turns = 64, 10
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        await asyncio.gather(*(_client(server.url, c, turns, latencies, errors) for c in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    print(f"\n2. {clients} concurrent streaming clients x {turns} turns: {len(latencies)} turns in {wall:.1f} s "
          f"({len(latencies) / wall:.0f}/s), errors {len(errors)}"
          + (f" (first: {errors[0]})" if errors else ""))
    print(f"   latency per turn: p50 {pct(latencies, 0.5) * 1e3:.1f} ms, p99 {pct(latencies, 0.99) * 1e3:.1f} ms")
    proc = psutil.Process()
    sessions = server.state.sessions
    for sid in [f"bench-{c}" for c in range(clients)]:
        httpx.delete(f"{server.base_url}/sessions/{sid}")
    before = proc.memory_info().rss
    with httpx.Client(base_url=server.url, timeout=60) as client:
        body = {"model": "plain", "messages": [{"role": "user", "content": QUESTION}]}
        for i in range(1000):
            assert client.post("/v1/chat/completions", json=body, headers={"X-Session-Id": f"s-{i}"}).status_code == 200
        opened = len(sessions)
        during = proc.memory_info().rss
        for i in range(1000):
            client.delete(f"/v1/sessions/s-{i}")
    after = proc.memory_info().rss
    mib = 1024 * 1024
    print(f"   RSS: {before / mib:.0f} MiB before, {during / mib:.0f} MiB with {opened} sessions open "
          f"({(during - before) / 1000 / 1024:.1f} KiB per session), {after / mib:.0f} MiB after ending them; "
          f"{len(sessions)} left")


def vllm_throughput(clients: int = 32, max_tokens: int = 48) -> None:
    from qwen_agent.llm.base import SamplingParams
    from qwen_agent.llm.distribution.hf_convert import ensure_hf_model
    from qwen_agent.serving.venv import ensure_vllm_venv
    from qwen_agent.serving.vllm import VLLMServer

    questions = [f"Write one sentence about the number {i}." for i in range(clients)]
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    with VLLMServer(ensure_hf_model(), "qwen2.5-coder-0.5b", python=ensure_vllm_venv(), kv_cache_space_gib=1,
                    max_model_len=4096) as vllm:
        spec = f"openai:{vllm.base_url}#qwen2.5-coder-0.5b"

        async def direct() -> tuple[float, int]:
            model = OpenAICompatible(vllm.base_url, "qwen2.5-coder-0.5b", params=params)
            t0 = time.perf_counter()
            results = await asyncio.gather(*(Agent(model).arun(q) for q in questions))
            wall = time.perf_counter() - t0
            await model.aclose()
            return wall, sum(r.usage.completion_tokens for r in results)

        async def served(url: str) -> tuple[float, int]:
            async with httpx.AsyncClient(base_url=url, timeout=600,
                                         limits=httpx.Limits(max_connections=clients)) as client:
                async def one(q: str) -> int:
                    r = await client.post("/v1/chat/completions", json={
                        "model": "plain", "max_tokens": max_tokens, "temperature": 0.0,
                        "messages": [{"role": "user", "content": q}]})
                    assert r.status_code == 200, r.text
                    return r.json()["usage"]["completion_tokens"]

                t0 = time.perf_counter()
                tokens = await asyncio.gather(*(one(q) for q in questions))
                return time.perf_counter() - t0, sum(tokens)

        asyncio.run(direct())  # warm-up: vLLM's first batch compiles
        with BackgroundServer(config(spec, backend_timeout_s=600)) as server:
            rows = []
            for _ in range(2):
                rows.append(("Agent in-process", *asyncio.run(direct())))
                rows.append(("through serve", *asyncio.run(served(server.url))))
    print(f"\n3. vLLM CPU server, {clients} concurrent clients, {max_tokens} max tokens each (two rounds)")
    rates: dict[str, list[float]] = {}
    for name, wall, tokens in rows:
        rates.setdefault(name, []).append(tokens / wall)
        print(f"   {name:<18} {wall:6.1f} s  {tokens:5d} tokens  {tokens / wall:6.1f} tok/s")
    ratio = max(rates["through serve"]) / max(rates["Agent in-process"])
    print(f"   serve / in-process throughput (best of two): {ratio:.2f}x")


BACKEND_PROCESS = """
import sys, time
from qwen_agent.testing import RuleModel, ScriptedServer
with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=32768)) as backend:
    print(backend.base_url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def own_processes(tmp: Path) -> Iterator[tuple[str, str]]:
    """The rule-model backend and `qwen-agent serve` each in a process of its own: (backend URL, server URL).

    In one process the benchmark's client, the server and the backend are three event loops sharing one GIL, and
    a request crossing between them can wait out the 5 ms switch interval; what a deployment pays is the server's
    own work plus one more loopback hop, which is what this measures.
    """
    backend = subprocess.Popen([sys.executable, "-c", BACKEND_PROCESS], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    server = None
    try:
        assert backend.stdout is not None
        backend_url = backend.stdout.readline().strip()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = tmp / "agents.toml"
        cfg.write_text(f'model = "openai:{backend_url}#rule-model"\n[server]\nkernel_pool = 0\n'
                       '[profiles.plain]\n[profiles.calc]\ntools = ["calculator"]\n')
        server = subprocess.Popen([sys.executable, "-m", "qwen_agent.cli", "serve", "--config", str(cfg),
                                   "--port", str(port), "--log-level", "warning"])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("qwen-agent serve did not come up")
            time.sleep(0.2)
        yield backend_url, url
    finally:
        for proc in (server, backend):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--processes", action="store_true",
                    help="overhead only, with the server and the backend each in its own process")
    args = ap.parse_args()
    print(f"bench_serve: {os.cpu_count()} cores")
    if args.processes:
        with tempfile.TemporaryDirectory() as tmp, own_processes(Path(tmp)) as (backend_url, server_url):
            print("server and backend each in their own process")
            overhead(backend_url, server_url, args.requests)
        return
    with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=32768)) as backend:
        spec = f"openai:{backend.base_url}#rule-model"
        with BackgroundServer(config(spec)) as server:
            print("server on a thread of this process (client, server and backend share one GIL)")
            overhead(backend.base_url, server.url, args.requests)
            concurrency(server)
    if not args.skip_vllm:
        vllm_throughput()


if __name__ == "__main__":
    main()
