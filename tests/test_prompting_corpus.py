"""Real raw replies of the embedded model (tests/fixtures/raw_outputs) are read exactly as a careful reader reads them.

The corpus was produced by ``tests/fixtures/collect_raw_outputs.py`` (greedy decoding, each format's own prompt and
stop words). ``labels.json`` holds, per reply, the tool names a human reading the reply finds in it, in order (an
empty list: no call); ``argument_labels.json`` holds, for every reply with calls, the arguments of each call as a
human reads them off the reply (written by hand, not by running the parser; react-12 is the model copying the schema
into Action Input, so its "arguments" are that schema, read literally). The parser, batch and streaming, must
extract exactly those calls with exactly those arguments, and a reply to a request without tools must never yield
a call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_agent.messages import ToolSchema
from qwen_agent.prompting import FORMATS, get_format

HERE = Path(__file__).parent / "fixtures" / "raw_outputs"


def _records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for fmt in FORMATS:
        path = HERE / f"{fmt}.json"
        assert path.exists(), f"missing corpus {path}: run tests/fixtures/collect_raw_outputs.py"
        out += json.loads(path.read_text())
    return out


RECORDS = _records()
LABELS: dict[str, list[str]] = json.loads((HERE / "labels.json").read_text())
ARGUMENTS: dict[str, list[dict[str, Any]]] = json.loads((HERE / "argument_labels.json").read_text())


def calls_of(reply: Any) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls]


def test_every_reply_is_labelled() -> None:
    assert sorted(LABELS) == sorted(r["id"] for r in RECORDS)
    assert sorted(ARGUMENTS) == sorted(k for k, names in LABELS.items() if names), "every call has argument labels"
    assert all([c["name"] for c in ARGUMENTS[k]] == LABELS[k] for k in ARGUMENTS)
    assert {r["format"] for r in RECORDS} == set(FORMATS)
    assert len(RECORDS) == 48  # 16 replies per format


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_parser_reads_the_real_reply(record: dict[str, Any]) -> None:
    tools = [ToolSchema.model_validate(t) for t in record["tools"]]
    fmt = get_format(record["format"])
    reply = fmt.parse(record["raw_output"], tools)
    assert [c.name for c in reply.tool_calls] == LABELS[record["id"]], record["raw_output"]
    assert calls_of(reply) == ARGUMENTS.get(record["id"], []), record["raw_output"]
    if not tools:
        assert reply.tool_calls == [] and reply.errors == []
    # the streaming parser, fed token-sized pieces, ends with the same reading
    stream = fmt.stream_parser(tools)
    raw = record["raw_output"]
    for i in range(0, len(raw), 3):
        stream.feed(raw[i:i + 3])
    assert calls_of(stream.finish()) == ARGUMENTS.get(record["id"], [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_rate_of_call_attempts(fmt: str) -> None:
    """Of the replies in which the model tried to call a tool, the share the parser reads (all of them)."""
    attempts = [r for r in RECORDS if r["format"] == fmt and LABELS[r["id"]]]
    assert attempts, f"the {fmt} corpus holds no call at all"
    read = [r for r in attempts
            if [c.name for c in get_format(fmt).parse(r["raw_output"], [ToolSchema.model_validate(t)
                                                                          for t in r["tools"]]).tool_calls]
            == LABELS[r["id"]]]
    assert len(read) == len(attempts)
