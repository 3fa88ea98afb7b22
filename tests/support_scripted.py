"""Shared fixtures for the OpenAI-compatible backend tests: a scripted model server and a fast-retrying client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.openai_retry import Backoff
from qwen_agent.messages import ToolSchema
from qwen_agent.testing import ScriptedServer

#: Retries in tests wait milliseconds, not seconds.
FAST_BACKOFF = Backoff(initial=0.001, maximum=0.005, jitter=0.0)

WEATHER = ToolSchema(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"]},
)
TIME = ToolSchema(
    name="get_time",
    description="Current local time in a timezone.",
    parameters={"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
)


def scripted_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """Body of each test file's ``server`` fixture: a fresh scripted server per test.

    API-key variables from the environment must not leak into the requests the tests inspect.
    """
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("QWEN_AGENT_API_KEY", raising=False)
    with ScriptedServer(models=["qwen-test", "qwen-other"]) as srv:
        yield srv


def make_model(server: ScriptedServer, **kwargs: Any) -> OpenAICompatible:
    kwargs.setdefault("backoff", FAST_BACKOFF)
    kwargs.setdefault("model", "qwen-test")
    return OpenAICompatible(server.base_url, **kwargs)


def closed_port() -> int:
    """A port on 127.0.0.1 that was just bound and released, so connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
