"""Rendering tool-use histories into plain chat messages for each function-calling format."""

from __future__ import annotations

import pytest

from qwen_agent.messages import FilePart, FileRef, ImagePart, ImageURL, Message, TextPart, ToolCall, ToolSchema
from qwen_agent.prompting import FORMATS, get_format

TOOLS = [
    ToolSchema(name="get_weather", description="Weather for a city. Use it for 'weather' <questions> & more.",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ToolSchema(name="get_time", description="Current time.", parameters={"type": "object", "properties": {}}),
]
IMAGE = ImagePart(image_url=ImageURL(url="file:///tmp/chart.png"))


def history() -> list[Message]:
    w = ToolCall.make("get_weather", {"city": "Paris"}, id="call_w")
    t = ToolCall.make("get_time", {}, id="call_t")
    r = ToolCall.make("get_weather", {"city": "Rome"}, id="call_r")
    return [
        Message.user([TextPart(text="Weather in Paris and the time? See the chart."), IMAGE]),
        Message.assistant("Let me check.", [w, t]),  # parallel calls
        Message.tool("Sunny, 18°C", "call_w"),
        Message.tool([TextPart(text="12:00"), FilePart(file=FileRef(path="/tmp/clock.txt"))], "call_t"),
        Message.assistant("Sunny and 18°C; it is noon."),
        Message.user("And Rome?"),
        Message.assistant(None, [r]),
        Message.tool("Rainy", "call_r"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_is_plain_chat_and_keeps_non_text_parts(fmt: str) -> None:
    out = get_format(fmt).render(history(), TOOLS)
    assert {m.role for m in out} <= {"system", "user", "assistant"}
    assert all(m.tool_calls is None and m.tool_call_id is None for m in out)
    assert out[0].role == "system" and out[0].text.startswith("You are Qwen")
    parts = [p for m in out if isinstance(m.content, list) for p in m.content]
    assert IMAGE in parts
    assert any(isinstance(p, FilePart) and p.file.path == "/tmp/clock.txt" for p in parts)
    # the tool description reaches the model verbatim (no HTML escaping of ' < > &)
    assert "'weather' <questions> & more." in out[0].text


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_system_message_gets_the_tools_appended(fmt: str) -> None:
    out = get_format(fmt).render([Message.system("Be brief."), Message.user("hi")], TOOLS)
    assert out[0].text.startswith("Be brief.\n\n")
    assert "get_weather" in out[0].text and "get_time" in out[0].text
    assert [m.role for m in out] == ["system", "user"]


def test_nous_matches_the_qwen25_layout() -> None:
    out = get_format("nous").render(history(), TOOLS)
    assert [m.role for m in out] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    system = out[0].text
    assert "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"" in system
    assert system.endswith('<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')
    assert out[2].text == ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                           '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    # both results in one user message, in call order, the file part kept inside its response
    assert out[3].text == "<tool_response>\nSunny, 18°C\n</tool_response>\n<tool_response>\n12:00\n</tool_response>"
    assert isinstance(out[3].content, list) and isinstance(out[3].content[1], FilePart)
    assert out[-1].content == "<tool_response>\nRainy\n</tool_response>"
    assert "<tool_response>" in get_format("nous").stop_words


def test_qwen_results_continue_the_assistant_turn() -> None:
    out = get_format("qwen").render(history(), TOOLS)
    assert [m.role for m in out] == ["system", "user", "assistant", "user", "assistant"]
    first = out[2].text
    assert first == ('Let me check.\n✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}\n✿FUNCTION✿: get_time\n'
                     '✿ARGS✿: {}\n✿RESULT✿: Sunny, 18°C\n✿RESULT✿: 12:00\n✿RETURN✿: Sunny and 18°C; it is noon.')
    assert out[-1].text == '✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Rome"}\n✿RESULT✿: Rainy\n✿RETURN✿'
    assert "[get_weather,get_time]" in out[0].text
    assert get_format("qwen").stop_words == ["✿RESULT✿"]  # not ✿RETURN✿: it starts a direct answer


def test_react_results_are_observations_and_the_turn_resumes_at_thought() -> None:
    out = get_format("react").render(history(), TOOLS)
    assert [m.role for m in out] == ["system", "user", "assistant", "user", "assistant"]
    first = out[2].text
    assert first.startswith('Thought: Let me check.\nAction: get_weather\nAction Input: {"city": "Paris"}\n'
                            "Action: get_time\nAction Input: {}\nObservation: Sunny, 18°C\nObservation: 12:00")
    assert first.endswith("Final Answer: Sunny and 18°C; it is noon.")
    assert out[-1].text.endswith("Observation: Rainy\nThought:")
    assert "should be one of [get_weather, get_time]" in out[0].text
    assert get_format("react").stop_words == ["Observation:", "Observation:\n"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendered_calls_parse_back_to_the_same_calls(fmt: str) -> None:
    f = get_format(fmt)
    out = f.render(history(), TOOLS)
    first_turn = out[2].text
    for stop in f.stop_words:  # what the model would have written before the stop word
        first_turn = first_turn.split(stop)[0]
    calls = f.parse(first_turn, TOOLS).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]


@pytest.mark.parametrize("fmt", FORMATS)
def test_parallel_flag_changes_the_instructions(fmt: str) -> None:
    f = get_format(fmt)
    single = f.render([Message.user("hi")], TOOLS, parallel=False)[0].text
    multi = f.render([Message.user("hi")], TOOLS, parallel=True)[0].text
    assert single != multi


@pytest.mark.parametrize("fmt", FORMATS)
def test_history_without_tools_still_renders_calls_as_text(fmt: str) -> None:
    out = get_format(fmt).render(history(), [])
    assert {m.role for m in out} <= {"system", "user", "assistant"}
    assert "get_weather" in "".join(m.text for m in out)
    assert out[0].text == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_does_not_modify_its_input(fmt: str) -> None:
    h = history()
    before = [m.model_dump() for m in h]
    get_format(fmt).render(h, TOOLS)
    assert [m.model_dump() for m in h] == before
