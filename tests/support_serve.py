"""Shared pieces of the `qwen-agent serve` tests: the scripted rule-model backend, a served config, helpers.

The backend is the scripted OpenAI-compatible server (a test double of the *model* only); everything between the
client and it -- uvicorn, the app, the agent loop, the tools, the sandboxed kernel -- is the real thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from qwen_agent.server import BackgroundServer, ServeConfig
from qwen_agent.testing import RuleModel, ScriptedReply, ScriptedServer

API_KEY = "sk-test-serve-0123456789"


def rule_backend() -> ScriptedServer:
    return ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=8192))


def serve_config(backend: ScriptedServer | None, *, profiles: dict[str, Any] | None = None,
                 **server: Any) -> ServeConfig:
    """A config served on 127.0.0.1 (a free port) whose profiles use ``backend`` (None: a closed port)."""
    settings = {"port": 0, "kernel_pool": 0, "backend_retries": 0, **server}
    url = backend.base_url if backend is not None else "http://127.0.0.1:9/v1"
    data: dict[str, Any] = {"model": f"openai:{url}#rule-model", "server": settings}
    if profiles is not None:
        data["profiles"] = profiles
    return ServeConfig.model_validate(data).with_defaults()


@contextmanager
def serving(backend: ScriptedServer | None, **kwargs: Any) -> Iterator[BackgroundServer]:
    with BackgroundServer(serve_config(backend, **kwargs)) as server:
        yield server


def call_reply(name: str, arguments: dict[str, Any], **kw: Any) -> ScriptedReply:
    """A model reply that calls ``name`` the way the prompted (nous) format asks for."""
    payload = json.dumps({"name": name, "arguments": arguments})
    return ScriptedReply.text(f"<tool_call>\n{payload}\n</tool_call>", **kw)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail with ``what`` when it never does (an eventual state, not a timing)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def sse_events(lines: Iterator[str]) -> list[Any]:
    """The ``data:`` payloads of an SSE body (JSON decoded; ``[DONE]`` kept as the string)."""
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
