"""Client-side tools: the server as a function-calling proxy. The request's ``tools`` are offered to the model
with our prompted (or grammar-constrained) calling, the calls read leniently from whatever the model wrote, and
returned as OpenAI ``tool_calls`` with ``finish_reason: "tool_calls"``; the client runs them and sends
``role: "tool"`` results in its next request. ``tool_choice``: auto, none, required, or one named function."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from qwen_agent.llm.errors import ModelError
from qwen_agent.llm.types import ChatResponse, SamplingParams
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.prompting.notes import render_note
from qwen_agent.server.errors import from_model_error
from qwen_agent.server.profiles import ProfileRuntime
from qwen_agent.server.protocol import ChatRequest, Completion, NamedToolChoice, tool_call_deltas

__all__ = ["proxy_chunks", "traced_proxy"]



async def proxy_chunks(runtime: ProfileRuntime, req: ChatRequest, messages: list[Message], params: SamplingParams,
                       completion: Completion) -> AsyncIterator[dict[str, Any]]:
    """Yield chunk bodies for one model reply with the client's tools (usage chunk last)."""
    profile = runtime.profile
    schemas = req.tool_schemas()
    choice = req.tool_choice or "auto"
    if isinstance(choice, NamedToolChoice):
        schemas = [s for s in schemas if s.name == choice.function.name]
    must_call = choice == "required" or isinstance(choice, NamedToolChoice)
    fc = profile.function_calling
    if req.parallel_tool_calls is not None:
        fc = fc.model_copy(update={"parallel": req.parallel_tool_calls})
    if profile.system and not (messages and messages[0].role == "system"):
        messages = [Message.system(profile.system), *messages]
    merged = profile.sampling().merged(params)
    has_history = any(m.role == "tool" or m.tool_calls for m in messages)

    tools: list[ToolSchema] | None = schemas
    tool_choice = "auto"
    if choice == "none":
        tools, tool_choice = (schemas, "none") if has_history else (None, "auto")

    response: ChatResponse | None = None
    try:
        async for delta in runtime.model.astream(messages, tools, params=merged, function_calling=fc,
                                                 tool_choice=tool_choice):  # type: ignore[arg-type]
            if delta.response is not None:
                response = delta.response
            elif not must_call:  # a required call is only known at the end: nothing is streamed before it
                if delta.content:
                    yield completion.chunk({"content": delta.content})
                if delta.reasoning:
                    yield completion.chunk({"reasoning_content": delta.reasoning, "reasoning": delta.reasoning})
        assert response is not None
        if not must_call and response.tool_calls and _repeats(response, messages):
            # Small models call again the function whose result the client just sent: the client has that
            # result, so ask for the answer instead (the agent loop's answer_on_repeat, for client tools).
            response = await runtime.model.achat(messages, tools, params=merged, function_calling=fc,
                                                 tool_choice="none")
            if response.text:
                yield completion.chunk({"content": response.text})
        if must_call and not response.tool_calls:
            # Asked once more, plainly: small models sometimes answer in words when a call is required.
            note = render_note("call_required")
            retry = [*messages, response.message, Message.user(note)]
            response = await runtime.model.achat(retry, tools, params=merged, function_calling=fc)
    except ModelError as exc:
        raise from_model_error(type(exc).__name__, str(exc)) from None
    if must_call and response.text and not response.tool_calls:
        yield completion.chunk({"content": response.text})
    calls = response.tool_calls
    if calls:
        for call_delta in tool_call_deltas(calls):
            yield completion.chunk(call_delta)
        yield completion.chunk({}, finish_reason="tool_calls")
    else:
        yield completion.chunk({}, finish_reason="length" if response.finish_reason == "length" else "stop")
    if response.usage is not None:
        yield completion.usage_chunk(response.usage)
    else:
        from qwen_agent.llm.types import Usage

        yield completion.usage_chunk(Usage())


def _key(name: str, arguments: dict[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


def _repeats(response: ChatResponse, messages: list[Message]) -> bool:
    """Every call of the reply was already made (same function, same arguments) earlier in the conversation."""
    made = {_key(c.name, c.arguments) for m in messages if m.role == "assistant" for c in m.tool_calls or []}
    return bool(made) and all(_key(c.name, c.arguments) in made for c in response.tool_calls)


async def traced_proxy(chunks: AsyncIterator[dict[str, Any]], profile: str, session_id: str | None
                       ) -> AsyncIterator[dict[str, Any]]:
    """``chunks`` under one ``chat {profile}`` span (the request as the client made it, with its session), parent of
    the backend's own ``chat {model}`` span; a no-op object when tracing is not configured."""
    from qwen_agent.tracing import genai
    from qwen_agent.tracing.api import aiter_with_parent, start_span

    span = start_span(f"chat {profile}", {genai.OPERATION: "chat", genai.REQUEST_MODEL: profile,
                                          genai.PROVIDER: "qwen_agent", genai.CONVERSATION_ID: session_id},
                      kind="SERVER")
    try:
        async for chunk in aiter_with_parent(chunks, span.context):
            yield chunk
    except (GeneratorExit, asyncio.CancelledError):
        span.error("cancelled", "the client went away")
        raise
    except BaseException as exc:
        span.error(type(exc).__name__, str(exc) or None)
        raise
    finally:
        span.end()
