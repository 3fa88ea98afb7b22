"""A small real OpenAI-compatible HTTP server on 127.0.0.1 that replays scripted replies: a test double of the model.

It speaks enough of the chat-completions protocol (JSON and SSE streaming, ``GET /models``, bearer auth, OpenAI
error bodies) for protocol and fault tests, and it is fast (raw asyncio + h11 on its own thread, a small fraction of
a millisecond per request) so benchmarks can measure the framework's own per-step overhead against it.

    with ScriptedServer() as server:
        server.script(ScriptedReply.text("Hello"), ScriptedReply.fail(503), ScriptedReply.call("add", {"a": 1}))
        model = OpenAICompatible(server.base_url, model=server.model)
        ...
        assert server.chat_requests[0].body["stream"] is False

Replies are consumed in order, one per ``POST .../chat/completions``. When the script is empty the server uses
``responder(request_body)`` if given (benchmarks, dynamic agents), else answers 500 "script exhausted" so a test
that sends more requests than it scripted fails loudly.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Self

import h11

from qwen_agent.testing.script import RecordedRequest, ScriptedReply

__all__ = ["Responder", "ScriptedServer"]

logger = logging.getLogger(__name__)

Responder = Callable[[dict[str, Any]], ScriptedReply]


class ScriptedServer:
    """Start with ``with``/``async with`` (or `start`/`stop`); it runs its own event loop on a daemon thread."""

    def __init__(
        self,
        replies: list[ScriptedReply] | None = None,
        *,
        models: list[str] | None = None,
        check_model: bool = True,
        api_key: str | None = None,
        responder: Responder | None = None,
        port: int = 0,
    ) -> None:
        #: Served by ``GET /models``; with ``check_model`` a request for another model gets a 404 like vLLM's.
        self.models = models or ["scripted-model"]
        self.check_model = check_model
        #: When set, requests without ``Authorization: Bearer <api_key>`` get 401.
        self.api_key = api_key
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._queue: collections.deque[ScriptedReply] = collections.deque(replies or [])
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: 0 picks a free port; a fixed one lets a test stop a server and bring it back at the same address.
        self.port = port

    # ---- public API -------------------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *replies: ScriptedReply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._queue)

    def reset(self) -> None:
        """Forget the recorded requests and any unconsumed replies."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="scripted-openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        logger.debug("scripted server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ---- HTTP -------------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.connections += 1
            conn_no = self.connections
        peer_port = writer.get_extra_info("peername")[1]
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    return
                req, body = request
                record = RecordedRequest(
                    method=req.method.decode(), path=req.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in req.headers},
                    body=_json_or_none(body), raw_body=body, peer_port=peer_port, connection=conn_no,
                )
                self.requests.append(record)
                if not await self._respond(conn, writer, record):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read_request(self, conn: h11.Connection,
                            reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
        req: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                req = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert req is not None
                return req, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, record: RecordedRequest) -> bool:
        """Answer one request; False when the connection must be dropped."""
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            await self._send(conn, writer, 401, _error("Incorrect API key provided.", "AuthenticationError", 401))
            return True
        if record.method == "GET" and record.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.models]
            await self._send(conn, writer, 200, json.dumps({"object": "list", "data": data}))
            return True
        if record.method != "POST" or not record.path.endswith("/chat/completions"):
            await self._send(conn, writer, 404, _error(f"no route for {record.method} {record.path}", "NotFound", 404))
            return True
        body = record.body if isinstance(record.body, dict) else {}
        model = str(body.get("model") or self.model)
        if self.check_model and model not in self.models:
            await self._send(conn, writer, 404,
                             _error(f"The model `{model}` does not exist.", "NotFoundError", 404))
            return True
        reply = self._next_reply(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            writer.transport.abort()
            return False
        if reply.status != 200:
            await self._send(conn, writer, reply.status, reply.error_body(), reply.headers)
            return True
        if not body.get("stream") or reply.ignore_stream:
            await self._send(conn, writer, 200, reply.completion_body(model), reply.headers)
            return True
        return await self._stream(conn, writer, reply, model, body)

    def _next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return ScriptedReply.fail(500, "scripted server: script exhausted "
                                       "(the test sent more requests than it scripted)")

    async def _stream(self, conn: h11.Connection, writer: asyncio.StreamWriter, reply: ScriptedReply, model: str,
                      body: dict[str, Any]) -> bool:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **reply.headers}
        writer.write(conn.send(h11.Response(status_code=200, headers=list(headers.items()))))
        for n, payload in enumerate(reply.stream_events(model, include_usage)):
            if reply.cut_after is not None and n >= reply.cut_after:
                if reply.cut_cleanly:
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    return True
                await writer.drain()
                writer.transport.abort()
                return False
            writer.write(conn.send(h11.Data(data=f"data: {payload}\n\n".encode())))
            if reply.chunk_delay:
                await writer.drain()
                await asyncio.sleep(reply.chunk_delay)
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        return True

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str,
                    extra: dict[str, str] | None = None) -> None:
        data = text.encode()
        headers = {"content-type": "application/json", "content-length": str(len(data)), **(extra or {})}
        writer.write(conn.send(h11.Response(status_code=status, headers=list(headers.items()))))
        writer.write(conn.send(h11.Data(data=data)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()


def _error(message: str, kind: str, code: int) -> str:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}})


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
