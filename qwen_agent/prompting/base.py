"""The function-calling format interface: render tools + history into plain chat messages, parse replies back.

Pure code: text in, text and ToolCalls out. No model, no I/O. Each concrete format (``nous``, ``qwen``, ``react``)
lives in its own module with its jinja2 template under ``templates/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, Field

from qwen_agent.messages import Message, ToolCall, ToolSchema

__all__ = ["CallOpener", "FunctionFormat", "ParsedReply", "StreamDelta", "StreamParser"]


class ParsedReply(BaseModel):
    """What a raw model reply means: visible text, the calls to execute, and hidden reasoning."""

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    reasoning: str = ""
    # Fragments that looked like a tool call but could not be read even leniently. The agent reports them back to
    # the model as an observation so it can correct itself instead of the call silently vanishing.
    errors: list[str] = Field(default_factory=list)


class StreamDelta(BaseModel):
    """Text safe to show the user now (tool-call syntax and partial tags are held back)."""

    content: str = ""
    reasoning: str = ""


class StreamParser(ABC):
    """Incremental parser: feed raw text deltas, get displayable deltas; `finish` returns the full parse."""

    @abstractmethod
    def feed(self, text: str) -> StreamDelta: ...

    def flush(self) -> StreamDelta:
        """Text still held back (a possible partial marker) that turned out to be plain text, once input ended."""
        return StreamDelta()

    @abstractmethod
    def finish(self) -> ParsedReply: ...


@dataclass(frozen=True)
class CallOpener:
    """How one more call would start right after the calls a reply ends with, written the way the model wrote them.

    Small models write one call per reply even when a request asks for several: after its first call the model
    ends the turn, yet when made to go on it writes the next one (`qwen_agent.llm.more_calls`). ``probe`` is the
    token whose probability right after ``text + "\\n"`` says whether the model itself would open another call;
    ``opener`` starts one, generation stops at ``stop``, and ``closer`` completes the block (stop strings are not
    part of the generated text).
    """

    probe: str
    opener: str
    stop: str
    closer: str


class FunctionFormat(ABC):
    """A way of describing tools to a model in its prompt and reading calls from its text."""

    name: str
    #: Stop words the format needs, e.g. ``✿RESULT✿`` or ``Observation:`` so the model does not invent results.
    stop_words: ClassVar[list[str]]
    #: Text that, written right after a rendered history ending in tool results, starts the final answer. When an
    #: answer is required (``tool_choice="none"``), backends that can continue an assistant message start the reply
    #: with it (appended to a trailing assistant message, else as a new one); small models otherwise tend to repeat
    #: the call they just made.
    answer_prefix: str = ""

    @abstractmethod
    def render(self, messages: list[Message], tools: list[ToolSchema], *, parallel: bool = True) -> list[Message]:
        """Turn a history with tool calls/results and tool schemas into plain system/user/assistant messages."""

    @abstractmethod
    def parse(self, text: str, tools: list[ToolSchema] | None = None) -> ParsedReply:
        """Read a complete raw reply leniently. Never raises on malformed text."""

    @abstractmethod
    def stream_parser(self, tools: list[ToolSchema] | None = None) -> StreamParser: ...

    @abstractmethod
    def grammar(self, tools: list[ToolSchema], *, parallel: bool = True) -> str:
        """A GBNF grammar that admits either a final text answer or syntactically valid calls of these tools."""

    def call_opener(self, text: str) -> CallOpener | None:
        """How another call would follow ``text`` (a reply ending in a call), or None when this format or the way
        the reply is written has no such continuation. Default: none."""
        return None
