"""The ``react`` format: Thought / Action / Action Input / Observation, ending in ``Final Answer:``."""

from __future__ import annotations

import re
from typing import ClassVar

from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.base import FunctionFormat
from qwen_agent.prompting.call_shapes import Tools, call_from_name_and_text
from qwen_agent.prompting.grammar import react_grammar
from qwen_agent.prompting.reader import ReplyReader, View, join_reasoning
from qwen_agent.prompting.render import render_inline
from qwen_agent.prompting.scan import Outcome, Piece, Reading, Recognizer, hold_index
from qwen_agent.prompting.syntax import (
    SOURCE_CHARS,
    generic_recognizers,
    read_arguments,
    skip_space,
    think_recognizers,
)

__all__ = ["Action", "FinalAnswer", "ReActFormat", "Thought"]

_ACTION_INPUT = "Action Input:"
_MARKERS = ("Action:", "Final Answer:", "Thought:", "Observation:")
# Where an Action Input that is not a JSON object ends: the next labelled line.
_INPUT_END = re.compile(r"\n[ \t]*(?:Observation|Thought|Action|Final Answer)\b")
# Where a thought ends: a labelled line, a final answer, or call syntax of another kind.
_THOUGHT_END = re.compile(r"\n[ \t]*(?:Action:|Thought:|Observation:)|Final Answer:|<tool_call>|```|\n[ \t]*[\[{]")
_NO_TOOL = {"", "none", "n/a", "no action", "null"}


class Action(Recognizer):
    """``Action: name`` + ``Action Input: arguments`` (JSON, or plain text for a one-string-parameter tool)."""

    reads_calls = True
    pattern = re.compile(r"(?m)^[ \t]*Action:[ \t]*")
    partials = ("Action:",)
    line_start = True

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        tools = reading.tools
        source = text[m.start() : m.start() + SOURCE_CHARS]
        line_end = text.find("\n", m.end())
        if line_end < 0 and not final:
            return Outcome([], complete=False)
        name_end = len(text) if line_end < 0 else line_end
        name = text[m.end():name_end].strip()
        if "{" in name:  # "Action: get_weather {"city": "Paris"}" on one line
            brace = m.end() + text[m.end():name_end].index("{")
            close = reading.spans.end(brace) or name_end
            return self._call(text[m.end():brace], text[brace:close], tools, source, close)
        i = skip_space(text, name_end)
        if not final and len(text) - i <= len(_ACTION_INPUT) and _ACTION_INPUT.startswith(text[i:]):
            return Outcome([], complete=False)
        if not text.startswith(_ACTION_INPUT, i):
            if name.lower().strip(".") in _NO_TOOL:
                return Outcome([], name_end)
            return self._call(name, "", tools, source, name_end)
        j = i + len(_ACTION_INPUT)
        return read_arguments(text, j, final, name, source, _INPUT_END,
                              lambda n, args, end: self._call(n, args, tools, source, end), reading)

    @staticmethod
    def _call(name: str, args: str, tools: Tools, source: str, end: int) -> Outcome:
        if name.strip().lower().strip(".") in _NO_TOOL:
            return Outcome([], end)
        return Outcome([Piece.of(call_from_name_and_text(name, args, tools, source))], end)


class Thought(Recognizer):
    """``Thought: ...`` up to the next labelled line: reasoning."""

    pattern = re.compile(r"(?m)^[ \t]*Thought:[ \t]*")
    partials = ("Thought:",)
    line_start = True

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        stop = _THOUGHT_END.search(text, m.end())
        if stop is not None:
            return Outcome([Piece("thought", text[m.end():stop.start()])], stop.start())
        if final:
            return Outcome([Piece("thought", text[m.end():])], len(text))
        # Show finished words; hold back a last line that may be turning into a label or a call.
        last_nl = text.rfind("\n", m.end())
        line = text[last_nl + 1:].lstrip() if last_nl >= 0 else ""
        cut = len(text)
        if last_nl >= 0 and (not line or line[0] in "{[<`" or any(mk.startswith(line) for mk in _MARKERS)):
            cut = last_nl
        cut = min(cut, hold_index(text, m.end(), ("Final Answer:", "<tool_call>", "```")))
        return Outcome([Piece("thought", text[m.end():cut])], complete=False)


class FinalAnswer(Recognizer):
    """``Final Answer:``: what follows is the answer; unlabelled text before it was thinking."""

    pattern = re.compile(r"Final Answer:[ \t]*")
    partials = ("Final Answer:",)

    def consume(self, text: str, m: re.Match[str], final: bool, reading: Reading) -> Outcome:
        if not final and m.end() == len(text):  # the spaces the marker takes may still be arriving
            return Outcome([], complete=False)
        return Outcome([Piece("marker")], m.end())


class ReActFormat(ReplyReader, FunctionFormat):
    """ReAct prompting. A history ending in a tool result ends with an assistant message stopping at ``Thought:``,
    which the backend should continue (no new assistant turn).

    Reading: thoughts and any unlabelled text before ``Final Answer:`` or an ``Action`` are reasoning; the text after
    ``Final Answer:`` is the content. A reply in none of these shapes is taken as a plain answer.
    """

    name = "react"
    stop_words: ClassVar[list[str]] = ["Observation:", "Observation:\n"]
    # Continues the rendered "...Observation: <result>\nThought:" of a history that ends with tool results.
    answer_prefix = " I now know the final answer.\nFinal Answer: "

    def render(self, messages: list[Message], tools: list[ToolSchema], *, parallel: bool = True) -> list[Message]:
        return render_inline(messages, tools, parallel, "react.j2")

    def recognizers(self, tools: Tools) -> list[Recognizer]:
        if tools.none_allowed:  # an answer is required: read its structure, never a call
            return [*think_recognizers(), Thought(), FinalAnswer()]
        return [*think_recognizers(), Action(), Thought(), FinalAnswer(), *generic_recognizers()]

    def assemble(self, pieces: list[Piece], final: bool) -> View:
        view = View()
        marker = next((i for i, p in enumerate(pieces) if p.kind == "marker"), None)
        acted = any(p.kind == "calls" for p in pieces)
        content: list[str] = []
        pending: list[str] = []
        reasoning: list[str] = []
        thoughts: list[str] = []
        for i, p in enumerate(pieces):
            if p.kind == "text":
                if marker is not None and i > marker:
                    content.append(p.text)
                elif marker is not None or acted:
                    reasoning.append(p.text)
                else:
                    pending.append(p.text)
            elif p.kind in ("think", "thought"):
                reasoning.append(p.text)
                if p.kind == "thought":
                    thoughts.append(p.text)
            elif p.kind == "calls":
                view.calls += p.calls
                view.errors += p.errors
        view.content = "".join(content).strip()
        view.reasoning = join_reasoning(reasoning)
        if final and marker is None and not acted:
            view.content = "".join(pending).strip()
            if not view.content and thoughts:  # only "Thought: ..." was written: that is the user's answer
                view.content = join_reasoning(thoughts)
                view.reasoning = join_reasoning([p.text for p in pieces if p.kind == "think"])
        return view

    def grammar(self, tools: list[ToolSchema], *, parallel: bool = True) -> str:
        return react_grammar(tools, parallel=parallel)
