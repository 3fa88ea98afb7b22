"""Function calling against the real vLLM server, the three ways: prompted (our templates and stop words), native
(``tools=`` through vLLM's hermes parser, with our fallback parse of ``content``) and constrained (our grammar
through vLLM's structured outputs). Plus what the client learns from the server: its kind, its context length,
exact token counts at ``/tokenize``, and answer prefill with ``continue_final_message``."""

from __future__ import annotations

import pytest

from qwen_agent.agents import Agent
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import FunctionCalling, SamplingParams
from qwen_agent.llm.errors import ContextLengthError
from qwen_agent.messages import Message
from qwen_agent.tools import tool

pytestmark = [pytest.mark.vllm, pytest.mark.model]

GREEDY = SamplingParams(temperature=0.0, seed=0, max_tokens=120)


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city's name, e.g. Paris
    """
    return f"{city}: 17 degrees Celsius, light rain"


def client(server: object, mode: str = "prompted", constrained: bool = False) -> OpenAICompatible:
    return OpenAICompatible(server.base_url, server.model, params=GREEDY,  # type: ignore[attr-defined]
                            function_calling=FunctionCalling(mode=mode, constrained=constrained))


@pytest.mark.parametrize(("mode", "constrained"), [("prompted", False), ("native", False), ("prompted", True)],
                         ids=["prompted", "native-hermes", "constrained-structured-outputs"])
async def test_agent_calls_the_tool_and_answers_with_its_result(vllm_server: object, mode: str,
                                                                constrained: bool) -> None:
    async with client(vllm_server, mode, constrained) as model:
        result = await Agent(model, tools=[get_weather], max_steps=4).arun("What's the weather in Paris right now?")
    calls = result.tool_calls
    assert calls and calls[0].name == "get_weather" and "paris" in calls[0].arguments["city"].lower(), result.messages
    assert result.stop_reason == "answer" and "17" in result.answer, result.messages


async def test_native_mode_reads_the_call_vllm_left_in_content(vllm_server: object) -> None:
    async with client(vllm_server, "native") as model:
        response = await model.achat([Message.user("What's the weather in Paris right now?")], [get_weather.schema()])
    # vLLM's hermes parser finds no <tool_call> tags in what this model writes; the call comes from our parser.
    assert response.tool_calls and response.tool_calls[0].name == "get_weather", response.raw_text
    assert response.finish_reason == "tool_calls"


async def test_constrained_decoding_is_really_enforced_by_vllm(vllm_server: object) -> None:
    """Asked for JSON, this model writes its call in a ```json fence (measured with the same weights on llama.cpp,
    unconstrained); the grammar forbids a reply that starts like a call but is not one, so what comes back must be
    a bare, schema-valid call, with the city from the question. A prose reply fails this test."""
    async with client(vllm_server, "prompted", constrained=True) as model:
        response = await model.achat([Message.user("Weather for Paris, reply in JSON please")], [get_weather.schema()])
    text = response.raw_text.lstrip()
    assert text.startswith(("{", "<tool_call>")), text
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("get_weather", {"city": "Paris"})], text
    assert not response.parse_errors, text


async def test_the_client_learns_kind_window_and_exact_counts(vllm_server: object) -> None:
    async with client(vllm_server) as model:
        info = await model.server_info()
        assert (info.kind, info.max_model_len) == ("vllm", 4096)
        assert (await model.capabilities()).prefill
        assert await model.input_budget() == 4096 - GREEDY.max_tokens
        messages = [Message.user("Say hello.")]
        counted = await model.count_prompt_tokens(messages, [get_weather.schema()])
        response = await model.achat(messages, [get_weather.schema()])
    assert response.usage is not None and response.usage.prompt_tokens == counted


async def test_answer_prefill_continues_the_assistant_text(vllm_server: object) -> None:
    """``tool_choice="none"`` after a tool result: the reply is made to start as an answer."""
    async with client(vllm_server) as model:
        call_reply = await model.achat([Message.user("What's the weather in Paris right now?")], [get_weather.schema()])
        assert call_reply.tool_calls, call_reply.raw_text
        call = call_reply.tool_calls[0]
        history = [Message.user("What's the weather in Paris right now?"), call_reply.message,
                   Message.tool("Paris: 17 degrees Celsius, light rain", call.id, call.name)]
        answer = await model.achat(history, [get_weather.schema()], tool_choice="none")
    assert not answer.tool_calls and answer.text.startswith("Based on the tool results, "), answer.raw_text
    assert "17" in answer.text


async def test_a_latest_turn_over_the_window_is_a_typed_error_before_any_request(vllm_server: object) -> None:
    async with client(vllm_server) as model:
        with pytest.raises(ContextLengthError, match="budget is 3976"):
            await model.achat([Message.user("word " * 6000)])
