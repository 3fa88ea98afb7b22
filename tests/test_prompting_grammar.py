"""GBNF grammars: llama.cpp's own grammar engine parses them, accepts valid answers/calls and rejects the rest.

Conformance is checked token by token with llama.cpp's grammar sampler over the real Qwen vocabulary (the GGUF is
loaded vocab-only: no weights, no decoding), so these tests are fast and use the engine that decodes for real.
"""

from __future__ import annotations

import ctypes
import math
from enum import Enum
from typing import Any

import llama_cpp  # a declared dependency: missing is a failure, not a skip
import pytest
from pydantic import BaseModel

from qwen_agent.llm.distribution.store import default_model_path
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting import FORMATS, get_format
from qwen_agent.prompting.grammar import GrammarError


class Unit(str, Enum):  # noqa: UP042 - the (str, Enum) style users write, on purpose
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Place(BaseModel):
    city: str
    country: str | None = None


class Forecast(BaseModel):
    place: Place
    days: int = 1
    unit: Unit = Unit.celsius
    hours: list[int] = []


TOOLS = [
    ToolSchema(name="get_weather", description="Weather for a city.",
               parameters={"type": "object", "properties": {"city": {"type": "string"},
                                                            "unit": {"enum": ["c", "f"]}}, "required": ["city"]}),
    ToolSchema(name="get_time", description="Current time.", parameters={"type": "object", "properties": {}}),
    ToolSchema(name="forecast", description="A forecast.", parameters=Forecast.model_json_schema()),
]

CALL_TEXT = {
    "nous": ('{"name": "get_weather", "arguments": {"city": "Paris"}}', '{"name": "get_time", "arguments": {}}'),
    "qwen": ('✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}', "✿FUNCTION✿: get_time\n✿ARGS✿: {}"),
    "react": ('Action: get_weather\nAction Input: {"city": "Paris"}', "Action: get_time\nAction Input: {}"),
}
ANSWER = {"nous": "It is sunny in Paris.", "qwen": "It is sunny in Paris.", "react": "Final Answer: It is sunny."}


@pytest.fixture(scope="module")
def vocab() -> Any:
    path = default_model_path()
    assert path.exists(), f"the embedded model is missing at {path}: run `qwen-agent models pull`"
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def accepts(llm: Any, grammar: str, sample: str) -> bool:
    """Does llama.cpp's grammar sampler let the model write ``sample`` and then stop?"""
    v = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(v, grammar.encode(), b"root")
    assert sampler, "llama.cpp could not parse the grammar"
    try:
        eos = llama_cpp.llama_vocab_eos(v)
        for tok in [*llm.tokenize(sample.encode(), add_bos=False, special=False), eos]:
            arr = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(tok, 0.0, 0.0))
            cur = llama_cpp.llama_token_data_array(arr, 1, -1, False)
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(cur))
            if math.isinf(arr[0].logit):
                return False
            if tok != eos:
                llama_cpp.llama_sampler_accept(sampler, tok)
        return True
    finally:
        llama_cpp.llama_sampler_free(sampler)


@pytest.mark.parametrize("fmt", FORMATS)
def test_grammar_admits_an_answer_or_valid_calls(vocab: Any, fmt: str) -> None:
    f = get_format(fmt)
    g = f.grammar(TOOLS, parallel=True)
    assert llama_cpp.LlamaGrammar.from_string(g, verbose=False) is not None
    one, two = CALL_TEXT[fmt]
    for sample, names in [(one, ["get_weather"]), (one + "\n" + two, ["get_weather", "get_time"])]:
        assert accepts(vocab, g, sample), sample
        assert [c.name for c in f.parse(sample, TOOLS).tool_calls] == names
    assert accepts(vocab, g, ANSWER[fmt])
    reply = f.parse(ANSWER[fmt], TOOLS)
    assert reply.tool_calls == [] and "sunny" in reply.content
    # Wrong names, wrong argument keys, missing required arguments: all outside the grammar.
    assert not accepts(vocab, g, one.replace("get_weather", "get_wether"))
    assert not accepts(vocab, g, one.replace('"city"', '"town"'))
    assert not accepts(vocab, g, one.replace('"city": "Paris"', ""))


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_parallel_only_one_call_fits(vocab: Any, fmt: str) -> None:
    g = get_format(fmt).grammar(TOOLS, parallel=False)
    one, two = CALL_TEXT[fmt]
    assert accepts(vocab, g, one)
    assert not accepts(vocab, g, one + "\n" + two)


@pytest.mark.parametrize(("fmt", "start"), [("nous", '{"name"'), ("nous", "<b>hi</b>"), ("nous", "```json"),
                                            ("nous", " {"), ("qwen", "✿ARGS✿: {}"), ("qwen", "{")])
def test_answer_cannot_start_like_a_call(vocab: Any, fmt: str, start: str) -> None:
    assert not accepts(vocab, get_format(fmt).grammar(TOOLS), start + " and more text")


def test_nous_calls_may_be_wrapped_in_tags(vocab: Any) -> None:
    g = get_format("nous").grammar(TOOLS)
    sample = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    assert accepts(vocab, g, sample)
    assert [c.name for c in get_format("nous").parse(sample, TOOLS).tool_calls] == ["get_time"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_pydantic_schema_with_nested_model_enum_optional_and_list(vocab: Any, fmt: str) -> None:
    f = get_format(fmt)
    g = f.grammar(TOOLS)
    args = '{"place": {"city": "Oslo", "country": null}, "days": 3, "unit": "fahrenheit", "hours": [1, 2]}'
    prefix = {"nous": '{"name": "forecast", "arguments": ', "qwen": "✿FUNCTION✿: forecast\n✿ARGS✿: ",
              "react": "Action: forecast\nAction Input: "}[fmt]
    suffix = "}" if fmt == "nous" else ""
    assert accepts(vocab, g, prefix + args + suffix)
    assert not accepts(vocab, g, prefix + args.replace('"fahrenheit"', '"kelvin"') + suffix)
    call = f.parse(prefix + args + suffix, TOOLS).tool_calls[0]
    assert Forecast.model_validate(call.arguments).place.city == "Oslo"


def test_a_grammar_needs_tools() -> None:
    with pytest.raises(GrammarError, match="at least one tool"):
        get_format("nous").grammar([])


@pytest.mark.model
def test_constrained_generation_with_the_real_model_yields_a_valid_call(embedded_model: Any) -> None:
    """End to end: the embedded model, held to the nous grammar, produces a call our parser reads and validates,
    with the argument the question names (the city is in the question, so the right value is knowable)."""
    from qwen_agent.llm.base import FunctionCalling, SamplingParams

    reply = embedded_model.chat([Message.user("What's the weather in Paris?")], TOOLS[:2],
                                params=SamplingParams(temperature=0.0, max_tokens=60),
                                function_calling=FunctionCalling(format="nous", constrained=True))
    assert [c.name for c in reply.tool_calls] == ["get_weather"], reply.raw_text
    assert reply.tool_calls[0].arguments.get("city") == "Paris", reply.raw_text
