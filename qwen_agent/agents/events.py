"""What an agent run reports while it works (streamed events) and what it returns at the end (AgentResult)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from qwen_agent.llm.types import ChatResponse, Usage
from qwen_agent.messages import Message, ToolCall
from qwen_agent.tools.base import ToolOutput

__all__ = [
    "AgentEvent",
    "AgentResult",
    "FinalAnswer",
    "ReasoningDelta",
    "StepFinished",
    "StopReason",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
]


class TextDelta(BaseModel):
    """Visible answer text as the model writes it (tool-call syntax is never in here)."""

    type: Literal["text"] = "text"
    step: int
    content: str


class ReasoningDelta(BaseModel):
    """Text from a ``<think>`` block or a server's reasoning channel."""

    type: Literal["reasoning"] = "reasoning"
    step: int
    content: str


class ToolCallStarted(BaseModel):
    type: Literal["tool_started"] = "tool_started"
    step: int
    call: ToolCall


class ToolCallFinished(BaseModel):
    type: Literal["tool_finished"] = "tool_finished"
    step: int
    call: ToolCall
    output: ToolOutput
    elapsed_s: float


class StepFinished(BaseModel):
    """One model reply is complete (before its tool calls run)."""

    type: Literal["step"] = "step"
    step: int
    response: ChatResponse
    elapsed_s: float
    #: True when the reply only repeated earlier calls: it was dropped and the model asked for the answer.
    discarded: bool = False


class FinalAnswer(BaseModel):
    type: Literal["final"] = "final"
    result: AgentResult


AgentEvent = Annotated[
    TextDelta | ReasoningDelta | ToolCallStarted | ToolCallFinished | StepFinished | FinalAnswer,
    Field(discriminator="type"),
]

StopReason = Literal["answer", "max_steps", "model_error"]


class AgentResult(BaseModel):
    """The outcome of a run: the answer and the full transcript (input messages included) as messages."""

    answer: str
    messages: list[Message]
    steps: int
    stop_reason: StopReason
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    #: Class name of the model error that ended the run (``ModelTimeoutError`` ...), so callers such as the server
    #: can tell a timeout from a refused connection without parsing ``error``.
    error_type: str | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model made, in order."""
        return [c for m in self.messages if m.role == "assistant" for c in (m.tool_calls or [])]

    def to_openai(self) -> list[dict[str, Any]]:
        return [m.to_openai() for m in self.messages]


FinalAnswer.model_rebuild()
