"""Hostile replies: deep nesting, unclosed brackets and quotes, 100 kB of call syntax, random marker soup.

Parsing must return a reading (text, calls, errors) and nothing else, and its work must stay bounded: nesting
deeper than the cap is refused, json_repair never reads more than the per-reply budget, the output is capped.
No timing here (benchmarks/bench_parser_adversarial.py measures it); these tests check the bounds that make the
time linear, and the exact inputs that used to take seconds or raise RecursionError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import json_repair
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen_agent.bounded_json import MAX_DEPTH, value_exceeds
from qwen_agent.messages import ToolSchema
from qwen_agent.prompting import FORMATS, ParsedReply, get_format
from qwen_agent.prompting.call_shapes import MAX_CALLS, MAX_ERRORS
from qwen_agent.prompting.lenient_json import REPAIR_BUDGET, REPAIR_FRAGMENT

TOOLS = [
    ToolSchema(name="add", description="Add two numbers.",
               parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
    ToolSchema(name="get_weather", description="Weather for a city.",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
]
DEEP = "[" * 2000 + "]" * 2000
CALL = '{"name": "add", "arguments": {"a": 1, "b": 2}}'


@contextlib.contextmanager
def repair_spy() -> Iterator[list[int]]:
    """The length of every text handed to json_repair while the block runs."""
    sizes: list[int] = []
    real = json_repair.repair_json

    def spy(text: str, *args: object, **kwargs: object) -> object:
        sizes.append(len(text))
        return real(text, *args, **kwargs)

    with mock.patch.object(json_repair, "repair_json", spy):
        yield sizes


def check_bounded(reply: ParsedReply) -> None:
    """What every reading of any reply must look like."""
    assert isinstance(reply.content, str) and isinstance(reply.reasoning, str)
    assert len(reply.tool_calls) <= MAX_CALLS
    assert len(reply.errors) <= MAX_ERRORS
    assert all(isinstance(e, str) and len(e) < 400 for e in reply.errors)
    for call in reply.tool_calls:
        assert isinstance(call.arguments, dict)
        assert not value_exceeds(call.arguments, MAX_DEPTH), "the depth cap let a deeper value through"


def read_everywhere(text: str, chunk: int = 997) -> list[ParsedReply]:
    """Parse ``text`` in every format, whole and streamed, checking the bounds and the repair budget."""
    readings = []
    for fmt in FORMATS:
        with repair_spy() as sizes:
            reply = get_format(fmt).parse(text, TOOLS)
        assert all(size <= REPAIR_FRAGMENT for size in sizes) and sum(sizes) <= REPAIR_BUDGET, sizes
        check_bounded(reply)
        stream = get_format(fmt).stream_parser(TOOLS)
        shown = "".join(stream.feed(text[i:i + chunk]).content for i in range(0, len(text), chunk))
        final = stream.finish()
        assert (final.content, final.errors, [c.name for c in final.tool_calls]) == \
            (reply.content, reply.errors, [c.name for c in reply.tool_calls])
        if "</think>" not in text:  # an orphan </think> re-labels text already shown (documented gap)
            assert reply.content.startswith(shown)
            assert shown + stream.flush().content == reply.content
        readings.append(reply)
    return readings


# ---- the inputs that used to hang or crash -------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    '[{"' * 200,  # 600 characters, 12 s before
    "{'a" * 2000,  # 17.7 s before
    ("{" + ", ".join(f'"k{i}": "v{i}"' for i in range(4000)))[:40_000],  # an unclosed 40k object, 16 s before
    DEEP,
])
def test_unclosed_or_deep_prose_is_plain_text(text: str) -> None:
    for reply in read_everywhere(text):
        assert reply.tool_calls == [] and reply.errors == []
        assert reply.content == text.strip()


@pytest.mark.parametrize("text", [
    "<tool_call>" + DEEP + "</tool_call>",
    "<tool_call>" + "[" * 2000,
    '<tool_call>{"name": "add", "arguments": {"a": ' + DEEP + "}}</tool_call>",
    '{"name": "add", "arguments": {"a": ' + DEEP + "}}",
    '```json\n{"name": "add", "arguments": {"a": ' + DEEP + "}}\n```",
    '{"name": "add", "arguments": "{\\"a\\": ' + DEEP + '}"}',
])
def test_deep_call_attempts_become_errors_that_say_why(text: str) -> None:
    for reply in read_everywhere(text):
        assert reply.tool_calls == []
        assert len(reply.errors) == 1 and f"nested more than {MAX_DEPTH} levels" in reply.errors[0]


@pytest.mark.parametrize(("fmt", "text"), [
    ("qwen", '✿FUNCTION✿: add\n✿ARGS✿: {"a": ' + DEEP + "}"),
    ("react", 'Action: add\nAction Input: {"a": ' + DEEP + "}"),
])
def test_deep_arguments_after_a_name_marker_are_reported(fmt: str, text: str) -> None:
    reply = get_format(fmt).parse(text, TOOLS)
    assert reply.tool_calls == []
    assert len(reply.errors) == 1 and "add" in reply.errors[0] and f"more than {MAX_DEPTH} levels" in reply.errors[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_depth_cap_is_exact(fmt: str) -> None:
    def call(depth: int) -> str:  # the whole call JSON nests `depth` levels deep
        inner = "[" * (depth - 2) + "]" * (depth - 2)
        return f'<tool_call>{{"name": "add", "arguments": {{"a": {inner}}}}}</tool_call>'

    at_cap = get_format(fmt).parse(call(MAX_DEPTH), TOOLS)
    assert [c.name for c in at_cap.tool_calls] == ["add"] and at_cap.errors == []
    assert not value_exceeds(at_cap.tool_calls[0].arguments, MAX_DEPTH)
    over = get_format(fmt).parse(call(MAX_DEPTH + 1), TOOLS)
    assert over.tool_calls == [] and f"more than {MAX_DEPTH} levels" in over.errors[0]


def test_repair_is_budgeted_per_reply_and_a_large_broken_call_is_told_to_write_json() -> None:
    broken = "{'name': 'add', 'arguments': {'a': 1, 'b': 2,},}"  # needs json_repair
    with repair_spy() as sizes:
        reply = get_format("nous").parse("\n".join(f"<tool_call>{broken}</tool_call>" for _ in range(200)), TOOLS)
    assert sum(sizes) <= REPAIR_BUDGET and len(sizes) == REPAIR_BUDGET // len(broken)
    assert [c.name for c in reply.tool_calls] == ["add"] * len(sizes)
    assert reply.errors and len(reply.errors) <= MAX_ERRORS
    big = "{'name': 'add', 'arguments': {'a': 1, 'note': '" + "x" * 2000 + "'}}"
    reply = get_format("nous").parse(f"<tool_call>{big}</tool_call>", TOOLS)
    assert reply.tool_calls == [] and "write valid JSON" in reply.errors[0]
    valid_big = '{"name": "add", "arguments": {"a": 1, "note": "' + "x" * 50_000 + '"}}'  # json.loads: any size
    assert [c.name for c in get_format("nous").parse(valid_big, TOOLS).tool_calls] == ["add"]


def test_calls_and_errors_per_reply_are_capped() -> None:
    many = "\n".join(f"<tool_call>{CALL}</tool_call>" for _ in range(3 * MAX_CALLS))
    reply = get_format("nous").parse(many, TOOLS)
    assert len(reply.tool_calls) == MAX_CALLS
    assert any("only the first" in e for e in reply.errors)
    junk = "\n".join("<tool_call>nothing here</tool_call>" for _ in range(1000))
    reply = get_format("nous").parse(junk, TOOLS)
    assert len(reply.errors) == MAX_ERRORS and "more problems" in reply.errors[-1]
    assert "nothing here" in reply.content, "call syntax past the attempt limit stays visible as text"


def test_calls_before_a_hostile_tail_are_still_read() -> None:
    text = CALL + "\n" + '[{"' * 30_000
    for reply in read_everywhere(text, chunk=4096):
        assert [c.name for c in reply.tool_calls] == ["add"] and reply.errors == []


# ---- properties over generated hostile replies --------------------------------------------------------------

UNITS = ['[{"', "{'a", '{"a', '{"a":', '{"a": [', "[", "{", '"', "'", "\\", '\\"', "```json\n{", "<tool_call>{",
         "<tool_call>", "</tool_call>", "<think>", "</think>", "✿FUNCTION✿: add\n✿ARGS✿: {", "Action: add {",
         "Action: add\nAction Input: {", "Thought: ", "Final Answer: ", '{"name": "add", "arguments": {',
         "it's [", CALL, "x "]
# "@" marks where the nesting goes.
WRAPPERS = ["@", "<tool_call>@</tool_call>", "<tool_call>@", "```json\n@\n```", '{"name": "add", "arguments": @}',
            '✿FUNCTION✿: add\n✿ARGS✿: {"a": @}', 'Action: add\nAction Input: {"a": @}', "<think>@</think>@"]

deep_nesting = st.builds(
    lambda unit, depth, closed, wrapper: wrapper.replace("@", unit * depth + ("]" * depth if closed else "")),
    st.sampled_from(["[", "{", '{"a":', "[{", '{"a": [', "[{\"a\": "]),
    st.integers(min_value=MAX_DEPTH + 1, max_value=5000),
    st.booleans(),
    st.sampled_from(WRAPPERS),
)
repeats = st.builds(lambda unit, n: unit * n, st.sampled_from(UNITS), st.integers(min_value=1, max_value=3000))
big_repeats = st.builds(lambda unit, n: (unit * (n // len(unit) + 1))[:n], st.sampled_from(UNITS),
                        st.integers(min_value=50_000, max_value=100_000))
marker_soup = st.lists(st.one_of(st.sampled_from(UNITS), repeats), max_size=60).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=deep_nesting)
def test_deep_nesting_never_raises_and_no_call_deeper_than_the_cap(text: str) -> None:
    read_everywhere(text)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=marker_soup, chunk=st.integers(min_value=1, max_value=512))
def test_marker_soup_reads_within_bounds(text: str, chunk: int) -> None:
    read_everywhere(text, chunk)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=big_repeats)
def test_100_kb_replies_read_within_bounds(text: str) -> None:
    read_everywhere(text, chunk=8192)
