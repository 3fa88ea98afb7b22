"""`configure_tracing`: an SDK tracer provider sending this library's spans to OTLP or to a JSONL file.

Needs the ``[trace]`` extra (``opentelemetry-sdk`` and the OTLP/HTTP exporter); a missing piece raises
`TracingSetupError` naming the extra. ``"otlp"`` reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint,
headers, timeout); any other target is a file path for `JsonlSpanExporter`. The provider is used by this library
(and set as OpenTelemetry's global provider when none is set yet, so other instrumentations join the same traces).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

from qwen_agent.errors import QwenAgentError
from qwen_agent.tracing import api

__all__ = ["TracingSession", "TracingSetupError", "configure_tracing"]

logger = logging.getLogger(__name__)


class TracingSetupError(QwenAgentError):
    """Tracing was asked for but cannot be set up (the SDK is not installed, a bad target)."""


class TracingSession:
    """The configured provider; `shutdown` flushes every pending span (call it before the process exits)."""

    def __init__(self, provider: Any, target: str) -> None:
        self.provider = provider
        self.target = target

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        """Flush and close the exporter; this library stops tracing through this provider."""
        try:
            self.provider.shutdown()
        finally:
            if api._override is self.provider:
                api.set_tracer_provider(None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def configure_tracing(target: str | Path, *, service_name: str = "qwen-agent", capture_content: bool | None = None,
                      batch: bool = True, set_global: bool = True) -> TracingSession:
    """Trace to ``target``: ``"otlp"`` (OTLP over HTTP, ``OTEL_EXPORTER_OTLP_*``) or a ``.jsonl`` file path.

    ``capture_content=True`` adds message contents, tool arguments and results to the spans (they may be private;
    default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``). ``batch=False`` exports each span as it ends
    (short CLI runs, tests).
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
    except ImportError as exc:
        raise TracingSetupError("tracing needs the OpenTelemetry SDK: pip install 'qwen-agent[trace]'") from exc
    exporter: SpanExporter
    name = str(target)
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingSetupError("`--trace otlp` needs the OTLP exporter: pip install 'qwen-agent[trace]'") from exc
        exporter = OTLPSpanExporter()
    else:
        from qwen_agent.tracing.jsonl import JsonlSpanExporter

        path = Path(target)
        if path.is_dir():
            raise TracingSetupError(f"trace target {path} is a folder: give a file such as {path / 'trace.jsonl'} "
                                    "or 'otlp'")
        exporter = JsonlSpanExporter(path)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    api.set_tracer_provider(provider)
    if capture_content is not None:
        api.set_capture_content(capture_content)
    if set_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    logger.info("tracing to %s", name)
    return TracingSession(provider, name)
