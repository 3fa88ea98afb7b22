"""Reading replies, complete or streamed: the part of a format that turns scanner pieces into a ParsedReply.

`ReplyReader` is the parse/stream half every format shares; a format supplies its recognizers and, if it needs to,
its own `assemble` (ReAct decides what is reasoning only once it sees ``Final Answer:``). The streaming parser
re-assembles the pieces committed so far after every delta (after every few, for long replies) and emits only what
extends what it already emitted, so its content deltas always form a prefix of the final content;
`ScanStreamParser.flush` hands out the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwen_agent.messages import ToolCall, ToolSchema
from qwen_agent.prompting.base import ParsedReply, StreamDelta, StreamParser
from qwen_agent.prompting.call_shapes import MAX_CALLS, MAX_ERRORS, Tools
from qwen_agent.prompting.scan import Piece, Recognizer, Scanner

__all__ = ["ReplyReader", "ScanStreamParser", "View", "assemble_plain", "join_reasoning"]


@dataclass
class View:
    """Content, reasoning and calls as they stand (complete or so far)."""

    content: str = ""
    reasoning: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def join_reasoning(parts: list[str]) -> str:
    return "\n\n".join(s for s in (p.strip() for p in parts) if s)


def assemble_plain(pieces: list[Piece]) -> View:
    """The default reading: text pieces are the content, think/thought pieces the reasoning."""
    view = View()
    text: list[str] = []
    reasoning: list[str] = []
    for p in pieces:
        if p.kind == "text":
            text.append(p.text)
        elif p.kind in ("think", "thought"):
            reasoning.append(p.text)
        elif p.kind == "calls":
            view.calls += p.calls
            view.errors += p.errors
    view.content = "".join(text).strip()
    view.reasoning = join_reasoning(reasoning)
    return view


class ReplyReader:
    """parse + stream_parser for a format, given its recognizers. Mixed into the concrete FunctionFormat classes."""

    def recognizers(self, tools: Tools) -> list[Recognizer]:
        raise NotImplementedError

    def assemble(self, pieces: list[Piece], final: bool) -> View:
        return assemble_plain(pieces)

    def scanner(self, tools: list[ToolSchema] | None) -> Scanner:
        t = Tools.of(tools)
        return Scanner(self.recognizers(t), t)

    def parse(self, text: str, tools: list[ToolSchema] | None = None) -> ParsedReply:
        """Read a complete raw reply leniently. Never raises on malformed text."""
        scanner = self.scanner(tools)
        scanner.advance(text, final=True)
        view = self.assemble(scanner.pieces, final=True)
        calls, errors = view.calls, view.errors
        if len(calls) > MAX_CALLS:
            errors = [*errors, f"the reply holds {len(calls)} calls; only the first {MAX_CALLS} are read"]
            calls = calls[:MAX_CALLS]
        if len(errors) > MAX_ERRORS:
            errors = [*errors[: MAX_ERRORS - 1], f"... and {len(errors) - MAX_ERRORS + 1} more problems"]
        return ParsedReply(content=view.content, tool_calls=calls, reasoning=view.reasoning, errors=errors)

    def stream_parser(self, tools: list[ToolSchema] | None = None) -> ScanStreamParser:
        return ScanStreamParser(self, tools)


#: Reading cost (pieces, plus characters / `_CHARS_PER_UNIT`) up to which every delta is read at once.
_FREE_COST = 32
_CHARS_PER_UNIT = 1024
#: Beyond it, a reading waits for (cost - _FREE_COST) / _WAIT_DIVISOR new characters.
_WAIT_DIVISOR = 4


class ScanStreamParser(StreamParser):
    """Feed raw deltas, get the text that is certainly not call syntax; `finish` equals `parse` of the whole text.

    Reading after a delta costs time in proportion to the pieces found so far and the length of the text (the
    pieces are re-assembled, the text re-joined). An ordinary reply is read after every delta. A long or
    piece-heavy one waits for a number of new characters proportional to that cost before it is read again, so
    the total work stays linear in the reply (a reply of 10,000 tiny JSON objects no longer re-assembles them all
    for every token); its text then appears in slightly larger steps. `flush` always completes it.
    """

    def __init__(self, reader: ReplyReader, tools: list[ToolSchema] | None) -> None:
        self._reader = reader
        self._tools = tools
        self._scanner = reader.scanner(tools)
        self._text = ""
        self._unread: list[str] = []
        self._unread_chars = 0
        self._content = ""
        self._reasoning = ""
        self._final: ParsedReply | None = None

    def feed(self, text: str) -> StreamDelta:
        if not text or self._final is not None:
            return StreamDelta()
        self._unread.append(text)
        self._unread_chars += len(text)
        if self._unread_chars < self._wait():
            return StreamDelta()
        self._text += "".join(self._unread)
        self._unread = []
        self._unread_chars = 0
        self._scanner.advance(self._text, final=False)
        view = self._reader.assemble(self._scanner.pieces + self._scanner.tentative, final=False)
        return StreamDelta(content=self._take("_content", view.content),
                           reasoning=self._take("_reasoning", view.reasoning))

    def _wait(self) -> int:
        """New characters to collect before reading again (1: read every delta)."""
        cost = len(self._scanner.pieces) + len(self._text) // _CHARS_PER_UNIT
        return 1 + max(0, cost - _FREE_COST) // _WAIT_DIVISOR

    def _take(self, attr: str, now: str) -> str:
        done: str = getattr(self, attr)
        if len(now) > len(done) and now.startswith(done):
            setattr(self, attr, now)
            return now[len(done):]
        return ""

    def finish(self) -> ParsedReply:
        if self._final is None:
            self._final = self._reader.parse(self.text, self._tools)
        return self._final

    def flush(self) -> StreamDelta:
        """What the final parse shows beyond what `feed` already emitted (held-back tails, ReAct's plain answers).

        Call after the last `feed`; a UI appends it to complete the visible text.
        """
        final = self.finish()
        content = final.content[len(self._content):] if final.content.startswith(self._content) else ""
        reasoning = final.reasoning[len(self._reasoning):] if final.reasoning.startswith(self._reasoning) else ""
        self._content += content
        self._reasoning += reasoning
        return StreamDelta(content=content, reasoning=reasoning)

    @property
    def text(self) -> str:
        """All raw text fed so far."""
        if self._unread:
            self._text += "".join(self._unread)
            self._unread = []
            self._unread_chars = 0
        return self._text
