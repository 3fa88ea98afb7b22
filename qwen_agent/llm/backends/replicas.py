"""`OpenAIReplicas`: one chat model served by several OpenAI-compatible servers (replicas of the same model).

Spec form: ``openai:http://a:8000/v1,http://b:8000/v1#Qwen/Qwen2.5-7B-Instruct``; Python:
``OpenAIReplicas(["http://a:8000/v1", "http://b:8000/v1"], "Qwen/Qwen2.5-7B-Instruct")``.

Each replica is an `OpenAICompatible` client (its own connection pool); `routing.Router` decides which one serves a
request: the conversation's replica while it is healthy (so the server's prefix cache keeps working), else the one
with the fewest requests in flight. What this module adds is the failure handling:

- *Failover*: a request that fails on a replica before any text streamed back (refused, reset, timeout, HTTP 5xx,
  429, a stream cut before its first chunk) is sent to the next replica; the failed one is marked down. Nothing has
  reached the caller yet, so nothing is duplicated. A stream that breaks *after* text was yielded is not replayed
  (the caller has shown that text): it fails with the replica's error, and the replica is marked down.
- *Health*: a replica marked down rests ``cooldown`` seconds, then the next request probes it (``GET /models``,
  ``probe_timeout``) and routes new sessions to it again when it answers. When every replica is down, all are
  probed at once rather than failing for a whole cooldown. `check_health` probes every replica on demand.

Per-replica retries default to 0: another replica is a better retry than the same one again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import httpx

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.routing import ReplicaState, Router, session_key
from qwen_agent.llm.base import Capabilities, ChatModel
from qwen_agent.llm.errors import (
    ModelConnectionError,
    ModelError,
    ModelProtocolError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
)
from qwen_agent.llm.types import FunctionCalling, RawChunk, SamplingParams
from qwen_agent.messages import Message, ToolSchema

__all__ = ["OpenAIReplicas"]

logger = logging.getLogger(__name__)

#: Failures that say "this replica could not serve it", not "this request is wrong": another replica may.
_REPLICA_FAILURES = (ModelConnectionError, ModelTimeoutError, ModelServerError, ModelProtocolError)


class OpenAIReplicas(ChatModel):
    """A `ChatModel` spread over ``base_urls`` (at least one), all serving ``model``.

    ``client_options`` go to every replica's `OpenAICompatible` (``api_key``, ``timeout``, ``headers``,
    ``extra_body``, ``server`` ...). ``max_sessions`` bounds the session-affinity table.
    """

    supports_native_tools = True
    supports_grammar = True

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str = "",
        *,
        cooldown: float = 5.0,
        probe_timeout: float = 2.0,
        max_sessions: int = 100_000,
        retries_per_replica: int = 0,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        max_input_tokens: int | None = None,
        **client_options: Any,
    ) -> None:
        urls = [u.rstrip("/") for u in base_urls]
        if not urls:
            raise ModelError("OpenAIReplicas needs at least one base URL")
        super().__init__(model=model, params=params, function_calling=function_calling,
                         max_input_tokens=max_input_tokens)
        self.clients = [OpenAICompatible(url, model, max_retries=retries_per_replica, **client_options)
                        for url in urls]
        self.router = Router(urls, max_sessions=max_sessions, cooldown=cooldown)
        self.probe_timeout = probe_timeout

    def __repr__(self) -> str:
        return f"OpenAIReplicas(base_urls={[c.base_url for c in self.clients]!r}, model={self.model!r})"

    @property
    def base_urls(self) -> list[str]:
        return [c.base_url for c in self.clients]

    def stats(self) -> list[ReplicaState]:
        """A snapshot of each replica's state: in flight, healthy, failures, requests served, sessions held."""
        return [replace(r) for r in self.router.replicas]

    # ---- health -----------------------------------------------------------------------------------------------
    async def _probe(self, index: int) -> bool:
        client = self.clients[index]
        try:
            response = await client._client().get(client._url("models"), timeout=self.probe_timeout)
        except httpx.HTTPError as exc:
            logger.info("replica %s still down: %s", client.base_url, exc)
            return False
        if response.status_code >= 500:
            return False
        self.router.mark_up(index)
        logger.info("replica %s is back", client.base_url)
        return True

    async def _probe_all(self, indices: Sequence[int]) -> None:
        if indices:
            await asyncio.gather(*(self._probe(i) for i in indices))

    async def check_health(self) -> list[bool]:
        """Probe every replica now; healthy ones serve new sessions, the others are marked down."""
        results = await asyncio.gather(*(self._probe(i) for i in range(len(self.clients))))
        for index, ok in enumerate(results):
            if not ok:
                self.router.mark_down(index)
        return list(results)

    async def _acquire(self, key: str, tried: set[int]) -> int | None:
        """A replica for this attempt (counted in flight), probing rested and, as a last resort, all down ones."""
        await self._probe_all(self.router.due_for_probe())
        index = self.router.pick(key, frozenset(tried))
        if index is None:
            down = [i for i, r in enumerate(self.router.replicas) if not r.healthy and i not in tried]
            await self._probe_all(down)
            index = self.router.pick(key, frozenset(tried))
        return index

    def _peek(self, messages: list[Message] | None) -> list[OpenAICompatible]:
        """Clients to ask a side question (token count, context window), the session's replica first."""
        order = [i for i, r in enumerate(self.router.replicas) if r.healthy] or list(range(len(self.clients)))
        if messages is not None:
            sticky = self.router.replica_of(session_key(messages))
            if sticky in order:
                order.remove(sticky)
                order.insert(0, sticky)
        return [self.clients[i] for i in order]

    # ---- side questions ---------------------------------------------------------------------------------------
    async def capabilities(self) -> Capabilities:
        return await self._peek(None)[0].capabilities()

    async def _context_window(self) -> int | None:
        return (await self._peek(None)[0].server_info()).max_model_len

    async def _count_prompt_tokens(self, messages: list[Message], tools: list[ToolSchema] | None) -> int | None:
        for client in self._peek(messages):
            try:
                return await client._count_prompt_tokens(messages, tools)
            except _REPLICA_FAILURES as exc:
                logger.info("token count on %s failed (%s); asking another replica", client.base_url, exc)
                self.router.mark_down(self.clients.index(client))
        return None

    # ---- requests ---------------------------------------------------------------------------------------------
    def _sync_model(self, client: OpenAICompatible) -> None:
        """Keep the served name the same on every replica: the user's, or the first one a server named."""
        if self.model and client.model != self.model:
            client.model = self.model
            client._model_resolved = True

    async def _stream_raw(self, messages: list[Message], params: SamplingParams, *,
                          tools: list[ToolSchema] | None = None, grammar: str | None = None) -> AsyncIterator[RawChunk]:
        key = session_key(messages)
        tried: set[int] = set()
        last_error: ModelError | None = None
        while True:
            index = await self._acquire(key, tried)
            if index is None:
                if last_error is not None:
                    raise last_error
                raise ModelConnectionError(f"all {len(self.clients)} replicas are down ({', '.join(self.base_urls)})"
                                           "; check that the servers run")
            tried.add(index)
            client = self.clients[index]
            self._sync_model(client)
            yielded, ok = False, True
            try:
                async for chunk in client._stream_raw(messages, params, tools=tools, grammar=grammar):
                    yielded = True
                    yield chunk
                if not self.model and client.model:
                    self.model = client.model
                return
            except ModelRateLimitError as exc:
                if yielded:
                    raise
                last_error = exc  # busy, not broken: try another replica, keep this one in rotation
                logger.info("replica %s is rate limited; trying another", client.base_url)
            except _REPLICA_FAILURES as exc:
                ok = False
                if yielded:
                    logger.warning("replica %s failed mid-stream (not replayed): %s", client.base_url, exc)
                    raise
                last_error = exc
                logger.warning("replica %s failed before streaming (%s); failing over", client.base_url, exc)
            finally:
                self.router.release(index, ok=ok)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))
