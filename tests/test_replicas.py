"""Several replicas of one model (`OpenAIReplicas`): sticky sessions, least outstanding, failover, a replica's return.

Fault cases run on two scripted servers on 127.0.0.1 (real HTTP and SSE); the routing rules also on the bare
`Router`. The real llama.cpp pair is in test_replicas_llamacpp.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from qwen_agent.llm import ModelSpec, OpenAIReplicas, load_model
from qwen_agent.llm.backends.routing import Router, session_key, session_scope
from qwen_agent.llm.errors import ModelConnectionError, ModelProtocolError, ModelRequestError
from qwen_agent.messages import Message
from qwen_agent.testing import ScriptedReply, ScriptedServer
from tests.support_scripted import closed_port


def _ok(body: dict[str, object]) -> ScriptedReply:
    return ScriptedReply.text("ok")


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("QWEN_AGENT_API_KEY", raising=False)
    with ScriptedServer(models=["qwen-test"], responder=_ok) as a, \
            ScriptedServer(models=["qwen-test"], responder=_ok) as b:
        yield a, b


def _conversation(n: int, steps: int) -> list[Message]:
    messages = [Message.system("You are terse."), Message.user(f"question {n}")]
    for step in range(steps):
        messages += [Message.assistant(f"step {step}"), Message.user(f"more {n}.{step}")]
    return messages


def _first_questions(server: ScriptedServer) -> list[str]:
    return [str(r.body["messages"][1]["content"]) for r in server.chat_requests]


# ---- specs ------------------------------------------------------------------------------------------------------
def test_a_spec_with_several_urls_builds_replicas() -> None:
    spec = ModelSpec.parse("openai:http://127.0.0.1:1/v1/, http://127.0.0.1:2/v1#served")
    assert spec.urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert ModelSpec.parse(str(spec)) == spec
    model = load_model(spec, api_key="k")
    assert isinstance(model, OpenAIReplicas) and model.model == "served"
    assert model.base_urls == spec.urls and all(c.api_key == "k" for c in model.clients)
    assert ModelSpec.parse("openai:http://127.0.0.1:1/v1").urls == ["http://127.0.0.1:1/v1"]


# ---- the routing table alone ------------------------------------------------------------------------------------
def test_router_rules() -> None:
    now = [0.0]
    router = Router(["a", "b"], cooldown=5.0, max_sessions=3, clock=lambda: now[0])
    first, second = router.pick("s1"), router.pick("s2")
    assert {first, second} == {0, 1}, "new sessions go where fewest requests are in flight"
    router.release(0, ok=True)
    router.release(1, ok=True)
    assert router.pick("s1") == first, "a session sticks to its replica"
    router.release(first, ok=False)  # the replica failed: down for the cooldown
    assert router.pick("s1") == second and router.replica_of("s1") == second, "moved, and sticks there now"
    router.release(second, ok=True)
    assert router.due_for_probe() == []
    now[0] = 6.0
    assert router.due_for_probe() == [first] and router.due_for_probe() == [], "one probe per cooldown"
    router.mark_up(first)
    assert router.pick("s3") == first, "the replica that came back takes new sessions (it holds fewest)"
    assert router.pick("s1") == second, "old sessions stay where their cache is"
    router.pick("s4")
    assert router.replica_of("s1") is None or router.replica_of("s2") is None, "the affinity table is bounded"


def test_session_key_is_the_conversation_prefix() -> None:
    assert session_key(_conversation(1, 0)) == session_key(_conversation(1, 3)), "every step of one conversation"
    assert session_key(_conversation(1, 0)) != session_key(_conversation(2, 0))
    with session_scope("chat-42"):
        assert session_key(_conversation(1, 0)) == session_key(_conversation(2, 0)) == "k:chat-42"


# ---- over HTTP --------------------------------------------------------------------------------------------------
async def test_sessions_spread_and_stay_sticky(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test")
    for step in range(3):
        for n in range(4):
            assert (await model.achat(_conversation(n, step))).text == "ok"
    await model.aclose()
    on_a, on_b = set(_first_questions(a)), set(_first_questions(b))
    assert len(on_a) == len(on_b) == 2 and not on_a & on_b, "4 sessions, 2 per replica, none on both"
    assert len(a.chat_requests) == len(b.chat_requests) == 6


async def test_new_sessions_avoid_the_busy_replica(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    def slow_first(body: dict[str, object]) -> ScriptedReply:
        first = body["messages"][1]["content"]  # type: ignore[index]
        return ScriptedReply.text("slow", delay=1.0) if first == "question 0" else ScriptedReply.text("ok")

    a.responder = b.responder = slow_first
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test")
    slow = asyncio.create_task(model.achat(_conversation(0, 0)))
    while sum(r.outstanding for r in model.stats()) == 0:
        await asyncio.sleep(0.01)
    busy = next(i for i, r in enumerate(model.stats()) if r.outstanding)
    await model.achat(_conversation(1, 0))
    await model.achat(_conversation(2, 0))
    assert (await slow).text == "slow"
    await model.aclose()
    idle = pair[1 - busy]
    assert _first_questions(idle) == ["question 1", "question 2"], "both new sessions went to the idle replica"


async def test_a_dead_replica_fails_over_and_nothing_is_lost(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, _ = pair
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    model = OpenAIReplicas([dead, a.base_url], "qwen-test", cooldown=3600)
    replies = [await model.achat(_conversation(n, 0)) for n in range(4)]
    await model.aclose()
    assert [r.text for r in replies] == ["ok"] * 4
    assert len(a.chat_requests) == 4
    dead_state = model.stats()[0]
    assert not dead_state.healthy and dead_state.failures == 1, "marked down once, then skipped"


@pytest.mark.parametrize("fault", [ScriptedReply.fail(503), ScriptedReply.text("never", cut_after=0),
                                   ScriptedReply(drop=True)], ids=["http-503", "cut-before-text", "dropped"])
async def test_failures_before_streaming_fail_over(pair: tuple[ScriptedServer, ScriptedServer],
                                                   fault: ScriptedReply) -> None:
    a, b = pair
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test", cooldown=3600)
    with session_scope("s"):
        await model.achat("warm up")  # fixes which replica session "s" sticks to
        sticky = a if a.chat_requests else b
        other = b if sticky is a else a
        sticky.responder = None
        sticky.script(fault)
        reply = await model.achat("again")
    await model.aclose()
    assert reply.text == "ok" and len(other.chat_requests) == 1, "served by the other replica"


async def test_a_stream_cut_after_text_is_not_replayed(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    for server in pair:
        server.responder = None
        server.script(ScriptedReply.text("a long answer that breaks", cut_after=2))
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test")
    seen: list[str] = []
    with pytest.raises((ModelProtocolError, ModelConnectionError)):
        async for delta in model.astream("hi"):
            seen.append(delta.content)
    await model.aclose()
    assert "".join(seen), "text had reached the caller"
    assert len(a.chat_requests) + len(b.chat_requests) == 1, "so it was not sent again"


async def test_a_request_error_is_not_failed_over(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    for server in pair:
        server.responder = None
        server.script(ScriptedReply.fail(400, "bad parameter"))
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test")
    with pytest.raises(ModelRequestError, match="bad parameter"):
        await model.achat("hi")
    await model.aclose()
    assert len(a.chat_requests) + len(b.chat_requests) == 1
    assert all(r.healthy for r in model.stats()), "the request was wrong, not the replica"


async def test_a_replica_that_comes_back_is_used_again(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    port = a.port
    a.stop()
    model = OpenAIReplicas([a.base_url, b.base_url], "qwen-test", cooldown=0.0)
    for n in range(3):
        await model.achat(_conversation(n, 0))
    assert len(b.chat_requests) == 3 and not model.stats()[0].healthy
    with ScriptedServer(models=["qwen-test"], responder=_ok, port=port) as revived:
        for n in range(3, 5):
            await model.achat(_conversation(n, 0))
        for n in range(3):
            await model.achat(_conversation(n, 1))
    await model.aclose()
    assert model.stats()[0].healthy
    assert _first_questions(revived) == ["question 3", "question 4"], "new sessions flow to it again"
    assert _first_questions(b)[3:] == ["question 0", "question 1", "question 2"], "old sessions stay put"


async def test_all_replicas_down_is_a_connection_error() -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/v1" for _ in range(2)]
    model = OpenAIReplicas(urls, "m")
    with pytest.raises(ModelConnectionError):
        await model.achat("hi")
    with pytest.raises(ModelConnectionError, match="all 2 replicas are down"):
        await model.achat("hi")
    await model.aclose()
    assert [r.failures for r in model.stats()] == [1, 1]
