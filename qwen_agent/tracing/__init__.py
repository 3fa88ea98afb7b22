"""OpenTelemetry tracing of agent runs (GenAI semantic conventions): spans when a tracer provider is set, else nothing.

`configure_tracing` (needs the ``[trace]`` extra) sends spans to an OTLP collector or to a JSONL file; any
``TracerProvider`` the application sets through the OpenTelemetry API is used as well. With neither, every span
helper is a no-op that does not even import OpenTelemetry (see `api`).
"""

from __future__ import annotations

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__all__ = ["TracingSession", "capture_content", "configure_tracing", "use_tracer_provider"]

_EXPORTS = {
    "TracingSession": "qwen_agent.tracing.setup",
    "configure_tracing": "qwen_agent.tracing.setup",
    "capture_content": "qwen_agent.tracing.api",
    "use_tracer_provider": "qwen_agent.tracing.api",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from qwen_agent.tracing.api import capture_content, use_tracer_provider
    from qwen_agent.tracing.setup import TracingSession, configure_tracing
