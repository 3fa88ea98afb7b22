"""The server through the clients people point at it: the official `openai` client (sync, async, streaming)
and LangChain's `ChatOpenAI` (plain, streaming, `bind_tools` round trips), against the scripted rule model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from langchain_openai import ChatOpenAI
from support_serve import call_reply, rule_backend, serve_config

from qwen_agent.server import BackgroundServer
from qwen_agent.testing import ScriptedReply, ScriptedServer

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current local time in a timezone.",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
CALC_QUESTION = "Use the calculator to compute '17*23'"


@pytest.fixture(scope="module")
def backend() -> Iterator[ScriptedServer]:
    with rule_backend() as server:
        yield server


@pytest.fixture(scope="module")
def server(backend: ScriptedServer) -> Iterator[BackgroundServer]:
    profiles = {"assistant": {"tools": ["calculator"]}, "plain": {"system": "You are terse."}}
    with BackgroundServer(serve_config(backend, profiles=profiles)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(backend: ScriptedServer) -> None:
    backend.reset()


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_models_lists_the_profiles(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["assistant", "plain"]
    profile = models[0].model_extra["x_profile"]
    assert profile["tools"] == ["calculator"] and profile["limits"]["max_steps"] == 8
    assert client.models.retrieve("plain").id == "plain"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_an_agent_answer_with_a_server_side_tool_step(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": CALC_QUESTION}])
    message = reply.choices[0].message
    assert "391" in message.content and reply.choices[0].finish_reason == "stop"
    assert not message.tool_calls  # the server ran the tool itself: nothing for the client to run
    trace = message.model_extra["reasoning_content"]
    assert "calculator" in trace and "391" in trace and message.model_extra["reasoning"] == trace
    events = reply.model_extra["x_agent_events"]
    assert [e["type"] for e in events] == ["tool_call", "tool_result"]
    assert events[1]["tool"] == "calculator" and events[1]["result"] == "391" and not events[1]["is_error"]
    assert events[0]["call_id"] == events[1]["call_id"] and events[1]["elapsed_s"] >= 0
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens > reply.usage.prompt_tokens


def test_streaming_shows_tool_steps_as_reasoning_never_as_tool_calls(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="assistant", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": CALC_QUESTION}])
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert all(not d.tool_calls for d in deltas)
    reasoning = "".join(d.model_extra.get("reasoning_content") or "" for d in deltas)
    assert "→ calculator" in reasoning and "← calculator ok" in reasoning
    assert reasoning == "".join(d.model_extra.get("reasoning") or "" for d in deltas)
    events = [c.model_extra["x_agent_event"] for c in chunks if "x_agent_event" in (c.model_extra or {})]
    assert [e["type"] for e in events] == ["tool_call", "tool_result"]
    content = "".join(d.content or "" for d in deltas)
    assert "391" in content and len([d for d in deltas if d.content]) > 1  # streamed in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_without_include_usage_no_usage_chunk_and_done_ends_the_stream(server: BackgroundServer) -> None:
    body = {"model": "plain", "stream": True, "messages": [{"role": "user", "content": "What is 6 * 7?"}]}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(p["choices"] for p in payloads) and not any("usage" in p for p in payloads)
    assert "42" in "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads)


async def test_async_client_plain_and_streaming(server: BackgroundServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as client:
        reply = await client.chat.completions.create(
            model="plain", messages=[{"role": "user", "content": "What is 12 + 30?"}])
        assert "42" in reply.choices[0].message.content
        stream = await client.chat.completions.create(
            model="assistant", stream=True, messages=[{"role": "user", "content": CALC_QUESTION}])
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert "391" in text


def test_sampling_parameters_reach_the_backend(client: openai.OpenAI, backend: ScriptedServer) -> None:
    client.chat.completions.create(model="plain", temperature=0.3, top_p=0.9, max_tokens=50, stop=["END"], seed=7,
                                   messages=[{"role": "user", "content": "What is 2 + 2?"}])
    sent = backend.chat_requests[-1].body
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["max_tokens"] == 50 and sent["seed"] == 7
    assert "END" in sent["stop"]
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}  # the profile's prompt


def test_client_tools_come_back_as_tool_calls_and_results_are_accepted(client: openai.OpenAI,
                                                                         backend: ScriptedServer) -> None:
    messages: list[dict] = [{"role": "user", "content": "What's the weather in Paris?"}]
    reply = client.chat.completions.create(model="assistant", messages=messages, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    # the backend got the tools in our prompted format, not the server's native tool parser
    assert "tools" not in backend.chat_requests[-1].body
    assert "get_weather" in backend.chat_requests[-1].body["messages"][0]["content"]
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'}]
    final = client.chat.completions.create(model="assistant", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert "21" in final.choices[0].message.content


def test_client_tool_calls_stream_as_tool_call_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="assistant", stream=True, tools=[WEATHER, TIME],
                                            messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}])
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            slot["name"] += tc.function.name or ""
            slot["arguments"] += tc.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]
    assert all(c["id"] for c in calls.values())


def test_tool_choice_none_answers_without_calls(client: openai.OpenAI, backend: ScriptedServer) -> None:
    reply = client.chat.completions.create(model="assistant", tools=[WEATHER], tool_choice="none",
                                           messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
    assert "get_weather" not in json.dumps(backend.chat_requests[-1].body["messages"])


def test_tool_choice_required_asks_again_until_a_call(client: openai.OpenAI, backend: ScriptedServer) -> None:
    backend.script(ScriptedReply.text("I am not sure what you want."), call_reply("get_time", {"tz": "UTC"}))
    reply = client.chat.completions.create(model="assistant", tools=[WEATHER, TIME], tool_choice="required",
                                           messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.tool_calls[0].function.name == "get_time"
    assert len(backend.chat_requests) == 2
    assert "Call one of the functions now" in json.dumps(backend.chat_requests[1].body["messages"])


def test_named_tool_choice_offers_only_that_function(client: openai.OpenAI, backend: ScriptedServer) -> None:
    reply = client.chat.completions.create(
        model="assistant", tools=[WEATHER, TIME], messages=[{"role": "user", "content": "Time in 'Asia/Tokyo'?"}],
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and json.loads(call.function.arguments) == {"tz": "Asia/Tokyo"}
    prompt = json.dumps(backend.chat_requests[-1].body["messages"])
    assert "get_time" in prompt and "get_weather" not in prompt
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.chat.completions.create(model="assistant", tools=[WEATHER], messages=[{"role": "user", "content": "x"}],
                                       tool_choice={"type": "function", "function": {"name": "get_time"}})


def test_bad_requests_name_the_field(client: openai.OpenAI) -> None:
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}, "tool_choice"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="assistant", **extra)
        assert info.value.status_code == 400
        assert info.value.body["param"] == param, extra


def test_langchain_chat_openai_invoke_and_stream(server: BackgroundServer) -> None:
    llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="assistant", max_retries=0)
    answer = llm.invoke(CALC_QUESTION)
    assert "391" in answer.content and not answer.tool_calls
    pieces = list(llm.stream("What is 6 * 7?"))
    assert len(pieces) > 1 and "42" in "".join(p.content for p in pieces)


def test_langchain_bind_tools_round_trip(server: BackgroundServer) -> None:
    @lc_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return json.dumps({"city": city, "temperature": 18})

    llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="assistant", max_retries=0)
    bound = llm.bind_tools([get_weather])
    history: list = [HumanMessage("What's the weather in Berlin?")]
    ai = bound.invoke(history)
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather"
    assert ai.tool_calls[0]["args"] == {"city": "Berlin"}
    history += [ai, ToolMessage(get_weather.invoke(ai.tool_calls[0]["args"]), tool_call_id=ai.tool_calls[0]["id"])]
    final = bound.invoke(history)
    assert not final.tool_calls and "18" in final.content
    # streamed tool calls assemble into the same call
    chunks = list(bound.stream([HumanMessage("What's the weather in Madrid?")]))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.tool_calls[0]["name"] == "get_weather" and merged.tool_calls[0]["args"] == {"city": "Madrid"}


def test_a_repeated_client_call_is_turned_into_an_answer(client: openai.OpenAI, backend: ScriptedServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    messages = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": None,
                                                                   "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "-3 and snowing"}]
    backend.script(call_reply("get_weather", {"city": "Oslo"}), ScriptedReply.text("It is -3 and snowing in Oslo."))
    reply = client.chat.completions.create(model="assistant", messages=messages, tools=[WEATHER])
    assert reply.choices[0].finish_reason == "stop" and "snowing" in reply.choices[0].message.content
    assert len(backend.chat_requests) == 2
