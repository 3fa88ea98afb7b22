"""ToolOutput normalisation, truncation and conversion to tool messages with file/image content parts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel

from qwen_agent.messages import FilePart, FileRef, ImagePart, Message, TextPart, ToolCall
from qwen_agent.tools import ToolOutput
from qwen_agent.tools.output import NO_OUTPUT


class Point(BaseModel):
    x: int
    label: str


def test_strings_pass_through_and_none_is_no_output() -> None:
    assert ToolOutput.from_value("hello").text == "hello"
    assert ToolOutput.from_value("hello").data is None
    assert ToolOutput.from_value(None).text == NO_OUTPUT == "(no output)"
    assert ToolOutput.from_value("").text == NO_OUTPUT


def test_structured_values_become_json_text_and_data() -> None:
    out = ToolOutput.from_value({"city": "Zürich", "temps": [1, 2.5], "ok": True, "none": None})
    assert out.text == '{"city": "Zürich", "temps": [1, 2.5], "ok": true, "none": null}'
    assert out.data == {"city": "Zürich", "temps": [1, 2.5], "ok": True, "none": None}
    out = ToolOutput.from_value(Point(x=1, label="東京"))
    assert (out.text, out.data) == ('{"x": 1, "label": "東京"}', {"x": 1, "label": "東京"})
    assert ToolOutput.from_value(42).text == "42" and ToolOutput.from_value(42).data == 42
    assert ToolOutput.from_value(0.5).text == "0.5"
    assert ToolOutput.from_value([Point(x=1, label="a")]).data == [{"x": 1, "label": "a"}]
    when = ToolOutput.from_value({"at": dt.date(2024, 5, 1)})
    assert when.text == '{"at": "2024-05-01"}'


def test_tool_output_passes_through_and_odd_values_fall_back_to_str() -> None:
    given = ToolOutput(text="t", data=[1], is_error=True)
    assert ToolOutput.from_value(given) is given

    class Opaque:
        def __str__(self) -> str:
            return "opaque thing"

    out = ToolOutput.from_value(Opaque())
    assert (out.text, out.data) == ("opaque thing", None)
    assert ToolOutput.from_value(b"bytes text").text == "bytes text"
    assert ToolOutput.from_value(b"\xff\xfe\x00").text == "(3 bytes of binary data)"


def test_truncation_keeps_head_and_tail_with_marker() -> None:
    text = "HEAD" + "x" * 20_000 + "TAIL"
    out = ToolOutput.from_value(text)  # default budget
    assert len(out.text) <= 8000
    assert out.text.startswith("HEAD") and out.text.endswith("TAIL")
    assert "[truncated: 12,008 of 20,008 characters cut]" in out.text
    assert out.truncated_chars == 12_008
    small = ToolOutput.from_value("0123456789" * 10, max_chars=60)
    assert len(small.text) == 60 and "[truncated: 40 of 100 characters cut]" in small.text
    assert ToolOutput.from_value(text, max_chars=None).text == text
    assert ToolOutput.from_value("short", max_chars=10).truncated_chars == 0


def test_paths_and_file_refs_become_files(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n1,2\n")
    out = ToolOutput.from_value(png)
    assert out.files == [FileRef(filename="chart.png", path=str(png), mime_type="image/png")]
    assert out.text == f"file: {png} (image/png)"
    out = ToolOutput.from_value([png, FileRef(filename="table.csv", path=str(csv))])
    assert [f.mime_type for f in out.files] == ["image/png", "text/csv"]
    assert out.text.splitlines() == [f"file: {png} (image/png)", f"file: {csv} (text/csv)"]


def test_to_message_plain_and_with_file_parts(tmp_path: Path) -> None:
    call = ToolCall.make("plot", {"x": 1}, id="call_1")
    msg = ToolOutput(text="done").to_message(call)
    assert isinstance(msg, Message)
    assert (msg.role, msg.content, msg.tool_call_id, msg.name) == ("tool", "done", "call_1", "plot")

    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG")
    out = ToolOutput(
        text="saved",
        files=[
            FileRef(filename="chart.png", path=str(png), mime_type="image/png"),
            FileRef(filename="inline.jpg", mime_type="image/jpeg", file_data="QUJD"),
            FileRef(filename="data.csv", path="/tmp/data.csv", mime_type="text/csv"),
        ],
    )
    msg = out.to_message(call)
    assert isinstance(msg.content, list)
    text, img, inline, csv = msg.content
    assert isinstance(text, TextPart) and text.text == "saved"
    assert isinstance(img, ImagePart) and img.image_url.url == png.resolve().as_uri()
    assert isinstance(inline, ImagePart) and inline.image_url.url == "data:image/jpeg;base64,QUJD"
    assert isinstance(csv, FilePart) and csv.file.path == "/tmp/data.csv"
    assert msg.text == "saved"
    d = msg.to_openai()
    assert d["role"] == "tool" and d["tool_call_id"] == "call_1" and d["content"][1]["type"] == "image_url"


def test_error_constructor() -> None:
    out = ToolOutput.error("bad")
    assert out.is_error and out.text == "bad"
