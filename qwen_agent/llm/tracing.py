"""The ``chat {model}`` span of one model request (OpenTelemetry GenAI conventions), shared by every backend.

`ChatModel.astream` / `achat` open one `ChatTrace` per request: request attributes at the start, the time to the
first streamed chunk, and finish reasons, usage and the response model at the end; a `ModelError` (or any other
exception) sets ``error.type``. Message contents only when `capture_content` is on. Without a tracer provider
every method is a no-op on `NO_SPAN`.
"""

from __future__ import annotations

import time

from qwen_agent.llm.types import ChatResponse, SamplingParams
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.tracing import genai
from qwen_agent.tracing.api import NO_SPAN, Span, capture_content, start_span

__all__ = ["ChatTrace"]


class ChatTrace:
    """One request's span; ``start`` returns it so callers keep a single object per request."""

    __slots__ = ("_first", "_started", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._started = time.perf_counter()
        self._first = False

    @classmethod
    def start(cls, provider: str, model: str) -> ChatTrace:
        return cls(start_span(f"chat {model}" if model else "chat", {
            genai.OPERATION: "chat",
            genai.PROVIDER: provider,
            genai.REQUEST_MODEL: model or None,
        }, kind="CLIENT"))

    def request(self, params: SamplingParams, messages: list[Message], tools: list[ToolSchema] | None) -> None:
        """The planned request: sampling settings, and (opt-in) the messages and tool definitions sent."""
        span = self.span
        if span.recording:
            span.set_many({
                genai.REQUEST_TEMPERATURE: params.temperature,
                genai.REQUEST_TOP_P: params.top_p,
                genai.REQUEST_TOP_K: float(params.top_k) if params.top_k is not None else None,
                genai.REQUEST_MAX_TOKENS: params.max_tokens,
                genai.REQUEST_STOP: list(params.stop) or None,
            })
            if capture_content():
                system = [m for m in messages if m.role == "system"]
                span.set_many({
                    genai.SYSTEM_INSTRUCTIONS: "\n\n".join(m.text for m in system) or None,
                    genai.INPUT_MESSAGES: genai.messages_json(m for m in messages if m.role != "system"),
                    genai.TOOL_DEFINITIONS: genai.tool_definitions_json(tools) if tools else None,
                })

    def chunk(self) -> None:
        """Call on every streamed chunk; the first one sets the time to first chunk."""
        if not self._first:
            self._first = True
            self.span.set(genai.TIME_TO_FIRST_CHUNK, time.perf_counter() - self._started)

    def finish(self, response: ChatResponse) -> None:
        span = self.span
        if span is NO_SPAN:
            return
        usage = response.usage
        span.set_many({
            genai.RESPONSE_MODEL: response.model,
            genai.RESPONSE_FINISH_REASONS: [response.finish_reason] if response.finish_reason else None,
            genai.USAGE_INPUT: usage.prompt_tokens if usage else None,
            genai.USAGE_OUTPUT: usage.completion_tokens if usage else None,
            genai.USAGE_CACHE_READ: usage.cached_prompt_tokens if usage else None,
        })
        if capture_content():
            span.set(genai.OUTPUT_MESSAGES, genai.messages_json([response.message], response.finish_reason))
        span.end()

    def fail(self, exc: BaseException) -> None:
        """End the span as failed; a consumer that stopped reading (GeneratorExit) only ends it."""
        if not isinstance(exc, GeneratorExit):
            self.span.error(type(exc).__name__, str(exc)[:500])
        self.span.end()
