"""`OpenAICompatible`: the model backend for any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp server,
Ollama, LM Studio, DashScope compatible mode, together.ai), over one pooled httpx client.

The base class does everything about tools (prompted rendering, lenient parsing of calls the server missed); this
module only talks HTTP: it builds the request, streams SSE through httpx-sse, merges tool-call deltas, retries
what is safe to retry and turns every failure into a typed `ModelError` that says what to check.

One ``httpx.AsyncClient`` is kept per instance *and event loop* and reused for every request, so consecutive agent
steps ride the same keep-alive connection (the official Qwen-Agent builds a new client per call, which dominates its
per-step overhead; ``benchmarks/bench_agent_overhead.py`` measures ours).
A client is bound to the loop that created it, so a new loop (``asyncio.run`` twice, or the sync wrappers'
background loop next to the caller's) gets its own client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
from httpx_sse import EventSource

from qwen_agent.llm.backends.openai_retry import (
    Backoff,
    is_retryable_status,
    is_retryable_transport,
    parse_retry_after,
    status_error,
    transport_error,
)
from qwen_agent.llm.backends.openai_server import (
    ServerInfo,
    ServerKind,
    apply_dialect,
    llamacpp_count_body,
    server_root,
    tokenize_body,
)
from qwen_agent.llm.backends.openai_wire import StreamAccumulator, build_body, loads_payload, parse_completion
from qwen_agent.llm.base import Capabilities, ChatModel
from qwen_agent.llm.errors import (
    ModelConnectionError,
    ModelError,
    ModelProtocolError,
    ModelRequestError,
    ModelServerError,
    ModelTimeoutError,
)
from qwen_agent.llm.types import FunctionCalling, RawChunk, SamplingParams
from qwen_agent.messages import Message, ToolSchema

__all__ = ["DEFAULT_TIMEOUT", "OpenAICompatible"]

logger = logging.getLogger(__name__)

#: Generation on CPU can take minutes; connecting to a local server should not.
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0, write=30.0, pool=30.0)


class OpenAICompatible(ChatModel):
    """A chat model served over the OpenAI chat-completions API.

    ``model=""`` asks the server: if ``GET /models`` lists exactly one model it is used, if the server has no
    such endpoint the field is left out (llama.cpp ignores it anyway). ``server`` says what kind of server it
    is (``"auto"``: read from ``GET /models``, see `qwen_agent.llm.backends.openai_server`); on vLLM the client counts
    prompts at ``/tokenize``, budgets against ``max_model_len``, prefills answers and sends grammars as
    ``structured_outputs``. ``grammar_key`` overrides the body field that carries a GBNF grammar.
    ``stream_usage=False`` drops ``stream_options`` for old servers that reject it.
    """

    supports_native_tools = True
    trace_provider = "openai"
    supports_grammar = True

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
        grammar_key: str | None = None,
        stream_usage: bool = True,
        max_input_tokens: int | None = None,
        server: Literal["auto"] | ServerKind = "auto",
    ) -> None:
        super().__init__(model=model, params=params, function_calling=function_calling,
                         max_input_tokens=max_input_tokens)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("QWEN_AGENT_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, httpx.Timeout):
            self.timeout = timeout
        else:
            self.timeout = httpx.Timeout(timeout)
        self.max_retries = max(0, max_retries)
        self.backoff = backoff or Backoff()
        self.headers = dict(headers or {})
        self.extra_body = dict(extra_body or {})
        self.grammar_key = grammar_key
        self.stream_usage = stream_usage
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._clients_lock = threading.Lock()
        self._model_resolved = bool(model)
        self.server = server
        self._info: ServerInfo | None = None

    @classmethod
    def from_env(cls, **kwargs: Any) -> OpenAICompatible:
        """Configure from ``QWEN_AGENT_BASE_URL``, ``QWEN_AGENT_MODEL`` and the key in ``QWEN_AGENT_API_KEY`` or
        ``OPENAI_API_KEY``."""
        base_url = kwargs.pop("base_url", None) or os.environ.get("QWEN_AGENT_BASE_URL")
        if not base_url:
            raise ModelError("QWEN_AGENT_BASE_URL is not set: export it, e.g. "
                             "QWEN_AGENT_BASE_URL=http://127.0.0.1:8000/v1, or pass base_url=.")
        model = kwargs.pop("model", None) or os.environ.get("QWEN_AGENT_MODEL", "")
        return cls(base_url, model, **kwargs)

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, model={self.model!r})"

    # ---- connection pool ----------------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """This loop's client, created on first use; clients of closed loops are dropped here."""
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None or client.is_closed:
                for old in [lp for lp in self._clients if lp.is_closed()]:
                    del self._clients[old]  # its sockets belonged to a dead loop; nothing left to await
                headers = {"Accept": "application/json", **self.headers}
                if self.api_key:
                    headers.setdefault("Authorization", f"Bearer {self.api_key}")
                client = httpx.AsyncClient(timeout=self.timeout, headers=headers)
                self._clients[loop] = client
            return client

    async def aclose(self) -> None:
        """Close every client: this loop's now, other running loops' on their own loop. Safe to call twice."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._clients_lock:
            clients = list(self._clients.items())
            self._clients.clear()
        for loop, client in clients:
            if loop is current:
                await client.aclose()
            elif loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)

    # ---- requests with retries ----------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def _open(self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool,
                    first_attempt: int = 0) -> tuple[httpx.Response, int]:
        """Send until a 2xx arrives or retrying is pointless; returns the response and the attempt number.

        With ``stream=True`` the 2xx response is returned unread and the caller must close it.
        """
        client = self._client()
        url = self._url(path)
        attempt = first_attempt
        while True:
            request = client.build_request(method, url, json=body)
            try:
                response = await client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if is_retryable_transport(exc) and attempt < self.max_retries:
                    await self._wait(attempt, None, f"{type(exc).__name__}: {exc}")
                    attempt += 1
                    continue
                raise transport_error(exc, url, self.timeout, attempts=attempt + 1) from exc
            if response.is_success:
                return response, attempt
            if stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if (is_retryable_status(status) and attempt < self.max_retries
                    and (retry_after is None or retry_after <= self.backoff.max_retry_after)):
                await self._wait(attempt, retry_after, f"HTTP {status}")
                attempt += 1
                continue
            raise await self._status_error(response, url, attempt + 1, retry_after)

    async def _wait(self, attempt: int, retry_after: float | None, why: str) -> None:
        delay = self.backoff.delay(attempt, retry_after)
        logger.info("%s: %s; retry %d/%d in %.2f s", self.base_url, why, attempt + 1, self.max_retries, delay)
        await asyncio.sleep(delay)

    async def _status_error(self, response: httpx.Response, url: str, attempts: int,
                            retry_after: float | None) -> ModelError:
        available = None
        if response.status_code == 404 and self.model:
            # Tell the user which names would have worked (asked again only if /models was not read before).
            models: list[str] | None = self._info.models if self._info is not None and self._info.models else None
            if models is None:
                try:
                    models = await self.list_models()
                except ModelError:
                    models = None
            if models is not None and self.model not in models:
                available = models
        return status_error(response.status_code, url, response.text, model=self.model, available=available,
                            retry_after=retry_after, attempts=attempts)

    async def list_models(self) -> list[str]:
        """The model ids the server offers (``GET /models``)."""
        response, _ = await self._open("GET", "models", None, stream=False)
        try:
            data = loads_payload(response.content)
            return [str(m["id"]) for m in data.get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelProtocolError(f"{self._url('models')} did not return an OpenAI model list: "
                                     f"{response.text[:200]!r}") from exc

    async def server_info(self) -> ServerInfo:
        """What the server says about itself (``GET /models``, asked once). A server that cannot be reached is
        not asked again until it can: the request that follows reports the failure, with its retries."""
        if self._info is not None:
            return self._info
        forced = None if self.server == "auto" else self.server
        try:
            response, _ = await self._open("GET", "models", None, stream=False, first_attempt=self.max_retries)
            payload: Any = loads_payload(response.content)
        except (ModelConnectionError, ModelTimeoutError, ModelServerError):
            return ServerInfo(kind=forced or "generic")
        except (ModelRequestError, ModelProtocolError, ValueError):
            payload = None  # no /models endpoint: a plain OpenAI-style server
        self._info = ServerInfo.from_models(payload, self.model, forced)
        logger.debug("%s: %s server, max_model_len=%s", self.base_url, self._info.kind, self._info.max_model_len)
        return self._info

    async def capabilities(self) -> Capabilities:
        """Native tools and grammars everywhere; answer prefill where the server continues a final assistant
        message (vLLM's ``continue_final_message``)."""
        kind = (await self.server_info()).kind
        return Capabilities(native_tools=True, grammar=True, prefill=kind == "vllm")

    async def _resolve_model(self) -> None:
        """Fill in ``model`` when the user left it empty and the server names exactly one."""
        if self._model_resolved:
            return
        models = (await self.server_info()).models
        if len(models) > 1:
            raise ModelRequestError(f"{self.base_url} serves several models ({', '.join(models)}); "
                                    "pass one of them as model=.")
        if models:
            self.model = models[0]
        self._model_resolved = True

    async def _context_window(self) -> int | None:
        return (await self.server_info()).max_model_len

    async def _count_prompt_tokens(self, messages: list[Message], tools: list[ToolSchema] | None) -> int | None:
        """vLLM: exact, at ``/tokenize``; llama-cpp-python's server: its tokenizer on the text plus a template
        margin; other servers: unknown (the context manager's byte bound applies)."""
        info = await self.server_info()
        root = server_root(self.base_url)
        if info.kind == "vllm":
            await self._resolve_model()
            url, body, extra = f"{root}/tokenize", tokenize_body(self.model, messages, tools), 0
        elif info.kind == "llamacpp":
            body, extra = llamacpp_count_body(messages, tools)
            url = f"{root}/extras/tokenize/count"
        else:
            return None
        try:
            response, _ = await self._open("POST", url, body, stream=False)
        except ModelRequestError:
            if info.kind == "vllm":
                raise
            return None  # a llama.cpp server without the extras endpoint (the C++ server)
        try:
            return int(loads_payload(response.content)["count"]) + extra
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelProtocolError(f"{url} answered without a token count: {response.text[:200]!r}") from exc

    async def _body(self, messages: list[Message], params: SamplingParams, *, stream: bool,
                    tools: list[ToolSchema] | None, grammar: str | None) -> dict[str, Any]:
        await self._resolve_model()
        kind = (await self.server_info()).kind
        body = build_body(self.model, messages, params, stream=stream, tools=tools, stream_usage=self.stream_usage)
        apply_dialect(body, kind, grammar, self.grammar_key)
        body.update(self.extra_body)  # the caller's own fields win over the dialect's: client's, then the request's
        body.update(params.extra_body)
        return body

    # ---- backend hooks ------------------------------------------------------------------------------------
    async def _complete_raw(self, messages: list[Message], params: SamplingParams, *,
                            tools: list[ToolSchema] | None = None, grammar: str | None = None) -> RawChunk:
        body = await self._body(messages, params, stream=False, tools=tools, grammar=grammar)
        url = self._url("chat/completions")
        response, _ = await self._open("POST", "chat/completions", body, stream=False)
        try:
            data = loads_payload(response.content)
        except ValueError as exc:
            raise ModelProtocolError(f"{url} answered HTTP {response.status_code} with a body that is not JSON "
                                     f"({exc}): {response.text[:200]!r}. Is base_url an OpenAI-compatible "
                                     "/v1 endpoint (and not a web page or a proxy's error page)?") from exc
        return parse_completion(data, url)

    async def _stream_raw(self, messages: list[Message], params: SamplingParams, *,
                          tools: list[ToolSchema] | None = None, grammar: str | None = None) -> AsyncIterator[RawChunk]:
        body = await self._body(messages, params, stream=True, tools=tools, grammar=grammar)
        url = self._url("chat/completions")
        attempt = 0
        while True:
            response, attempt = await self._open("POST", "chat/completions", body, stream=True,
                                                 first_attempt=attempt)
            acc = StreamAccumulator(url)
            yielded = False
            try:
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    # A server that ignored "stream": true and answered with one JSON body.
                    await response.aread()
                    try:
                        data = loads_payload(response.content)
                    except ValueError as exc:
                        raise ModelProtocolError(f"{url} answered a streaming request with {content_type!r} "
                                                 f"that is not JSON: {response.text[:200]!r}") from exc
                    yield parse_completion(data, url)
                    return
                async for event in EventSource(response).aiter_sse():
                    if event.event == "error":
                        raise ModelServerError(f"{url} sent an error event in the stream: {event.data[:500]}")
                    chunk = acc.feed(event.data)
                    if chunk is not None:
                        yielded = True
                        yield chunk
                    # No break at [DONE]: reading the body to its end returns the connection to the pool.
            except httpx.TransportError as exc:
                if not yielded and is_retryable_transport(exc) and attempt < self.max_retries:
                    await self._wait(attempt, None, f"stream failed before any text: {exc}")
                    attempt += 1
                    continue
                raise transport_error(exc, url, self.timeout, attempts=attempt + 1, streaming=True) from exc
            finally:
                await response.aclose()
            if not acc.complete:
                raise ModelProtocolError(f"{url} ended the stream without [DONE] or a finish_reason: the reply was "
                                         "cut in the middle. Check the server log (crash, OOM) or a proxy timeout.")
            yield acc.final()
            return
