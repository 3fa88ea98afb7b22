"""The shared call scanner: cut a raw reply into text, reasoning and tool-call pieces, incrementally.

One scanner serves all three formats; a format only chooses which `Recognizer`s take part (every format also reads
the syntaxes small models fall back to: ``<tool_call>`` tags, fenced JSON and bare JSON, see ``syntax.py``). The
same code runs for a complete reply (``final=True``) and for a growing stream (``final=False``), which is what makes
the streaming parser's output agree with the full parse: a piece is committed only once more text can no longer
change it, and everything after the first undecided position waits.

A reply is hostile input, so the scan is linear in its length: each recognizer's next match is searched once per
text and reused until the scan passes it, bracket spans come from one shared `SpanIndex`, and a construct that is
still undecided while streaming is re-read from where its last reading stopped (`Reading.since`), not from its start.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from qwen_agent.messages import ToolCall
from qwen_agent.prompting.call_shapes import MAX_CALLS, MAX_ERRORS, Found, Tools
from qwen_agent.prompting.spans import SpanIndex

__all__ = ["MAX_ATTEMPTS", "Outcome", "Piece", "PieceKind", "Reading", "Recognizer", "Scanner", "hold_index"]

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


@dataclass
class Reading:
    """What a recognizer may use besides the text: the reply's tools (and repair budget) and its bracket index."""

    tools: Tools
    spans: SpanIndex = field(default_factory=SpanIndex)
    #: For a construct that was undecided at the last advance: the text length it was read up to then (else 0).
    #: Its closing marker cannot lie wholly before this, so searches may restart a marker's length before it.
    since: int = 0

    def resume(self, start: int, marker_len: int) -> int:
        """Where to search for a marker of ``marker_len`` characters that was not found up to `since`."""
        return max(start, self.since - marker_len + 1)


class Recognizer(ABC):
    """One piece of call syntax: where it may start, and how to read it from there."""

    pattern: re.Pattern[str]
    #: Literal openers; a buffer ending in a proper prefix of one is held back while streaming.
    partials: tuple[str, ...] = ()
    #: The literal openers only count at the start of a line (``Action:``).
    line_start: bool = False
    #: Extra end-of-buffer hold pattern (bare JSON: ``{`` then only whitespace so far).
    partial_re: re.Pattern[str] | None = None
    #: Reads tool calls (not reasoning or markers): stops taking part once a reply has made too many attempts.
    reads_calls: bool = False

    def search(self, text: str, pos: int, final: bool, reading: Reading) -> re.Match[str] | None:
        """The next opener at or after ``pos``. A recognizer may pass over openers that `consume` would certainly
        turn into plain text, so a long run of them costs one search instead of one scan step each."""
        return self.pattern.search(text, pos)

    @abstractmethod
    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome: ...


def hold_index(text: str, start: int, literals: tuple[str, ...], line_start: bool = False) -> int:
    """Smallest index >= start where the end of ``text`` may be the beginning of one of ``literals``."""
    best = len(text)
    for lit in literals:
        i = text.find(lit[0], max(start, len(text) - len(lit) + 1))
        while 0 <= i < best:
            if lit.startswith(text[i:]) and (not line_start or _at_line_start(text, i)):
                best = i
                break
            i = text.find(lit[0], i + 1)
    return best


def _at_line_start(text: str, i: int) -> bool:
    j = text.rfind("\n", 0, i)
    return not text[j + 1 : i].strip()


_NOWHERE = 1 << 62  # the start of "no match"
#: Call attempts (calls and errors) read from one reply; after that its call syntax is left as text. Every attempt
#: costs a decode and a ToolCall, and a reply can hold thousands; more than the output keeps is a runaway reply.
MAX_ATTEMPTS = MAX_CALLS + MAX_ERRORS


class Scanner:
    """Stateful scan over a growing text. `advance` may be called again with a longer text that extends the old one."""

    def __init__(self, recognizers: list[Recognizer], tools: Tools) -> None:
        self.recognizers = recognizers
        self.tools = tools
        self.reading = Reading(tools)
        self.pos = 0
        self.pieces: list[Piece] = []
        self.tentative: list[Piece] = []
        # Each recognizer's next match in the current text and its start (`_NOWHERE` if none): one search per
        # recognizer and text, repeated only once the scan has passed the match, not once per piece before it.
        self._hits: list[re.Match[str] | None] = []
        self._starts: list[int] = []
        # The undecided construct the last advance stopped at: (its start, its recognizer, the text length then).
        self._blocked: tuple[int, Recognizer, int] | None = None
        # Pieces before this index hold no text any more (a ``</think>`` already made them reasoning).
        self._retro_from = 0
        self._attempts = 0

    def advance(self, text: str, final: bool) -> None:
        self.tentative = []
        self.reading.spans.see(text)
        blocked, self._blocked = self._blocked, None
        self._starts = []  # a new text: every cached search is stale
        while True:
            hit = self._next(text, self.pos, final, blocked)
            if hit is None:
                end = len(text) if final else self._hold(text, self.pos)
                self._text(text[self.pos : end])
                self.pos = end
                return
            m, rec = hit
            self._text(text[self.pos : m.start()])
            self.pos = m.start()
            same = blocked is not None and blocked[0] == m.start() and blocked[1] is rec
            self.reading.since = blocked[2] if same and blocked is not None else 0
            out = rec.consume(text, m, final, self.reading)
            if not out.complete:
                self.tentative = out.pieces
                self._blocked = (m.start(), rec, len(text))
                return
            if out.retro_reasoning:
                for p in self.pieces[self._retro_from :]:
                    if p.kind == "text":
                        p.kind = "think"
                self._retro_from = len(self.pieces)
            for p in out.pieces:
                if p.kind == "calls":
                    self._count_attempts(p)
                if p.kind != "text" or p.text:
                    self.pieces.append(p)
            self.pos = max(out.end, m.start() + 1)
            blocked = None

    def _count_attempts(self, piece: Piece) -> None:
        self._attempts += len(piece.calls) + len(piece.errors)
        if self._attempts >= MAX_ATTEMPTS and any(r.reads_calls for r in self.recognizers):
            self.recognizers = [r for r in self.recognizers if not r.reads_calls]
            self._starts = []
            piece.errors.append(f"the reply holds {MAX_ATTEMPTS} or more tool-call attempts; "
                                "any after those were not read")

    def _text(self, s: str) -> None:
        if not s:
            return
        if self.pieces and self.pieces[-1].kind == "text":
            self.pieces[-1].text += s
        else:
            self.pieces.append(Piece("text", s))

    def _next(self, text: str, pos: int, final: bool,
              blocked: tuple[int, Recognizer, int] | None) -> tuple[re.Match[str], Recognizer] | None:
        recs = self.recognizers
        if not recs:
            return None
        if blocked is not None and blocked[0] == pos:
            # Still at the construct that was undecided: nothing can start before it, so only what starts here
            # counts (the first recognizer in order, as in the full search below).
            for rec in recs:
                m = rec.pattern.match(text, pos)
                if m is not None:
                    return m, rec
        if not self._starts:
            self._hits = [rec.search(text, pos, final, self.reading) for rec in recs]
            self._starts = [_NOWHERE if m is None else m.start() for m in self._hits]
        starts, hits = self._starts, self._hits
        while True:
            k = starts.index(min(starts))  # the first of the earliest: list order breaks ties
            if starts[k] >= pos:
                break
            m = hits[k] = recs[k].search(text, pos, final, self.reading)
            starts[k] = _NOWHERE if m is None else m.start()
        m = hits[k]
        return None if m is None else (m, recs[k])

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
