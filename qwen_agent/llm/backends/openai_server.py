"""What kind of OpenAI-compatible server is on the other end, and the request dialect that follows from it.

Servers agree on ``/chat/completions`` but not on the extras this framework uses. vLLM (detected by
``owned_by: "vllm"`` in ``GET /models``) reports ``max_model_len``, counts a chat prompt exactly at ``/tokenize``,
continues a final assistant message with ``continue_final_message`` and takes a grammar in
``structured_outputs.grammar`` (xgrammar reads our GBNF). llama.cpp's servers take ``grammar`` at the top level.
Anything else gets the plain OpenAI request and the context manager's safe byte bound.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from qwen_agent.messages import Message, ToolSchema

__all__ = ["ServerInfo", "ServerKind", "apply_dialect", "llamacpp_count_body", "server_root", "tokenize_body"]

#: Tokens a chat template adds per message (``<|im_start|>role\n`` ... ``<|im_end|>\n``) with a safety margin,
#: and once per prompt (a default system message some templates insert, the generation prompt).
_TEMPLATE_PER_MESSAGE = 8
_TEMPLATE_PER_PROMPT = 40

ServerKind = Literal["vllm", "llamacpp", "generic"]


class ServerInfo(BaseModel):
    """Read once from ``GET /models``."""

    kind: ServerKind = "generic"
    models: list[str] = Field(default_factory=list)
    #: The served model's context length (vLLM's ``max_model_len``), when the server says.
    max_model_len: int | None = None

    @classmethod
    def from_models(cls, payload: Any, model: str, forced: ServerKind | None = None) -> ServerInfo:
        data = payload.get("data", []) if isinstance(payload, dict) else []
        entries = [e for e in data if isinstance(e, dict)]
        owners = {str(e.get("owned_by", "")).lower() for e in entries}
        if forced is not None:
            kind: ServerKind = forced
        elif "vllm" in owners:
            kind = "vllm"
        elif "llamacpp" in owners or any("permissions" in e and e.get("owned_by") == "me" for e in entries):
            kind = "llamacpp"  # llama.cpp's C++ server / llama-cpp-python's server
        else:
            kind = "generic"
        ours = [e for e in entries if e.get("id") == model] or entries[:1]
        length = ours[0].get("max_model_len") if ours else None
        return cls(kind=kind, models=[str(e.get("id")) for e in entries if "id" in e],
                   max_model_len=length if isinstance(length, int) and length > 0 else None)


def server_root(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000``: vLLM serves ``/tokenize`` beside ``/v1``, not under it."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def apply_dialect(body: dict[str, Any], kind: ServerKind, grammar: str | None, grammar_key: str | None) -> None:
    """Put the grammar and the answer-prefill flags where this kind of server reads them (in place)."""
    if grammar:
        if grammar_key:
            body[grammar_key] = grammar
        elif kind == "vllm":
            body["structured_outputs"] = {"grammar": grammar}
        else:
            body["grammar"] = grammar
    messages = body.get("messages") or []
    if kind == "vllm" and messages and messages[-1].get("role") == "assistant":
        # Continue the assistant's text (answer prefill) instead of opening a new turn after it.
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False


def tokenize_body(model: str, messages: list[Message], tools: list[ToolSchema] | None) -> dict[str, Any]:
    """vLLM's ``POST /tokenize`` request for the chat prompt ``messages`` (and native ``tools``) make."""
    body: dict[str, Any] = {"messages": [m.to_openai() for m in messages]}
    if model:
        body["model"] = model
    if tools:
        body["tools"] = [t.to_openai() for t in tools]
    if messages and messages[-1].role == "assistant":
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return body


def llamacpp_count_body(messages: list[Message], tools: list[ToolSchema] | None) -> tuple[dict[str, Any], int]:
    """llama-cpp-python's ``POST /extras/tokenize/count`` request for the prompt's text, and the tokens to add
    for what the chat template wraps around it (an upper estimate: the template is not applied there)."""
    parts = [m.text for m in messages]
    for m in messages:
        parts += [f"{c.name} {c.function.arguments_json()}" for c in m.tool_calls or []]
    if tools:
        parts += [json.dumps(t.to_openai()) for t in tools]
    return {"input": "\n".join(parts)}, _TEMPLATE_PER_MESSAGE * len(messages) + _TEMPLATE_PER_PROMPT
