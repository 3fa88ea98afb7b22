"""Fit a conversation into the model's prompt budget: drop the oldest turns, then cut long tool observations.

Every backend gets the same policy, applied to the conversation *before* it is rendered for the model, so that the
rendered prompt (tool schemas, format instructions and all) stays within ``max_input_tokens``:

1. The leading system message(s) and the latest user turn (the last user message and everything after it: the
   agent's calls and their results so far) are never dropped.
2. Older turns go first, oldest first, whole turns at a time, so a tool result never loses the call it answers.
3. If that is not enough, tool observations are cut in the middle, longest first, with a note saying how much
   was cut, so the model knows it saw only part of the result.
4. If the prompt still does not fit, `ContextLengthError` says by how much.

Counting is exact where the backend can tokenize (llama.cpp, the HF tokenizer, a server's ``/tokenize``) and is
skipped entirely while a prompt's UTF-8 size is under the budget: a byte-level BPE token is at least one byte,
so such a prompt cannot be over. Typical agent prompts never pay for a count. The caller's transcript is never
modified; only the request is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from pydantic import BaseModel

from qwen_agent.llm.errors import ContextLengthError
from qwen_agent.messages import Message, ToolSchema

__all__ = ["DEFAULT_MAX_INPUT_TOKENS", "TruncationReport", "fit_conversation", "prompt_bytes"]

logger = logging.getLogger(__name__)

#: Qwen1.5/2/2.5 chat models are trained for 32K tokens of context.
DEFAULT_MAX_INPUT_TOKENS = 32768
#: Bytes charged per message for role markers and separators (``<|im_start|>assistant\n`` ... ``<|im_end|>\n``).
_MESSAGE_OVERHEAD = 16
#: Characters of an observation kept at its start and end, at the least, when it is cut.
_MIN_KEEP = 200
_MAX_ROUNDS = 8

P = TypeVar("P")


class TruncationReport(BaseModel):
    """What was left out of the request to make it fit (the transcript itself is unchanged)."""

    budget: int
    prompt_tokens: int
    dropped_messages: int = 0
    cut_observations: int = 0
    cut_characters: int = 0


def prompt_bytes(messages: list[Message], tools: list[ToolSchema] | None = None) -> int:
    """An upper bound of the prompt's token count: its UTF-8 size plus a per-message allowance."""
    total = 0
    for m in messages:
        total += len(m.text.encode("utf-8")) + _MESSAGE_OVERHEAD
        for call in m.tool_calls or []:
            total += len(call.name) + len(call.function.arguments_json().encode("utf-8")) + _MESSAGE_OVERHEAD
    if tools:
        total += len(json.dumps([t.model_dump(mode="json") for t in tools]).encode("utf-8"))
    return total


class _Fitter(Generic[P]):
    """One fitting run: the conversation, the budget, and how to build and measure a request from messages."""

    def __init__(self, messages: list[Message], budget: int, build: Callable[[list[Message]], P],
                 measure: Callable[[P], Awaitable[tuple[int, int]]]) -> None:
        self.budget = budget
        self.build = build
        self.measure = measure
        n_system = 0
        while n_system < len(messages) and messages[n_system].role == "system":
            n_system += 1
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=len(messages))
        last_user = max(last_user, n_system)
        self.head = messages[:n_system]
        self.middle = _turns(messages[n_system:last_user])
        self.tail = list(messages[last_user:])
        self.report = TruncationReport(budget=budget, prompt_tokens=0)

    def messages(self) -> list[Message]:
        return [*self.head, *(m for turn in self.middle for m in turn), *self.tail]

    async def run(self) -> tuple[P, TruncationReport | None]:
        request = self.build(self.messages())
        tokens, size = await self.measure(request)
        if tokens <= self.budget:
            return request, None
        for _ in range(_MAX_ROUNDS):
            excess_bytes = (tokens - self.budget) * size / max(tokens, 1)
            if not (self._drop_turns(excess_bytes) or self._cut_observations(excess_bytes)):
                break
            request = self.build(self.messages())
            tokens, size = await self.measure(request)
            if tokens <= self.budget:
                self.report.prompt_tokens = tokens
                logger.info("prompt fitted into %d tokens: dropped %d message(s), cut %d observation(s) by %d chars",
                         self.budget, self.report.dropped_messages, self.report.cut_observations,
                         self.report.cut_characters)
                return request, self.report
        raise ContextLengthError(
            f"the prompt needs {tokens} tokens but the budget is {self.budget} (max_input_tokens), even with every "
            "older turn dropped and tool results cut; the system prompt, the tool schemas and the latest user "
            "message are never cut: shorten them or raise max_input_tokens",
            status_code=None,
        )

    def _drop_turns(self, excess_bytes: float) -> bool:
        """Drop the oldest turns until about ``excess_bytes`` are gone (at least one turn)."""
        if not self.middle:
            return False
        freed = 0.0
        while self.middle and (freed == 0.0 or freed < excess_bytes):
            turn = self.middle.pop(0)
            freed += sum(len(m.text.encode("utf-8")) + _MESSAGE_OVERHEAD for m in turn)
            self.report.dropped_messages += len(turn)
        return True

    def _cut_observations(self, excess_bytes: float) -> bool:
        """Cut the longest tool results in the middle so that about ``excess_bytes`` (plus 10%) are gone."""
        need = excess_bytes * 1.1 + 64
        candidates = sorted((i for i, m in enumerate(self.tail) if m.role == "tool" and len(m.text) > 2 * _MIN_KEEP),
                            key=lambda i: -len(self.tail[i].text))
        changed = False
        for i in candidates:
            if need <= 0:
                break
            text = self.tail[i].text
            # Bytes per character of this text, so the cut is sized in characters.
            ratio = len(text.encode("utf-8")) / len(text)
            keep = max(2 * _MIN_KEEP, int(len(text) - need / ratio))
            if keep >= len(text):
                continue
            cut = len(text) - keep
            half = keep // 2
            note = f"\n[... {cut} characters of this result were cut to fit the model's context window ...]\n"
            self.tail[i] = self.tail[i].model_copy(update={"content": text[:half] + note + text[len(text) - half:]})
            need -= cut * ratio
            self.report.cut_observations += 1
            self.report.cut_characters += cut
            changed = True
        return changed


def _turns(messages: list[Message]) -> list[list[Message]]:
    """Split messages into turns, each starting at a user message (a turn keeps calls with their results)."""
    turns: list[list[Message]] = []
    for m in messages:
        if m.role == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


async def fit_conversation(
    messages: list[Message],
    budget: int,
    build: Callable[[list[Message]], P],
    measure: Callable[[P], Awaitable[tuple[int, int]]],
) -> tuple[P, TruncationReport | None]:
    """Build the request for ``messages``, dropping and cutting per the module's policy until it fits.

    ``build`` turns messages into a request (the backend's rendering); ``measure`` returns the request's
    ``(tokens, bytes)``, tokens exact where the backend can count them. Returns the request and a report, or
    None when nothing had to go.
    """
    if budget < 1:
        raise ValueError(f"the prompt budget must be positive, got {budget}")
    return await _Fitter(messages, budget, build, measure).run()
