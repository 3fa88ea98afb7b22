"""A span exporter that appends one JSON object per finished span to a file: tracing without any collector.

The line holds what a reader needs to rebuild the tree and read the GenAI attributes: ``name``, ``trace_id``,
``span_id``, ``parent_span_id`` (hex, null for a root), ``kind``, ``start_time`` / ``end_time`` (Unix ns),
``status`` (``UNSET`` / ``OK`` / ``ERROR``, with its description), ``attributes``, ``events`` and the
resource's attributes. A line is written in one ``write`` call under a lock, so lines never interleave.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonlSpanExporter", "span_record"]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The JSON object written for ``span``."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": _hex(ctx.trace_id, 32) if ctx is not None else None,
        "span_id": _hex(ctx.span_id, 16) if ctx is not None else None,
        "parent_span_id": _hex(parent.span_id, 16) if parent is not None else None,
        "kind": span.kind.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
                   for e in span.events],
        "resource": dict(span.resource.attributes),
    }


class JsonlSpanExporter(SpanExporter):
    """Append finished spans to ``path`` (created with its folder), one JSON line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(json.dumps(span_record(s), ensure_ascii=False, default=str) + "\n" for s in spans)
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(text)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if self._file is not None:
                self._file.flush()
        return True
