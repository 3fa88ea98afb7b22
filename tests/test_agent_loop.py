"""The agent loop against a scripted OpenAI-compatible server (real HTTP): calls, observations, events, limits,
faults. The server stands in for the model; the loop, tools, parser and HTTP client are the real ones."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from qwen_agent.agents import (
    Agent,
    AgentModelError,
    FinalAnswer,
    ReActAgent,
    StepFinished,
    TextDelta,
    ToolCallFinished,
)
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.openai_retry import Backoff
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool

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


INTERVALS: dict[str, tuple[float, float]] = {}


@tool
def slow_echo(text: str, seconds: float = 0.3) -> str:
    """Echo text after sleeping (a blocking, synchronous tool).

    Args:
        text: what to echo
        seconds: how long to block
    """
    start = time.perf_counter()
    time.sleep(seconds)
    INTERVALS[text] = (start, time.perf_counter())
    return text


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: the error message
    """
    raise ValueError(reason)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


def agent_for(server: ScriptedServer, fc: FunctionCalling = NATIVE, **kw) -> Agent:
    model = OpenAICompatible(server.base_url, model="qwen-test", backoff=Backoff(initial=0.001, maximum=0.002,
                                                                                  jitter=0.0), max_retries=1)
    return Agent(model, tools=kw.pop("tools", [add, slow_echo, explode]), function_calling=fc, **kw)


async def test_native_call_observation_and_answer(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("add", {"a": 2, "b": 40}), ScriptedReply.text("The sum is 42."))
    agent = agent_for(server, system="You add numbers.")
    result = await agent.arun("What is 2 + 40?")
    assert result.answer == "The sum is 42."
    assert result.stop_reason == "answer" and result.steps == 2
    roles = [m.role for m in result.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = result.messages[2].tool_calls[0]
    assert call.name == "add" and call.arguments == {"a": 2, "b": 40}
    assert result.messages[3].tool_call_id == call.id and result.messages[3].text == "42"
    # The second request carried the tool result back to the model, with the tool schemas.
    second = server.chat_requests[1].body
    assert second["messages"][-1] == {"role": "tool", "content": "42", "tool_call_id": call.id, "name": "add"}
    assert {t["function"]["name"] for t in second["tools"]} == {"add", "slow_echo", "explode"}
    await agent.aclose()


async def test_prompted_mode_reads_a_bare_json_call(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text('{"name": "add", "arguments": {"a": 1, "b": 2}}'),
                  ScriptedReply.text("It is 3."))
    agent = agent_for(server, PROMPTED)
    result = await agent.arun("1+2?")
    assert result.answer == "It is 3."
    assert [c.name for c in result.tool_calls] == ["add"]
    first, second = (r.body for r in server.chat_requests)
    assert "tools" not in first, "prompted mode must describe tools in the prompt, not send them natively"
    assert '"add"' in first["messages"][0]["content"]
    # The history the model sees again has no tool role: the format rendered it as text.
    assert all(m["role"] in ("system", "user", "assistant") for m in second["messages"])
    assert "3" in second["messages"][-1]["content"]
    # The call is shown to the model again exactly as it wrote it (so a llama.cpp KV cache still matches).
    assert second["messages"][-2] == {"role": "assistant",
                                      "content": '{"name": "add", "arguments": {"a": 1, "b": 2}}'}
    await agent.aclose()


async def test_parallel_calls_run_concurrently_and_feed_back_in_call_order(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply(tool_calls=[
            {"name": "slow_echo", "arguments": {"text": "first", "seconds": 0.4}},
            {"name": "slow_echo", "arguments": {"text": "second", "seconds": 0.1}},
            {"name": "add", "arguments": {"a": 1, "b": 1}},
        ]),
        ScriptedReply.text("done"),
    )
    agent = agent_for(server)
    events = [e async for e in agent.astream("go")]
    (s1, e1), (s2, e2) = INTERVALS["first"], INTERVALS["second"]
    assert s2 < e1 and s1 < e2, "the two blocking calls did not run at the same time"
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished[-1].call.arguments.get("text") == "first", "events should report calls as they finish"
    result = events[-1].result
    tool_msgs = [m for m in result.messages if m.role == "tool"]
    assert [m.text for m in tool_msgs] == ["first", "second", "2"]
    assert [m.tool_call_id for m in tool_msgs] == [c.id for c in result.tool_calls]
    await agent.aclose()


async def test_tool_failures_become_observations_and_the_loop_goes_on(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply(tool_calls=[
            {"name": "explode", "arguments": {"reason": "disk on fire"}},
            {"name": "no_such_tool", "arguments": {}},
            {"name": "add", "arguments": {"a": "not a number"}},
        ]),
        ScriptedReply.text("Sorry, the tools failed."),
    )
    agent = agent_for(server)
    result = await agent.arun("break things")
    assert result.stop_reason == "answer"
    obs = [m.text for m in result.messages if m.role == "tool"]
    assert len(obs) == 1 and "ValueError" in obs[0] and "disk on fire" in obs[0]  # only the offered, fitting call ran
    # The call to a tool that does not exist and the call whose arguments break the schema were not run: the model
    # is told why after the results, once, naming the tools that do exist and the argument that is wrong.
    (note,) = [m.text for m in result.messages if m.role == "user" and "was not called" in m.text]
    assert "`no_such_tool` is not one of the offered functions" in note and "add" in note and "explode" in note
    assert "the arguments of `add` do not fit" in note and "'not a number' is not of type" in note
    assert [m.role for m in result.messages][-3:] == ["tool", "user", "assistant"]
    await agent.aclose()


async def test_max_steps_stops_a_model_that_never_answers(server: ScriptedServer) -> None:
    server.script(*[ScriptedReply.call("add", {"a": i, "b": i}) for i in range(3)])
    agent = agent_for(server, max_steps=3)
    result = await agent.arun("loop forever")
    assert result.stop_reason == "max_steps" and result.steps == 3
    assert len(result.tool_calls) == 3 and len(server.chat_requests) == 3
    await agent.aclose()


async def test_model_error_keeps_the_transcript(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("add", {"a": 1, "b": 2}), ScriptedReply.fail(400, "context length exceeded"))
    agent = agent_for(server)
    with pytest.raises(AgentModelError, match="context length") as info:
        await agent.arun("hi")
    partial = info.value.result
    assert partial.stop_reason == "model_error"
    assert [m.role for m in partial.messages] == ["user", "assistant", "tool"]
    # The stream form reports the same thing as its last event instead of raising.
    server.script(ScriptedReply.fail(400, "bad request"))
    events = [e async for e in agent.astream("again")]
    assert isinstance(events[-1], FinalAnswer) and events[-1].result.stop_reason == "model_error"
    await agent.aclose()


async def test_unreadable_call_is_reported_back_to_the_model(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text('<tool_call>I want to call add with a=1</tool_call>'),
                  ScriptedReply.text('{"name": "add", "arguments": {"a": 1, "b": 1}}'),
                  ScriptedReply.text("2"))
    agent = agent_for(server, PROMPTED)
    result = await agent.arun("1+1")
    second = server.chat_requests[1].body["messages"]
    assert "could not be read" in second[-1]["content"]
    assert result.answer == "2" and [c.name for c in result.tool_calls] == ["add"]
    await agent.aclose()


async def test_event_stream_order_and_text(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("add", {"a": 2, "b": 3}),
                  ScriptedReply.text("The answer is five.", chunk_size=3))
    agent = agent_for(server)
    events = [e async for e in agent.astream("2+3")]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["StepFinished", "ToolCallStarted", "ToolCallFinished"]
    assert kinds[-2:] == ["StepFinished", "FinalAnswer"]
    text = "".join(e.content for e in events if isinstance(e, TextDelta))
    assert text == "The answer is five." == events[-1].result.answer
    assert sum(isinstance(e, TextDelta) for e in events) > 3, "text should stream in several deltas"
    fin = next(e for e in events if isinstance(e, ToolCallFinished))
    assert fin.output.text == "5" and fin.elapsed_s >= 0
    assert isinstance(events[0], StepFinished) and events[0].elapsed_s > 0
    await agent.aclose()


def test_sync_entry_points_and_openai_dict_input(server: ScriptedServer) -> None:
    server.script(ScriptedReply.call("add", {"a": 5, "b": 5}), ScriptedReply.text("10"),
                  ScriptedReply.text("hello"))
    agent = agent_for(server)
    result = agent.run([{"role": "user", "content": "5+5"}])
    assert result.answer == "10"
    assert json.loads(json.dumps(result.to_openai()))[1]["tool_calls"][0]["function"]["name"] == "add"
    events = list(agent.stream("hi"))
    assert isinstance(events[-1], FinalAnswer) and events[-1].result.answer == "hello"
    agent.close()


async def test_zero_tools_is_plain_chat(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("plain answer"))
    agent = agent_for(server, tools=[])
    result = await agent.arun("hi")
    assert result.answer == "plain answer" and result.steps == 1
    assert "tools" not in server.chat_requests[0].body
    await agent.aclose()


async def test_react_agent_prompts_and_parses_react(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply.text('Thought: I should add.\nAction: add\nAction Input: {"a": 20, "b": 22}'),
        ScriptedReply.text("Thought: I know it.\nFinal Answer: 42"),
    )
    model = OpenAICompatible(server.base_url, model="qwen-test")
    agent = ReActAgent(model, tools=[add])
    result = await agent.arun("20+22?")
    assert result.answer == "42"
    first = server.chat_requests[0].body
    assert "Action Input" in first["messages"][0]["content"]
    assert "Observation:" in first["stop"]
    assert "42" in json.dumps(server.chat_requests[1].body["messages"][-2:], ensure_ascii=False)
    await agent.aclose()


async def test_concurrent_agent_sessions_share_one_model(server: ScriptedServer) -> None:
    server.script(*[ScriptedReply.text("answer") for _ in range(8)])
    agent = agent_for(server, tools=[])
    results = await asyncio.gather(*(agent.arun(f"q{i}") for i in range(8)))
    assert [r.answer for r in results] == ["answer"] * 8
    await agent.aclose()


async def test_a_repeated_call_is_not_run_again_and_the_model_is_asked_for_the_answer(server: ScriptedServer) -> None:
    counter = {"n": 0}

    @tool
    def tick(label: str) -> str:
        """Count calls.

        Args:
            label: any label
        """
        counter["n"] += 1
        return f"tick {counter['n']}"

    server.script(
        ScriptedReply(tool_calls=[{"name": "tick", "arguments": {"label": "a"}},
                                  {"name": "tick", "arguments": {"label": "a"}}]),
        ScriptedReply.call("tick", {"label": "a"}),  # the loop small models fall into
        ScriptedReply.text("It ticked once."),
    )
    agent = agent_for(server, tools=[tick])
    events = [e async for e in agent.astream("tick")]
    result = events[-1].result
    assert counter["n"] == 1, "identical calls must run once"
    assert len(result.messages[1].tool_calls) == 1, "duplicates within one reply are dropped"
    assert result.answer == "It ticked once." and result.stop_reason == "answer"
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"], "repeat not kept"
    assert [e.discarded for e in events if isinstance(e, StepFinished)] == [False, True, False]
    third = server.chat_requests[2].body
    # Native mode on a server that cannot continue a message: no tools offered, the answer asked for in words.
    assert "tools" not in third and "not JSON" in third["messages"][-1]["content"]
    # Prompted mode over a server that cannot continue an assistant message: an instruction to answer now.
    server.script(ScriptedReply.text('{"name": "tick", "arguments": {"label": "b"}}'),
                  ScriptedReply.text('{"name": "tick", "arguments": {"label": "b"}}'),
                  ScriptedReply.text('{"name": "tick", "arguments": {"label": "c"}} Done.'))
    prompted = agent_for(server, PROMPTED, tools=[tick])
    result = await prompted.arun("tick b")
    assert counter["n"] == 2
    last_request = server.chat_requests[-1].body["messages"]
    assert last_request[-1]["role"] == "user" and "not JSON" in last_request[-1]["content"]
    assert result.tool_calls[-1].arguments == {"label": "b"}, "calls written in answer mode are not executed"
    # Opting out runs every call.
    server.script(ScriptedReply.call("tick", {"label": "a"}), ScriptedReply.call("tick", {"label": "a"}),
                  ScriptedReply.text("done"))
    again = agent_for(server, tools=[tick], answer_on_repeat=False)
    await again.arun("tick")
    assert counter["n"] == 4
    for a in (agent, prompted, again):
        await a.aclose()
