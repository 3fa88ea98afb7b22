"""The ``qwen`` function-calling format of Qwen-Agent: ``✿FUNCTION✿: name`` / ``✿ARGS✿: {json}`` / ``✿RESULT✿``."""

from __future__ import annotations

import re
from typing import ClassVar

from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.base import FunctionFormat
from qwen_agent.prompting.call_shapes import Tools, call_from_name_and_text
from qwen_agent.prompting.grammar import qwen_grammar
from qwen_agent.prompting.reader import ReplyReader, View, assemble_plain
from qwen_agent.prompting.render import render_inline
from qwen_agent.prompting.scan import Outcome, Piece, Reading, Recognizer
from qwen_agent.prompting.syntax import (
    SOURCE_CHARS,
    Dropped,
    generic_recognizers,
    read_arguments,
    skip_space,
    think_recognizers,
)

FN_NAME, FN_ARGS, FN_RESULT, FN_EXIT = "✿FUNCTION✿", "✿ARGS✿", "✿RESULT✿", "✿RETURN✿"
_MARK = re.compile("✿(?:FUNCTION|ARGS|RESULT|RETURN)✿")


class FunctionMark(Recognizer):
    """``✿FUNCTION✿: name`` then ``✿ARGS✿: arguments`` (JSON, or plain text for a one-string-parameter tool)."""

    reads_calls = True
    pattern = re.compile(FN_NAME + ":?")
    partials = (FN_NAME,)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        tools = reading.tools
        source = text[m.start() : m.start() + SOURCE_CHARS]
        line_end = _first(text, m.end(), ("\n", "✿"))
        if line_end < 0:
            if not final:
                return Outcome([], complete=False)
            return self._call(text[m.end():], "", tools, source, len(text))
        name = text[m.end():line_end]
        i = skip_space(text, line_end)
        if not final and len(text) - i <= len(FN_ARGS) and FN_ARGS.startswith(text[i:]):
            return Outcome([], complete=False)
        if not text.startswith(FN_ARGS, i):
            return self._call(name, "", tools, source, line_end)
        j = i + len(FN_ARGS)
        if j < len(text) and text[j] == ":":
            j += 1
        return read_arguments(text, j, final, name, source, _MARK,
                              lambda n, args, end: self._call(n, args, tools, source, end), reading)

    @staticmethod
    def _call(name: str, args: str, tools: Tools, source: str, end: int) -> Outcome:
        return Outcome([Piece.of(call_from_name_and_text(name, args, tools, source))], end)


def _first(text: str, start: int, needles: tuple[str, ...]) -> int:
    found = [i for i in (text.find(n, start) for n in needles) if i >= 0]
    return min(found) if found else -1


class QwenFormat(ReplyReader, FunctionFormat):
    """Qwen-Agent's own prompt format for Qwen1.5/Qwen2 chat models; tool results continue the assistant turn.

    A rendered history that ends with tool results ends with an assistant message that stops at ``✿RETURN✿``: the
    backend should continue that message (no new assistant turn) so the model writes ``: <answer>``.
    """

    name = "qwen"
    # Not ✿RETURN✿: a model that answers at once writes "✿RETURN✿: answer", and stopping there loses the answer.
    stop_words: ClassVar[list[str]] = [FN_RESULT]
    answer_prefix = ": "

    def render(self, messages: list[Message], tools: list[ToolSchema], *, parallel: bool = True) -> list[Message]:
        return render_inline(messages, tools, parallel, "qwen.j2")

    def recognizers(self, tools: Tools) -> list[Recognizer]:
        if tools.none_allowed:
            return [*think_recognizers(), Dropped(FN_EXIT + ":")]
        return [*think_recognizers(), FunctionMark(), Dropped(FN_EXIT + ":"), *generic_recognizers()]

    def assemble(self, pieces: list[Piece], final: bool) -> View:
        view = assemble_plain(pieces)
        # Continuing after "✿RETURN✿" the model writes ": answer"; the colon belongs to the marker.
        if view.content.startswith(":"):
            view.content = view.content[1:].lstrip()
        return view

    def grammar(self, tools: list[ToolSchema], *, parallel: bool = True) -> str:
        return qwen_grammar(tools, parallel=parallel)


__all__ = ["FN_ARGS", "FN_EXIT", "FN_NAME", "FN_RESULT", "QwenFormat"]
