"""Attribute names of the OpenTelemetry GenAI semantic conventions we set, and the content values (opt-in) as JSON.

Names follow https://opentelemetry.io/docs/specs/semconv/gen-ai/ (spans ``invoke_agent``, ``chat``,
``execute_tool``; ``gen_ai.*`` attributes). Content attributes (``gen_ai.input.messages`` ...) are JSON strings
in the conventions' message shape: ``{"role", "parts": [{"type": "text" | "tool_call" | "tool_call_response"}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from qwen_agent.messages import Message, ToolSchema

__all__ = [
    "AGENT_NAME", "CONVERSATION_ID", "DATA_SOURCE_ID", "ERROR_TYPE", "INPUT_MESSAGES", "OPERATION", "OUTPUT_MESSAGES",
    "PROVIDER", "REQUEST_MAX_TOKENS", "REQUEST_MODEL", "REQUEST_STOP", "REQUEST_TEMPERATURE", "REQUEST_TOP_K",
    "REQUEST_TOP_P", "RESPONSE_FINISH_REASONS", "RESPONSE_MODEL", "SYSTEM_INSTRUCTIONS", "TIME_TO_FIRST_CHUNK",
    "TOOL_ARGUMENTS", "TOOL_CALL_ID", "TOOL_DEFINITIONS", "TOOL_NAME", "TOOL_RESULT", "TOOL_TYPE",
    "USAGE_CACHE_READ", "USAGE_INPUT", "USAGE_OUTPUT", "messages_json", "tool_definitions_json",
]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_STOP = "gen_ai.request.stop_sequences"
REQUEST_TOP_K = "gen_ai.request.top_k"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
#: Seconds from the request to the first streamed chunk (the conventions' ``time_to_first_chunk``, on the span).
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
DATA_SOURCE_ID = "gen_ai.data_source.id"
ERROR_TYPE = "error.type"


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        return [{"type": "tool_call_response", "id": message.tool_call_id, "response": message.text}]
    if message.text:
        parts.append({"type": "text", "content": message.text})
    for call in message.tool_calls or []:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
    return parts


def messages_json(messages: Iterable[Message], finish_reason: str | None = None) -> str:
    """Messages in the conventions' shape, as one JSON string (a span attribute cannot hold nested objects)."""
    out = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role, "parts": _parts(m)}
        if finish_reason is not None:
            entry["finish_reason"] = finish_reason
        out.append(entry)
    return json.dumps(out, ensure_ascii=False, default=str)


def tool_definitions_json(schemas: Iterable[ToolSchema]) -> str:
    return json.dumps([s.to_openai() for s in schemas], ensure_ascii=False, default=str)
