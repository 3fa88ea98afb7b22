"""The span helpers the library calls: a real span when a tracer provider is set, a shared no-op object otherwise.

Why not call ``opentelemetry.trace`` directly: importing it costs ~0.25 s, and a run without any tracing configured
must pay nothing. A tracer provider can only have been set by code that imported ``opentelemetry.trace`` (or by
`use_tracer_provider` here), so when that module is not loaded there is no provider and every helper returns
`NO_SPAN` after one dictionary lookup. When it is loaded but only the API's default proxy provider is there (no
SDK), spans would be non-recording anyway, so they are skipped as well.

Spans are never made "current" across an ``await`` or a ``yield`` of an async generator (a context token reset in
another task fails); a parent is passed explicitly (`Span.context`) or attached only around one step of an inner
generator (`aiter_with_parent`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["CONTENT_ENV", "NO_SPAN", "AttributeValue", "Span", "aiter_with_parent", "attached", "capture_content",
           "set_capture_content", "set_tracer_provider", "start_span", "tracer", "use_tracer_provider"]

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float]

#: The variable OpenTelemetry's GenAI instrumentations read to opt in to message content.
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

_override: Any = None  # a TracerProvider set by use_tracer_provider / configure_tracing
_capture: bool | None = None
_cached: tuple[Any, Any] | None = None  # (provider, tracer)


class Span:
    """A started span; ``set`` / ``error`` / ``end`` forward to OpenTelemetry. `NO_SPAN` is the inert instance."""

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    @property
    def recording(self) -> bool:
        """False for `NO_SPAN`: callers skip building attribute values nobody will read."""
        return self._span is not None

    def set(self, key: str, value: AttributeValue | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def set_many(self, attributes: Mapping[str, AttributeValue | None]) -> None:
        if self._span is not None:
            self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def error(self, error_type: str, description: str | None = None) -> None:
        """Mark the span failed: ``error.type`` and an ERROR status, as the semantic conventions ask."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, description))

    def end(self) -> None:
        if self._span is not None:
            self._span.end()

    @property
    def context(self) -> Any:
        """An OpenTelemetry ``Context`` with this span as the parent (None for `NO_SPAN`)."""
        if self._span is None:
            return None
        from opentelemetry.trace import set_span_in_context

        return set_span_in_context(self._span)


NO_SPAN = Span(None)


def tracer() -> Any:
    """The tracer of the active provider, or None when nothing would record (the common, free case)."""
    global _cached
    provider = _override
    if provider is None:
        trace = sys.modules.get("opentelemetry.trace")
        if trace is None:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    from qwen_agent import __version__

    found = provider.get_tracer("qwen_agent", __version__)
    _cached = (provider, found)
    return found


def start_span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None, *,
               parent: Any = None, kind: str = "INTERNAL") -> Span:
    """Start a span (not made current). ``parent``: a `Span.context`; None takes the current context's span."""
    t = tracer()
    if t is None:
        return NO_SPAN
    from opentelemetry.trace import SpanKind

    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    return Span(t.start_span(name, context=parent, kind=SpanKind[kind], attributes=attrs))


@contextmanager
def attached(context: Any) -> Iterator[None]:
    """Make ``context`` current for a synchronous block (or one await that stays in this task)."""
    if context is None:
        yield
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


async def aiter_with_parent(items: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    """Iterate ``items`` with ``context`` current during each step of it only, so spans it starts get the parent."""
    if context is None:
        async for item in items:
            yield item
        return
    iterator = aiter(items)
    while True:
        with attached(context):
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
        yield item


def capture_content() -> bool:
    """Whether spans carry message contents, tool arguments and results (private data: opt-in only).

    Set by ``configure_tracing(capture_content=True)`` / `set_capture_content`, else read from
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``)."""
    if _capture is not None:
        return _capture
    return os.environ.get(CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")


def set_capture_content(value: bool | None) -> None:
    """Opt in or out of content capture; None goes back to the environment variable."""
    global _capture
    _capture = value


@contextmanager
def use_tracer_provider(provider: Any, *, content: bool | None = None) -> Iterator[None]:
    """Trace with ``provider`` inside the block (tests, several configurations in one process), then restore."""
    global _override, _capture
    previous = _override, _capture
    _override = provider
    if content is not None:
        _capture = content
    try:
        yield
    finally:
        _override, _capture = previous


def set_tracer_provider(provider: Any) -> None:
    """Use ``provider`` for this library's spans from now on (None: back to the global OpenTelemetry provider)."""
    global _override
    _override = provider
