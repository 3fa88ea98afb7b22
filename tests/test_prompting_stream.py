"""Streaming parsers agree with the full parse, and no input (random or malformed) makes parsing raise."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen_agent.messages import ToolSchema
from qwen_agent.prompting import FORMATS, ParsedReply, get_format

TOOLS = [
    ToolSchema(name="get_weather", description="Weather for a city.",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ToolSchema(name="get_time", description="Current time.", parameters={"type": "object", "properties": {}}),
]

FRAGMENTS = [
    "<tool_call>", "</tool_call>", "\n<tool_call>\n", "{", "}", "[", "]", '"name"', ": ", '"get_weather"', ", ",
    '"arguments"', '{"city": "Paris"}', '"parameters"', "'get_time'", "'name'", "```json\n", "```", "\n```\n",
    "<think>", "</think>", "✿FUNCTION✿: ", "✿ARGS✿: ", "✿RETURN✿: ", "Action: ", "Action Input: ",
    "Final Answer: ", "Thought: ", "\n", " ", "Hello", "the weather", "True", "None", ",", "'", '"', "\\",
    "get_weather", "get_time", "Paris", "✿", "<", ">", "`", ":",
]

SAMPLES = [
    "Hello! I am fine, thanks. How can I help?",
    "Sure!\n```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```\nOne moment.",
    "Let me check.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
    "<think>The user wants the time.</think>It is noon.",
    "Here is code:\n```python\nprint({'a': 1})\n```\nDone.",
    "Thought: I need the weather\nAction: get_weather\nAction Input: {\"city\": \"Paris\"}",
    "Thought: I now know the final answer\nFinal Answer: It is sunny in Paris.",
    ": It is 18 degrees.",
    "✿FUNCTION✿: get_weather\n✿ARGS✿: {\"city\": \"Paris\"}",
    "Use {braces} and [brackets] and a ` tick.",
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_time", "arguments": {}}',
]


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    out, last = [], 0
    for p in [*points, len(text)]:
        out.append(text[last:p])
        last = p
    return [s for s in out if s]


def _same(a: ParsedReply, b: ParsedReply) -> None:
    assert (a.content, a.reasoning, a.errors) == (b.content, b.reasoning, b.errors)
    assert [(c.name, c.arguments, c.function.raw_arguments) for c in a.tool_calls] == \
        [(c.name, c.arguments, c.function.raw_arguments) for c in b.tool_calls]


def _stream(fmt: str, chunks: list[str], tools):
    parser = get_format(fmt).stream_parser(tools)
    content, reasoning = "", ""
    for chunk in chunks:
        delta = parser.feed(chunk)
        content += delta.content
        reasoning += delta.reasoning
    return parser, content, reasoning


def _check(fmt: str, text: str, cuts: list[int], tools) -> None:
    full = get_format(fmt).parse(text, tools)
    parser, content, _ = _stream(fmt, _split(text, cuts), tools)
    _same(parser.finish(), full)
    orphan_think = "</think>" in text  # a </think> without <think> re-labels text already shown (documented gap)
    if not orphan_think:
        assert full.content.startswith(content), (content, full.content)
        assert content + parser.flush().content == full.content


texts = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=12)
tool_lists = st.sampled_from([TOOLS, None, []])


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, cut=cuts, tools=tool_lists)
def test_malformed_fragments_never_raise_and_stream_matches(fmt: str, text: str, cut: list[int], tools) -> None:
    _check(fmt, text, cut, tools)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300), cut=cuts)
def test_arbitrary_unicode_never_raises(fmt: str, text: str, cut: list[int]) -> None:
    _check(fmt, text, cut, TOOLS)


plain = st.text(alphabet=st.sampled_from(list("abc XYZ.,!?:;-()[]{}\n\t0123456789")), max_size=300)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=100, deadline=None)
@given(text=plain, cut=cuts)
def test_text_without_call_shape_has_no_calls_and_streams_whole(fmt: str, text: str, cut: list[int]) -> None:
    full = get_format(fmt).parse(text, TOOLS)
    assert full.tool_calls == [] and full.errors == []
    parser, content, _ = _stream(fmt, _split(text, cut), TOOLS)
    assert content + parser.flush().content == full.content


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text", SAMPLES)
@settings(max_examples=40, deadline=None)
@given(cut=cuts)
def test_realistic_replies_stream_like_parse(fmt: str, text: str, cut: list[int]) -> None:
    _check(fmt, text, cut, TOOLS)


@pytest.mark.parametrize("fmt", ["nous", "qwen"])
@settings(max_examples=60, deadline=None)
@given(text=plain.filter(lambda s: s.rstrip()[-1:].isalnum()), cut=cuts)
def test_plain_reply_content_is_fully_streamed_without_flush(fmt: str, text: str, cut: list[int]) -> None:
    """Nothing is held back at the end of a plain reply that ends in a word: deltas alone equal the content."""
    full = get_format(fmt).parse(text, TOOLS)
    _, content, _ = _stream(fmt, _split(text, cut), TOOLS)
    assert content == full.content


@pytest.mark.parametrize("fmt", FORMATS)
def test_call_syntax_is_never_shown(fmt: str) -> None:
    text = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    parser, content, _ = _stream(fmt, list(text), TOOLS)  # one character at a time
    assert "<" not in content and "{" not in content
    reply = parser.finish()
    assert [c.name for c in reply.tool_calls] == ["get_weather"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_reasoning_streams_as_reasoning(fmt: str) -> None:
    text = "<think>Paris is in France.</think>It is sunny."
    _, content, reasoning = _stream(fmt, list(text), TOOLS)
    assert reasoning == "Paris is in France."
    assert "think" not in content and "Paris" not in content


def test_react_final_answer_streams_after_the_marker() -> None:
    text = "Thought: I now know the final answer\nFinal Answer: It is sunny in Paris today"
    _, content, reasoning = _stream("react", list(text), TOOLS)
    assert content == "It is sunny in Paris today"
    assert reasoning == "I now know the final answer"
