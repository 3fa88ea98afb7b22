"""When to retry a request to an OpenAI-compatible server, how long to wait, and which typed error to raise.

Retried: connection failures (refused, reset before any response) and HTTP 429 / 5xx, with exponential backoff
plus jitter, honouring ``Retry-After``. Never retried: other 4xx (the same request would fail again) and read
timeouts (the server may still be generating; a retry would multiply the wait). Messages name the URL and say what
to check, because the person reading them is usually looking at a misconfigured base URL, key or model name.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from qwen_agent import bounded_json
from qwen_agent.llm.errors import (
    ContextLengthError,
    ModelAuthError,
    ModelConnectionError,
    ModelError,
    ModelNotFoundError,
    ModelProtocolError,
    ModelRateLimitError,
    ModelRequestError,
    ModelServerError,
    ModelTimeoutError,
)

__all__ = [
    "Backoff",
    "UnknownModelError",
    "is_retryable_status",
    "is_retryable_transport",
    "parse_retry_after",
    "server_message",
    "status_error",
    "transport_error",
]


class UnknownModelError(ModelRequestError, ModelNotFoundError):
    """HTTP 404 naming a model the server does not serve; the message lists the models it does serve."""


class Backoff(BaseModel):
    """Exponential backoff with jitter: ``initial * multiplier**attempt``, capped, then spread by ±``jitter``."""

    model_config = ConfigDict(extra="forbid")

    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 8.0
    #: Fraction of the delay added or removed at random, so many clients do not retry in lock-step.
    jitter: float = 0.25
    #: A server asking to wait longer than this (Retry-After) is not retried: the error is raised at once.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based). ``Retry-After`` wins when the server sent it."""
        if retry_after is not None:
            return max(0.0, retry_after)
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(text: str) -> str:
    """The human part of an error body: OpenAI ``error.message``, vLLM ``message``, FastAPI ``detail``, or text."""
    try:
        data: Any = bounded_json.loads(text)  # an error body is untrusted too: no RecursionError on deep nesting
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if data.get(key):
                return str(data[key]) if not isinstance(data[key], (list, dict)) else json.dumps(data[key])[:500]
    return text.strip()[:500]


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def status_error(status: int, url: str, body: str, *, model: str, available: list[str] | None = None,
                 retry_after: float | None = None, attempts: int = 1) -> ModelError:
    """The typed error for a non-2xx answer (after retries, for the retryable ones)."""
    msg = server_message(body) or f"HTTP {status}"
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 429:
        wait = f" The server asked to wait {retry_after:.0f} s." if retry_after is not None else ""
        return ModelRateLimitError(f"{url} is rate limiting us (HTTP 429){tried}: {msg}.{wait} "
                                   "Slow down, raise max_retries, or raise the server's limits.")
    if status >= 500:
        return ModelServerError(f"{url} failed with HTTP {status}{tried}: {msg}. The server's log says why "
                                "(out of memory, crashed worker, model still loading?).")
    if status in (401, 403):
        return ModelAuthError(f"{url} refused our credentials (HTTP {status}): {msg}. Check api_key or the "
                              "QWEN_AGENT_API_KEY / OPENAI_API_KEY environment variables.", status, body)
    if status == 404:
        if available is not None:
            listing = ", ".join(available) or "(none)"
            return UnknownModelError(f"{url}: HTTP 404: {msg}. We asked for model {model!r}; this server serves: "
                                     f"{listing}. Pass one of them as model=.", status, body)
        return ModelRequestError(f"{url}: HTTP 404: {msg}. Check base_url (it usually ends in /v1) and the model "
                                 f"name {model!r}.", status, body)
    lowered = msg.lower()
    if "context length" in lowered or "context size" in lowered or "context window" in lowered:
        return ContextLengthError(f"{url}: the prompt does not fit the model's context (HTTP {status}): {msg}. "
                                  "Shorten the conversation or lower max_tokens.", status, body)
    return ModelRequestError(f"{url} rejected the request (HTTP {status}): {msg}. Check the model name and the "
                             "sampling parameters / extra_body this server accepts.", status, body)


def is_retryable_transport(exc: httpx.TransportError) -> bool:
    """Failures where the request certainly did not produce an answer we would lose by retrying."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return True
    # "Server disconnected without sending a response": a dropped or stale keep-alive connection.
    return isinstance(exc, httpx.RemoteProtocolError)


def transport_error(exc: httpx.TransportError, url: str, timeout: httpx.Timeout, *, attempts: int = 1,
                    streaming: bool = False) -> ModelError:
    """The typed error for an httpx transport failure."""
    tried = f" (after {attempts} attempts)" if attempts > 1 else ""
    if isinstance(exc, httpx.ConnectTimeout):
        return ModelConnectionError(f"could not connect to {url} within {timeout.connect} s{tried}: is the server "
                                    "running and reachable? Check base_url.")
    if isinstance(exc, httpx.ConnectError):
        return ModelConnectionError(f"could not connect to {url}{tried}: {exc or type(exc).__name__}. Is the "
                                    "server running? Check base_url and the port.")
    if isinstance(exc, httpx.PoolTimeout):
        return ModelTimeoutError(f"no free connection to {url} within {timeout.pool} s{tried}: too many "
                                 "concurrent requests on one client; raise the pool timeout or limit concurrency.")
    if isinstance(exc, httpx.ReadTimeout):
        what = "sent nothing for" if streaming else "did not answer within"
        return ModelTimeoutError(f"{url} {what} {timeout.read} s (read timeout). The server may be overloaded or "
                                 "generating a very long reply: raise timeout= or lower max_tokens.")
    if isinstance(exc, httpx.WriteTimeout):
        return ModelTimeoutError(f"sending the request to {url} took longer than {timeout.write} s (write "
                                 "timeout); is the prompt huge or the network slow?")
    if isinstance(exc, httpx.RemoteProtocolError):
        if streaming:
            return ModelProtocolError(f"{url} closed the stream in the middle, before [DONE]/finish_reason: {exc}. "
                                      "The reply is incomplete; check the server log (crash, OOM) or a proxy "
                                      "timeout.")
        return ModelConnectionError(f"{url} closed the connection without a complete response{tried}: {exc}. "
                                    "Check the server log.")
    return ModelConnectionError(f"request to {url} failed{tried}: {type(exc).__name__}: {exc}")
