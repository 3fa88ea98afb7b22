"""The values that cross the `ChatModel` boundary: sampling settings, how tool calls are obtained, and replies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.llm.context import TruncationReport
from qwen_agent.messages import Message, ToolCall

__all__ = ["ChatDelta", "ChatResponse", "FunctionCalling", "RawChunk", "SamplingParams", "ToolChoice", "Usage"]


class SamplingParams(BaseModel):
    """Generation settings. ``None`` means "the backend's default". ``extra_body`` goes verbatim to servers."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    def merged(self, override: SamplingParams | None) -> SamplingParams:
        """Fields set on ``override`` win; stop words and extra_body are combined."""
        if override is None:
            return self.model_copy(deep=True)
        data = self.model_dump()
        for key in override.model_fields_set:
            data[key] = getattr(override, key)
        data["stop"] = list(dict.fromkeys([*self.stop, *override.stop]))
        data["extra_body"] = {**self.extra_body, **override.extra_body}
        return SamplingParams(**data)


#: "auto": the model may call tools or answer; "none": it must answer now (OpenAI's ``tool_choice`` values).
ToolChoice = Literal["auto", "none"]


class FunctionCalling(BaseModel):
    """How tool calls are obtained from the model."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["prompted", "native"] = "prompted"
    format: Literal["nous", "qwen", "react"] = "nous"
    #: Constrain decoding to "a final answer or a valid call" (llama.cpp grammar; server support varies).
    constrained: bool = False
    parallel: bool = True
    #: Small models write one call per reply even when asked for several (BFCL's parallel category: 0 of 50 for
    #: the 0.5B). With ``parallel`` in prompted, unconstrained mode, on a backend that reports token probabilities,
    #: a reply that ends in a call is continued with another call while the model's own probability of opening
    #: one right after it is at least this (`qwen_agent.llm.more_calls`). None: never.
    next_call_threshold: float | None = Field(default=0.75, ge=0.0, le=1.0)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Prompt tokens served from the KV cache instead of being evaluated again (None when unknown).
    cached_prompt_tokens: int | None = None


class RawChunk(BaseModel):
    """What a backend yields: a text delta; the final chunk carries finish reason, usage and native tool calls."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatResponse(BaseModel):
    message: Message
    raw_text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    #: Things that looked like tool calls but could not be read; see `ParsedReply.errors`.
    parse_errors: list[str] = Field(default_factory=list)
    #: Calls taken out of the reply because they name a function that was not offered or their arguments break
    #: its schema after repair (see `qwen_agent.prompting.call_check`): one line each, written for the model.
    refused_calls: list[str] = Field(default_factory=list)
    #: The refused calls themselves, as the model wrote them, in the order of ``refused_calls`` (an agent may still
    #: give one to a tool that adopts unknown names, see `qwen_agent.prompting.call_check.adopt_name`).
    refused: list[ToolCall] = Field(default_factory=list)
    #: Set when older turns or long tool results were left out of the request to fit ``max_input_tokens``.
    truncation: TruncationReport | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.message.tool_calls or []

    @property
    def text(self) -> str:
        return self.message.text


class ChatDelta(BaseModel):
    """One streaming event: visible text, reasoning text, or (last) the complete response."""

    content: str = ""
    reasoning: str = ""
    response: ChatResponse | None = None
