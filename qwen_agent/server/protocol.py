"""The OpenAI chat-completions wire format: the request as a typed model (errors name the field) and the
response, chunk and usage bodies the server sends back."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qwen_agent.llm.types import SamplingParams, Usage
from qwen_agent.messages import Message, ToolCall, ToolSchema
from qwen_agent.server.errors import APIError

__all__ = ["ChatRequest", "Completion", "parse_request", "sse"]

_MAX_STOP = 16


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolParam(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: NamedFunction


class ChatRequest(BaseModel):
    """The fields we act on; any other OpenAI field (``logprobs``, ``metadata`` ...) is accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=128)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1, le=1)
    tools: list[ToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > _MAX_STOP:
            raise ValueError(f"at most {_MAX_STOP} stop sequences")
        return stops

    # ---- derived ---------------------------------------------------------------------------------------------
    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def sampling(self) -> SamplingParams:
        fields: dict[str, Any] = {
            "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
        }
        params = SamplingParams(**{k: v for k, v in fields.items() if v is not None})
        if self.stop:
            params.stop = list(self.stop)
        return params

    def tool_schemas(self) -> list[ToolSchema]:
        return [ToolSchema(name=t.function.name, description=t.function.description,
                           parameters=t.function.parameters) for t in self.tools or []]


def parse_request(body: Any, max_messages: int) -> tuple[ChatRequest, list[Message]]:
    """Validate a request body; every problem is a 400 naming the field (``messages[2].role``)."""
    if not isinstance(body, dict):
        raise APIError.bad_request("The request body must be a JSON object.")
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise APIError.bad_request(f"{_path(err['loc'])}: {err['msg']}", _path(err["loc"])) from None
    if len(req.messages) > max_messages:
        raise APIError.bad_request(f"messages: at most {max_messages} messages per request", "messages")
    messages = []
    for i, raw in enumerate(req.messages):
        try:
            message = Message.from_openai(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = _path(("messages", i, *err["loc"]))
            raise APIError.bad_request(f"{where}: {err['msg']}", where) from None
        except (TypeError, ValueError) as exc:
            raise APIError.bad_request(f"messages[{i}]: {exc}", f"messages[{i}]") from None
        messages.append(message)
    if isinstance(req.tool_choice, NamedToolChoice):
        names = [t.function.name for t in req.tools or []]
        if req.tool_choice.function.name not in names:
            raise APIError.bad_request(f"tool_choice names function {req.tool_choice.function.name!r}, which is "
                                       f"not in tools ({', '.join(names) or 'none given'})", "tool_choice")
    elif req.tool_choice == "required" and not req.tools:
        raise APIError.bad_request("tool_choice 'required' needs tools", "tool_choice")
    return req, messages


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


class Completion:
    """Ids and bodies for one completion; ``chunk`` renders one SSE event, ``body`` the non-streamed answer."""

    def __init__(self, model: str) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict[str, Any] | None = None, finish_reason: str | None = None,
              event: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
        }
        if event is not None:
            body["x_agent_event"] = event
        return body

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_body(usage)}

    def body(self, message: dict[str, Any], finish_reason: str, usage: Usage,
             events: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage_body(usage), "x_agent_events": events,
        }


def usage_body(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                            "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    if usage.cached_prompt_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
    return body


def tool_call_deltas(calls: list[ToolCall], piece: int = 64) -> list[dict[str, Any]]:
    """Streamed ``tool_calls`` deltas as OpenAI sends them: id, type and name first, then argument fragments."""
    deltas = []
    for index, call in enumerate(calls):
        args = call.function.arguments_json()
        deltas.append({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]})
        for i in range(0, len(args), piece):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": args[i:i + piece]}}]})
    return deltas


def sse(payload: dict[str, Any] | str) -> bytes:
    """One ``data:`` event (``[DONE]`` passes as the string)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
