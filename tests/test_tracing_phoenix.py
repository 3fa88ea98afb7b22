"""Spans against a real trace backend: Arize Phoenix started on 127.0.0.1 (session fixture), fed over OTLP/HTTP by
`configure_tracing("otlp")` and queried through its REST API, for an agent run and for a `serve` request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qwen_agent.agents import Agent
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.testing.phoenix import PhoenixServer
from qwen_agent.tools import tool
from qwen_agent.tracing import TracingSession, configure_tracing


@tool
def lookup(key: str) -> str:
    """Return the value stored under a key.

    Args:
        key: the key to look up
    """
    return f"value-of-{key}"


@pytest.fixture
def otlp(phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TracingSession]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", phoenix.otlp_traces_endpoint)
    session = configure_tracing("otlp", service_name="qwen-agent-tests", set_global=False)
    try:
        yield session
    finally:
        session.shutdown()


def _trace(spans: list[dict[str, Any]], root_name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [root] = [s for s in spans if s["name"] == root_name]
    trace_id = root["context"]["trace_id"]
    return root, [s for s in spans if s["context"]["trace_id"] == trace_id and s is not root]


def test_agent_run_arrives_in_phoenix_with_its_tree(phoenix: PhoenixServer, otlp: TracingSession) -> None:
    with ScriptedServer(models=["qwen-test"]) as server:
        server.script(ScriptedReply.text('{"name": "lookup", "arguments": {"key": "k1"}}', prompt_tokens=40,
                                         completion_tokens=12))
        server.script(ScriptedReply.text("k1 holds value-of-k1", prompt_tokens=60, completion_tokens=6))
        Agent(OpenAICompatible(server.base_url, model="qwen-test"), tools=[lookup], name="phoenix-run").run(
            "What is stored under k1?")
    otlp.flush()
    before = len(phoenix.spans())
    spans = phoenix.wait_for_spans(4)
    assert len(spans) >= 4, (before, spans)
    root, children = _trace(spans, "invoke_agent phoenix-run")
    assert root["parent_id"] is None
    assert sorted(s["name"] for s in children) == ["chat qwen-test", "chat qwen-test", "execute_tool lookup"]
    assert all(s["parent_id"] == root["context"]["span_id"] for s in children)
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert root["attributes"]["gen_ai.usage.input_tokens"] == 100
    chats = sorted((s for s in children if s["name"].startswith("chat")), key=lambda s: s["start_time"])
    assert chats[0]["attributes"]["gen_ai.usage.input_tokens"] == 40
    assert chats[0]["attributes"]["gen_ai.usage.output_tokens"] == 12
    assert chats[0]["attributes"]["gen_ai.provider.name"] == "openai"
    assert list(chats[1]["attributes"]["gen_ai.response.finish_reasons"]) == ["stop"]
    [tool_span] = [s for s in children if s["name"] == "execute_tool lookup"]
    assert tool_span["attributes"]["gen_ai.tool.name"] == "lookup"
    assert tool_span["attributes"]["gen_ai.tool.call.id"]
    assert tool_span["start_time"] >= chats[0]["end_time"] <= chats[1]["start_time"]


def test_serve_request_is_traced_with_its_session(phoenix: PhoenixServer, otlp: TracingSession) -> None:
    from support_serve import rule_backend, serving

    with rule_backend() as backend, serving(backend, profiles={"plain": {"tools": ["calculator"]}}) as server:
        r = httpx.post(f"{server.base_url}/chat/completions", headers={"x-session-id": "sess-42"}, timeout=60,
                       json={"model": "plain", "messages": [{"role": "user", "content": "What is 6 * 7?"}]})
        assert r.status_code == 200, r.text
    otlp.flush()

    def served() -> list[dict[str, Any]]:
        return [s for s in phoenix.spans() if s["attributes"].get("gen_ai.conversation.id") == "sess-42"]

    from support_serve import wait_until

    wait_until(lambda: bool(served()), timeout=30, what="the serve request's span in Phoenix")
    [root] = served()
    assert root["name"] == "invoke_agent plain"
    children = [s for s in phoenix.spans() if s["parent_id"] == root["context"]["span_id"]]
    assert "chat rule-model" in {s["name"] for s in children}, children
    assert all(s["context"]["trace_id"] == root["context"]["trace_id"] for s in children)
