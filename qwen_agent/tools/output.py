"""ToolOutput: what a tool call produced, normalised into text the model reads plus structured data and files.

Tools may return almost anything (a string, a dict, a pydantic model, a path to a chart ...). ``ToolOutput.from_value``
turns that into one shape so the agent loop, the message history and the UI never special-case a tool, and the
``max_chars`` budget keeps one verbose tool from flooding a small model's context window.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from qwen_agent.messages import ContentPart, FilePart, FileRef, ImagePart, ImageURL, Message, TextPart, ToolCall

DEFAULT_MAX_CHARS = 8000
NO_OUTPUT = "(no output)"
_HEAD_SHARE = 0.7  # of the kept text; the rest comes from the end, where errors and final results usually are


class ToolOutput(BaseModel):
    """The result of one tool call.

    ``text`` is what the model reads; ``data`` keeps the JSON-able value for programmatic use (UIs, tests, chained
    tools); ``files`` are produced files (images are files with an ``image/*`` mime type).
    """

    text: str = ""
    data: Any = None
    files: list[FileRef] = Field(default_factory=list)
    is_error: bool = False
    #: Class name of the failure behind an error observation (``ToolTimeoutError`` ...): the ``error.type`` of its
    #: ``execute_tool`` span. Not serialised.
    error_type: str | None = Field(default=None, exclude=True)
    elapsed_s: float = 0.0
    truncated_chars: int = 0

    @classmethod
    def error(cls, text: str) -> ToolOutput:
        """An error observation (the model reads ``text`` and may retry)."""
        return cls(text=text, is_error=True)

    @classmethod
    def from_value(cls, value: Any, max_chars: int | None = DEFAULT_MAX_CHARS) -> ToolOutput:
        """Normalise whatever a tool returned; ``max_chars`` (None = unlimited) caps the text."""
        return cls._from_value(value).truncated(max_chars)

    @classmethod
    def _from_value(cls, value: Any) -> ToolOutput:
        if isinstance(value, ToolOutput):
            return value
        if value is None:
            return cls(text=NO_OUTPUT)
        if isinstance(value, str):
            return cls(text=value if value else NO_OUTPUT, data=None)
        if isinstance(value, (Path, FileRef)):
            ref = file_ref(value)
            return cls(text=_describe_files([ref]), files=[ref])
        if _is_file_list(value):
            refs = [file_ref(v) for v in value]
            return cls(text=_describe_files(refs), files=refs)
        if isinstance(value, (bytes, bytearray)):
            try:
                return cls(text=bytes(value).decode("utf-8"))
            except UnicodeDecodeError:
                return cls(text=f"({len(value)} bytes of binary data)")
        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
        else:
            try:
                data = to_jsonable_python(value)
            except Exception:  # noqa: BLE001 - whatever a tool returned that is not JSON-able is shown as text
                return cls(text=str(value))
        return cls(text=to_json_text(data), data=data)

    def truncated(self, max_chars: int | None) -> ToolOutput:
        """A copy whose text fits ``max_chars``, keeping the head and the tail around a marker saying what was cut.

        The tail is kept because tracebacks, totals and final lines usually come last.
        """
        if max_chars is None or len(self.text) <= max_chars:
            return self
        cut = len(self.text) - max_chars
        marker = f"\n... [truncated: {cut:,} of {len(self.text):,} characters cut] ...\n"
        keep = max(max_chars - len(marker), 0)
        head = int(keep * _HEAD_SHARE)
        tail = keep - head
        text = self.text[:head] + marker + (self.text[-tail:] if tail else "")
        return self.model_copy(update={"text": text, "truncated_chars": self.truncated_chars + cut})

    def content_parts(self) -> list[ContentPart]:
        """The text followed by one part per file: images as ``ImagePart``, anything else as ``FilePart``."""
        parts: list[ContentPart] = [TextPart(text=self.text)]
        for ref in self.files:
            url = _image_url(ref)
            parts.append(ImagePart(image_url=ImageURL(url=url)) if url else FilePart(file=ref))
        return parts

    def to_message(self, tool_call: ToolCall) -> Message:
        """The ``role="tool"`` message answering ``tool_call`` (plain string content when there are no files)."""
        content: str | list[ContentPart] = self.content_parts() if self.files else self.text
        return Message.tool(content, tool_call_id=tool_call.id, name=tool_call.name)


def to_json_text(data: Any) -> str:
    """Compact one-line JSON (``", "`` / ``": "`` separators) with non-ASCII kept readable for the model."""
    try:
        return json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(data)


def file_ref(value: Path | FileRef | str) -> FileRef:
    """A FileRef for a path (mime type guessed from the name) or the FileRef itself with its mime type filled in."""
    if isinstance(value, FileRef):
        if value.mime_type or not (value.filename or value.path):
            return value
        return value.model_copy(update={"mime_type": mimetypes.guess_type(value.filename or value.path or "")[0]})
    path = Path(value)
    return FileRef(filename=path.name, path=str(path), mime_type=mimetypes.guess_type(path.name)[0])


def _is_file_list(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes, bytearray))
        and len(value) > 0
        and all(isinstance(v, (Path, FileRef)) for v in value)
    )


def _describe_files(refs: list[FileRef]) -> str:
    lines = []
    for ref in refs:
        where = ref.path or ref.file_id or ref.filename or "(unnamed)"
        kind = f" ({ref.mime_type})" if ref.mime_type else ""
        lines.append(f"file: {where}{kind}")
    return "\n".join(lines)


def _image_url(ref: FileRef) -> str | None:
    if not (ref.mime_type or "").startswith("image/"):
        return None
    if ref.file_data:
        if ref.file_data.startswith("data:"):
            return ref.file_data
        return f"data:{ref.mime_type};base64,{ref.file_data}"
    if ref.path:
        # absolute() does not follow symlinks: the URI names the path the tool reported, never a file that a
        # sandbox's symlink planted there points to
        return Path(ref.path).absolute().as_uri()
    return None


def inline_image(path: Path, mime_type: str | None = None) -> FileRef:
    """A FileRef that carries the image bytes (base64) for servers that cannot read local paths."""
    mime = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return FileRef(filename=path.name, path=str(path), mime_type=mime, file_data=data)


__all__ = ["DEFAULT_MAX_CHARS", "NO_OUTPUT", "ToolOutput", "file_ref", "inline_image", "to_json_text"]
