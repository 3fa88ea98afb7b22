"""Sessions: one sandboxed code-interpreter kernel, its work dir and the user's uploads per conversation.

A session is named by the client (``X-Session-Id`` or the request's ``user``) inside the namespace of the API key
that made the request, so two keys never share a session. Its files are served only under a random per-session
token (``/v1/files/<token>/<name>``) and only the names its own tool calls reported or its uploads created, read
through `hostfs` (no path from the sandbox is ever followed). Sessions close after ``idle_s`` without use, on
``DELETE /v1/sessions/<id>`` and at shutdown; at most ``max_sessions`` exist at once. Uploaded documents are
indexed for the RAG profiles in the session's own store (`session_docs`), searched only by its requests.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qwen_agent.server.errors import APIError
from qwen_agent.server.session_docs import SessionDocuments, is_document
from qwen_agent.tools.code_interpreter import CodeInterpreter, KernelPool, SandboxConfig, hostfs

if TYPE_CHECKING:
    from qwen_agent.retrieval import Embedder, FileError, KnowledgeBaseConfig

logger = logging.getLogger(__name__)

__all__ = ["Session", "SessionManager", "safe_filename"]

_SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()+-]{0,127}$")


def safe_filename(name: str) -> str:
    """An uploaded file's name, which must be a plain base name (no directories, no leading dot), or 400."""
    base = name.strip()
    if not _FILENAME.match(base):
        raise APIError.bad_request("filename: use a plain file name of letters, digits, spaces and ._()+- "
                                   "(at most 128 characters, not starting with a dot)", "filename")
    return base


class Session:
    """State kept between the requests of one conversation."""

    def __init__(self, key: tuple[str, str] | None) -> None:
        self.key = key
        self.token = secrets.token_urlsafe(24)
        self.created = self.last_used = time.monotonic()
        self.active = 0
        self.interpreter: CodeInterpreter | None = None
        #: Served names -> path relative to the work dir (figures and files the session's own tools reported).
        self.files: dict[str, str] = {}
        self.uploads_dir: Path | None = None
        self.uploads: list[str] = []
        #: The uploaded documents, indexed for the server's RAG profiles (see `session_docs`).
        self.documents: SessionDocuments | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def id(self) -> str | None:
        return self.key[1] if self.key else None

    def interpreter_for(self, sandbox: str, exec_timeout: float, pool: KernelPool | None) -> CodeInterpreter:
        """The session's code interpreter (created on first need; its kernel starts on first call)."""
        if self.interpreter is None:
            uploads = [self.uploads_dir / n for n in self.uploads] if self.uploads_dir else []
            use_pool = pool if pool is not None and sandbox == pool.config.mode else False
            self.interpreter = CodeInterpreter(uploads, sandbox=sandbox,  # type: ignore[arg-type]
                                               exec_timeout=exec_timeout, pool=use_pool)
        return self.interpreter

    def register_file(self, rel: str) -> str:
        """Make ``rel`` (a work-dir file a tool reported) servable; returns its served name."""
        name = rel.replace("/", "_")
        self.files[name] = rel
        return name

    def read_file(self, name: str, max_bytes: int) -> bytes:
        """A registered file's bytes, read without following anything the sandbox planted; 404 otherwise."""
        rel = self.files.get(name)
        if rel is not None and self.interpreter is not None and self.interpreter.kernel is not None:
            root = self.interpreter.work_dir
        elif name in self.uploads and self.uploads_dir is not None:
            root, rel = self.uploads_dir, name
        else:
            raise APIError.not_found("No such file in this session.", code="file_not_found")
        try:
            return hostfs.read_bytes(root, rel, max_bytes)
        except (OSError, ValueError):
            raise APIError.not_found("No such file in this session.", code="file_not_found") from None

    async def add_upload(self, name: str, data: bytes) -> None:
        async with self._lock:
            if self.uploads_dir is None:
                self.uploads_dir = Path(tempfile.mkdtemp(prefix="qwen-agent-uploads-"))
            await asyncio.to_thread(hostfs.write_atomic, self.uploads_dir, name, data)
            if name not in self.uploads:
                self.uploads.append(name)
            interp = self.interpreter
            if interp is not None and interp.kernel is not None:
                await asyncio.to_thread(interp.add_files, [self.uploads_dir / name])

    async def index_documents(self, stores: list[tuple[Embedder, KnowledgeBaseConfig | None]]) -> list[FileError]:
        """Index the uploaded documents once per (embedder, config) of the server's RAG profiles; returns the files
        that could not be read (they stay uploaded, for the code interpreter)."""
        errors: list[FileError] = []
        async with self._lock:
            if self.uploads_dir is None or not any(is_document(n) for n in self.uploads):
                return errors
            if self.documents is None:
                self.documents = SessionDocuments(self.uploads_dir)
            for embedder, config in stores:
                report = await asyncio.to_thread(self.documents.update, embedder, config)
                errors.extend(e for e in report.errors if e not in errors)
        return errors

    async def interrupt(self) -> None:
        """Stop code the kernel may still be running for a cancelled run. (The kernel also interrupts a cancelled
        execution itself and lets it settle before the session's next code runs; this covers code started by a
        run that was cancelled between two tool calls.)"""
        interp = self.interpreter
        if interp is not None and interp.kernel is not None:
            try:
                await interp.kernel.interrupt()
            except Exception as exc:  # noqa: BLE001 - best effort; the next execution restarts a stuck kernel
                logger.debug("interrupting a session kernel failed: %r", exc)

    async def aclose(self) -> None:
        self.closed = True
        interp, self.interpreter = self.interpreter, None
        if interp is not None and interp.kernel is not None:
            kernel, interp.kernel = interp.kernel, None
            await asyncio.to_thread(kernel.close, True)
        if self.documents is not None:
            await asyncio.to_thread(self.documents.close)
            self.documents = None
        if self.uploads_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.uploads_dir, True)
            self.uploads_dir = None
        self.files.clear()


class SessionManager:
    """Finds, creates, caps, expires and closes sessions."""

    def __init__(self, max_sessions: int, idle_s: float, *, kernel_pool: int = 0) -> None:
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._by_key: dict[tuple[str, str], Session] = {}
        self._by_token: dict[str, Session] = {}
        self._anonymous: set[Session] = set()
        self._pool_size = kernel_pool
        self._pool: KernelPool | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.closed_count = 0

    def __len__(self) -> int:
        return len(self._by_token)

    @property
    def pool(self) -> KernelPool | None:
        if self._pool is None and self._pool_size > 0:
            self._pool = KernelPool(self._pool_size, SandboxConfig())
        return self._pool

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    @staticmethod
    def session_id(header: str | None, user: str | None) -> str | None:
        """The id a request names (``X-Session-Id`` wins over ``user``); 400 when it is not a plain token."""
        value = header if header is not None else user
        if value is None or value == "":
            return None
        if not _SESSION_ID.match(value):
            raise APIError.bad_request("X-Session-Id / user: use 1-128 letters, digits or ._:@- characters",
                                       "user" if header is None else "X-Session-Id")
        return value

    def acquire(self, namespace: str, session_id: str | None) -> Session:
        """The named session (created if new), or a new anonymous one; marked active until `release`."""
        key = (namespace, session_id) if session_id is not None else None
        session = self._by_key.get(key) if key is not None else None
        if session is None:
            if len(self._by_token) >= self.max_sessions:
                raise APIError.busy(503, f"This server keeps at most {self.max_sessions} sessions and all are in "
                                         "use; end one (DELETE /v1/sessions/<id>) or retry later.", retry_after=10.0)
            session = Session(key)
            self._by_token[session.token] = session
            if key is not None:
                self._by_key[key] = session
            else:
                self._anonymous.add(session)
        session.active += 1
        session.last_used = time.monotonic()
        return session

    async def release(self, session: Session) -> None:
        session.active -= 1
        session.last_used = time.monotonic()
        idle_kernel = session.interpreter is None or session.interpreter.kernel is None
        if session.key is None and session.active == 0 and not session.files and idle_kernel:
            await self._close(session)  # nothing to keep: an anonymous run that made no files

    def by_token(self, token: str) -> Session | None:
        return self._by_token.get(token)

    def find(self, namespace: str, session_id: str) -> Session | None:
        return self._by_key.get((namespace, session_id))

    async def end(self, namespace: str, session_id: str) -> bool:
        session = self._by_key.get((namespace, session_id))
        if session is None:
            return False
        await self._close(session)
        return True

    async def _close(self, session: Session) -> None:
        self._by_token.pop(session.token, None)
        if session.key is not None and self._by_key.get(session.key) is session:
            del self._by_key[session.key]
        self._anonymous.discard(session)
        self.closed_count += 1
        try:
            await session.aclose()
        except Exception as exc:  # noqa: BLE001 - one broken kernel must not stop the cleanup of the others
            logger.warning("closing a session failed: %r", exc)

    async def sweep(self) -> int:
        """Close the sessions idle for longer than ``idle_s``; returns how many."""
        now = time.monotonic()
        stale = [s for s in list(self._by_token.values()) if s.active == 0 and now - s.last_used > self.idle_s]
        for session in stale:
            await self._close(session)
        return len(stale)

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(self.idle_s / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - keep sweeping
                logger.warning("session sweep failed: %r", exc)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self._by_token.values()):
            await self._close(session)
        if self._pool is not None:
            self._pool.close()
