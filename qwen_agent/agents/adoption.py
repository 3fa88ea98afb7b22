"""Refused calls that a tool adopts: a call to an invented name whose arguments are, unmistakably, a call to a tool
that takes any name (``Tool.adopts_unknown_names``, the code interpreter).

The model layer refuses every call to a name that was not offered (`qwen_agent.prompting.call_check`), and must:
on a request no offered function serves, an invented name is the model asking for something else. The agent knows
more, namely which of its tools mean only their arguments. A 0.5B model given only ``code_interpreter`` names
its call after the question, sometimes with code as its argument (``train_distance`` with ``{"code": "84 * 3.5"}``);
running that code is what the user wanted. (More often it invents the arguments too; `refusal_lines` is for those.)
"""

from __future__ import annotations

import json
import logging

from qwen_agent.llm.types import ChatResponse
from qwen_agent.messages import ToolCall, ToolSchema
from qwen_agent.prompting.call_check import adopt_name
from qwen_agent.prompting.turn_markers import strip_turn_markers

__all__ = ["adopt_refused", "refusal_lines", "shown_refused"]

logger = logging.getLogger(__name__)


def adopt_refused(response: ChatResponse, adopting: list[ToolSchema], offered: set[str]) -> ChatResponse:
    """``response`` with each refused call to a name outside ``offered`` that fits exactly one of ``adopting``
    turned into a call to that tool (its refusal line removed); ``response`` itself when there is none."""
    if not response.refused or not adopting or len(response.refused) != len(response.refused_calls):
        return response
    adopted: list[ToolCall] = []
    refused: list[ToolCall] = []
    errors: list[str] = []
    for call, error in zip(response.refused, response.refused_calls, strict=True):
        renamed = adopt_name(call, adopting) if call.name not in offered else None
        if renamed is None:
            refused.append(call)
            errors.append(error)
        else:
            logger.info("a call to the unknown name %r runs on %r, which takes any name", call.name, renamed.name)
            adopted.append(renamed)
    if not adopted:
        return response
    calls = [*response.tool_calls, *adopted]
    message = response.message.model_copy(update={"tool_calls": calls})
    message.set_generated_text(None)  # the text names the invented function: re-render the calls instead
    return response.model_copy(update={"message": message, "refused": refused, "refused_calls": errors,
                                       "finish_reason": "tool_calls"})


def refusal_lines(response: ChatResponse, offered: set[str], hints: list[str]) -> list[str]:
    """What the model is told about its refused calls. A call to an invented name, when a tool takes any name, is
    told how to use that tool instead of "call an offered function, or answer without a call": given that choice,
    the 0.5B model answered with the invented name ("Answer: muffins_left") in 30 of 30 math items."""
    if not hints or len(response.refused) != len(response.refused_calls):
        return response.refused_calls
    return [f"`{call.name}` is not a function here. {' '.join(hints)}" if call.name not in offered else error
            for call, error in zip(response.refused, response.refused_calls, strict=True)]


def shown_refused(response: ChatResponse) -> ChatResponse:
    """A reply made only of refused calls, as the model wrote it, for the transcript: the refused calls are taken
    out of the message, which left an empty assistant turn, and the refusal note then answered nothing the model
    could see (the 0.5B model replied "Answer: 14" to it in every math item)."""
    if not response.refused or response.tool_calls or response.message.text.strip():
        return response
    # The raw text is the model's, and hostile: a turn marker in it would open a new turn (a system one) when the
    # transcript is rendered again, so it is cut there as answers are.
    shown = strip_turn_markers(response.raw_text).strip() or "\n".join(
        json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) for c in response.refused)
    return response.model_copy(update={"message": response.message.model_copy(update={"content": shown})})
