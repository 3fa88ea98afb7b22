"""What a scripted model server replies: one `ScriptedReply` per chat request, plus the requests it recorded.

The reply models are plain data so a test reads like a transcript: "the model says this, then calls that, then
the server fails with 503". They also render themselves as OpenAI chat-completion bodies and SSE chunks, so the
server module only deals with HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RecordedRequest", "ScriptedReply", "ScriptedToolCall"]


class ScriptedToolCall(BaseModel):
    """A native tool call the scripted model returns in ``tool_calls``."""

    name: str
    #: A dict is JSON-encoded; a string is sent verbatim (to script malformed arguments).
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


class ScriptedReply(BaseModel):
    """One reply of the scripted model, or one failure of the scripted server.

    Normal replies set ``content`` and/or ``tool_calls``. Faults: ``status`` (with ``error`` as the server's error
    message, or ``body`` for a verbatim body, e.g. invalid JSON), ``delay`` before the response starts,
    ``cut_after`` SSE chunks then an abrupt close (``cut_cleanly`` ends the HTTP body properly instead, but still
    without ``finish_reason`` / ``[DONE]``), ``drop`` the connection without any response, ``stream_payloads``
    to send arbitrary SSE events.
    """

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 10
    completion_tokens: int | None = None
    status: int = 200
    error: str | None = None
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    #: Characters of content per SSE delta and of tool-call arguments per argument fragment.
    chunk_size: int = 4
    cut_after: int | None = None
    cut_cleanly: bool = False
    drop: bool = False
    #: Streaming only: these ``data:`` payloads verbatim instead of the rendered ones (bad JSON, error events).
    stream_payloads: list[str] | None = None
    #: Answer a streaming request with one JSON body, as servers that ignore ``"stream": true`` do.
    ignore_stream: bool = False

    @classmethod
    def text(cls, content: str, **kw: Any) -> ScriptedReply:
        return cls(content=content, **kw)

    @classmethod
    def call(cls, name: str, arguments: dict[str, Any] | str | None = None, **kw: Any) -> ScriptedReply:
        return cls(tool_calls=[ScriptedToolCall(name=name, arguments=arguments or {})], **kw)

    @classmethod
    def fail(cls, status: int, error: str = "scripted failure", **kw: Any) -> ScriptedReply:
        return cls(status=status, error=error, **kw)

    # ---- rendering --------------------------------------------------------------------------------------------
    def _finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def _usage(self) -> dict[str, int]:
        completion = self.completion_tokens
        if completion is None:
            arguments = sum(len(c.arguments_text()) // 4 for c in self.tool_calls)
            completion = max(1, len(self.content or "") // 4 + arguments)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def _call_ids(self) -> list[str]:
        return [c.id or f"call_{i}_{uuid.uuid4().hex[:8]}" for i, c in enumerate(self.tool_calls)]

    def error_body(self) -> str:
        """The response body of a failure: ``body`` verbatim, else an OpenAI-style error object."""
        if self.body is not None:
            return self.body
        kind = "BadRequestError" if self.status < 500 else "InternalServerError"
        return json.dumps({"error": {"message": self.error or "scripted failure", "type": kind, "code": self.status}})

    def completion_body(self, model: str) -> str:
        """A non-streaming ``chat.completion`` body (or ``body`` verbatim, to script invalid JSON)."""
        if self.body is not None:
            return self.body
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments_text()}}
                for cid, c in zip(self._call_ids(), self.tool_calls, strict=True)
            ]
        return json.dumps({
            "id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": self._finish()}],
            "usage": self._usage(),
        })

    def stream_events(self, model: str, include_usage: bool) -> list[str]:
        """The ``data:`` payloads of an SSE stream, ``[DONE]`` last."""
        if self.stream_payloads is not None:
            return list(self.stream_payloads)
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
            choices = [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            d: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                 "choices": choices}
            if usage is not None:
                d["usage"] = usage
            return json.dumps(d)

        n = max(1, self.chunk_size)
        events = [chunk({"role": "assistant", "content": ""})]
        for piece in _pieces(self.reasoning or "", n):
            events.append(chunk({"reasoning_content": piece}))
        for piece in _pieces(self.content or "", n):
            events.append(chunk({"content": piece}))
        for index, (call_id, call) in enumerate(zip(self._call_ids(), self.tool_calls, strict=True)):
            events.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": {"name": call.name, "arguments": ""}}]}))
            for piece in _pieces(call.arguments_text(), n):
                events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        events.append(chunk({}, finish=self._finish()))
        if include_usage:
            events.append(chunk({}, usage=self._usage()))
        events.append("[DONE]")
        return events


def _pieces(text: str, n: int) -> list[str]:
    return [text[i:i + n] for i in range(0, len(text), n)]


class RecordedRequest(BaseModel):
    """A request the scripted server received, so tests can assert what the client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    raw_body: bytes = b""
    #: The client's TCP port and a per-connection counter: equal values mean a reused keep-alive connection.
    peer_port: int
    connection: int
