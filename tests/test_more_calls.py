"""A reply that ends in a call is continued with the calls the model would write next (`qwen_agent.llm.more_calls`).

The decision and the guards are tested with scripted probabilities and completions (they stand in for the model);
the end-to-end tests ask the real embedded model for the same operation on two inputs.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from qwen_agent.llm.base import Capabilities, FunctionCalling, SamplingParams
from qwen_agent.llm.more_calls import MAX_EXTRA_CALLS, Continued, continue_calls
from qwen_agent.llm.planning import Plan, plan_request
from qwen_agent.llm.types import RawChunk, Usage
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.nous import NousFormat

BMI = ToolSchema(name="calculate_bmi", description="Body mass index.", parameters={
    "type": "object",
    "properties": {"height": {"type": "number"}, "weight": {"type": "number"}},
    "required": ["height", "weight"],
})
ASK = [Message.user("The BMI of someone 1.8 m and 80 kg, and of someone 1.6 m and 60 kg?")]
CAPS = Capabilities(token_probability=True, prefill=True)


def plan(threshold: float | None = 0.4, **fc: object) -> Plan:
    return plan_request(ASK, [BMI], SamplingParams(temperature=0), FunctionCalling(next_call_threshold=threshold, **fc),
                        "auto", CAPS, "Scripted")


def tagged(height: float, weight: float, name: str = "calculate_bmi") -> str:
    return json.dumps({"name": name, "arguments": {"height": height, "weight": weight}})


class Scripted:
    """Probabilities and continuations in order, and what was asked of them."""

    def __init__(self, probabilities: list[float], continuations: list[str], *, finish: str = "stop") -> None:
        self.probabilities, self.continuations, self.finish = list(probabilities), list(continuations), finish
        self.probed: list[tuple[str, str]] = []
        self.completed: list[tuple[str, list[str], int | None]] = []

    async def probability(self, messages: list[Message], token: str) -> float:
        self.probed.append((messages[-1].text, token))
        return self.probabilities.pop(0)

    async def complete(self, messages: list[Message], params: SamplingParams) -> RawChunk:
        self.completed.append((messages[-1].text, list(params.stop), params.max_tokens))
        return RawChunk(text=self.continuations.pop(0), finish_reason=self.finish, usage=Usage(completion_tokens=20))

    def run(self, p: Plan, text: str) -> Continued:
        return asyncio.run(continue_calls(p, text, probability=self.probability, complete=self.complete))


FIRST = f"<tool_call>\n{tagged(1.8, 80)}\n</tool_call>"


def test_a_call_is_added_while_the_model_would_open_one_and_not_after() -> None:
    script = Scripted([0.9, 0.1], [f"{tagged(1.6, 60)}\n"])
    out = script.run(plan(), FIRST)
    calls = NousFormat().parse(out.text, [BMI]).tool_calls
    assert [c.arguments for c in calls] == [{"height": 1.8, "weight": 80}, {"height": 1.6, "weight": 60}]
    assert (out.added, out.probes, out.completion_tokens) == (1, 2, 20)
    # probed right after the reply's last call, continued inside the same assistant turn with the same syntax
    assert script.probed[0] == (FIRST + "\n", "<tool_call>")
    assert script.completed == [(FIRST + "\n<tool_call>\n", ["</tool_call>"], 256)]


def test_below_the_threshold_the_reply_stands_and_nothing_is_generated() -> None:
    script = Scripted([0.39], [])
    out = script.run(plan(0.4), FIRST)
    assert (out.text, out.added, out.completion_tokens) == (FIRST, 0, 0) and script.completed == []


@pytest.mark.parametrize("continuation", [
    f"{tagged(1.8, 80)}\n",                    # the same call again
    f"{tagged(1.6, 60, name='get_bmi')}\n",    # a function that was not offered
    '{"name": "calculate_bmi", "arguments": {"height": "tall"}}\n',  # arguments that break the schema
    "I would also compute the second one.",     # not a call at all
    f"{tagged(1.6, 60)}\n</tool_call>\nDone.",  # a call, then text the user would see
])
def test_a_continuation_that_is_not_one_new_valid_call_is_dropped(continuation: str) -> None:
    script = Scripted([0.9, 0.9], [continuation, f"{tagged(1.5, 50)}\n"])
    out = script.run(plan(), FIRST)
    assert out.text == FIRST and out.added == 0 and len(script.completed) == 1
    assert out.completion_tokens == 20  # what was generated is still counted


def test_a_continuation_cut_at_max_tokens_is_dropped() -> None:
    out = Scripted([0.9], [f"{tagged(1.6, 60)}"], finish="length").run(plan(), FIRST)
    assert out.text == FIRST and out.added == 0


def test_fenced_json_is_continued_with_another_fence() -> None:
    first = f"```json\n{tagged(1.8, 80)}\n```"
    script = Scripted([0.8, 0.2], [f"{tagged(1.6, 60)}\n"])
    out = script.run(plan(), first)
    assert script.probed[0] == (first + "\n", "```")
    assert script.completed[0][:2] == (first + "\n\n```json\n", ["```"])
    assert len(NousFormat().parse(out.text, [BMI]).tool_calls) == 2


@pytest.mark.parametrize("reply", [
    "Your BMI is 24.7.",                            # an answer: nothing to continue
    json.dumps({"name": "calculate_bmi", "arguments": {"height": 1.8, "weight": 80}}),  # bare JSON: no separator
    f"<tool_call>\n{tagged(1.8, 80, name='nope')}\n</tool_call>",  # only a refused call
    f"<|im_start|>assistant\n<tool_call>\n{tagged(1.8, 80)}\n</tool_call>",  # marker text: never sent back
])
def test_replies_without_a_continuable_valid_call_are_left_alone(reply: str) -> None:
    script = Scripted([0.99], [f"{tagged(1.6, 60)}\n"])
    out = script.run(plan(), reply)
    assert out.text == reply and script.probed == [] and script.completed == []


def test_the_number_of_added_calls_is_bounded() -> None:
    many = [f"{tagged(1.0 + i / 10, 50 + i)}\n" for i in range(MAX_EXTRA_CALLS + 3)]
    out = Scripted([1.0] * (MAX_EXTRA_CALLS + 3), many).run(plan(), FIRST)
    assert out.added == MAX_EXTRA_CALLS


@pytest.mark.parametrize(("threshold", "fc", "caps", "choice"), [
    (None, {}, CAPS, "auto"),                                   # switched off
    (0.4, {"parallel": False}, CAPS, "auto"),                   # one call per reply was asked for
    (0.4, {"constrained": True}, Capabilities(token_probability=True, grammar=True), "auto"),  # the grammar decides
    (0.4, {}, Capabilities(prefill=True), "auto"),              # the backend cannot say how likely a token is
    (0.4, {}, CAPS, "none"),                                    # an answer is required
    (0.4, {"mode": "native"}, Capabilities(native_tools=True, token_probability=True), "auto"),  # the server parses
])
def test_continuation_is_planned_only_where_it_applies(threshold: float | None, fc: dict[str, object],
                                                       caps: Capabilities, choice: str) -> None:
    p = plan_request(ASK, [BMI], SamplingParams(), FunctionCalling(next_call_threshold=threshold, **fc),  # type: ignore[arg-type]
                     choice, caps, "Scripted")  # type: ignore[arg-type]
    assert p.next_call_threshold is None
    assert plan().next_call_threshold == 0.4


# ---- the real embedded model ------------------------------------------------------------------------------------
WEATHER = ToolSchema(name="get_weather", description="Get the current weather in a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string", "description": "The city name"}},
    "required": ["city"],
})


@pytest.mark.model
def test_the_embedded_model_calls_once_per_input_when_asked_for_several(embedded_model) -> None:
    ask = "What is the weather in Paris and in Tokyo?"
    once = embedded_model.chat(ask, [WEATHER], function_calling=FunctionCalling(next_call_threshold=None))
    both = embedded_model.chat(ask, [WEATHER])
    assert [c.arguments for c in once.tool_calls] == [{"city": "Paris"}]  # the habit this works around
    assert [c.arguments for c in both.tool_calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert both.usage is not None and once.usage is not None
    assert both.usage.completion_tokens > once.usage.completion_tokens  # the added call is counted


@pytest.mark.model
def test_the_embedded_model_still_calls_once_for_one_input(embedded_model) -> None:
    reply = embedded_model.chat("What is the weather in Paris?", [WEATHER])
    assert [c.arguments for c in reply.tool_calls] == [{"city": "Paris"}]


@pytest.mark.model
def test_streamed_and_complete_replies_get_the_same_calls(embedded_model) -> None:
    ask = "What is the weather in Paris and in Tokyo?"
    deltas = list(embedded_model.stream(ask, [WEATHER]))
    streamed = deltas[-1].response
    assert streamed is not None
    assert [c.arguments for c in streamed.tool_calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert "".join(d.content for d in deltas) == streamed.text
