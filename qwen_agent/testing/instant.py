"""`InstantModel`: an in-process chat model that answers at once, for measuring what a batch runner itself costs.

It echoes the last user message (``"echo: <text>"``) with no I/O, so a benchmark of items/s over it measures the
runner (scheduling, pickling, recording), not a model; and it pickles, so Ray actors can build their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.types import RawChunk, SamplingParams, Usage
from qwen_agent.messages import Message, ToolSchema

__all__ = ["InstantModel"]


class InstantModel(ChatModel):
    """Answers ``prefix + last user text`` immediately (never calls a tool)."""

    def __init__(self, prefix: str = "echo: ") -> None:
        super().__init__(model="instant")
        self.prefix = prefix

    async def _stream_raw(self, messages: list[Message], params: SamplingParams, *,
                          tools: list[ToolSchema] | None = None, grammar: str | None = None) -> AsyncIterator[RawChunk]:
        last = next((m.text for m in reversed(messages) if m.role == "user"), "")
        yield RawChunk(text=self.prefix + last, finish_reason="stop",
                       usage=Usage(prompt_tokens=len(last.split()), completion_tokens=1 + len(last.split())))
