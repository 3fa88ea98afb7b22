"""The `ChatModel` interface every backend implements, and the function-calling logic they all share.

A backend only has to produce raw text (and, for servers with a tool parser, native tool calls) from a list of
messages: `_stream_raw`, and optionally `_complete_raw` for a non-streaming request. Everything about tools lives
here once, so every backend behaves the same:

* ``prompted`` mode renders the tool schemas and the tool-call history into plain messages with a
  `FunctionFormat` (nous / qwen / react), adds the format's stop words, optionally constrains decoding with the
  format's grammar, and parses calls out of the reply leniently;
* ``native`` mode sends the schemas to the server's own tool parser and, when the server returns no
  ``tool_calls`` although the text holds one (vLLM's hermes parser with small Qwen models), parses the text itself.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from qwen_agent.llm.context import DEFAULT_MAX_INPUT_TOKENS, TruncationReport, fit_conversation, prompt_bytes
from qwen_agent.llm.errors import ModelError
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
from qwen_agent.prompting import get_format, render_note
from qwen_agent.prompting.base import FunctionFormat, ParsedReply, StreamParser
from qwen_agent.prompting.call_check import check_calls
from qwen_agent.prompting.turn_markers import MarkerFilter, strip_turn_markers
from qwen_agent.sync import iterate_sync, run_sync

__all__ = ["Capabilities", "ChatDelta", "ChatModel", "ChatResponse", "FunctionCalling", "RawChunk", "SamplingParams",
           "ToolChoice", "Usage"]


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a backend does for a request: the class flags of `ChatModel`, or what a server said about itself."""

    native_tools: bool = False
    grammar: bool = False
    prefill: bool = False


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

    async def _context_window(self) -> int | None:
        """The model's context length where the backend knows it (n_ctx, max_position_embeddings,
        a server's max_model_len), so the prompt budget leaves room for the reply. None when unknown."""
        return None

    async def capabilities(self) -> Capabilities:
        """What this instance does for a request; asked before every plan, so a request is planned the same way
        before and after the first one. Default: the class flags. A server backend overrides it with what the
        server says about itself."""
        return Capabilities(native_tools=self.supports_native_tools, grammar=self.supports_grammar,
                            prefill=self.supports_prefill)

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
            response = self._finish(plan, parser.finish(), "".join(text_parts), last)
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
            text = plan.prefix + raw.text
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
                           tool_choice: ToolChoice) -> _Plan:
        """`_plan`, with older turns / long tool results left out until the prompt fits `input_budget`."""
        msgs = as_messages(messages)
        schemas = as_tool_schemas(tools)
        budget = await self.input_budget(params)
        caps = await self.capabilities()

        def build(kept: list[Message]) -> _Plan:
            return self._plan(kept, schemas, params, function_calling, tool_choice, caps)

        async def measure(plan: _Plan) -> tuple[int, int]:
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
              caps: Capabilities) -> _Plan:
        """Decide the request: the server's tool parser (`_plan_native`) or our formats (`_plan_prompted`)."""
        msgs = as_messages(messages)
        schemas = as_tool_schemas(tools)
        fc = function_calling or self.function_calling
        request = _Request(messages=msgs, schemas=schemas, params=self.params.merged(params), fc=fc,
                           fmt=get_format(fc.format), answer_only=tool_choice == "none",
                           has_tool_history=any(m.role == "tool" or m.tool_calls for m in msgs), caps=caps)
        if fc.mode == "native" and caps.native_tools:
            return self._plan_native(request)
        return self._plan_prompted(request)

    @staticmethod
    def _plan_native(r: _Request) -> _Plan:
        """The server renders the tools itself; our parser only reads calls it missed in the text."""
        p, fmt, schemas = r.params, r.fmt, r.schemas
        if r.answer_only and r.has_tool_history:
            # As in prompted mode: prefill the answer where the server can continue a message (vLLM), else leave
            # the tools out and ask in words; tool_choice="none" alone did not stop the 0.5B model from writing
            # its call again on vLLM.
            if r.caps.prefill and fmt.answer_prefix:
                p.extra_body = {**p.extra_body, "tool_choice": "none"} if schemas else p.extra_body
                return _Plan(messages=[*r.messages, Message.assistant(fmt.answer_prefix)], params=p,
                             native_tools=schemas or None, fmt=fmt, parse_tools=r.parse_tools,
                             prefix=fmt.answer_prefix)
            return _Plan(messages=[*r.messages, Message.user(render_note("answer_now"))], params=p,
                         fmt=fmt, parse_tools=r.parse_tools)
        if r.answer_only and schemas:
            p.extra_body = {**p.extra_body, "tool_choice": "none"}
        elif schemas and not r.fc.parallel:
            p.extra_body = {"parallel_tool_calls": False, **p.extra_body}
        return _Plan(messages=r.messages, params=p, native_tools=schemas or None, fmt=fmt,
                     parse_tools=r.parse_tools)

    def _plan_prompted(self, r: _Request) -> _Plan:
        """Our format describes the tools in the prompt, adds its stop words, and (optionally) a grammar."""
        p, fmt, schemas = r.params, r.fmt, r.schemas
        if not (schemas or r.has_tool_history):
            return _Plan(messages=r.messages, params=p, fmt=fmt, parse_tools=r.parse_tools)
        # Answer-only without prefill: the tools are left out of the prompt. Told to answer while still shown
        # the tools, small models write the call again (measured on llama.cpp's server with the 0.5B model).
        shown = [] if r.answer_only and r.has_tool_history and not r.caps.prefill else schemas
        rendered = fmt.render(r.messages, shown, parallel=r.fc.parallel)
        p.stop = list(dict.fromkeys([*p.stop, *fmt.stop_words]))
        grammar, prefix = None, ""
        if r.answer_only:
            if r.has_tool_history and r.caps.prefill and fmt.answer_prefix:
                # Start the reply as an answer: small models otherwise repeat a call instead of answering.
                prefix = fmt.answer_prefix
                if rendered[-1].role == "assistant":  # the format continues its own assistant turn
                    rendered[-1] = Message.assistant(rendered[-1].text + prefix)
                else:
                    rendered.append(Message.assistant(prefix))
            elif r.has_tool_history:
                rendered.append(Message.user(render_note("answer_now")))
        elif r.fc.constrained and schemas:
            if not r.caps.grammar:
                raise ModelError(
                    f"{type(self).__name__} cannot constrain decoding with a grammar; "
                    "use FunctionCalling(constrained=False) or the embedded LlamaCpp backend."
                )
            grammar = fmt.grammar(schemas, parallel=r.fc.parallel)
        return _Plan(messages=rendered, params=p, grammar=grammar, fmt=fmt, parse_tools=r.parse_tools,
                     prefix=prefix)

    def _finish(self, plan: _Plan, parsed: ParsedReply, raw_text: str, last: RawChunk) -> ChatResponse:
        # Native calls from the server win; otherwise whatever our lenient parser found in the text.
        found = list(last.tool_calls or []) or parsed.tool_calls
        if not plan.parse_tools and plan.native_tools is None:
            found = []
        # Only calls to offered functions with arguments that fit (after schema-directed repair) are calls.
        checked = check_calls(found, plan.native_tools if plan.native_tools is not None else plan.parse_tools)
        calls = checked.calls
        content = strip_turn_markers(parsed.content) if parsed.content else parsed.content
        reasoning = "".join(x for x in (last.reasoning, parsed.reasoning) if x) or None
        message = Message.assistant(content or None, calls or None)
        message.reasoning_content = reasoning
        unchanged = len(calls) == len(found) and all(a is b for a, b in zip(calls, found, strict=False))
        if calls and unchanged and not last.tool_calls and not plan.prefix:
            message.set_generated_text(raw_text)  # calls read from text: keep the text for a verbatim re-render
        return ChatResponse(
            message=message,
            raw_text=raw_text,
            finish_reason="tool_calls" if calls else last.finish_reason,
            usage=last.usage,
            model=self.model or None,
            parse_errors=parsed.errors,
            refused_calls=checked.errors,
            truncation=plan.truncation,
        )


@dataclass(kw_only=True)
class _Request:
    """What `_plan` decides from: the request as asked, with the defaults and the capabilities applied."""

    messages: list[Message]
    schemas: list[ToolSchema]
    params: SamplingParams
    fc: FunctionCalling
    fmt: FunctionFormat
    #: tool_choice="none": an answer is required, no call is read.
    answer_only: bool
    has_tool_history: bool
    caps: Capabilities

    @property
    def parse_tools(self) -> list[ToolSchema]:
        return [] if self.answer_only else self.schemas


@dataclass(kw_only=True)
class _Plan:
    """The request to send and how to read its reply, decided once per call."""

    messages: list[Message]
    params: SamplingParams
    fmt: FunctionFormat
    #: Tools the parser may find calls of; empty means "read no calls" (plain chat or tool_choice="none").
    parse_tools: list[ToolSchema]
    #: Tool schemas sent to the server's own parser (native mode), else None.
    native_tools: list[ToolSchema] | None = None
    #: GBNF grammar that constrains decoding (prompted mode, ``constrained=True``).
    grammar: str | None = None
    #: Text the reply was made to start with (answer prefill); part of the reply's text.
    prefix: str = ""
    #: What the context manager left out of the request, if anything.
    truncation: TruncationReport | None = None
    parser: StreamParser = field(init=False)

    def __post_init__(self) -> None:
        self.parser = self.fmt.stream_parser(self.parse_tools)
