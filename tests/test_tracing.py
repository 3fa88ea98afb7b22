"""Tracing with the real OpenTelemetry SDK (in-memory and JSONL exporters) on the scripted model server: span tree,
GenAI attributes, content opt-in, errors, retrieval spans, the CLI's ``--trace FILE.jsonl``, and that a run without
any provider never imports OpenTelemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qwen_agent.agents import Agent
from qwen_agent.agents.errors import AgentModelError
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool
from qwen_agent.tracing import configure_tracing, use_tracer_provider
from qwen_agent.tracing.api import set_capture_content
from qwen_agent.tracing.setup import TracingSetupError

ROOT = Path(__file__).resolve().parents[1]


@tool
def lookup(key: str) -> str:
    """Return the value stored under a key.

    Args:
        key: the key to look up
    """
    if key == "boom":
        raise RuntimeError("store offline")
    return f"value-of-{key}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider, content=False):
        yield exporter
    provider.shutdown()


def _agent(server: ScriptedServer, **kw: Any) -> Agent:
    model = OpenAICompatible(server.base_url, model="qwen-test")
    return Agent(model, tools=[lookup], function_calling=FunctionCalling(mode="native"), **kw)


def _by_name(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


def test_run_span_tree_and_genai_attributes(server: ScriptedServer, spans: InMemorySpanExporter) -> None:
    server.script(ScriptedReply(tool_calls=[{"name": "lookup", "arguments": {"key": "a"}, "id": "c1"},
                                            {"name": "lookup", "arguments": {"key": "b"}, "id": "c2"}]))
    server.script(ScriptedReply.text("a and b looked up", prompt_tokens=30, completion_tokens=5))
    agent = _agent(server, name="librarian", params=None)
    agent.params = agent.model.params.model_copy(update={"temperature": 0.2, "max_tokens": 64, "stop": ["END"]})
    result = agent.run("look up a and b")
    assert result.stop_reason == "answer"

    finished = spans.get_finished_spans()
    [root] = _by_name(finished, "invoke_agent")
    chats = _by_name(finished, "chat")
    tools = _by_name(finished, "execute_tool")
    assert root.name == "invoke_agent librarian" and root.parent is None
    assert [s.name for s in chats] == ["chat qwen-test", "chat qwen-test"]
    assert sorted(s.attributes["gen_ai.tool.call.id"] for s in tools) == ["c1", "c2"]
    for child in (*chats, *tools):  # one trace, every step a child of the run
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "librarian"
    assert root.attributes["qwen_agent.stop_reason"] == "answer"

    first, second = chats
    a = first.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "qwen-test" and a["gen_ai.response.model"] == "qwen-test"
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 64
    assert list(a["gen_ai.request.stop_sequences"]) == ["END"]
    assert list(a["gen_ai.response.finish_reasons"]) == ["tool_calls"]
    assert a["gen_ai.usage.input_tokens"] == 10
    assert 0 <= a["gen_ai.response.time_to_first_chunk"] < 10
    assert second.attributes["gen_ai.usage.input_tokens"] == 30
    assert second.attributes["gen_ai.usage.output_tokens"] == 5
    assert list(second.attributes["gen_ai.response.finish_reasons"]) == ["stop"]
    t = tools[0].attributes
    assert t["gen_ai.operation.name"] == "execute_tool" and t["gen_ai.tool.name"] == "lookup"
    assert t["gen_ai.tool.type"] == "function"
    # no opt-in: nothing private on any span
    for s in finished:
        assert not any(k in (s.attributes or {}) for k in ("gen_ai.input.messages", "gen_ai.output.messages",
                                                           "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                                                           "gen_ai.system_instructions"))


def test_content_only_when_opted_in(server: ScriptedServer, spans: InMemorySpanExporter) -> None:
    server.script(ScriptedReply.call("lookup", {"key": "secret-7"}))
    server.script(ScriptedReply.text("it is value-of-secret-7"))
    set_capture_content(True)
    try:
        _agent(server, system="Be brief.").run("what is under secret-7?")
    finally:
        set_capture_content(False)
    finished = spans.get_finished_spans()
    [first, _] = _by_name(finished, "chat")
    messages = json.loads(first.attributes["gen_ai.input.messages"])
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": "what is under secret-7?"}]}]
    assert first.attributes["gen_ai.system_instructions"] == "Be brief."
    assert "lookup" in first.attributes["gen_ai.tool.definitions"]
    out = json.loads(first.attributes["gen_ai.output.messages"])
    assert out[0]["parts"][0]["type"] == "tool_call" and out[0]["parts"][0]["arguments"] == {"key": "secret-7"}
    [tool_span] = _by_name(finished, "execute_tool")
    assert json.loads(tool_span.attributes["gen_ai.tool.call.arguments"]) == {"key": "secret-7"}
    assert tool_span.attributes["gen_ai.tool.call.result"] == "value-of-secret-7"


def test_errors_set_error_type(server: ScriptedServer, spans: InMemorySpanExporter) -> None:
    server.script(ScriptedReply.call("lookup", {"key": "boom"}))
    server.script(ScriptedReply.fail(400, "bad request from the scripted server"))
    agent = _agent(server)
    with pytest.raises(AgentModelError):
        agent.run("look up boom")
    finished = spans.get_finished_spans()
    [tool_span] = _by_name(finished, "execute_tool")
    assert tool_span.attributes["error.type"] == "ToolExecutionError"
    assert tool_span.status.status_code.name == "ERROR"
    failed = _by_name(finished, "chat")[-1]
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes["error.type"].endswith("Error")
    [root] = _by_name(finished, "invoke_agent")
    assert root.attributes["error.type"] == failed.attributes["error.type"]
    assert root.attributes["qwen_agent.stop_reason"] == "model_error"


def test_retrieval_spans_belong_to_the_run(server: ScriptedServer, spans: InMemorySpanExporter,
                                           tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    import retrieval_docgen as docgen

    from qwen_agent.agents import Assistant
    from qwen_agent.retrieval import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "valves.md").write_text("# Valves\n\nThe relief valve of pump P-7 opens at 12 bar.\n", encoding="utf-8")
    (docs / "lunch.md").write_text("# Canteen\n\nLunch is served from noon to two.\n", encoding="utf-8")
    kb = KnowledgeBase.build(docs, tmp_path / "store", embedder=docgen.shared_embedder())
    server.script(ScriptedReply.text("It opens at 12 bar [valves.md]."))
    assistant = Assistant(OpenAICompatible(server.base_url, model="qwen-test"), knowledge=kb)
    try:
        assistant.run("At what pressure does the relief valve of pump P-7 open?")
    finally:
        kb.close()
    finished = spans.get_finished_spans()
    [root] = _by_name(finished, "invoke_agent")
    searches = _by_name(finished, "retrieval")
    assert searches, [s.name for s in finished]
    for s in searches:
        assert s.name == "retrieval store"
        assert s.attributes["gen_ai.operation.name"] == "retrieval"
        assert s.attributes["gen_ai.data_source.id"] == "store"
        assert s.parent is not None and s.parent.span_id == root.context.span_id
        assert "gen_ai.retrieval.query.text" not in s.attributes  # content is opt-in


def test_jsonl_exporter_writes_one_span_per_line(server: ScriptedServer, tmp_path: Path) -> None:
    target = tmp_path / "traces" / "run.jsonl"
    session = configure_tracing(target, batch=False, set_global=False)
    try:
        server.script(ScriptedReply.call("lookup", {"key": "a"}))
        server.script(ScriptedReply.text("done"))
        _agent(server).run("look up a")
    finally:
        session.shutdown()
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    names = [r["name"] for r in lines]
    assert sorted(names) == ["chat qwen-test", "chat qwen-test", "execute_tool lookup", "invoke_agent Agent"]
    root = next(r for r in lines if r["name"].startswith("invoke_agent"))
    assert root["parent_span_id"] is None and len(root["span_id"]) == 16 and len(root["trace_id"]) == 32
    assert all(r["parent_span_id"] == root["span_id"] for r in lines if r is not root)
    assert all(r["trace_id"] == root["trace_id"] for r in lines)
    assert root["resource"]["service.name"] == "qwen-agent" and root["end_time"] >= root["start_time"]


def test_configure_tracing_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(TracingSetupError, match="is a folder"):
        configure_tracing(tmp_path, set_global=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
    return env


def test_cli_run_traces_to_a_jsonl_file(server: ScriptedServer, tmp_path: Path) -> None:
    server.script(ScriptedReply.text("4"))
    target = tmp_path / "cli.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "qwen_agent.cli", "run", "What is 2+2?", "--model",
         f"openai:{server.base_url}#qwen-test", "--trace", str(target), "--trace-content"],
        env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"invoke_agent Agent", "chat qwen-test"}
    chat = by_name["chat qwen-test"]
    assert chat["parent_span_id"] == by_name["invoke_agent Agent"]["span_id"]
    assert "What is 2+2?" in chat["attributes"]["gen_ai.input.messages"]  # --trace-content


def test_no_provider_means_opentelemetry_is_never_imported(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("lookup", {"key": "a"}))
    server.script(ScriptedReply.text("done"))
    code = (
        "import sys\n"
        "from qwen_agent.agents import Agent\n"
        "from qwen_agent.llm.backends.openai_compat import OpenAICompatible\n"
        "from qwen_agent.tools import tool\n"
        "@tool\n"
        "def lookup(key: str) -> str:\n"
        "    '''Look up.\n\n    Args:\n        key: the key\n    '''\n"
        "    return 'v'\n"
        f"r = Agent(OpenAICompatible({server.base_url!r}, model='qwen-test'), tools=[lookup]).run('look up a')\n"
        "assert r.stop_reason == 'answer', r\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_serve_proxy_requests_are_traced_with_their_session(server: ScriptedServer,
                                                            spans: InMemorySpanExporter) -> None:
    """A request that brings its own tools (the function-calling proxy) gets a ``chat {profile}`` span with the
    session id, parent of the backend's ``chat {model}`` span."""
    import httpx

    from qwen_agent.server import BackgroundServer, ServeConfig

    server.script(ScriptedReply.call("get_time", {"zone": "UTC"}))
    config = ServeConfig.model_validate({"model": f"openai:{server.base_url}#qwen-test",
                                         "server": {"port": 0, "kernel_pool": 0, "backend_retries": 0},
                                         "profiles": {"assistant": {"function_calling": {"mode": "native"}}}})
    tools = [{"type": "function", "function": {"name": "get_time", "description": "The time in a zone.",
                                               "parameters": {"type": "object",
                                                              "properties": {"zone": {"type": "string"}}}}}]
    with BackgroundServer(config) as srv:
        reply = httpx.post(f"{srv.base_url}/chat/completions", headers={"X-Session-Id": "conv-7"}, timeout=30,
                           json={"model": "assistant", "tools": tools,
                                 "messages": [{"role": "user", "content": "What time is it in UTC?"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    finished = spans.get_finished_spans()
    (outer,) = _by_name(finished, "chat assistant")
    (inner,) = _by_name(finished, "chat qwen-test")
    assert outer.attributes["gen_ai.conversation.id"] == "conv-7"
    assert outer.attributes["gen_ai.operation.name"] == "chat"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
