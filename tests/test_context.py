"""Context management: what the prompt fitter drops and cuts, and what it never touches.

The policy is exercised directly (its measure is the byte bound, exact for these ASCII texts), then end to end
over real HTTP, where the scripted server shows which messages a request actually carried.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support_scripted import scripted_server

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import SamplingParams
from qwen_agent.llm.context import fit_conversation, prompt_bytes
from qwen_agent.llm.errors import ContextLengthError
from qwen_agent.messages import Message, ToolCall
from qwen_agent.testing import ScriptedReply, ScriptedServer


async def fit(messages: list[Message], budget: int):
    async def measure(kept: list[Message]) -> tuple[int, int]:
        size = prompt_bytes(kept)
        return size, size

    return await fit_conversation(messages, budget, lambda kept: kept, measure)


def history(turns: int, size: int = 400) -> list[Message]:
    msgs = [Message.system("You are terse.")]
    for i in range(turns):
        msgs += [Message.user(f"question {i} " + "q" * size), Message.assistant(f"answer {i} " + "a" * size)]
    return msgs


async def test_a_prompt_that_fits_is_sent_unchanged() -> None:
    msgs = [*history(2), Message.user("latest")]
    kept, report = await fit(msgs, 10_000)
    assert kept == msgs and report is None


async def test_oldest_turns_go_first_and_system_and_latest_turn_stay() -> None:
    msgs = [*history(10), Message.user("the latest question")]
    budget = prompt_bytes(msgs) // 2
    kept, report = await fit(msgs, budget)
    assert prompt_bytes(kept) <= budget
    assert kept[0] == msgs[0] and kept[-1] == msgs[-1]
    # What stays is a suffix of the history: the newest turns, in order.
    kept_history = kept[1:-1]
    assert kept_history == msgs[len(msgs) - 1 - len(kept_history):-1]
    assert kept_history[0].role == "user", "a turn is dropped whole, never from its middle"
    assert report is not None and report.dropped_messages == len(msgs) - len(kept) > 0
    assert len(msgs) == 22, "the caller's list is not modified"


async def test_a_call_keeps_its_result_when_older_turns_are_dropped() -> None:
    call = ToolCall.make("lookup", {"q": "x"})
    old_turn = [Message.user("old " + "o" * 3000), Message.assistant(None, [call]),
                Message.tool("result " + "r" * 100, call.id), Message.assistant("done")]
    newer = [Message.user("newer"), Message.assistant(None, [call]), Message.tool("fresh result", call.id),
             Message.assistant("ok")]
    msgs = [Message.system("sys"), *old_turn, *newer, Message.user("now?")]
    kept, report = await fit(msgs, prompt_bytes(msgs) - 1000)
    assert kept == [msgs[0], *newer, msgs[-1]]
    assert report is not None and report.dropped_messages == 4


async def test_a_huge_observation_in_the_current_turn_is_cut_in_the_middle_with_a_note() -> None:
    call = ToolCall.make("read_file", {"path": "big.txt"})
    observation = "HEAD-MARK " + "x" * 20_000 + " TAIL-MARK"
    msgs = [Message.system("sys"), Message.user("summarise big.txt"), Message.assistant(None, [call]),
            Message.tool(observation, call.id)]
    kept, report = await fit(msgs, 3000)
    assert prompt_bytes(kept) <= 3000
    cut = kept[-1].text
    assert cut.startswith("HEAD-MARK") and cut.endswith("TAIL-MARK")
    assert "characters of this result were cut" in cut
    assert kept[:3] == msgs[:3] and msgs[-1].text == observation
    assert report is not None and report.cut_observations == 1 and report.cut_characters > 17_000


async def test_a_latest_user_turn_over_the_budget_is_a_typed_error_not_a_silent_cut() -> None:
    msgs = [Message.system("sys"), Message.user("u" * 5000)]
    with pytest.raises(ContextLengthError, match="max_input_tokens"):
        await fit(msgs, 1000)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    yield from scripted_server(monkeypatch)


async def test_the_request_on_the_wire_carries_only_what_fits(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("Paris"))
    model = OpenAICompatible(server.base_url, server.model, max_input_tokens=1500,
                             params=SamplingParams(max_tokens=16))
    msgs = [*history(8), Message.user("What is the capital of France?")]
    async with model:
        response = await model.achat(msgs)
    sent = server.chat_requests[-1].body["messages"]
    assert sent[0]["content"] == "You are terse." and sent[-1]["content"] == "What is the capital of France?"
    assert len(sent) < len(msgs)
    assert response.truncation is not None and response.truncation.budget == 1500
    assert response.truncation.dropped_messages == len(msgs) - len(sent)


async def test_default_budget_is_32k_tokens(server: ScriptedServer) -> None:
    model = OpenAICompatible(server.base_url, server.model)
    async with model:
        assert await model.input_budget() == 32768
