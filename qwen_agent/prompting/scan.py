"""The shared call scanner: cut a raw reply into text, reasoning and tool-call pieces, incrementally.

One scanner serves all three formats; a format only chooses which `Recognizer`s take part (every format also reads
the syntaxes small models fall back to: ``<tool_call>`` tags, fenced JSON and bare JSON). The same code runs for a
complete reply (``final=True``) and for a growing stream (``final=False``), which is what makes the streaming
parser's output agree with the full parse: a piece is committed only once more text can no longer change it, and
everything after the first undecided position waits.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Literal

from qwen_agent.messages import ToolCall
from qwen_agent.prompting.lenient_json import UNREADABLE, iter_json_values, json_span_end, loads_lenient
from qwen_agent.prompting.shapes import Found, Tools, call_from_name_and_text, calls_from_value, snippet

PieceKind = Literal["text", "think", "thought", "calls", "marker"]


@dataclass
class Piece:
    """A run of the reply: visible text, reasoning (``think``/``thought``), calls (+errors) or a format marker."""

    kind: PieceKind
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, found: Found) -> Piece:
        return cls("calls", calls=found.calls, errors=found.errors)


@dataclass
class Outcome:
    """What a recognizer made of the text at its opener.

    ``end`` is where scanning resumes; ``complete=False`` means "undecided until more text arrives" and ``pieces``
    are then only a preview (e.g. reasoning so far) that the streaming parser may show.
    """

    pieces: list[Piece]
    end: int = -1
    complete: bool = True
    #: Everything before this point was reasoning all along (a ``</think>`` without its ``<think>``).
    retro_reasoning: bool = False


class Recognizer(ABC):
    """One piece of call syntax: where it may start, and how to read it from there."""

    pattern: re.Pattern[str]
    #: Literal openers; a buffer ending in a proper prefix of one is held back while streaming.
    partials: tuple[str, ...] = ()
    #: The literal openers only count at the start of a line (``Action:``).
    line_start: bool = False
    #: Extra end-of-buffer hold pattern (bare JSON: ``{`` then only whitespace so far).
    partial_re: re.Pattern[str] | None = None

    @abstractmethod
    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome: ...


def hold_index(text: str, start: int, literals: tuple[str, ...], line_start: bool = False) -> int:
    """Smallest index >= start where the end of ``text`` may be the beginning of one of ``literals``."""
    best = len(text)
    for lit in literals:
        for k in range(min(len(lit) - 1, len(text) - start), 0, -1):
            i = len(text) - k
            if i < best and text.endswith(lit[:k]) and (not line_start or _at_line_start(text, i)):
                best = i
                break
    return best


def _at_line_start(text: str, i: int) -> bool:
    j = text.rfind("\n", 0, i)
    return not text[j + 1 : i].strip()


class Scanner:
    """Stateful scan over a growing text. `advance` may be called again with a longer text that extends the old one."""

    def __init__(self, recognizers: list[Recognizer], tools: Tools) -> None:
        self.recognizers = recognizers
        self.tools = tools
        self.pos = 0
        self.pieces: list[Piece] = []
        self.tentative: list[Piece] = []

    def advance(self, text: str, final: bool) -> None:
        self.tentative = []
        while True:
            hit = self._next(text, self.pos)
            if hit is None:
                end = len(text) if final else self._hold(text, self.pos)
                self._text(text[self.pos : end])
                self.pos = end
                return
            m, rec = hit
            self._text(text[self.pos : m.start()])
            self.pos = m.start()
            out = rec.consume(text, m, final, self.tools)
            if not out.complete:
                self.tentative = out.pieces
                return
            if out.retro_reasoning:
                for p in self.pieces:
                    if p.kind == "text":
                        p.kind = "think"
            self.pieces.extend(p for p in out.pieces if p.kind != "text" or p.text)
            self.pos = max(out.end, m.start() + 1)

    def _text(self, s: str) -> None:
        if not s:
            return
        if self.pieces and self.pieces[-1].kind == "text":
            self.pieces[-1].text += s
        else:
            self.pieces.append(Piece("text", s))

    def _next(self, text: str, pos: int) -> tuple[re.Match[str], Recognizer] | None:
        best: tuple[re.Match[str], Recognizer] | None = None
        for rec in self.recognizers:
            m = rec.pattern.search(text, pos)
            if m is not None and (best is None or m.start() < best[0].start()):
                best = (m, rec)
        return best

    def _hold(self, text: str, pos: int) -> int:
        best = len(text)
        for rec in self.recognizers:
            if rec.partials:
                best = min(best, hold_index(text, pos, rec.partials, rec.line_start))
            if rec.partial_re is not None:
                m = rec.partial_re.search(text, pos)
                if m is not None:
                    best = min(best, m.start())
        return max(best, pos)


# ---- recognizers every format uses --------------------------------------------------------------------------


class Think(Recognizer):
    """``<think>...</think>``: reasoning, never executed. An unclosed block runs to the end."""

    pattern = re.compile(r"<think>")
    partials = ("<think>",)

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        close = text.find("</think>", m.end())
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

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        return Outcome([], m.end(), retro_reasoning=True)


class Dropped(Recognizer):
    """Stray syntax with no meaning of its own (a lone ``</tool_call>``): removed from the visible text."""

    def __init__(self, literal: str) -> None:
        self.pattern = re.compile(re.escape(literal))
        self.partials = (literal,)

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        return Outcome([], m.end())


_NAME_THEN_JSON = re.compile(r"^\s*[\"'`]?([A-Za-z_][\w.\-]*)[\"'`]?\s*[:(\n ]\s*(\{.*)$", re.DOTALL)


def read_call_body(body: str, tools: Tools) -> tuple[Found, str]:
    """Calls inside explicit call syntax: one or several JSON values, or ``name {json}``; plus leftover prose."""
    found = Found()
    leftover: list[str] = []
    last = 0
    for start, end, value in iter_json_values(body):
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

    pattern = re.compile(r"<tool_call>")
    partials = ("<tool_call>",)
    _close = re.compile(r"</tool_call>|<tool_call>|<tool_response>")

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        c = self._close.search(text, m.end())
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

    pattern = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n`]*\n?")
    partials = ("```",)

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        close = text.find("```", m.end())
        if close < 0 and not final:
            return Outcome([], complete=False)
        end = len(text) if close < 0 else close + 3
        body = text[m.end() : close if close >= 0 else len(text)]
        whole = text[m.start() : end]
        if m.group(1).lower() not in _CALL_FENCE_LANGS or body.lstrip()[:1] not in ("{", "["):
            return Outcome([Piece("text", whole)], end)
        found = Found()
        rest = body
        for start, stop, value in iter_json_values(body):
            got = calls_from_value(value, tools, explicit=False, source=body[start:stop])
            if got is not None and json_span_end(body, start) is None:  # cut off mid-call: never run half a call
                names = ", ".join(repr(c.name) for c in got.calls) or "a tool"
                got = Found(errors=[f"the call to {names} was cut off: {snippet(body[start:stop])!r}"])
            if got is None:
                if value is UNREADABLE and _looks_like_call(body[start:stop], tools):
                    found.errors.append(f"could not read the tool call {snippet(body[start:stop])!r}")
                    continue
                return Outcome([Piece("text", whole)], end)
            found.calls += got.calls
            found.errors += got.errors
            rest = rest.replace(body[start:stop], "", 1)
        if rest.strip():
            return Outcome([Piece("text", whole)], end)
        return Outcome([Piece.of(found)], end)


def _looks_like_call(fragment: str, tools: Tools) -> bool:
    if '"name"' not in fragment and "'name'" not in fragment:
        return False
    if tools.names is None:
        return "arguments" in fragment or "parameters" in fragment
    return any(f'"{n}"' in fragment or f"'{n}'" in fragment for n in tools.names)


class BareJson(Recognizer):
    """A JSON object (or list of objects) in prose; a call only if it has a call's shape."""

    pattern = re.compile(r"\{(?=\s*[\"'])|\[(?=\s*\{\s*[\"'])")
    partial_re = re.compile(r"(\{\s*|\[\s*(\{\s*)?)$")

    def consume(self, text: str, m: re.Match[str], final: bool, tools: Tools) -> Outcome:
        start = m.start()
        end = json_span_end(text, start)
        if end is None:
            if not final:
                return Outcome([], complete=False)
            value = loads_lenient(text[start:])
            got = calls_from_value(value, tools, explicit=False, source=text[start:])
            if got is not None:  # a call cut off mid-way: never execute half a call, report it instead
                names = ", ".join(repr(c.name) for c in got.calls) or "a tool"
                return Outcome([Piece("calls", errors=[f"the call to {names} was cut off: {snippet(text[start:])!r}"])],
                               len(text))
            return Outcome([Piece("text", text[start])], start + 1)
        span = text[start:end]
        got = calls_from_value(loads_lenient(span), tools, explicit=False, source=span)
        if got is None:
            return Outcome([Piece("text", span)], end)
        return Outcome([Piece.of(got)], end)


def cut_off(name: str, source: str, end: int) -> Outcome:
    """A call whose JSON arguments never closed (the reply hit its token limit): reported, never executed."""
    return Outcome([Piece("calls", errors=[f"the call to {name.strip()!r} was cut off: {snippet(source)!r}"])], end)


def read_arguments(text: str, j: int, final: bool, name: str, source: str, end_mark: re.Pattern[str],
                   make_call: Callable[[str, str, int], Outcome]) -> Outcome:
    """The arguments after a call's name marker (qwen ✿ARGS✿, react Action Input): a balanced JSON object, or
    else plain text up to ``end_mark``. Incomplete input waits for more unless ``final``; a JSON object that never
    closes is reported as cut off."""
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        end = json_span_end(text, j)
        if end is not None:
            return make_call(name, text[j:end], end)
        if final:
            return cut_off(name, source, len(text))
        return Outcome([], complete=False)
    nxt = end_mark.search(text, j)
    if nxt is None and not final:
        return Outcome([], complete=False)
    end = nxt.start() if nxt is not None else len(text)
    return make_call(name, text[j:end], end)


def generic_recognizers() -> list[Recognizer]:
    """Syntaxes read in every format: tags, fences, bare JSON."""
    return [ToolCallTag(), Dropped("</tool_call>"), Fence(), BareJson()]


def think_recognizers() -> list[Recognizer]:
    return [Think(), OrphanThinkClose()]
