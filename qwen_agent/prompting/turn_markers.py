"""Chat-template turn markers: taken out of a reply's answer, and made plain text in what the model reads.

Qwen's template frames turns with ``<|im_start|>role`` ... ``<|im_end|>``. A server that does not stop on them (a
missing stop token, a model that spells the marker as ordinary text pieces, vLLM with ``skip_special_tokens`` off)
returns them inside the content: a user then reads ``<|im_start|>`` in the answer, or the model's imagined next turn
after ``<|im_end|>``. What a marker means decides what happens: the end of a turn ends the answer; the opening of
the assistant's own turn at the very start is dropped with its role line; an opening anywhere later starts a turn
that is not the answer, so the answer ends there.

The other direction is an injection. llama.cpp tokenizes a prompt with special tokens parsed (so do vLLM and HF
tokenizers by default), so a tool result, a document or a user message holding the text
``<|im_end|>\n<|im_start|>system\n...`` would become a real system turn. `neutralize_markers` puts a word joiner
(U+2060) after the ``<`` of every marker in message text before a request is rendered: the model still reads
almost the same characters, and no tokenizer reads a special token there.
"""

from __future__ import annotations

import re
from typing import Any

from qwen_agent.messages import FunctionCall, Message, TextPart, ToolCall, ToolSchema

__all__ = ["MARKERS", "neutralize_markers", "neutralize_messages", "neutralize_schemas", "strip_turn_markers"]

#: Qwen2/2.5's special tokens that never belong in an answer.
MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
           "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")

_OPENING = re.compile(r"\A\s*<\|im_start\|>(?:assistant)?[ \t]*\n?")
_ANY = re.compile("|".join(re.escape(m) for m in MARKERS))


def strip_turn_markers(text: str) -> str:
    """``text`` without turn markers: a leading ``<|im_start|>assistant`` line dropped, cut at the first other."""
    if "<|" not in text:
        return text
    return _cut(text)[0]


#: Breaks a marker for every tokenizer while looking the same: "<" WORD JOINER "|im_start|>".
_JOINER = "\u2060"


def neutralize_markers(text: str) -> str:
    """``text`` with every turn marker spelled so that no tokenizer reads it as a special token."""
    if "<|" not in text:
        return text
    return _ANY.sub(lambda m: m.group(0)[0] + _JOINER + m.group(0)[1:], text)


def neutralize_messages(messages: list[Message]) -> list[Message]:
    """`neutralize_markers` on the text of every message (string content and text parts) and on the string values
    of its tool calls' arguments (a server renders those into the prompt); messages without marker text are
    shared, not copied."""
    out = []
    for message in messages:
        content = message.content
        if isinstance(content, str) and "<|" in content:
            message = message.model_copy(update={"content": neutralize_markers(content)})
        elif isinstance(content, list) and any(isinstance(p, TextPart) and "<|" in p.text for p in content):
            parts = [p.model_copy(update={"text": neutralize_markers(p.text)}) if isinstance(p, TextPart) else p
                     for p in content]
            message = message.model_copy(update={"content": parts})
        if message.tool_calls and any("<|" in c.function.arguments_json() for c in message.tool_calls):
            message = message.model_copy(update={"tool_calls": [_neutral_call(c) for c in message.tool_calls]})
        out.append(message)
    return out


def neutralize_schemas(schemas: list[ToolSchema]) -> list[ToolSchema]:
    """`neutralize_markers` on every string of a tool's name, description and parameter schema (an MCP server's or
    an OpenAPI spec's text, which a server renders into the system prompt). Keys are left alone."""
    return [s if "<|" not in s.model_dump_json() else
            s.model_copy(update={"name": neutralize_markers(s.name), "description": neutralize_markers(s.description),
                                 "parameters": _neutral(s.parameters)}) for s in schemas]


def _neutral_call(call: ToolCall) -> ToolCall:
    raw = call.function.raw_arguments
    function = FunctionCall(name=neutralize_markers(call.name), arguments=_neutral(call.arguments),
                            raw_arguments=None if raw is None else neutralize_markers(raw))
    return call.model_copy(update={"function": function})


def _neutral(value: Any) -> Any:
    if isinstance(value, str):
        return neutralize_markers(value)
    if isinstance(value, dict):
        return {k: _neutral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v) for v in value]
    return value


_OPENING_LINE = "<|im_start|>assistant\n"


def _cut(text: str) -> tuple[str, bool]:
    """`strip_turn_markers` without the final rstrip, and whether a marker ended the text."""
    text = _OPENING.sub("", text, count=1)
    found = _ANY.search(text)
    return (text[: found.start()], True) if found else (text, False)


def _partial_tail(text: str) -> int:
    """Length of the longest end of ``text`` that a marker starts with (it may complete in the next chunk)."""
    for k in range(min(len(text), max(map(len, MARKERS)) - 1), 0, -1):
        tail = text[-k:]
        if any(m.startswith(tail) for m in MARKERS):
            return k
    return 0


class MarkerFilter:
    """The streaming form of `strip_turn_markers`: what ``feed`` and ``flush`` return, joined, is the stripped
    text, and nothing after an ending marker is ever returned."""

    def __init__(self) -> None:
        self._raw = ""
        self._sent = 0
        self._done = False

    def feed(self, text: str) -> str:
        if self._done or not text:
            return ""
        self._raw += text
        if _OPENING_LINE.startswith(self._raw.lstrip()):
            return ""  # still possibly the assistant's own opening line: wait
        visible = self._raw[: len(self._raw) - _partial_tail(self._raw)]
        clean, self._done = _cut(visible)
        out, self._sent = clean[self._sent:], max(self._sent, len(clean))
        return out

    def flush(self) -> str:
        if self._done:
            return ""
        self._done = True
        clean, _ = _cut(self._raw)
        return clean[self._sent:]
