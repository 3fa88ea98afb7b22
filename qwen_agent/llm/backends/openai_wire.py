"""The OpenAI chat-completions wire format: build request bodies, read JSON replies and SSE chunks into RawChunks.

Pure data handling, no I/O, so the quirks of the servers we meet (vLLM, llama.cpp, Ollama, SGLang, LM Studio)
are handled in one place: ``reasoning_content`` vs ``reasoning``, tool-call deltas with or without ``index``,
arguments sent as objects instead of strings, usage in a trailing chunk, cached-token counts in two dialects.
"""

from __future__ import annotations

import json
from typing import Any

from qwen_agent import bounded_json
from qwen_agent.llm.errors import ModelProtocolError, ModelServerError
from qwen_agent.llm.types import RawChunk, SamplingParams, Usage
from qwen_agent.messages import Message, ToolCall, ToolSchema, new_call_id

__all__ = ["PAYLOAD_DEPTH", "StreamAccumulator", "build_body", "loads_payload", "parse_completion", "parse_usage"]

#: SamplingParams fields that map 1:1 onto OpenAI body keys, and those renamed for vLLM-style servers.
_DIRECT = ("temperature", "top_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty", "top_k")
_RENAMED = {"repeat_penalty": "repetition_penalty"}
#: Nesting accepted in a response body or SSE event: the envelope (choices, delta, tool_calls, function) around
#: arguments that `bounded_json.MAX_DEPTH` bounds again once they are read as a tool call's arguments.
PAYLOAD_DEPTH = bounded_json.MAX_DEPTH + 16


def loads_payload(data: str | bytes) -> Any:
    """Decode a response body or SSE event. A server's reply is untrusted too: nesting deeper than
    `PAYLOAD_DEPTH` is a ``ValueError`` like any other malformed JSON, never a `RecursionError`."""
    return bounded_json.loads(data, max_depth=PAYLOAD_DEPTH)


def build_body(
    model: str,
    messages: list[Message],
    params: SamplingParams,
    *,
    stream: bool,
    tools: list[ToolSchema] | None,
    stream_usage: bool,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` from the request's fields. Server-specific fields (grammar, answer
    prefill) are added by `openai_server.apply_dialect`, and ``extra_body`` last, by the client (it wins over both)."""
    body: dict[str, Any] = {"messages": [_wire_message(m) for m in messages], "stream": stream}
    if model:
        body["model"] = model
    if stream and stream_usage:
        body["stream_options"] = {"include_usage": True}
    for key in _DIRECT:
        value = getattr(params, key)
        if value is not None:
            body[key] = value
    for key, wire_key in _RENAMED.items():
        value = getattr(params, key)
        if value is not None:
            body[wire_key] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if tools:
        body["tools"] = [t.to_openai() for t in tools]
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    d = message.to_openai()
    if d.get("role") == "assistant" and d.get("content") is None:
        # OpenAI and vLLM accept null content beside tool calls; llama.cpp's server rejects it. "" suits all.
        d["content"] = ""
    return d


def parse_usage(data: dict[str, Any] | None) -> Usage | None:
    """OpenAI/vLLM ``usage`` (+ ``prompt_tokens_details.cached_tokens``) or llama.cpp ``timings.cache_n``."""
    if not data:
        return None
    usage = data.get("usage") or {}
    timings = data.get("timings") or {}
    if not usage and not timings:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is None and "cache_n" in timings:
        cached = timings["cache_n"]
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or timings.get("prompt_n") or 0),
        completion_tokens=int(usage.get("completion_tokens") or timings.get("predicted_n") or 0),
        cached_prompt_tokens=int(cached) if cached is not None else None,
    )


def _reasoning_of(d: dict[str, Any]) -> str:
    # vLLM/DeepSeek/Qwen3 use "reasoning_content"; Ollama and newer vLLM use "reasoning".
    return d.get("reasoning_content") or d.get("reasoning") or ""


def _arguments_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)  # Ollama sends an object


def parse_completion(data: Any, url: str) -> RawChunk:
    """A non-streaming ``chat.completion`` body into one RawChunk."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        raise ModelProtocolError(
            f"{url} answered 200 but the body has no 'choices': {json.dumps(data)[:300]}. "
            "Is base_url pointing at an OpenAI-compatible /v1 endpoint?"
        )
    choice = data["choices"][0]
    message = choice.get("message") or {}
    calls = [
        ToolCall.from_openai({
            "id": tc.get("id") or new_call_id(),
            "type": "function",
            "function": {"name": (tc.get("function") or {}).get("name") or "",
                         "arguments": _arguments_text((tc.get("function") or {}).get("arguments"))},
        })
        for tc in message.get("tool_calls") or []
    ]
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return RawChunk(
        text=content or "",
        reasoning=_reasoning_of(message),
        tool_calls=calls or None,
        finish_reason=choice.get("finish_reason"),
        usage=parse_usage(data),
    )


class _PartialCall:
    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class StreamAccumulator:
    """Reads ``chat.completion.chunk`` payloads; returns the text deltas and, at the end, the final RawChunk.

    Tool-call deltas are merged by ``index`` (id and name arrive once, arguments in fragments). Servers that omit
    ``index`` are handled too: a new ``id`` starts a new call, a fragment without one extends the last call.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self._calls: dict[int, _PartialCall] = {}

    def feed(self, payload: str) -> RawChunk | None:
        """One SSE ``data:`` payload. Returns a chunk to pass on when it carries text or reasoning."""
        if self.done or payload.strip() == "[DONE]":
            self.done = True  # anything after [DONE] is ignored
            return None
        try:
            data = loads_payload(payload)
        except ValueError as exc:
            raise ModelProtocolError(
                f"{self.url} sent an SSE event that is not JSON ({exc}): {payload[:200]!r}"
            ) from exc
        if not isinstance(data, dict):
            raise ModelProtocolError(f"{self.url} sent an SSE event that is not a JSON object: {payload[:200]!r}")
        if "error" in data and not data.get("choices"):
            return self._error(data["error"])
        usage = parse_usage(data)
        if usage is not None:
            self.usage = usage
        text, reasoning = [], []
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            if r := _reasoning_of(delta):
                reasoning.append(r)
            for tc in delta.get("tool_calls") or []:
                self._merge_call(tc)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text or reasoning:
            return RawChunk(text="".join(text), reasoning="".join(reasoning))
        return None

    def _error(self, error: Any) -> RawChunk:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise ModelServerError(f"{self.url} reported an error in the middle of the stream: {message}")

    def _merge_call(self, tc: dict[str, Any]) -> None:
        index = tc.get("index")
        if index is None:
            is_new_id = bool(tc.get("id")) and all(c.id != tc["id"] for c in self._calls.values())
            index = len(self._calls) if is_new_id or not self._calls else max(self._calls)
        call = self._calls.setdefault(int(index), _PartialCall())
        if tc.get("id"):
            call.id = tc["id"]
        fn = tc.get("function") or {}
        name = fn.get("name")
        if name and name != call.name:
            call.name += name
        if (args := _arguments_text(fn.get("arguments"))):
            call.arguments.append(args)

    @property
    def complete(self) -> bool:
        """True when the stream ended properly: ``[DONE]`` or a finish_reason was seen."""
        return self.done or self.finish_reason is not None

    def final(self) -> RawChunk:
        calls = [
            ToolCall.from_openai({"id": c.id or new_call_id(), "type": "function",
                                  "function": {"name": c.name, "arguments": "".join(c.arguments)}})
            for _, c in sorted(self._calls.items())
        ]
        return RawChunk(tool_calls=calls or None, finish_reason=self.finish_reason, usage=self.usage)
