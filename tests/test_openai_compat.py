"""OpenAICompatible against a real scripted HTTP server: chat, streaming, parameters on the wire, tool calls."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support_scripted import TIME, WEATHER, make_model, scripted_server

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import ChatResponse, FunctionCalling, SamplingParams
from qwen_agent.messages import Message, ToolCall
from qwen_agent.testing import ScriptedReply, ScriptedServer, ScriptedToolCall


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    yield from scripted_server(monkeypatch)

NATIVE = FunctionCalling(mode="native")


async def collect(model: OpenAICompatible, *args, **kwargs) -> tuple[str, str, ChatResponse]:
    text, reasoning, response = [], [], None
    async for delta in model.astream(*args, **kwargs):
        text.append(delta.content)
        reasoning.append(delta.reasoning)
        if delta.response is not None:
            response = delta.response
    assert response is not None, "the stream ended without a final ChatResponse"
    return "".join(text), "".join(reasoning), response


async def test_plain_chat_non_streaming(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("Hello from the scripted model.", prompt_tokens=7, completion_tokens=5))
    async with make_model(server) as model:
        response = await model.achat([Message.system("Be brief."), {"role": "user", "content": "Hi"}])
    assert response.text == "Hello from the scripted model."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage is not None and (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 5)
    body = server.chat_requests[0].body
    assert body["stream"] is False and "stream_options" not in body
    assert body["model"] == "qwen-test"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "tools" not in body


async def test_plain_chat_streaming(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("Streaming works, token by token.", chunk_size=3, completion_tokens=8))
    async with make_model(server) as model:
        text, _, response = await collect(model, "Hi")
    assert text == "Streaming works, token by token."
    assert response.text == text
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens == 8  # from the include_usage chunk
    body = server.chat_requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stop_words_sampling_params_and_extra_body_are_sent(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("ok"), ScriptedReply.text("ok"))
    model = make_model(
        server,
        api_key="sk-test",
        headers={"X-Trace": "abc"},
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, "min_p": 0.05},
        params=SamplingParams(temperature=0.2, stop=["</answer>"]),
    )
    call_params = SamplingParams(
        top_p=0.8, top_k=20, max_tokens=64, seed=7, presence_penalty=0.5, frequency_penalty=0.25,
        repeat_penalty=1.1, stop=["Observation:"], extra_body={"guided_json": {"type": "object"}, "min_p": 0.1},
    )
    async with model:
        await model.achat("Hi", params=call_params)
        await collect(model, "Hi", params=call_params)
    for request in server.chat_requests:
        body = request.body
        assert body["temperature"] == 0.2 and body["top_p"] == 0.8 and body["top_k"] == 20
        assert body["max_tokens"] == 64 and body["seed"] == 7
        assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == 0.25
        assert body["repetition_penalty"] == 1.1 and "repeat_penalty" not in body
        assert body["stop"] == ["</answer>", "Observation:"]
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["guided_json"] == {"type": "object"}
        assert body["min_p"] == 0.1  # the per-call extra_body wins over the client's
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.headers["x-trace"] == "abc"


async def test_unset_params_are_not_sent(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("ok"))
    async with make_model(server) as model:
        await model.achat("Hi")
    body = server.chat_requests[0].body
    for key in ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "repetition_penalty", "grammar"):
        assert key not in body, key


async def test_native_tool_call_streamed_with_fragmented_arguments(server: ScriptedServer) -> None:
    args = {"city": "Paris", "unit": "celsius"}
    server.script(ScriptedReply(tool_calls=[ScriptedToolCall(name="get_weather", arguments=args, id="call_w1")],
                                chunk_size=3))
    async with make_model(server, function_calling=NATIVE) as model:
        text, _, response = await collect(model, "Weather in Paris?", [WEATHER])
    assert text == ""
    assert response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_w1", "get_weather", args)
    assert call.function.raw_arguments == json.dumps(args)
    body = server.chat_requests[0].body
    assert body["tools"] == [WEATHER.to_openai()]
    # The call goes back to the server unchanged in the next turn's history.
    assert response.message.to_openai()["tool_calls"][0]["function"]["arguments"] == json.dumps(args)


async def test_native_tool_call_non_streaming(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("get_weather", {"city": "Oslo"}))
    async with make_model(server, function_calling=NATIVE) as model:
        response = await model.achat("Weather in Oslo?", [WEATHER])
    [call] = response.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo"}
    assert response.text == "" and response.finish_reason == "tool_calls"
    assert server.chat_requests[0].body["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("stream", [True, False])
async def test_parallel_native_calls(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply(
        content="Checking both.",
        tool_calls=[ScriptedToolCall(name="get_weather", arguments={"city": "Rome"}),
                    ScriptedToolCall(name="get_time", arguments={"tz": "Europe/Rome"})],
        chunk_size=2,
    ))
    async with make_model(server, function_calling=NATIVE) as model:
        if stream:
            _, _, response = await collect(model, "Weather and time in Rome?", [WEATHER, TIME])
        else:
            response = await model.achat("Weather and time in Rome?", [WEATHER, TIME])
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather", {"city": "Rome"}), ("get_time", {"tz": "Europe/Rome"})]
    assert len({c.id for c in response.tool_calls}) == 2
    assert response.text == "Checking both."


@pytest.mark.parametrize("stream", [True, False])
async def test_native_mode_falls_back_to_parsing_a_bare_json_call(server: ScriptedServer, stream: bool) -> None:
    # What vLLM's hermes parser does with small Qwen models: no tool_calls, the call sits in the text.
    server.script(ScriptedReply.text('{"name": "get_weather", "arguments": {"city": "Lima"}}'))
    async with make_model(server, function_calling=NATIVE) as model:
        if stream:
            _, _, response = await collect(model, "Weather in Lima?", [WEATHER])
        else:
            response = await model.achat("Weather in Lima?", [WEATHER])
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("get_weather", {"city": "Lima"})]
    assert "tools" in server.chat_requests[0].body


async def test_prompted_mode_sends_no_tools_field_and_describes_tools_in_system(server: ScriptedServer) -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Kyiv"}}\n</tool_call>'
    server.script(ScriptedReply.text(call))
    async with make_model(server) as model:  # prompted is the default mode
        response = await model.achat([Message.user("Weather in Kyiv?")], [WEATHER])
    body = server.chat_requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    system = [m for m in body["messages"] if m["role"] == "system"]
    assert system, "prompted mode must describe the tools in a system message"
    assert "get_weather" in system[0]["content"] and "Current weather for a city." in system[0]["content"]
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("get_weather", {"city": "Kyiv"})]


async def test_prompted_mode_renders_tool_history_as_plain_messages(server: ScriptedServer) -> None:
    call = ToolCall.make("get_weather", {"city": "Kyiv"}, id="call_1")
    history = [Message.user("Weather in Kyiv?"), Message.assistant(None, [call]),
               Message.tool("12 C, cloudy", tool_call_id="call_1", name="get_weather")]
    server.script(ScriptedReply.text("It is 12 C and cloudy in Kyiv."))
    async with make_model(server) as model:
        response = await model.achat(history, [WEATHER])
    assert response.text == "It is 12 C and cloudy in Kyiv."
    sent = server.chat_requests[0].body["messages"]
    assert all(m["role"] in ("system", "user", "assistant") for m in sent)
    assert all("tool_calls" not in m for m in sent)
    assert any("12 C, cloudy" in (m.get("content") or "") for m in sent)


async def test_constrained_prompted_mode_sends_a_grammar(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("Fine."))
    constrained = FunctionCalling(mode="prompted", constrained=True)
    async with make_model(server, function_calling=constrained) as model:
        await model.achat("Weather?", [WEATHER])
    body = server.chat_requests[0].body
    assert isinstance(body.get("grammar"), str) and "get_weather" in body["grammar"]


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_content_is_kept_apart(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply(content="42.", reasoning="Six times seven.", chunk_size=5))
    async with make_model(server) as model:
        if stream:
            text, reasoning, response = await collect(model, "6*7?")
            assert (text, reasoning) == ("42.", "Six times seven.")
        else:
            response = await model.achat("6*7?")
    assert response.text == "42."
    assert response.message.reasoning_content == "Six times seven."


async def test_list_models_and_model_name_from_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("QWEN_AGENT_API_KEY", raising=False)
    async with ScriptedServer(models=["only-model"]) as single:
        single.script(ScriptedReply.text("hi"))
        async with OpenAICompatible(single.base_url) as model:
            assert await model.list_models() == ["only-model"]
            response = await model.achat("Hi")
        assert response.text == "hi" and response.model == "only-model"
        assert single.chat_requests[0].body["model"] == "only-model"


def test_from_env(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer) -> None:
    monkeypatch.setenv("QWEN_AGENT_BASE_URL", server.base_url)
    monkeypatch.setenv("QWEN_AGENT_MODEL", "qwen-test")
    monkeypatch.setenv("QWEN_AGENT_API_KEY", "sk-env")
    model = OpenAICompatible.from_env()
    assert (model.base_url, model.model, model.api_key) == (server.base_url, "qwen-test", "sk-env")
    monkeypatch.delenv("QWEN_AGENT_BASE_URL")
    with pytest.raises(Exception, match="QWEN_AGENT_BASE_URL"):
        OpenAICompatible.from_env()


async def test_tool_call_deltas_without_index_and_object_arguments(server: ScriptedServer) -> None:
    # Some servers omit "index" and send arguments as an object; usage may come from llama.cpp "timings".
    def chunk(delta: dict, finish: str | None = None, **extra: object) -> str:
        return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    server.script(ScriptedReply(stream_payloads=[
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [{"id": "a", "function": {"name": "get_weather", "arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"function": {"arguments": '"Bern"}'}}]}),
        chunk({"tool_calls": [{"id": "b", "function": {"name": "get_time", "arguments": {"tz": "CET"}}}]}),
        chunk({}, "tool_calls", timings={"prompt_n": 30, "predicted_n": 12, "cache_n": 25}),
    ]))
    async with make_model(server, function_calling=NATIVE) as model:
        _, _, response = await collect(model, "Weather and time in Bern?", [WEATHER, TIME])
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("a", "get_weather", {"city": "Bern"}), ("b", "get_time", {"tz": "CET"})]
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (30, 12)
    assert response.usage.cached_prompt_tokens == 25
