"""The ``nous`` (Hermes / Qwen2.5) function-calling format: ``<tool_call>`` JSON calls, ``<tool_response>`` results."""

from __future__ import annotations

from typing import ClassVar

from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.base import CallOpener, FunctionFormat
from qwen_agent.prompting.call_shapes import Tools
from qwen_agent.prompting.grammar import nous_grammar
from qwen_agent.prompting.jinja import macros
from qwen_agent.prompting.reader import ReplyReader
from qwen_agent.prompting.render import Draft, call_dicts, non_text_parts, parts_of, text, tool_dicts
from qwen_agent.prompting.scan import Recognizer
from qwen_agent.prompting.syntax import generic_recognizers, think_recognizers

__all__ = ["NousFormat", "tool_dicts_openai"]

_TEMPLATE = "nous.j2"


class NousFormat(ReplyReader, FunctionFormat):
    """What Qwen2.5's own chat template does with ``tools``, done on our side so any backend and template work.

    Small Qwen models mostly answer with bare or fenced JSON instead of the tags; the shared scanner reads those too.
    """

    name = "nous"
    # The chat template's end-of-turn token already stops a reply; this one keeps the model from inventing results.
    stop_words: ClassVar[list[str]] = ["<tool_response>"]
    answer_prefix = "Based on the tool results, "

    def render(self, messages: list[Message], tools: list[ToolSchema], *, parallel: bool = True) -> list[Message]:
        t = macros(_TEMPLATE)
        draft = Draft()
        for msg in messages:
            if msg.role == "tool":
                parts = text(t.result_open()) + parts_of(msg.content) + text(t.result_close())
                if draft.after_results:  # consecutive results share one user message, in order
                    draft.extend_last(text(t.result_separator()) + parts)
                else:
                    draft.add("user", parts)
                draft.after_results = True
            elif msg.role == "assistant" and msg.tool_calls:
                # What the model wrote, verbatim when we have it (keeps the KV cache valid), else canonical tags.
                body = msg.generated_text or t.calls(msg.text, call_dicts(msg.tool_calls))
                draft.add("assistant", text(body) + non_text_parts(msg))
            else:
                draft.add(msg.role, parts_of(msg.content))
        section = str(t.system(tool_dicts_openai(tools), parallel)) if tools else ""
        return draft.build(section)

    def recognizers(self, tools: Tools) -> list[Recognizer]:
        if tools.none_allowed:
            return think_recognizers()
        return [*think_recognizers(), *generic_recognizers()]

    def grammar(self, tools: list[ToolSchema], *, parallel: bool = True) -> str:
        return nous_grammar(tools, parallel=parallel)

    def call_opener(self, text: str) -> CallOpener | None:
        """Another ``<tool_call>`` block after tags, another fenced JSON block after a fence (what the 0.5B writes
        most). A bare JSON call has no separator the model would use for a second one: None."""
        end = text.rstrip()
        if end.endswith("</tool_call>"):
            return _TAGGED
        if end.endswith("```") and "```json" in end:
            return _FENCED
        return None


_TAGGED = CallOpener(probe="<tool_call>", opener="\n<tool_call>\n", stop="</tool_call>", closer="\n</tool_call>")
#: A blank line between fenced blocks: what the model writes when it does write two of them.
_FENCED = CallOpener(probe="```", opener="\n\n```json\n", stop="```", closer="\n```")


def tool_dicts_openai(tools: list[ToolSchema]) -> list[dict[str, object]]:
    """Tools as Qwen2.5's template lists them: ``{"type": "function", "function": {...}}``."""
    return [{"type": "function", "function": d} for d in tool_dicts(tools)]
