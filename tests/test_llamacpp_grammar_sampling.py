"""Grammar-constrained decoding that checks the model's chosen token (llama.cpp server's way) gives the same tokens
as llama-cpp-python's full-vocabulary path, and falls back to the full check when the model's choice is refused.
On the real embedded model, greedy, through the backend's own request path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.base import SamplingParams
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.grammar import nous_grammar, react_grammar

pytestmark = pytest.mark.model

WEATHER = ToolSchema(name="get_weather", description="Current weather for a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                                     "days": {"type": "integer"}}, "required": ["city"]})
SEARCH = ToolSchema(name="search", description="Search the web.", parameters={
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})


@pytest.fixture
def model(embedded_model: LlamaCpp) -> Iterator[LlamaCpp]:
    yield embedded_model
    embedded_model.grammar_sampling = "checked"


def _sampler(model: LlamaCpp):  # type: ignore[no-untyped-def]
    return model._handle.__dict__["_qwen_agent_last_sampler"]


CASES = [
    ("Is water wet? Explain in detail.", 'root ::= "yes" | "no"'),
    ("What's the weather in Paris for the next 3 days, in celsius?", nous_grammar([WEATHER, SEARCH])),
    ("Find recent news about the Mars rover.", react_grammar([WEATHER, SEARCH])),
    ("Write a haiku about autumn.", 'root ::= [A-Z] [a-z ]{3,40} "."'),
]


@pytest.mark.parametrize(("question", "grammar"), CASES, ids=["yes-no", "nous-tools", "react-tools", "pattern"])
async def test_checked_sampling_gives_the_full_paths_tokens(model: LlamaCpp, question: str, grammar: str) -> None:
    messages = [Message.user(question)]
    params = model.params.merged(SamplingParams(max_tokens=48))
    # The prompt's last token is evaluated again on a warm cache, and a batch evaluation's logits differ from a
    # single token's in the last bits, which can flip a near tie: so both compared runs start from a warm cache.
    await model._complete_raw(messages, params, grammar=grammar)
    model.grammar_sampling = "checked"
    checked = await model._complete_raw(messages, params, grammar=grammar)
    model.grammar_sampling = "full"
    full = await model._complete_raw(messages, params, grammar=grammar)
    assert checked.text == full.text
    assert checked.usage.completion_tokens == full.usage.completion_tokens
    model.grammar_sampling = "checked"
    await model._complete_raw(messages, params, grammar=grammar)
    assert _sampler(model).tokens >= checked.usage.completion_tokens


async def test_a_refused_choice_falls_back_to_the_full_check(model: LlamaCpp) -> None:
    """The model wants to explain; the grammar allows one word. Its first choice is refused, the whole vocabulary
    is checked for that step, and the reply obeys the grammar."""
    messages = [Message.user("Is water wet? Explain in detail.")]
    free = await model._complete_raw(messages, model.params.merged(SamplingParams(max_tokens=8)))
    assert free.text.strip().lower() not in {"yes", "no"}
    bound = await model._complete_raw(messages, model.params.merged(SamplingParams(max_tokens=8)),
                                      grammar='root ::= "yes" | "no"')
    assert bound.text in {"yes", "no"}
    sampler = _sampler(model)
    assert 1 <= sampler.full_passes < sampler.tokens + 1


async def test_sampling_at_temperature_obeys_the_grammar(model: LlamaCpp) -> None:
    grammar = 'root ::= ("red" | "green" | "blue") " " [0-9]'
    params = model.params.merged(SamplingParams(max_tokens=8, temperature=1.2, seed=7))
    for i in range(3):
        reply = await model._complete_raw([Message.user(f"Pick a colour and a digit, try {i}.")], params,
                                          grammar=grammar)
        colour, _, digit = reply.text.partition(" ")
        assert colour in {"red", "green", "blue"} and digit.isdigit() and len(digit) == 1, reply.text
