"""The `ChatModel` interface every backend implements: streaming, context fitting and tracing around a raw call.

A backend only has to produce raw text (and, for servers with a tool parser, native tool calls) from a list of
messages: `_stream_raw`, and optionally `_complete_raw` for a non-streaming request. Everything about tools lives in
``planning`` once (prompted or native mode, answer prefill, grammar, the call check), so every backend behaves the
same.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Self

from qwen_agent.llm.context import DEFAULT_MAX_INPUT_TOKENS, fit_conversation, prompt_bytes
from qwen_agent.llm.errors import ModelRequestError
from qwen_agent.llm.more_calls import continue_calls
from qwen_agent.llm.planning import Plan, finish, plan_request
from qwen_agent.llm.tracing import ChatTrace

# The boundary types live in `types` (import them from there or from `qwen_agent.llm`); re-exported here because
# ``from qwen_agent.llm.base import SamplingParams`` was the documented spelling.
from qwen_agent.llm.types import (
    ChatDelta,
    ChatResponse,
    FunctionCalling,
    RawChunk,
    SamplingParams,
    ToolChoice,
    Usage,
)
from qwen_agent.messages import Message, MessageLike, ToolSchema, ToolSchemaLike, as_messages, as_tool_schemas
from qwen_agent.prompting.base import ParsedReply
from qwen_agent.prompting.turn_markers import MarkerFilter
from qwen_agent.sync import iterate_sync, run_sync

__all__ = ["Capabilities", "ChatDelta", "ChatModel", "ChatResponse", "FunctionCalling", "RawChunk", "SamplingParams",
           "ToolChoice", "Usage"]


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a backend does for a request: the class flags of `ChatModel`, or what a server said about itself."""

    native_tools: bool = False
    grammar: bool = False
    prefill: bool = False
    #: The backend can say how likely a given next token is (`ChatModel._token_probability`).
    token_probability: bool = False


class ChatModel(abc.ABC):
    """Async-first chat model with tools. Sync wrappers: `chat`, `stream`.

    The ``supports_*`` flags say what every instance of a backend can do; `capabilities` says what this instance
    does, and is what each request is planned with.
    """

    #: Backends whose server has its own tool parser (OpenAI-compatible servers) set this.
    supports_native_tools: bool = False
    #: Backends that accept a GBNF grammar for constrained decoding set this.
    supports_grammar: bool = False
    #: Backends that continue a final assistant message (instead of starting a new turn) set this.
    supports_prefill: bool = False
    #: Backends that report the probability of a next token after a prompt set this.
    supports_token_probability: bool = False
    #: ``gen_ai.provider.name`` on this backend's ``chat`` spans.
    trace_provider: str = "qwen_agent"

    def __init__(
        self,
        *,
        model: str = "",
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.params = params or SamplingParams()
        self.function_calling = function_calling or FunctionCalling()
        #: Prompt budget in tokens (tool schemas included). None: the Qwen models' 32K, lowered to what the
        #: backend's context window leaves after the reply's ``max_tokens``; see `qwen_agent.llm.context`.
        self.max_input_tokens = max_input_tokens
        self._window: int | None = None
        self._window_known = False

    # ---- backend hooks -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _stream_raw(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[ToolSchema] | None = None,
        grammar: str | None = None,
    ) -> AsyncIterator[RawChunk]:
        """Yield text deltas; the last chunk has finish_reason/usage and, in native mode, tool_calls."""

    async def _complete_raw(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[ToolSchema] | None = None,
        grammar: str | None = None,
    ) -> RawChunk:
        """Non-streaming request. Default: collect the stream."""
        text, reasoning, last = [], [], RawChunk()
        async for chunk in self._stream_raw(messages, params, tools=tools, grammar=grammar):
            text.append(chunk.text)
            reasoning.append(chunk.reasoning)
            last = chunk
        return RawChunk(
            text="".join(text),
            reasoning="".join(reasoning),
            tool_calls=last.tool_calls,
            finish_reason=last.finish_reason,
            usage=last.usage,
        )

    async def _count_prompt_tokens(self, messages: list[Message], tools: list[ToolSchema] | None) -> int | None:
        """Exact length of the prompt these (already rendered) messages make, with the model's own tokenizer.

        ``tools`` is set in native mode only (the server renders them into the prompt). None means "this backend
        cannot tell"; the context manager then falls back to a safe byte-based bound.
        """
        return None

    async def _token_probability(self, messages: list[Message], token: str) -> float:
        """How likely ``token`` is as the next token after these (already rendered) messages, the last of which
        may be an assistant message to continue. Only backends with ``supports_token_probability`` have it."""
        raise ModelRequestError(f"{type(self).__name__} cannot report token probabilities")

    async def _context_window(self) -> int | None:
        """The model's context length where the backend knows it (n_ctx, max_position_embeddings,
        a server's max_model_len), so the prompt budget leaves room for the reply. None when unknown."""
        return None

    async def capabilities(self) -> Capabilities:
        """What this instance does for a request; asked before every plan, so a request is planned the same way
        before and after the first one. Default: the class flags. A server backend overrides it with what the
        server says about itself."""
        return Capabilities(native_tools=self.supports_native_tools, grammar=self.supports_grammar,
                            prefill=self.supports_prefill, token_probability=self.supports_token_probability)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections / model memory. Safe to call twice."""

    # ---- public API ----------------------------------------------------------------------------------------
    async def astream(
        self,
        messages: Iterable[MessageLike] | str,
        tools: Iterable[ToolSchemaLike] | None = None,
        *,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[ChatDelta]:
        """Stream a reply. Every delta holds displayable text; the last one holds the full `ChatResponse`.

        ``tool_choice="none"`` asks for an answer without calls (the tools stay described, so the prompt prefix
        and the KV cache stay the same); see `_plan` for how each backend gets there.
        """
        trace = ChatTrace.start(self.trace_provider, self.model)
        try:
            plan = await self._fitted_plan(messages, tools, params, function_calling, tool_choice)
            trace.request(plan.params, plan.messages, plan.native_tools)
            parser = plan.parser
            markers = MarkerFilter()  # turn markers a server let through never reach the answer, streamed or not
            text_parts: list[str] = [plan.prefix]
            reasoning_parts: list[str] = []
            if plan.prefix:
                delta = parser.feed(plan.prefix)
                shown = markers.feed(delta.content)
                if shown or delta.reasoning:
                    yield ChatDelta(content=shown, reasoning=delta.reasoning)
            last = RawChunk()
            async for chunk in self._stream_raw(plan.messages, plan.params, tools=plan.native_tools,
                                                grammar=plan.grammar):
                trace.chunk()
                text_parts.append(chunk.text)
                if chunk.text:
                    delta = parser.feed(chunk.text)
                    shown = markers.feed(delta.content)
                    if shown or delta.reasoning:
                        yield ChatDelta(content=shown, reasoning=delta.reasoning)
                if chunk.reasoning:
                    reasoning_parts.append(chunk.reasoning)
                    yield ChatDelta(reasoning=chunk.reasoning)
                last = chunk
            tail = parser.flush()
            shown = markers.feed(tail.content) + markers.flush()
            if shown or tail.reasoning:
                yield ChatDelta(content=shown, reasoning=tail.reasoning)
            # Reasoning arrives in deltas like text; the response carries all of it, not just the last chunk's.
            last = last.model_copy(update={"reasoning": "".join(reasoning_parts)})
            text = "".join(text_parts)
            more, last = await self._more_calls(plan, text, last)  # calls only: nothing more to show
            parsed = parser.finish() if more == text else plan.fmt.parse(more, plan.parse_tools)
            response = self._finish(plan, parsed, more, last)
        except BaseException as exc:
            trace.fail(exc)
            raise
        trace.finish(response)
        yield ChatDelta(response=response)

    async def achat(
        self,
        messages: Iterable[MessageLike] | str,
        tools: Iterable[ToolSchemaLike] | None = None,
        *,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> ChatResponse:
        """One complete reply (a non-streaming request where the backend has one)."""
        trace = ChatTrace.start(self.trace_provider, self.model)
        try:
            plan = await self._fitted_plan(messages, tools, params, function_calling, tool_choice)
            trace.request(plan.params, plan.messages, plan.native_tools)
            raw = await self._complete_raw(plan.messages, plan.params, tools=plan.native_tools, grammar=plan.grammar)
            text, raw = await self._more_calls(plan, plan.prefix + raw.text, raw)
            response = self._finish(plan, plan.fmt.parse(text, plan.parse_tools), text, raw)
        except BaseException as exc:
            trace.fail(exc)
            raise
        trace.finish(response)
        return response

    def chat(self, messages: Iterable[MessageLike] | str, tools: Iterable[ToolSchemaLike] | None = None,
             **kwargs: Any) -> ChatResponse:
        """Blocking `achat`."""
        return run_sync(self.achat(messages, tools, **kwargs))

    def stream(self, messages: Iterable[MessageLike] | str, tools: Iterable[ToolSchemaLike] | None = None,
               **kwargs: Any) -> Iterator[ChatDelta]:
        """Blocking `astream`."""
        return iterate_sync(self.astream(messages, tools, **kwargs))

    def close(self) -> None:
        run_sync(self.aclose())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- context management ----------------------------------------------------------------------------------
    async def input_budget(self, params: SamplingParams | None = None) -> int:
        """Tokens the prompt may take: ``max_input_tokens`` (default 32K), lowered to what the backend's context
        window leaves for the reply (``max_tokens``, or a quarter of the window up to 1024 when unset)."""
        budget = self.max_input_tokens or DEFAULT_MAX_INPUT_TOKENS
        if not self._window_known:
            self._window = await self._context_window()
            self._window_known = True
        if self._window:
            reply = self.params.merged(params).max_tokens or min(1024, self._window // 4)
            budget = min(budget, self._window - reply)
        return max(budget, 1)

    async def count_prompt_tokens(self, messages: Iterable[MessageLike] | str,
                                  tools: Iterable[ToolSchemaLike] | None = None, *,
                                  function_calling: FunctionCalling | None = None) -> int:
        """Tokens the request for these messages and tools takes, rendered as `achat` would send it (exact
        where the backend can tokenize, else the byte bound used by the context manager)."""
        plan = self._plan(messages, tools, None, function_calling, "auto", await self.capabilities())
        exact = await self._count_prompt_tokens(plan.messages, plan.native_tools)
        return exact if exact is not None else prompt_bytes(plan.messages, plan.native_tools)

    async def _fitted_plan(self, messages: Iterable[MessageLike] | str, tools: Iterable[ToolSchemaLike] | None,
                           params: SamplingParams | None, function_calling: FunctionCalling | None,
                           tool_choice: ToolChoice) -> Plan:
        """`_plan`, with older turns / long tool results left out until the prompt fits `input_budget`."""
        msgs = as_messages(messages)
        schemas = as_tool_schemas(tools)
        budget = await self.input_budget(params)
        caps = await self.capabilities()

        def build(kept: list[Message]) -> Plan:
            return self._plan(kept, schemas, params, function_calling, tool_choice, caps)

        async def measure(plan: Plan) -> tuple[int, int]:
            size = prompt_bytes(plan.messages, plan.native_tools)
            if size <= budget:  # a token is at least one byte: this prompt cannot be over, no need to count
                return size, size
            exact = await self._count_prompt_tokens(plan.messages, plan.native_tools)
            return (size if exact is None else exact), size

        plan, report = await fit_conversation(msgs, budget, build, measure)
        plan.truncation = report
        return plan

    # ---- shared function-calling logic ---------------------------------------------------------------------
    def _plan(self, messages: Iterable[MessageLike] | str, tools: Iterable[ToolSchemaLike] | None,
              params: SamplingParams | None, function_calling: FunctionCalling | None, tool_choice: ToolChoice,
              caps: Capabilities) -> Plan:
        """Decide the request (``planning``): the server's tool parser or our formats."""
        return plan_request(as_messages(messages), as_tool_schemas(tools), self.params.merged(params),
                            function_calling or self.function_calling, tool_choice, caps, type(self).__name__)

    async def _more_calls(self, plan: Plan, text: str, last: RawChunk) -> tuple[str, RawChunk]:
        """The reply with the further calls the model would write after its last one (`more_calls`), and its last
        chunk with the tokens they took."""
        if plan.next_call_threshold is None:
            return text, last

        async def complete(messages: list[Message], params: SamplingParams) -> RawChunk:
            return await self._complete_raw(messages, params)

        more = await continue_calls(plan, text, probability=self._token_probability, complete=complete)
        if more.completion_tokens and last.usage is not None:
            tokens = last.usage.completion_tokens + more.completion_tokens
            last = last.model_copy(update={"usage": last.usage.model_copy(update={"completion_tokens": tokens})})
        return more.text, last

    def _finish(self, plan: Plan, parsed: ParsedReply, raw_text: str, last: RawChunk) -> ChatResponse:
        return finish(plan, parsed, raw_text, last, self.model or None)
