"""OpenAICompatible keeps one pooled client per event loop; sync wrappers work; per-request overhead is printed."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from support_scripted import make_model, scripted_server

from qwen_agent.llm.base import SamplingParams
from qwen_agent.testing import ScriptedReply, ScriptedServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    yield from scripted_server(monkeypatch)


async def test_one_tcp_connection_across_many_requests(server: ScriptedServer) -> None:
    server.responder = lambda body: ScriptedReply.text("ok")
    async with make_model(server) as model:
        for _ in range(5):
            assert (await model.achat("Hi")).text == "ok"
        for _ in range(2):
            delta = [d async for d in model.astream("Hi")][-1]
            assert delta.response is not None and delta.response.text == "ok"
    assert len(server.chat_requests) == 7
    assert server.connections == 1
    assert len({r.peer_port for r in server.requests}) == 1


async def test_concurrent_requests_share_the_pool(server: ScriptedServer) -> None:
    server.responder = lambda body: ScriptedReply.text(body["messages"][-1]["content"].upper())
    async with make_model(server) as model:
        answers = await asyncio.gather(*(model.achat(f"q{i}") for i in range(8)))
        assert [a.text for a in answers] == [f"Q{i}" for i in range(8)]
        connections = server.connections
        await asyncio.gather(*(model.achat("again") for _ in range(8)))
    assert 1 <= connections <= 8
    assert server.connections == connections  # the second wave reused the pooled connections


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_new_event_loop_gets_a_new_client(server: ScriptedServer) -> None:
    server.responder = lambda body: ScriptedReply.text("ok")
    model = make_model(server)

    async def twice(close: bool) -> list[str]:
        texts = [(await model.achat("Hi")).text, (await model.achat("Hi")).text]
        if close:
            await model.aclose()
        return texts

    # The first loop ends without aclose(): its client dies with it (like any unclosed httpx client) and the
    # second loop must get a fresh one instead of "Event loop is closed".
    assert asyncio.run(twice(close=False)) == ["ok", "ok"]
    assert asyncio.run(twice(close=True)) == ["ok", "ok"]
    assert server.connections == 2
    gc.collect()  # the first loop's socket is reported (and ignored) here, not in a later test


def test_sync_wrappers(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("sync chat"), ScriptedReply.text("sync stream", chunk_size=2),
                  ScriptedReply.text("again"))
    model = make_model(server)
    try:
        assert model.chat("Hi").text == "sync chat"
        deltas = list(model.stream("Hi"))
        assert "".join(d.content for d in deltas) == "sync stream"
        assert deltas[-1].response is not None and deltas[-1].response.text == "sync stream"
        assert model.chat("Hi", params=SamplingParams(temperature=0.0)).text == "again"
    finally:
        model.close()
    assert server.chat_requests[2].body["temperature"] == 0.0
    assert server.connections == 1  # the sync wrappers' background loop kept its client


async def test_per_request_overhead_against_bare_httpx(server: ScriptedServer) -> None:
    """Figures for the report (printed with -s), not a timing assertion: the framework vs a bare httpx post."""
    server.responder = lambda body: ScriptedReply.text("The answer is 42.")
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "What is 6*7?"}]
    n = 200

    async def bare(client: httpx.AsyncClient) -> str:
        r = await client.post(server.base_url + "/chat/completions",
                              json={"model": "qwen-test", "messages": messages, "stream": False})
        return r.json()["choices"][0]["message"]["content"]

    async def fresh_client() -> str:
        async with httpx.AsyncClient() as client:
            return await bare(client)

    async def timed(fn, *args, repeat: int = n) -> float:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            assert await fn(*args) == "The answer is 42."
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1000

    async with httpx.AsyncClient() as client, make_model(server) as model:
        await bare(client)
        await model.achat(messages)
        connections_before = server.connections
        bare_ms = await timed(bare, client)
        achat_ms = await timed(lambda: _text(model.achat(messages)))
        stream_ms = await timed(lambda: _streamed(model, messages))
        assert server.connections == connections_before  # both pooled clients kept their connection
        fresh_ms = await timed(fresh_client, repeat=30)  # ~20 ms each: fewer
    print(f"\n[overhead] median of {n}: bare httpx post {bare_ms:.3f} ms | OpenAICompatible.achat {achat_ms:.3f} ms "
          f"(+{achat_ms - bare_ms:.3f} ms) | astream {stream_ms:.3f} ms | new httpx client per request "
          f"{fresh_ms:.3f} ms")


async def _text(awaitable) -> str:
    return (await awaitable).text


async def _streamed(model, messages) -> str:
    async for delta in model.astream(messages):
        if delta.response is not None:
            return delta.response.text
    return ""
