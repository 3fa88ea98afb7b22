"""The agent loop against hostile model replies (real HTTP to a scripted server on 127.0.0.1): 2,000-deep nesting
and unclosed brackets, in prompted and native mode, end as observations or answers, never as exceptions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwen_agent.agents import Agent, ReActAgent
from qwen_agent.bounded_json import MAX_DEPTH
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.openai_retry import Backoff
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool

DEEP = "[" * 2000 + "]" * 2000
NATIVE = FunctionCalling(mode="native")
PROMPTED = FunctionCalling(mode="prompted", format="nous")


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first addend
        b: second addend
    """
    return a + b


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


def model_for(server: ScriptedServer) -> OpenAICompatible:
    return OpenAICompatible(server.base_url, model="qwen-test", max_retries=1,
                            backoff=Backoff(initial=0.001, maximum=0.002, jitter=0.0))


def agent_for(server: ScriptedServer, fc: FunctionCalling) -> Agent:
    return Agent(model_for(server), tools=[add], function_calling=fc)


def last_user_note(server: ScriptedServer, request: int) -> str:
    return server.chat_requests[request].body["messages"][-1]["content"]


async def test_prompted_deep_call_is_reported_and_the_run_answers(server: ScriptedServer) -> None:
    reply = '<tool_call>{"name": "add", "arguments": {"a": ' + DEEP + ', "b": 1}}</tool_call>'
    server.script(ScriptedReply.text(reply), ScriptedReply.text("I cannot add that."))
    agent = agent_for(server, PROMPTED)
    result = await agent.arun("add these")
    assert result.stop_reason == "answer" and result.answer == "I cannot add that."
    assert result.tool_calls == []
    note = last_user_note(server, 1)
    assert "could not be read" in note and f"more than {MAX_DEPTH} levels" in note
    await agent.aclose()


@pytest.mark.parametrize("reply", [DEEP, '[{"' * 200, "{'a" * 2000])
async def test_prompted_deep_or_unclosed_prose_is_the_answer(server: ScriptedServer, reply: str) -> None:
    server.script(ScriptedReply.text(reply, chunk_size=16))
    agent = agent_for(server, PROMPTED)
    result = await agent.arun("say something strange")
    assert result.stop_reason == "answer" and result.answer == reply and result.steps == 1
    await agent.aclose()


@pytest.mark.parametrize("arguments", [DEEP, '{"a": ' + DEEP + ', "b": 1}'])
@pytest.mark.parametrize("stream", [True, False])
async def test_native_deep_arguments_become_an_observation(server: ScriptedServer, arguments: str,
                                                           stream: bool) -> None:
    server.script(ScriptedReply.call("add", arguments, chunk_size=64, ignore_stream=not stream),
                  ScriptedReply.text("The arguments were too deep."))
    agent = agent_for(server, NATIVE)
    result = await agent.arun("add these")
    assert result.stop_reason == "answer" and result.answer == "The arguments were too deep."
    call = result.tool_calls[0]
    assert call.name == "add" and call.arguments == {} and call.function.raw_arguments == arguments
    observation = next(m for m in result.messages if m.role == "tool").text
    assert f"more than {MAX_DEPTH} levels" in observation
    # The model sees its own argument text again, verbatim, next to the observation.
    sent = server.chat_requests[1].body["messages"]
    assert any(tc["function"]["arguments"] == arguments for m in sent for tc in m.get("tool_calls") or [])
    await agent.aclose()


async def test_react_deep_action_input_is_reported(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text('Thought: add\nAction: add\nAction Input: {"a": ' + DEEP + "}"),
                  ScriptedReply.text("Thought: I know.\nFinal Answer: no"))
    agent = ReActAgent(model_for(server), tools=[add])
    result = await agent.arun("add")
    assert result.answer == "no" and result.tool_calls == []
    assert f"more than {MAX_DEPTH} levels" in last_user_note(server, 1)
    await agent.aclose()
