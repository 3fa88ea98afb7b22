"""Sending a run to the client: SSE or one JSON body, an error status when the run fails before its first chunk,
and cancellation of the run (model generation and tool calls included) the moment the client disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from qwen_agent.server.errors import APIError
from qwen_agent.server.protocol import Completion, sse

logger = logging.getLogger(__name__)

__all__ = ["RunResponse", "RunStats", "fold"]

_DONE = object()
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


@dataclass
class RunStats:
    """Counters behind ``GET /v1/server/stats`` (and what tests read to see a cancelled run)."""

    started: int = 0
    finished: int = 0
    failed: int = 0
    cancelled: int = 0
    active: int = 0


class RunResponse:
    """An ASGI response that drives ``chunks`` (an async iterator of chunk bodies) on a task of its own.

    ``cleanup`` runs once whatever happens (releases the run slot and the session); ``on_cancel`` runs when the
    client went away mid-run (interrupts the session's kernel).
    """

    def __init__(self, chunks: AsyncIterator[dict[str, Any]], completion: Completion, *, stream: bool,
                 include_usage: bool, timeout: float, stats: RunStats,
                 cleanup: Callable[[], Awaitable[None]], on_cancel: Callable[[], Awaitable[None]] | None = None
                 ) -> None:
        self.chunks = chunks
        self.completion = completion
        self.stream = stream
        self.include_usage = include_usage
        self.timeout = timeout
        self.stats = stats
        self.cleanup = cleanup
        self.on_cancel = on_cancel

    async def _produce(self, queue: asyncio.Queue[Any]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                async for chunk in self.chunks:
                    queue.put_nowait(chunk)
        except APIError as exc:
            queue.put_nowait(exc)
        except TimeoutError:
            queue.put_nowait(APIError(504, f"The run took longer than this server's limit of {self.timeout:g} s.",
                                      type="timeout", code="run_timeout"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("run failed")
            queue.put_nowait(APIError(500, f"Internal error: {type(exc).__name__}: {exc}", type="server_error"))
        finally:
            queue.put_nowait(_DONE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.stats.started += 1
        self.stats.active += 1
        producer = asyncio.create_task(self._produce(queue))
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    if not producer.done():
                        producer.cancel()
                    queue.put_nowait(_DONE)
                    return

        watcher = asyncio.create_task(watch())
        failed = False
        try:
            if self.stream:
                failed = await self._send_stream(queue, send, disconnected)
            else:
                failed = await self._send_json(queue, send, disconnected)
        except OSError:  # the client went away while we wrote
            disconnected.set()
            if not producer.cancelling():
                producer.cancel()
        finally:
            watcher.cancel()
            if not producer.done() and not producer.cancelling():
                producer.cancel()  # once: a second cancel would interrupt the run's own clean-up (closing the
                # backend stream, which is what stops the generation there)
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            self.stats.active -= 1
            if disconnected.is_set():
                self.stats.cancelled += 1
                if self.on_cancel is not None:
                    await self.on_cancel()
            elif failed:
                self.stats.failed += 1
            else:
                self.stats.finished += 1
            await self.cleanup()

    async def _send_stream(self, queue: asyncio.Queue[Any], send: Send, disconnected: asyncio.Event) -> bool:
        first = await queue.get()
        if disconnected.is_set() or first is _DONE:
            return False
        if isinstance(first, APIError):
            await _send_error(send, first)
            return True
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        opening = self.completion.chunk({"role": "assistant", "content": ""})
        item, failed = first, False
        await send({"type": "http.response.body", "body": sse(opening), "more_body": True})
        while item is not _DONE:
            if isinstance(item, APIError):
                failed = True
                data = sse(item.body())
            elif item.get("usage") is not None and not item["choices"]:
                data = sse(item) if self.include_usage else b""
            else:
                data = sse(item)
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            item = await queue.get()
            if disconnected.is_set():
                return failed
        await send({"type": "http.response.body", "body": sse("[DONE]"), "more_body": False})
        return failed

    async def _send_json(self, queue: asyncio.Queue[Any], send: Send, disconnected: asyncio.Event) -> bool:
        chunks: list[dict[str, Any]] = []
        while True:
            item = await queue.get()
            if disconnected.is_set():
                return False
            if item is _DONE:
                break
            if isinstance(item, APIError):
                await _send_error(send, item)
                return True
            chunks.append(item)
        body = json.dumps(fold(self.completion, chunks), ensure_ascii=False, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return False


async def _send_error(send: Send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in error.headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fold(completion: Completion, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` body: the same chunks a stream would carry, put together."""
    from qwen_agent.llm.types import Usage

    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    finish, usage = "stop", Usage()
    for chunk in chunks:
        if chunk.get("usage") is not None:
            u = chunk["usage"]
            usage = Usage(prompt_tokens=u["prompt_tokens"], completion_tokens=u["completion_tokens"],
                          cached_prompt_tokens=(u.get("prompt_tokens_details") or {}).get("cached_tokens"))
        if "x_agent_event" in chunk:
            events.append(chunk["x_agent_event"])
        for choice in chunk.get("choices", []):
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            annotations += delta.get("annotations") or []
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"id": "", "type": "function",
                                                      "function": {"name": "", "arguments": ""}})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    text = "".join(content)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if any(reasoning):
        message["reasoning_content"] = message["reasoning"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if annotations:
        message["annotations"] = annotations
    return completion.body(message, finish, usage, events)
