"""Lenient call parsing: a table of tricky real-world reply shapes, read by each format."""

from __future__ import annotations

import pytest

from qwen_agent.messages import ToolSchema
from qwen_agent.prompting import FORMATS, get_format

TOOLS = [
    ToolSchema(name="get_weather", description="Weather for a city.",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ToolSchema(name="get_time", description="Current time.", parameters={"type": "object", "properties": {}}),
    ToolSchema(name="add", description="Add two numbers.",
               parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
]
W = ("get_weather", {"city": "Paris"})
T = ("get_time", {})

# (raw reply, expected calls, expected content) — read the same way by every format.
COMMON = [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', [W], ""),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}', [W], ""),  # missing closing tag
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', [W], ""),  # missing opening tag
    ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', [W], ""),
    ('```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', [W], ""),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', [W], ""),
    ('{"name": "get_weather", "parameters": {"city": "Paris"}}', [W], ""),
    ('{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}', [W], ""),
    ("{'name': 'get_weather', 'arguments': {'city': 'Paris',},}", [W], ""),
    ('{"name": "add", "arguments": {"a": 1, "b": 2, "exact": True, "note": None}}',
     [("add", {"a": 1, "b": 2, "exact": True, "note": None})], ""),
    ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}', [W], ""),
    ('[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]', [W, T], ""),
    (('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
      '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'), [W, T], ""),
    (('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n'
      '```json\n{"name": "get_time", "arguments": {}}\n```'), [W, T], ""),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_time", "arguments": {}}', [W, T], ""),
    (('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
      '{"name": "get_time", "arguments": {}}\n</tool_call>'), [W, T], ""),
    ('{"name": "get_time"}', [T], ""),  # a known tool without arguments
    ('{"name": "get_weather", "city": "Paris"}', [W], ""),  # arguments written next to the name
    ('{\n  "type": "get_weather",\n  "city": "Paris"\n}', [W], ""),  # "type" holding a known tool name
    ('{"type": "object", "city": "Paris"}', [], '{"type": "object", "city": "Paris"}'),
    ('<tool_call>\n{"name": "launch_rocket", "arguments": {}}\n</tool_call>', [("launch_rocket", {})], ""),
    ('{"name": "launch_rocket", "arguments": {"when": "now"}}', [("launch_rocket", {"when": "now"})], ""),
    ('{"tool_calls": [{"function": {"name": "get_time", "arguments": "{}"}}]}', [T], ""),
    ('```json\n{"get_weather": {"city": "Paris"}, "get_time": {}}\n```', [W, T], ""),  # keyed by tool name
    ('{"get_weather": {"city": "Paris"}, "weather": {}}', [], '{"get_weather": {"city": "Paris"}, "weather": {}}'),
    ("Hello! How can I help you today?", [], "Hello! How can I help you today?"),
    ('Here is a JSON example: {"name": "Bob", "age": 3}.', [], 'Here is a JSON example: {"name": "Bob", "age": 3}.'),
    ("```python\nprint({'a': 1})\n```", [], "```python\nprint({'a': 1})\n```"),
    ('```json\n{"city": "Paris", "temp": 18}\n```', [], '```json\n{"city": "Paris", "temp": 18}\n```'),
    ("Use {braces} freely and [lists] too.", [], "Use {braces} freely and [lists] too."),
]

TEXT_AROUND = [
    ('Let me check.\n{"name": "get_weather", "arguments": {"city": "Paris"}}', [W], "Let me check."),
    ('Sure!\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\nOne moment.', [W],
     "Sure!\n\nOne moment."),
    ('I will call it <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call> now.', [W],
     "I will call it  now."),
]


def _calls(reply):
    return [(c.name, c.arguments) for c in reply.tool_calls]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("raw", "calls", "content"), COMMON)
def test_common_shapes(fmt: str, raw: str, calls: list, content: str) -> None:
    reply = get_format(fmt).parse(raw, TOOLS)
    assert _calls(reply) == calls
    assert reply.errors == []
    assert reply.content == content
    assert len({c.id for c in reply.tool_calls}) == len(reply.tool_calls)


@pytest.mark.parametrize("fmt", ["nous", "qwen"])
@pytest.mark.parametrize(("raw", "calls", "content"), TEXT_AROUND)
def test_text_around_calls_is_content(fmt: str, raw: str, calls: list, content: str) -> None:
    reply = get_format(fmt).parse(raw, TOOLS)
    assert _calls(reply) == calls
    assert reply.content == content


def test_react_text_around_calls_is_reasoning() -> None:
    reply = get_format("react").parse(TEXT_AROUND[0][0], TOOLS)
    assert _calls(reply) == [W]
    assert (reply.content, reply.reasoning) == ("", "Let me check.")


@pytest.mark.parametrize("fmt", FORMATS)
def test_think_blocks_are_reasoning_and_their_calls_are_not_run(fmt: str) -> None:
    raw = ('<think>Maybe {"name": "get_time", "arguments": {}} first?</think>\n'
           '{"name": "get_weather", "arguments": {"city": "Paris"}}')
    reply = get_format(fmt).parse(raw, TOOLS)
    assert _calls(reply) == [W]
    assert reply.reasoning == 'Maybe {"name": "get_time", "arguments": {}} first?'
    unclosed = get_format(fmt).parse("<think>I am still thinking about Paris", TOOLS)
    assert unclosed.tool_calls == [] and unclosed.reasoning == "I am still thinking about Paris"
    assert unclosed.content == ""
    orphan = get_format(fmt).parse("the user wants the weather</think>It is sunny.", TOOLS)
    assert (orphan.reasoning, orphan.content) == ("the user wants the weather", "It is sunny.")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_tool_list_means_plain_chat(fmt: str) -> None:
    raw = '<think>hm</think><tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    reply = get_format(fmt).parse(raw, [])
    assert reply.tool_calls == [] and reply.errors == []
    assert reply.reasoning == "hm"
    assert reply.content == raw.split("</think>")[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_none_tools_accept_any_name(fmt: str) -> None:
    reply = get_format(fmt).parse('{"name": "anything", "arguments": {"x": 1}}', None)
    assert _calls(reply) == [("anything", {"x": 1})]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("raw", [
    "<tool_call>{broken",
    "<tool_call>\n{\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": [1, 2]}\n</tool_call>",
    'Checking {"name": "get_weather", "arguments": {"city": "Par',
    '```json\n{"name": "get_weather", "arguments": {"city": "Par',
])
def test_unreadable_call_attempts_become_errors(fmt: str, raw: str) -> None:
    reply = get_format(fmt).parse(raw, TOOLS)
    assert reply.tool_calls == []
    assert len(reply.errors) == 1 and len(reply.errors[0]) < 200
    assert "<tool_call>" not in reply.content and '"name"' not in reply.content


@pytest.mark.parametrize(("fmt", "raw"), [("react", 'Action: get_weather\nAction Input: {"city": "Par'),
                                        ("qwen", '✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Par')])
def test_cut_off_arguments_are_reported_not_run(fmt: str, raw: str) -> None:
    reply = get_format(fmt).parse(raw, TOOLS)
    assert reply.tool_calls == [] and len(reply.errors) == 1 and "cut off" in reply.errors[0]


def test_raw_arguments_kept_when_given_as_a_json_string() -> None:
    reply = get_format("nous").parse('{"name": "get_weather", "arguments": "{\'city\': \'Paris\'}"}', TOOLS)
    call = reply.tool_calls[0]
    assert call.arguments == {"city": "Paris"}
    assert call.function.raw_arguments == "{'city': 'Paris'}"
    plain = get_format("nous").parse('{"name": "get_weather", "arguments": {"city": "Paris"}}', TOOLS)
    assert plain.tool_calls[0].function.raw_arguments is None


QWEN = [
    ('✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}', [W], ""),
    ('I will look.\n✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}\n✿FUNCTION✿: get_time\n✿ARGS✿: {}',
     [W, T], "I will look."),
    ("✿FUNCTION✿: get_weather\n✿ARGS✿: Paris", [W], ""),  # plain text for a one-string-parameter tool
    ("✿FUNCTION✿: get_time", [T], ""),
    ("✿FUNCTION✿: get_weather\n✿ARGS✿: {'city': 'Paris',}", [W], ""),
    (": It is 18 degrees and sunny.", [], "It is 18 degrees and sunny."),  # continued after ✿RETURN✿
]


@pytest.mark.parametrize(("raw", "calls", "content"), QWEN)
def test_qwen_syntax(raw: str, calls: list, content: str) -> None:
    reply = get_format("qwen").parse(raw, TOOLS)
    assert (_calls(reply), reply.content, reply.errors) == (calls, content, [])


REACT = [
    ('Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}', [W], "",
     "I need the weather."),
    ("Thought: look it up\nAction: get_weather\nAction Input: Paris", [W], "", "look it up"),
    ('Action: get_weather\nAction Input: {"city": "Paris"}\nAction: get_time\nAction Input: {}', [W, T], "", ""),
    ("Thought: I now know the final answer\nFinal Answer: It is sunny.", [], "It is sunny.",
     "I now know the final answer"),
    (" I now know the final answer\nFinal Answer: 18 degrees.", [], "18 degrees.", "I now know the final answer"),
    ("Thought: The answer is 4.", [], "The answer is 4.", ""),
    ("Just a plain reply.", [], "Just a plain reply.", ""),
    ("Thought: no tool needed\nAction: None\nFinal Answer: Hi!", [], "Hi!", "no tool needed"),
    ('Action: get_weather {"city": "Paris"}', [W], "", ""),
]


@pytest.mark.parametrize(("raw", "calls", "content", "reasoning"), REACT)
def test_react_syntax(raw: str, calls: list, content: str, reasoning: str) -> None:
    reply = get_format("react").parse(raw, TOOLS)
    assert (_calls(reply), reply.content, reply.reasoning, reply.errors) == (calls, content, reasoning, [])


def test_code_interpreter_fenced_arguments_in_qwen_format() -> None:
    tools = [ToolSchema(name="code_interpreter", parameters={
        "type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]})]
    reply = get_format("qwen").parse("✿FUNCTION✿: code_interpreter\n✿ARGS✿: ```py\nprint(1)\n```", tools)
    assert _calls(reply) == [("code_interpreter", {"code": "print(1)"})]
