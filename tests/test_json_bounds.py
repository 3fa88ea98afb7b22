"""The bounded JSON readers agree with the simple definitions they replace, on any text, and never recurse.

`json_span_end` and `SpanIndex` are checked against the original one-character-at-a-time span scanner (kept here
as the reference), `bounded_json` against ``json.loads`` and a plain depth count.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_agent import bounded_json
from qwen_agent.bounded_json import JsonDepthError, nesting_exceeds, value_exceeds
from qwen_agent.llm.backends.openai_wire import StreamAccumulator, parse_completion
from qwen_agent.llm.errors import ModelProtocolError
from qwen_agent.messages import ToolCall
from qwen_agent.prompting.spans import SpanIndex, json_span_end, lenient_nesting_exceeds


def reference_span_end(text: str, start: int) -> int | None:
    """The span scanner as it was before it had to be fast (the definition the fast ones must match)."""
    depth = 0
    quote = ""
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch == '"' or ch == "'":
            if not (ch == "'" and i > 0 and text[i - 1].isalnum()):
                quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:
                return i + 1
    return None


jsonish = st.text(alphabet=st.sampled_from(list("{}[]\"'\\ a1:,")), max_size=120)


@settings(max_examples=600, deadline=None)
@given(text=jsonish, cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
def test_span_index_and_single_scan_match_the_reference(text: str, cuts: list[int]) -> None:
    whole = SpanIndex()
    whole.see(text)
    growing = SpanIndex()  # read as a stream: the text arrives in pieces and is asked about in between
    for cut in sorted(min(c, len(text)) for c in cuts):
        growing.see(text[:cut])
        for i in range(cut):
            if text[i] in "{[":
                growing.end(i)
    growing.see(text)
    for i, ch in enumerate(text):
        if ch in "{[":
            expected = reference_span_end(text, i)
            assert json_span_end(text, i) == expected
            assert whole.end(i) == expected
            assert growing.end(i) == expected
            closed_before = expected is not None and expected <= i + 5
            assert (json_span_end(text, i, i + 5) is not None) == closed_before


@settings(max_examples=300, deadline=None)
@given(text=jsonish)
def test_next_closed_lists_exactly_the_closed_openers(text: str) -> None:
    index = SpanIndex()
    index.see(text)
    closed = [i for i, ch in enumerate(text) if ch in "{[" and reference_span_end(text, i) is not None]
    found, pos = [], 0
    while (q := index.next_closed(pos)) is not None:
        found.append(q)
        pos = q + 1
    assert found == closed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab[]{}\"'\\", max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(min_value=0, max_value=6))
def test_nesting_checks_match_the_depth_of_the_value(value: object, limit: int) -> None:
    text = json.dumps(value)
    deep = depth_of(value) > limit
    assert nesting_exceeds(text, limit) == deep
    assert lenient_nesting_exceeds(text, limit) == deep
    assert value_exceeds(value, limit) == deep
    if deep:
        with pytest.raises(JsonDepthError):
            bounded_json.loads(text, max_depth=limit)
    else:
        assert bounded_json.loads(text, max_depth=limit) == value


@pytest.mark.parametrize("depth", [65, 2_000, 200_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_json_is_a_value_error_never_recursion(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    for text in (opener * depth + closer * depth, opener * depth):
        with pytest.raises(ValueError):
            bounded_json.loads(text)
        with pytest.raises(ValueError):
            bounded_json.loads(text.encode())
    assert value_exceeds(json.loads("[" * 900 + "]" * 900))  # iterative: fine below and above the recursion limit


def test_native_arguments_too_deep_stay_raw() -> None:
    deep = "[" * 2000 + "]" * 2000
    call = ToolCall.from_openai({"id": "c1", "function": {"name": "add", "arguments": deep}})
    assert call.arguments == {} and call.function.raw_arguments == deep
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c2", "type": "function", "function": {"name": "add", "arguments": '{"a": ' + deep + "}"}}]},
        "finish_reason": "tool_calls"}]}
    chunk = parse_completion(body, "http://127.0.0.1/v1/chat/completions")
    assert chunk.tool_calls is not None and chunk.tool_calls[0].arguments == {}


def test_a_too_deep_sse_event_is_a_protocol_error() -> None:
    acc = StreamAccumulator("http://127.0.0.1/v1/chat/completions")
    with pytest.raises(ModelProtocolError, match="levels deep"):
        acc.feed('{"choices": [{"index": 0, "delta": {"content": ' + "[" * 5000 + "]" * 5000 + "}}]}")
