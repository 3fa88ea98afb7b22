"""The call syntaxes every format reads: think blocks, ``<tool_call>`` tags, fenced and bare JSON, name + arguments.

Each `Recognizer` reads one syntax from its opener on; the formats (``nous``, ``qwen``, ``react``) pick which of
them take part. Every reading is linear in the text it covers: bracket spans in the reply come from the scan's
shared `SpanIndex`, and fragments are decoded within the reply's repair budget, so a malformed or hostile reply ends
up as text or as errors for the model to read, never as a stall or an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qwen_agent.prompting.call_shapes import (
    Found,
    Tools,
    call_from_name_and_text,
    calls_from_value,
    may_be_call_shaped,
    snippet,
)
from qwen_agent.prompting.lenient_json import Unreadable, iter_json_values, loads_lenient, repair
from qwen_agent.prompting.scan import Outcome, Piece, Reading, Recognizer, hold_index
from qwen_agent.prompting.spans import json_span_end

__all__ = [
    "SOURCE_CHARS",
    "BareJson",
    "Dropped",
    "Fence",
    "OrphanThinkClose",
    "Think",
    "ToolCallTag",
    "cut_off",
    "generic_recognizers",
    "read_arguments",
    "read_call_body",
    "skip_space",
    "think_recognizers",
]

#: How much of a call's text error messages may quote from (they show a one-line snippet of it).
SOURCE_CHARS = 1024

_SPACE = re.compile(r"[ \t\r\n]*")
_BLANK = re.compile(r"[ \t]*")


def skip_space(text: str, i: int) -> int:
    """The first index at or after ``i`` that is not a space, tab or line break."""
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # the pattern matches the empty string


class Think(Recognizer):
    """``<think>...</think>``: reasoning, never executed. An unclosed block runs to the end."""

    pattern = re.compile(r"<think>")
    partials = ("<think>",)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        close = text.find("</think>", reading.resume(m.end(), len("</think>")))
        if close >= 0:
            return Outcome([Piece("think", text[m.end() : close])], close + len("</think>"))
        if final:
            return Outcome([Piece("think", text[m.end() :])], len(text))
        shown = text[m.end() : hold_index(text, m.end(), ("</think>",))]
        return Outcome([Piece("think", shown)], complete=False)


class OrphanThinkClose(Recognizer):
    """A ``</think>`` whose ``<think>`` was in the prompt (Qwen3-style templates): what came before was reasoning."""

    pattern = re.compile(r"</think>")
    partials = ("</think>",)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        return Outcome([], m.end(), retro_reasoning=True)


class Dropped(Recognizer):
    """Stray syntax with no meaning of its own (a lone ``</tool_call>``): removed from the visible text."""

    def __init__(self, literal: str) -> None:
        self.pattern = re.compile(re.escape(literal))
        self.partials = (literal,)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        return Outcome([], m.end())


# ``name {json}``, ``name: {json}``, ``name({json}``. The separator is written so that no whitespace run can be
# split two ways (``\s*[:(\n ]\s*`` backtracked quadratically on a long run of spaces).
_NAME_THEN_JSON = re.compile(r"^\s*[\"'`]?([A-Za-z_][\w.\-]*)[\"'`]?(?:\s*[:(]\s*|[^\S \n]*[ \n]\s*)(\{.*)$",
                             re.DOTALL)


def read_call_body(body: str, tools: Tools) -> tuple[Found, str]:
    """Calls inside explicit call syntax: one or several JSON values, or ``name {json}``; plus leftover prose."""
    found = Found()
    leftover: list[str] = []
    last = 0
    for start, end, value in iter_json_values(body, tools.budget):
        leftover.append(body[last:start])
        last = end
        got = calls_from_value(value, tools, explicit=True, source=body[start:end])
        if got is not None:
            found.calls += got.calls
            found.errors += got.errors
    leftover.append(body[last:])
    rest = "".join(leftover).strip()
    if found.calls:
        return found, rest
    m = _NAME_THEN_JSON.match(body)
    if m is not None and not found.calls:
        args_end = json_span_end(m.group(2), 0) or len(m.group(2))
        return call_from_name_and_text(m.group(1), m.group(2)[:args_end], tools, body), m.group(2)[args_end:].strip()
    if not found.errors:
        found.errors.append(f"could not read the tool call {snippet(body)!r}")
    return found, ""


class ToolCallTag(Recognizer):
    """``<tool_call>{...}</tool_call>`` (Hermes/Qwen2.5). Unclosed tags end at the next tag or the end of the reply."""

    reads_calls = True
    pattern = re.compile(r"<tool_call>")
    partials = ("<tool_call>",)
    _close = re.compile(r"</tool_call>|<tool_call>|<tool_response>")

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        tools = reading.tools
        c = self._close.search(text, reading.resume(m.end(), len("<tool_response>")))
        if c is not None and c.group() == "</tool_call>":
            found, _ = read_call_body(text[m.end() : c.start()], tools)
            return Outcome([Piece.of(found)], c.end())
        if c is None and not final:
            return Outcome([], complete=False)
        end = c.start() if c is not None else len(text)
        found, rest = read_call_body(text[m.end() : end], tools)
        return Outcome([Piece.of(found), Piece("text", ("\n" + rest) if rest else "")], end)


_CALL_FENCE_LANGS = {"", "json", "json5", "jsonc", "tool_call", "tool_code", "javascript", "js"}


class Fence(Recognizer):
    """A fenced block: calls if its JSON is call-shaped, otherwise ordinary (code) text kept verbatim."""

    reads_calls = True
    pattern = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n`]*\n?")
    partials = ("```",)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        tools = reading.tools
        close = text.find("```", reading.resume(m.end(), 3))
        if close < 0 and not final:
            return Outcome([], complete=False)
        end = len(text) if close < 0 else close + 3
        body = text[m.end() : close if close >= 0 else len(text)]
        whole = text[m.start() : end]
        if m.group(1).lower() not in _CALL_FENCE_LANGS or body.lstrip()[:1] not in ("{", "["):
            return Outcome([Piece("text", whole)], end)
        found = Found()
        taken: list[tuple[int, int]] = []  # values read as calls or errors; whatever else the body holds is prose
        for start, stop, value in iter_json_values(body, tools.budget):
            got = calls_from_value(value, tools, explicit=False, source=body[start:stop])
            if got is not None and json_span_end(body, start) is None:  # cut off mid-call: never run half a call
                names = ", ".join(repr(c.name) for c in got.calls) or "a tool"
                got = Found(errors=[f"the call to {names} was cut off: {snippet(body[start:stop])!r}"])
            if got is None:
                if isinstance(value, Unreadable) and _looks_like_call(body[start:stop], tools):
                    found.errors.append(value.explain(f"could not read the tool call {snippet(body[start:stop])!r}"))
                    taken.append((start, stop))  # reported, so not prose (this error used to be dropped)
                    continue
                return Outcome([Piece("text", whole)], end)
            found.calls += got.calls
            found.errors += got.errors
            taken.append((start, stop))
        if _has_prose(body, taken):
            return Outcome([Piece("text", whole)], end)
        return Outcome([Piece.of(found)], end)


def _has_prose(body: str, taken: list[tuple[int, int]]) -> bool:
    last = 0
    for start, stop in taken:
        if body[last:start].strip():
            return True
        last = stop
    return bool(body[last:].strip())


def _looks_like_call(fragment: str, tools: Tools) -> bool:
    if '"name"' not in fragment and "'name'" not in fragment:
        return False
    if tools.names is None:
        return "arguments" in fragment or "parameters" in fragment
    return any(f'"{n}"' in fragment or f"'{n}'" in fragment for n in tools.names)


#: How much of an unclosed bare JSON value is repaired to see whether it was a call that got cut off.
_CUT_OFF_HEAD = 512


class BareJson(Recognizer):
    """A JSON object (or list of objects) in prose; a call only if it has a call's shape."""

    reads_calls = True
    pattern = re.compile(r"\{(?=\s*[\"'])|\[(?=\s*\{\s*[\"'])")
    partial_re = re.compile(r"(\{\s*|\[\s*(\{\s*)?)$")

    def search(self, text: str, pos: int, final: bool, reading: Reading) -> re.Match[str] | None:
        budget = reading.tools.budget
        if not final or budget.left >= _CUT_OFF_HEAD:
            return self.pattern.search(text, pos)
        # The repair budget is nearly spent: an opener that stays unclosed is plain text unless it lies so near the
        # end that the rest still fits the budget. Pass over such openers (there may be tens of thousands) and look
        # only at closed ones and at that tail.
        tail = self.pattern.search(text, max(pos, len(text) - budget.left))
        q = reading.spans.next_closed(pos)
        while q is not None and (tail is None or q < tail.start()):
            m = self.pattern.match(text, q)
            if m is not None:
                return m
            q = reading.spans.next_closed(q + 1)
        return tail

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        tools = reading.tools
        start = m.start()
        end = reading.spans.end(start)
        if end is None:
            if not final:
                return Outcome([], complete=False)
            # Unclosed to the end of the reply: a call cut off mid-way, or an opener in prose. Only the head of the
            # rest is repaired to tell (a call's name and argument keys come first), and only while the reply's
            # repair budget lasts: every later unclosed opener would otherwise re-read the same tail.
            head = text[start : start + _CUT_OFF_HEAD]
            value = repair(head, tools.budget)
            got = calls_from_value(value, tools, explicit=False, source=head)
            if got is not None:  # a call cut off mid-way: never execute half a call, report it instead
                names = ", ".join(repr(c.name) for c in got.calls) or "a tool"
                return Outcome([Piece("calls", errors=[f"the call to {names} was cut off: {snippet(head)!r}"])],
                               len(text))
            return Outcome([Piece("text", text[start])], start + 1)
        span = text[start:end]
        if not may_be_call_shaped(span, tools):  # most JSON in prose: no need to decode it
            return Outcome([Piece("text", span)], end)
        value = loads_lenient(span, tools.budget)
        if isinstance(value, Unreadable) and _looks_like_call(span, tools):  # a call, too deep or too broken to read
            return Outcome([Piece("calls", errors=[value.explain(f"could not read the tool call {snippet(span)!r}")])],
                           end)
        got = calls_from_value(value, tools, explicit=False, source=span)
        if got is None:
            return Outcome([Piece("text", span)], end)
        return Outcome([Piece.of(got)], end)


def cut_off(name: str, source: str, end: int) -> Outcome:
    """A call whose JSON arguments never closed (the reply hit its token limit): reported, never executed."""
    return Outcome([Piece("calls", errors=[f"the call to {name.strip()!r} was cut off: {snippet(source)!r}"])], end)


def read_arguments(text: str, j: int, final: bool, name: str, source: str, end_mark: re.Pattern[str],
                   make_call: Callable[[str, str, int], Outcome], reading: Reading) -> Outcome:
    """The arguments after a call's name marker (qwen ✿ARGS✿, react Action Input): a balanced JSON object, or
    else plain text up to ``end_mark``. Incomplete input waits for more unless ``final``; a JSON object that never
    closes is reported as cut off.

    ``end_mark`` must match within 16 characters, or else start at a newline followed by spaces/tabs only: that is
    what lets a growing text be searched again from near where the last search stopped.
    """
    j = _BLANK.match(text, j).end()  # type: ignore[union-attr]
    if j < len(text) and text[j] == "{":
        end = reading.spans.end(j)
        if end is not None:
            return make_call(name, text[j:end], end)
        if final:
            return cut_off(name, source, len(text))
        return Outcome([], complete=False)
    lo = j
    if reading.since:
        newline = text.rfind("\n", j, reading.since)
        lo = max(j, reading.since - 16 if newline < 0 else min(reading.since - 16, newline))
    nxt = end_mark.search(text, lo)
    if nxt is None and not final:
        return Outcome([], complete=False)
    end = nxt.start() if nxt is not None else len(text)
    return make_call(name, text[j:end], end)


def generic_recognizers() -> list[Recognizer]:
    """Syntaxes read in every format: tags, fences, bare JSON."""
    return [ToolCallTag(), Dropped("</tool_call>"), Fence(), BareJson()]


def think_recognizers() -> list[Recognizer]:
    return [Think(), OrphanThinkClose()]
