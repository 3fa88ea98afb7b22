"""Messages and tool schemas convert losslessly from and to OpenAI chat-completions dicts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwen_agent.messages import (
    FilePart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolSchema,
    as_messages,
    as_tool_schemas,
)

OPENAI_HISTORY = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                     "detail": "low"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "describe", "arguments": "{\"detail\": \"high\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "ocr", "arguments": "{}"}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "name": "describe", "content": "a cat"},
    {"role": "tool", "tool_call_id": "call_2", "content": "no text"},
    {"role": "assistant", "content": "A cat, no text.", "reasoning_content": "simple"},
    {"role": "user", "content": "thanks", "name": "bob", "x_vendor_field": {"keep": True}},
]


def test_openai_history_round_trips_exactly() -> None:
    messages = as_messages(OPENAI_HISTORY)
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]
    assert isinstance(messages[1].content[1], ImagePart)
    assert messages[2].tool_calls[0].arguments == {"detail": "high"}
    assert [m.to_openai() for m in messages] == OPENAI_HISTORY
    assert json.loads(json.dumps([m.to_openai() for m in messages])) == OPENAI_HISTORY


def test_raw_argument_strings_are_kept_verbatim() -> None:
    raw = '{"a": 1,   "b": [1,2]}'
    call = ToolCall.from_openai({"id": "c", "type": "function", "function": {"name": "f", "arguments": raw}})
    assert call.arguments == {"a": 1, "b": [1, 2]}
    assert call.to_openai()["function"]["arguments"] == raw
    broken = ToolCall.from_openai({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}})
    assert broken.arguments == {} and broken.to_openai()["function"]["arguments"] == "{oops"


def test_constructors_text_and_parts() -> None:
    m = Message.user([TextPart(text="a"), FilePart(file={"filename": "x.csv", "path": "/tmp/x.csv"}),
                      TextPart(text="b")])
    assert m.text == "ab"
    assert Message.tool("42", "call_9", name="add").to_openai() == {
        "role": "tool", "content": "42", "tool_call_id": "call_9", "name": "add"}
    call = ToolCall.make("add", {"a": 1})
    assert call.id.startswith("call_") and call.name == "add"
    assert Message.assistant(None, [call]).to_openai()["content"] is None
    assert as_messages("hello") == [Message.user("hello")]


def test_legacy_function_role_becomes_tool() -> None:
    m = Message.from_openai({"role": "function", "name": "add", "content": "3"})
    assert m.role == "tool" and m.tool_call_id == "add"


def test_tool_schemas_from_openai_and_plain_dicts() -> None:
    spec = {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}
    (schema,) = as_tool_schemas([spec])
    assert schema.name == "get_weather" and schema.parameters["required"] == ["city"]
    assert schema.to_openai() == spec
    assert as_tool_schemas([spec["function"]])[0] == schema
    assert ToolSchema(name="x").parameters == {"type": "object", "properties": {}}


def test_invalid_role_is_a_clear_validation_error() -> None:
    with pytest.raises(ValueError, match="role"):
        Message.from_openai({"role": "robot", "content": "hi"})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=10)


@given(st.text(max_size=50), st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=4))
def test_any_call_round_trips(name: str, arguments: dict) -> None:
    msg = Message.assistant("x", [ToolCall.make(name or "f", arguments, id="c1")])
    back = Message.from_openai(json.loads(json.dumps(msg.to_openai())))
    assert back.tool_calls[0].arguments == arguments
    assert back.to_openai() == msg.to_openai()
