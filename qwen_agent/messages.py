"""Typed chat messages, content parts, tool calls and tool schemas, convertible to and from OpenAI dicts.

Every public boundary of the framework speaks these models. Users may pass plain OpenAI-style dicts anywhere a
message or a tool schema is expected; `as_messages` / `as_tool_schemas` convert them. Conversion is lossless:
unknown fields are kept (``extra="allow"``) and a tool call's original argument string is preserved verbatim.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from qwen_agent import bounded_json

__all__ = [
    "ContentPart",
    "FilePart",
    "FileRef",
    "FunctionCall",
    "ImagePart",
    "ImageURL",
    "Message",
    "MessageLike",
    "Role",
    "TextPart",
    "ToolCall",
    "ToolSchema",
    "ToolSchemaLike",
    "as_messages",
    "as_tool_schemas",
    "new_call_id",
]

Role = Literal["system", "user", "assistant", "tool"]


class _Open(BaseModel):
    """Base that keeps unknown fields so OpenAI dicts round-trip unchanged."""

    model_config = ConfigDict(extra="allow")

    def _dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class TextPart(_Open):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Open):
    url: str
    detail: str | None = None


class ImagePart(_Open):
    """An image by URL, ``data:`` URI or local ``file://`` path (OpenAI ``image_url`` part)."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class FileRef(_Open):
    """A file the user or a tool hands over: a local path and/or an uploaded file id."""

    filename: str | None = None
    path: str | None = None
    file_id: str | None = None
    file_data: str | None = None
    mime_type: str | None = None


class FilePart(_Open):
    type: Literal["file"] = "file"
    file: FileRef


ContentPart = Annotated[TextPart | ImagePart | FilePart, Field(discriminator="type")]


class FunctionCall(_Open):
    """A function name plus arguments.

    ``arguments`` is always a dict (what tools receive). ``raw_arguments`` keeps the exact JSON string the model or
    the server produced, so a round trip through OpenAI dicts is byte-identical even when the model wrote
    something that only parsed after repair.
    """

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = Field(default=None, exclude=True)

    def arguments_json(self) -> str:
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.arguments, ensure_ascii=False)


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class ToolCall(_Open):
    id: str = Field(default_factory=new_call_id)
    type: Literal["function"] = "function"
    function: FunctionCall

    @classmethod
    def make(cls, name: str, arguments: Mapping[str, Any] | None = None, id: str | None = None) -> ToolCall:
        return cls(id=id or new_call_id(), function=FunctionCall(name=name, arguments=dict(arguments or {})))

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def arguments(self) -> dict[str, Any]:
        return self.function.arguments

    def to_openai(self) -> dict[str, Any]:
        d = self._dump()
        d["function"]["arguments"] = self.function.arguments_json()
        return d

    @classmethod
    def from_openai(cls, d: Mapping[str, Any]) -> ToolCall:
        d = dict(d)
        fn = dict(d.get("function") or {})
        raw = fn.get("arguments")
        if isinstance(raw, str):
            fn["raw_arguments"] = raw
            fn["arguments"] = _loads_object(raw)
        elif raw is None:
            fn["arguments"] = {}
        d["function"] = FunctionCall(**fn)
        d.setdefault("id", new_call_id())
        return cls(**d)


def _loads_object(raw: str) -> dict[str, Any]:
    """Parse an argument string; anything that is not a JSON object is kept under ``raw_arguments`` only.

    The string comes from a model server: over-deep nesting is refused like any other malformed JSON.
    """
    try:
        value = bounded_json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class Message(_Open):
    """One chat message. ``content`` is a string, a list of content parts, or None (assistant with tool calls)."""

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    # The exact text a model generated for this (assistant) message, when the calls were read out of text. Not
    # serialised: it only lets a prompt format re-render the message verbatim, so that llama.cpp's KV cache still
    # matches the next step's prompt instead of re-reading the reply in a canonical spelling.
    _generated: str | None = PrivateAttr(default=None)

    @property
    def generated_text(self) -> str | None:
        return self._generated

    def set_generated_text(self, text: str | None) -> None:
        self._generated = text

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(role="system", content=text)

    @classmethod
    def user(cls, content: str | list[ContentPart]) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
        return cls(role="assistant", content=content, tool_calls=tool_calls or None)

    @classmethod
    def tool(cls, content: str | list[ContentPart], tool_call_id: str, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)

    @property
    def text(self) -> str:
        """The text of the message: the string content or its text parts joined (non-text parts are skipped)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def to_openai(self) -> dict[str, Any]:
        d = self._dump()
        if self.tool_calls is not None:
            d["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        if self.role == "assistant" and self.content is None:
            d["content"] = None  # OpenAI expects the key with tool calls
        return d

    @classmethod
    def from_openai(cls, d: Mapping[str, Any]) -> Message:
        d = dict(d)
        if d.get("role") == "function":  # legacy OpenAI function-calling role
            d["role"] = "tool"
            d.setdefault("tool_call_id", d.get("name") or "")
        if d.get("tool_calls") is not None:
            d["tool_calls"] = [tc if isinstance(tc, ToolCall) else ToolCall.from_openai(tc) for tc in d["tool_calls"]]
        return cls.model_validate(d)


class ToolSchema(_Open):
    """A function a model may call: name, description and a JSON schema for its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function", "function": self._dump()}

    @classmethod
    def from_openai(cls, d: Mapping[str, Any]) -> ToolSchema:
        fn = d.get("function", d) if d.get("type", "function") == "function" else d
        return cls.model_validate(dict(fn))


MessageLike = Message | Mapping[str, Any]
ToolSchemaLike = ToolSchema | Mapping[str, Any]


def as_messages(messages: Iterable[MessageLike] | str) -> list[Message]:
    """Accept Message objects, OpenAI dicts, or a single user string."""
    if isinstance(messages, str):
        return [Message.user(messages)]
    return [m if isinstance(m, Message) else Message.from_openai(m) for m in messages]


def as_tool_schemas(tools: Iterable[ToolSchemaLike] | None) -> list[ToolSchema]:
    return [t if isinstance(t, ToolSchema) else ToolSchema.from_openai(t) for t in (tools or [])]
