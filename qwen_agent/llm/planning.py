"""How a chat request is sent and its reply read, decided once per call for every backend alike.

``prompted`` mode renders the tool schemas and the tool-call history into plain messages with a `FunctionFormat`
(nous / qwen / react), adds the format's stop words, optionally constrains decoding with the format's grammar, and
parses calls out of the reply leniently. ``native`` mode sends the schemas to the server's own tool parser and, when
the server returns no ``tool_calls`` although the text holds one (vLLM's hermes parser with small Qwen models), parses
the text itself. Either way ``finish`` keeps only calls to offered tools whose arguments fit their schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qwen_agent.llm.context import TruncationReport
from qwen_agent.llm.errors import ModelError
from qwen_agent.llm.types import ChatResponse, FunctionCalling, RawChunk, SamplingParams, ToolChoice
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting import get_format, render_note
from qwen_agent.prompting.base import FunctionFormat, ParsedReply, StreamParser
from qwen_agent.prompting.call_check import check_calls
from qwen_agent.prompting.turn_markers import neutralize_messages, neutralize_schemas, strip_turn_markers

if TYPE_CHECKING:
    from qwen_agent.llm.base import Capabilities

__all__ = ["Plan", "Request", "finish", "plan_native", "plan_prompted", "plan_request"]


@dataclass(kw_only=True)
class Request:
    """What `plan_request` decides from: the request as asked, with the defaults and the capabilities applied."""

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
class Plan:
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
    #: Continue a reply that ends in a call with more calls while the model would open one with at least this
    #: probability (`qwen_agent.llm.more_calls`); None: the reply is read as it is.
    next_call_threshold: float | None = None
    parser: StreamParser = field(init=False)

    def __post_init__(self) -> None:
        self.parser = self.fmt.stream_parser(self.parse_tools)


def plan_request(messages: list[Message], schemas: list[ToolSchema], params: SamplingParams, fc: FunctionCalling,
                 tool_choice: ToolChoice, caps: Capabilities, backend: str) -> Plan:
    """Decide the request: the server's tool parser (`plan_native`) or our formats (`plan_prompted`).

    ``params`` are the backend's defaults already merged with the call's; ``backend`` names it in errors.
    """
    request = Request(messages=messages, schemas=schemas, params=params, fc=fc, fmt=get_format(fc.format),
                      answer_only=tool_choice == "none",
                      has_tool_history=any(m.role == "tool" or m.tool_calls for m in messages), caps=caps)
    plan = plan_native(request) if fc.mode == "native" and caps.native_tools else plan_prompted(request, backend)
    # Text that spells a turn marker must not become one when the backend tokenizes the prompt (an injection
    # through a tool result or a document). After rendering: prompted calls and results are text by then.
    plan.messages = neutralize_messages(plan.messages)
    if plan.native_tools:  # rendered by the server into its system prompt
        plan.native_tools = neutralize_schemas(plan.native_tools)
    return plan


def plan_native(r: Request) -> Plan:
    """The server renders the tools itself; our parser only reads calls it missed in the text."""
    p, fmt, schemas = r.params, r.fmt, r.schemas
    if r.answer_only and r.has_tool_history:
        # As in prompted mode: prefill the answer where the server can continue a message (vLLM), else leave
        # the tools out and ask in words; tool_choice="none" alone did not stop the 0.5B model from writing
        # its call again on vLLM.
        if r.caps.prefill and fmt.answer_prefix:
            p.extra_body = {**p.extra_body, "tool_choice": "none"} if schemas else p.extra_body
            return Plan(messages=[*r.messages, Message.assistant(fmt.answer_prefix)], params=p,
                         native_tools=schemas or None, fmt=fmt, parse_tools=r.parse_tools,
                         prefix=fmt.answer_prefix)
        return Plan(messages=[*r.messages, Message.user(render_note("answer_now"))], params=p,
                     fmt=fmt, parse_tools=r.parse_tools)
    if r.answer_only and schemas:
        p.extra_body = {**p.extra_body, "tool_choice": "none"}
    elif schemas and not r.fc.parallel:
        p.extra_body = {"parallel_tool_calls": False, **p.extra_body}
    return Plan(messages=r.messages, params=p, native_tools=schemas or None, fmt=fmt,
                 parse_tools=r.parse_tools)


def plan_prompted(r: Request, backend: str) -> Plan:
    """Our format describes the tools in the prompt, adds its stop words, and (optionally) a grammar."""
    p, fmt, schemas = r.params, r.fmt, r.schemas
    if not (schemas or r.has_tool_history):
        return Plan(messages=r.messages, params=p, fmt=fmt, parse_tools=r.parse_tools)
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
                f"{backend} cannot constrain decoding with a grammar; "
                "use FunctionCalling(constrained=False) or the embedded LlamaCpp backend."
            )
        grammar = fmt.grammar(schemas, parallel=r.fc.parallel)
    more = schemas and not r.answer_only and grammar is None and r.fc.parallel and r.caps.token_probability
    return Plan(messages=rendered, params=p, grammar=grammar, fmt=fmt, parse_tools=r.parse_tools,
                 prefix=prefix, next_call_threshold=r.fc.next_call_threshold if more else None)


def finish(plan: Plan, parsed: ParsedReply, raw_text: str, last: RawChunk, model: str | None) -> ChatResponse:
    """The response to a reply: calls checked against the offered tools, text cleaned of turn markers."""
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
        model=model,
        parse_errors=parsed.errors,
        refused_calls=checked.errors,
        refused=checked.refused,
        truncation=plan.truncation,
    )
