"""The base of the in-process backends (llama.cpp, transformers): one worker thread, loading, counting, prefill.

A model run in this process is blocking and not thread-safe, so a `LocalModel` owns one `ModelWorker`: the model is
loaded there on first use (`_ensure_loaded`), and every job that touches it — a request, a token count, unloading —
runs there in turn, under the worker's lock. A subclass supplies `_load`, `_count`, `_count_prompt` and
`_generate`; the rest (the locking, the load timing, the warn-once for ignored options, the answer-prefill cut, the
message shape chat templates read) lives here once.
"""

from __future__ import annotations

import abc
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from qwen_agent.llm.backends.worker import Emit, ModelWorker
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.errors import ModelError, ModelRequestError
from qwen_agent.llm.types import FunctionCalling, RawChunk, SamplingParams
from qwen_agent.messages import Message, TextPart, ToolSchema

__all__ = ["DEFAULT_MAX_TOKENS", "LocalModel", "continuation_text", "template_message"]

logger = logging.getLogger(__name__)

H = TypeVar("H")

#: Tokens generated per request when SamplingParams.max_tokens is not set. The engines' own default is "until the
#: context is full": a small model stuck repeating itself would then generate for minutes.
DEFAULT_MAX_TOKENS = 1024
#: Marks where the final assistant message ends, to cut the rendered prompt there (see `continuation_text`).
_SENTINEL = "\ue000qwen-agent-continue\ue000"


class LocalModel(ChatModel, Generic[H]):
    """A model loaded into this process. ``H`` is what `_load` returns and every job receives (the model handle)."""

    supports_prefill = True
    #: The engine's name in error messages ("llama.cpp", "transformers").
    engine = ""

    def __init__(self, *, worker_name: str, model: str, params: SamplingParams | None,
                 function_calling: FunctionCalling | None, max_input_tokens: int | None) -> None:
        super().__init__(model=model, params=params, function_calling=function_calling,
                         max_input_tokens=max_input_tokens)
        #: Seconds the last load took (None until the model is loaded).
        self.load_seconds: float | None = None
        self._handle: H | None = None
        self._worker = ModelWorker(worker_name)
        self._warned_extra: set[str] = set()

    # ---- what a backend implements (all run on the worker thread, under its lock) --------------------------------
    @abc.abstractmethod
    def _load(self) -> tuple[H, str]:
        """Load the model; return its handle and a short description for the log (path, settings)."""

    def _release(self, handle: H) -> None:
        """Free what `_load` returned."""

    @abc.abstractmethod
    def _count(self, handle: H, text: str) -> int:
        """Tokens ``text`` takes (special tokens such as ``<|im_start|>`` count as one)."""

    @abc.abstractmethod
    def _count_prompt(self, handle: H, messages: list[Message]) -> int:
        """Tokens of the exact prompt a request for ``messages`` sends."""

    @abc.abstractmethod
    def _generate(self, handle: H, messages: list[Message], params: SamplingParams, grammar: str | None,
                  emit: Emit, cancel: threading.Event) -> None:
        """One request: stream ``RawChunk``s through ``emit("chunk", ...)``, the last with finish reason and usage;
        stop at the next token once ``cancel`` is set. A raised `ModelError` reaches the caller as it is."""

    # ---- loading and counting ------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """Whether the model is in memory now (it loads on first use, and again after `aclose`)."""
        return self._handle is not None

    def _ensure_loaded(self) -> H:
        """The model handle, loaded first if needed (on the worker thread, under its lock)."""
        if self._handle is None:
            start = time.perf_counter()
            handle, description = self._load()
            self.load_seconds = time.perf_counter() - start
            self._handle = handle
            logger.info("loaded %s in %.2fs (%s)", self.model, self.load_seconds, description)
        return self._handle

    def load(self) -> None:
        """Load the model now instead of on first use (blocking)."""
        self._worker.call(self._ensure_loaded)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes for this model (special tokens such as ``<|im_start|>`` count as one). Blocking;
        waits for a running request, like every job on the model."""
        return self._worker.call(lambda: self._count(self._ensure_loaded(), text))

    async def _count_prompt_tokens(self, messages: list[Message], tools: list[ToolSchema] | None) -> int | None:
        return await self._worker.run(lambda: self._count_prompt(self._ensure_loaded(), messages))

    async def aclose(self) -> None:
        """Stop running requests and free the model's memory. Safe to call twice; a later request reloads it."""
        def unload() -> None:
            handle, self._handle = self._handle, None
            if handle is not None:
                self._release(handle)
                del handle
                gc.collect()  # model objects hold reference cycles: give their memory back now

        await self._worker.shutdown(unload)

    # ---- generation ------------------------------------------------------------------------------------------
    async def _stream_raw(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[ToolSchema] | None = None,
        grammar: str | None = None,
    ) -> AsyncIterator[RawChunk]:
        name = type(self).__name__
        if tools:
            raise ModelRequestError(f"{name} renders tools in the prompt; use FunctionCalling(mode='prompted')")
        if grammar and not self.supports_grammar:
            raise ModelRequestError(f"{name} cannot constrain decoding with a grammar; use the LlamaCpp backend")
        async for chunk in self._worker.stream(lambda emit, cancel: self._job(messages, params, grammar, emit, cancel)):
            yield chunk

    def _job(self, messages: list[Message], params: SamplingParams, grammar: str | None, emit: Emit,
             cancel: threading.Event) -> None:
        """Worker-thread side of one request: every outcome goes through ``emit``."""
        try:
            self._generate(self._ensure_loaded(), messages, params, grammar, emit, cancel)
        except ModelError as exc:
            emit("error", exc)
        except Exception as exc:  # noqa: BLE001 - any failure must reach the caller, not die in the thread
            emit("error", ModelError(f"{self.engine} failed during generation: {exc!r}"))

    def _warn_ignored(self, key: str, understood: str) -> None:
        """Log once per backend instance that ``extra_body[key]`` (or a sampling field) has no effect here."""
        if key not in self._warned_extra:
            self._warned_extra.add(key)
            logger.warning("%s ignores extra_body[%r] (understood: %s)", type(self).__name__, key, understood)


def continuation_text(render: Callable[[list[dict[str, Any]]], str], request: list[dict[str, Any]]) -> str:
    """The prompt text that ends *inside* the final assistant message of ``request`` (answer prefill).

    ``render`` applies the chat template without a generation prompt. Engines' own "continue" options strip the final
    message's whitespace or open a new turn, and our answer prefixes end with a space ("Based on the tool results, "):
    rendering with a sentinel appended and cutting at it keeps the prefix byte-exact, and rendering with the model's
    own template keeps the KV-cache prefix valid.
    """
    last = dict(request[-1])
    last["content"] = (last.get("content") or "") + _SENTINEL
    text = render([*request[:-1], last])
    cut = text.find(_SENTINEL)
    if cut < 0:
        raise ModelRequestError("the chat template dropped the final assistant message; it cannot be continued")
    return text[:cut]


def template_message(message: Message) -> dict[str, Any]:
    """An OpenAI-style dict a model's own chat template can render: string content, dict tool-call arguments."""
    d = message.to_openai()
    d.pop("reasoning_content", None)
    if isinstance(message.content, list):
        dropped = [p.type for p in message.content if not isinstance(p, TextPart)]
        if dropped:
            logger.warning("dropping %s part(s) of a %s message: this text-only model cannot read them",
                           ", ".join(dropped), message.role)
    d["content"] = message.text
    if message.tool_calls:
        # Chat templates serialise the arguments with `tojson`; a JSON string would be encoded twice.
        d["tool_calls"] = [{"id": tc.id, "type": "function",
                            "function": {"name": tc.name, "arguments": tc.arguments}} for tc in message.tool_calls]
    return d
