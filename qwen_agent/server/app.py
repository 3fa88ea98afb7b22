"""The ASGI application: the OpenAI-compatible agent API under ``/v1`` and the chat page at ``/``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qwen_agent.server import static
from qwen_agent.server.admission import Admission
from qwen_agent.server.agent_run import agent_chunks
from qwen_agent.server.config import ServeConfig
from qwen_agent.server.errors import APIError
from qwen_agent.server.profiles import ModelFactory, Profiles
from qwen_agent.server.protocol import Completion, parse_request
from qwen_agent.server.proxy_run import proxy_chunks, traced_proxy
from qwen_agent.server.response import RunResponse, RunStats
from qwen_agent.server.session_docs import is_document
from qwen_agent.server.sessions import Session, SessionManager, safe_filename
from qwen_agent.tracing.genai import CONVERSATION_ID

logger = logging.getLogger(__name__)

__all__ = ["ServerState", "create_app"]


class ServerState:
    """Everything one server instance holds: config, profiles, sessions, admission and counters."""

    def __init__(self, config: ServeConfig, model_factory: ModelFactory | None = None) -> None:
        s = config.server
        self.config = config
        self.profiles = Profiles(config, model_factory)
        self.sessions = SessionManager(s.max_sessions, s.session_idle_s, kernel_pool=s.kernel_pool)
        self.admission = Admission(s.max_concurrent_runs, s.max_queued_runs, s.queue_timeout_s)
        self.stats = RunStats()
        self._keys = [k.encode() for k in s.api_keys]

    def namespace(self, request: Request) -> str:
        """The caller's namespace (sessions live inside it); 401 when a key is needed and not given."""
        if not self._keys:
            return "local"
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        given = key.strip().encode()
        if scheme.lower() == "bearer" and given:
            for known in self._keys:
                if hmac.compare_digest(given, known):
                    return hashlib.sha256(known).hexdigest()[:16]
        raise APIError.unauthorized()

    def base_url(self, request: Request) -> str:
        return self.config.server.public_url or str(request.base_url).rstrip("/")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError.too_large(limit)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise APIError.too_large(limit)
    return bytes(body)


def _api(handler: Any) -> Any:
    """Wrap a handler so every `APIError` becomes OpenAI error JSON."""

    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except APIError as exc:
            return exc.response()

    wrapped.__name__ = handler.__name__
    return wrapped


def create_app(config: ServeConfig, *, model_factory: ModelFactory | None = None) -> Starlette:
    """The app for ``config`` (profiles must be filled in: see `ServeConfig.with_defaults`). ``model_factory``
    replaces `load_model` (tests and benchmarks hand in a prepared model)."""
    state = ServerState(config, model_factory)
    limits = config.server

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.profiles.start()
        state.sessions.start()
        if state.sessions.pool is not None and any(r.profile.code_interpreter for r in state.profiles.runtimes()):
            state.sessions.pool.fill()
        try:
            yield
        finally:
            await state.sessions.aclose()
            await state.profiles.aclose()

    async def chat_completions(request: Request) -> Response:
        namespace = state.namespace(request)
        raw = await _read_body(request, limits.max_request_bytes)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise APIError.bad_request(f"The body is not valid JSON: {exc}") from None
        req, messages = parse_request(body, limits.max_messages)
        runtime = state.profiles.get(req.model)
        sid = SessionManager.session_id(request.headers.get("x-session-id"), req.user)
        needs_session = runtime.profile.code_interpreter and not req.tools
        slot = await state.admission.acquire()
        session: Session | None = None
        try:
            if needs_session or sid is not None:
                session = state.sessions.acquire(namespace, sid)
            completion = Completion(req.model)
            if req.tools:
                chunks = traced_proxy(proxy_chunks(runtime, req, messages, req.sampling(), completion), req.model, sid)
            else:
                agent = runtime.agent(session, req.sampling(), state.sessions.pool)
                agent.name = req.model  # the profile: its invoke_agent span carries the session when there is one
                if sid is not None:
                    agent.trace_attributes[CONVERSATION_ID] = sid
                chunks = agent_chunks(runtime, agent, runtime.prepare(messages, session), completion, session,
                                      state.base_url(request))
        except BaseException:
            slot.release()
            if session is not None:
                await state.sessions.release(session)
            raise

        async def cleanup() -> None:
            slot.release()
            if session is not None:
                await state.sessions.release(session)

        on_cancel = session.interrupt if session is not None else None
        return RunResponse(chunks, completion, stream=req.stream, include_usage=req.include_usage,  # type: ignore
                           timeout=limits.run_timeout_s, stats=state.stats, cleanup=cleanup, on_cancel=on_cancel)

    async def list_models(request: Request) -> Response:
        state.namespace(request)
        data = [_model_card(state, r.name) for r in state.profiles.runtimes()]
        return JSONResponse({"object": "list", "data": data})

    async def get_model(request: Request) -> Response:
        state.namespace(request)
        name = request.path_params["name"]
        state.profiles.get(name)
        return JSONResponse(_model_card(state, name))

    async def upload(request: Request) -> Response:
        namespace = state.namespace(request)
        name = safe_filename(request.query_params.get("filename", ""))
        sid = SessionManager.session_id(request.headers.get("x-session-id"), None)
        if sid is None:
            raise APIError.bad_request("Uploads go into a session: send an X-Session-Id header.", "X-Session-Id")
        data = await _read_body(request, limits.max_upload_bytes)
        session = state.sessions.acquire(namespace, sid)
        indexed: list[str] = []
        problems: list[str] = []
        try:
            await session.add_upload(name, data)
            if is_document(name):
                rag = [r for r in state.profiles.runtimes() if r.knowledge is not None]
                stores = {r.knowledge.embedder.model_id: (r.knowledge.embedder, r.knowledge.config) for r in rag}
                errors = await session.index_documents(list(stores.values()))
                hide = f"{session.uploads_dir}/"  # the server's own paths are none of the client's business
                problems = [e.message.replace(hide, "") for e in errors if Path(e.path).name == name]
                indexed = [] if problems else [r.name for r in rag]
        finally:
            await state.sessions.release(session)
        return JSONResponse({"id": f"file-{name}", "object": "file", "filename": name, "bytes": len(data),
                             "purpose": "session", "url": f"{state.base_url(request)}/v1/files/{session.token}/{name}",
                             "x_indexed_for": indexed, "x_index_errors": problems})

    async def get_file(request: Request) -> Response:
        session = state.sessions.by_token(request.path_params["token"])
        if session is None:
            raise APIError.not_found("No such file.", code="file_not_found")
        sid = request.headers.get("x-session-id")
        if sid is not None and sid != session.id:
            raise APIError.not_found("No such file.", code="file_not_found")  # another session asking
        name = request.path_params["name"]
        data = session.read_file(name, limits.max_file_bytes)
        return static.file_response(name, data)

    async def end_session(request: Request) -> Response:
        namespace = state.namespace(request)
        if not await state.sessions.end(namespace, request.path_params["sid"]):
            raise APIError.not_found("No such session.", code="session_not_found")
        return JSONResponse({"id": request.path_params["sid"], "object": "session", "deleted": True})

    async def get_source(request: Request) -> Response:
        runtime = state.profiles.get(request.path_params["profile"])
        if not hmac.compare_digest(request.path_params["token"], runtime.sources.token):
            raise APIError.not_found("No such document.", code="file_not_found")
        path = runtime.sources.path(request.path_params["source"])
        if path is None or not path.is_file():
            raise APIError.not_found("No such document.", code="file_not_found")
        data = path.read_bytes()[: limits.max_file_bytes]
        return static.file_response(path.name, data, inline_documents=True)

    async def server_stats(request: Request) -> Response:
        state.namespace(request)
        st = state.stats
        return JSONResponse({"runs": {"active": st.active, "started": st.started, "finished": st.finished,
                                      "failed": st.failed, "cancelled": st.cancelled},
                             "queue": {"running": state.admission.running, "queued": state.admission.queued,
                                       "rejected": state.admission.rejected},
                             "sessions": {"open": len(state.sessions), "closed": state.sessions.closed_count,
                                          "max": limits.max_sessions}})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", static.index, methods=["GET"]),
        Route("/static/{name}", static.asset, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/v1/models", _api(list_models), methods=["GET"]),
        Route("/v1/models/{name:path}", _api(get_model), methods=["GET"]),
        Route("/v1/chat/completions", _api(chat_completions), methods=["POST"]),
        Route("/v1/files", _api(upload), methods=["POST"]),
        Route("/v1/files/{token}/{name}", _api(get_file), methods=["GET"]),
        Route("/v1/sessions/{sid}", _api(end_session), methods=["DELETE"]),
        Route("/v1/knowledge/{token}/{profile}/{source:path}", _api(get_source), methods=["GET"]),
        Route("/v1/server/stats", _api(server_stats), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.server = state
    return app


def _model_card(state: ServerState, name: str) -> dict[str, Any]:
    runtime = state.profiles.get(name)
    return {"id": name, "object": "model", "created": 0, "owned_by": "qwen-agent",
            "x_profile": runtime.profile.describe(state.config.model or "llamacpp:")}


async def _not_found(request: Request, exc: Exception) -> Response:
    return APIError.not_found(f"No route for {request.method} {request.url.path}.").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return APIError(405, f"{request.method} is not allowed on {request.url.path}.").response()
