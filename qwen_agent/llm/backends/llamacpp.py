"""The embedded backend: a GGUF chat model run in-process by llama.cpp (llama-cpp-python), no server, no GPU.

llama-cpp-python is synchronous and not thread-safe, so each `LlamaCpp` owns one worker thread: the model is loaded
there on first use, every request runs there in turn (concurrent requests queue), and tokens travel to the async
caller through an asyncio queue. The `Llama` object lives as long as the backend, so its KV cache carries over from
one request to the next: an agent's follow-up step only evaluates the tokens added since the previous step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qwen_agent.llm.base import ChatModel, FunctionCalling, RawChunk, SamplingParams, Usage
from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL
from qwen_agent.llm.errors import ContextLengthError, ModelError, ModelRequestError
from qwen_agent.llm.backends.llamacpp_runtime import (
    chat_prompt,
    checked_grammar,
    continuation_prompt,
    load_llama,
    perf_counters,
)
from qwen_agent.llm.distribution.store import resolve
from qwen_agent.llm.backends.worker import Emit, ModelWorker
from qwen_agent.messages import Message, TextPart, ToolSchema

__all__ = ["MAX_CONTEXT", "LlamaCpp", "LlamaPerf", "template_message"]

log = logging.getLogger(__name__)

#: The Qwen2.5 models' trained context; larger windows only cost memory for nothing.
MAX_CONTEXT = 32768
#: Tokens generated per request when SamplingParams.max_tokens is not set.
DEFAULT_MAX_TOKENS = 1024
#: Sampling options llama.cpp understands that have no field in `SamplingParams`; taken from ``extra_body``.
_EXTRA_SAMPLING = frozenset({"min_p", "typical_p", "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta",
                             "logit_bias"})
_GRAMMAR_CACHE_SIZE = 32


class LlamaPerf(BaseModel):
    """llama.cpp's own counters for the loaded model (cumulative since load), for benchmarks and checks."""

    load_seconds: float
    prompt_tokens_evaluated: int
    prompt_eval_ms: float
    generated_tokens_evaluated: int
    generation_ms: float

    @property
    def prompt_tokens_per_second(self) -> float:
        return 1000 * self.prompt_tokens_evaluated / self.prompt_eval_ms if self.prompt_eval_ms else 0.0

    @property
    def generation_tokens_per_second(self) -> float:
        return 1000 * self.generated_tokens_evaluated / self.generation_ms if self.generation_ms else 0.0


class LlamaCpp(ChatModel):
    """A GGUF model run in-process. ``model_path``: a file path, a catalogue name, or None for the default model."""

    supports_grammar = True
    supports_prefill = True

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int | None = None,
        chat_format: str | None = None,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        verbose: bool = False,
        extra_buffer_types: bool = False,
        max_input_tokens: int | None = None,
    ) -> None:
        """``chat_format=None`` uses the GGUF's own chat template. ``extra_buffer_types`` enables llama.cpp's
        weight-repacking buffers (AMX, CPU repack); off by default because the AMX path crashes the process on
        some virtual machines that advertise AMX, and the quantisations we ship gain little from it."""
        if not 0 < n_ctx <= MAX_CONTEXT:
            raise ValueError(f"n_ctx must be between 1 and {MAX_CONTEXT}, got {n_ctx}")
        spec = DEFAULT_MODEL if model_path is None else os.fspath(model_path)
        super().__init__(model=spec if spec in CATALOGUE else Path(spec).stem, params=params,
                         function_calling=function_calling, max_input_tokens=max_input_tokens)
        self.model_spec = spec
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_batch = n_batch
        self.seed = seed
        self.chat_format = chat_format
        self.verbose = verbose
        self.extra_buffer_types = extra_buffer_types
        self.load_seconds: float | None = None
        self._llm: Any = None
        self._worker = ModelWorker("llamacpp")
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._warned_extra: set[str] = set()

    # ---- loading ---------------------------------------------------------------------------------------------
    def _ensure_loaded(self) -> Any:
        """Load the model if needed (on the worker thread, under its lock)."""
        if self._llm is not None:
            return self._llm
        path = resolve(self.model_spec)
        start = time.perf_counter()
        self._llm = load_llama(
            path, extra_buffer_types=self.extra_buffer_types, n_ctx=self.n_ctx, n_threads=self.n_threads,
            n_threads_batch=self.n_threads, n_batch=self.n_batch, chat_format=self.chat_format, verbose=self.verbose,
            **({"seed": self.seed} if self.seed is not None else {}),
        )
        self.load_seconds = time.perf_counter() - start
        log.info("loaded %s in %.2fs (n_ctx=%d, %d threads)", path, self.load_seconds, self.n_ctx, self.n_threads)
        return self._llm

    def load(self) -> None:
        """Load the model now instead of on first use (blocking)."""
        self._worker.call(self._ensure_loaded)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes for this model (special tokens such as ``<|im_start|>`` count as one)."""
        llm = self._llm if self._llm is not None else self._worker.call(self._ensure_loaded)
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    async def _count_prompt_tokens(self, messages: list[Message], tools: list[ToolSchema] | None) -> int | None:
        request = [template_message(m) for m in messages]

        def count() -> int:
            llm = self._ensure_loaded()
            prompt = chat_prompt(llm, request)
            return len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

        return await self._worker.run(count)

    async def _context_window(self) -> int | None:
        return self.n_ctx

    def perf(self) -> LlamaPerf:
        """llama.cpp's evaluation counters (the model must be loaded)."""
        if self._llm is None:
            raise ModelError("the model is not loaded yet; call load() or send a request first")
        data = perf_counters(self._llm)
        return LlamaPerf(load_seconds=self.load_seconds or 0.0, prompt_tokens_evaluated=data.n_p_eval,
                         prompt_eval_ms=data.t_p_eval_ms, generated_tokens_evaluated=data.n_eval,
                         generation_ms=data.t_eval_ms)

    async def aclose(self) -> None:
        """Stop running requests and free the model's memory. Safe to call twice; a later request reloads it."""
        def unload() -> None:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

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
        if tools:
            raise ModelRequestError("LlamaCpp renders tools in the prompt; use FunctionCalling(mode='prompted')")
        request = [template_message(m) for m in messages]
        async for chunk in self._worker.stream(
                lambda emit, cancel: self._generate(request, params, grammar, emit, cancel)):
            yield chunk

    def _generate(self, request: list[dict[str, Any]], params: SamplingParams, grammar: str | None,
                  emit: Emit, cancel: threading.Event) -> None:
        """Worker-thread side of one request (under the worker's lock): every outcome goes through ``emit``."""
        try:
            llm = self._ensure_loaded()
            kwargs = self._sampling_kwargs(llm, params, grammar)
            finish: str | None = None
            if request and request[-1]["role"] == "assistant":
                # A final assistant message is a prefix to continue (answer prefill), not a finished turn.
                stream = llm.create_completion(continuation_prompt(llm, request), stream=True, **kwargs)
            else:
                stream = llm.create_chat_completion(messages=request, stream=True, **kwargs)
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    text = choice.get("text") or choice.get("delta", {}).get("content") or ""
                    if text:
                        emit("chunk", RawChunk(text=text))
                    finish = choice.get("finish_reason") or finish
                    if cancel.is_set():
                        finish = "cancelled"
                        break
            finally:
                stream.close()
            stats = llm.stats
            usage = Usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                          cached_prompt_tokens=stats.cached_prompt_tokens)
            emit("chunk", RawChunk(finish_reason=finish or "stop", usage=usage))
        except ModelError as exc:
            emit("error", exc)
        except ValueError as exc:
            if "context window" in str(exc):
                emit("error", ContextLengthError(f"{exc}; shorten the conversation or raise n_ctx (up to "
                                                 f"{MAX_CONTEXT})", status_code=None))
            else:
                emit("error", ModelRequestError(f"llama.cpp rejected the request: {exc}"))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the caller, not die in the thread
            emit("error", ModelError(f"llama.cpp failed during generation: {exc!r}"))

    def _sampling_kwargs(self, llm: Any, params: SamplingParams, grammar: str | None) -> dict[str, Any]:
        # llama.cpp's own default is "until the context is full": a small model stuck repeating itself would then
        # generate for minutes. An agent step rarely needs more than this; set max_tokens to change it.
        kwargs: dict[str, Any] = {"stop": list(params.stop) or None, "max_tokens": DEFAULT_MAX_TOKENS}
        for name in ("temperature", "top_p", "top_k", "max_tokens", "repeat_penalty", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        seed = params.seed if params.seed is not None else self.seed
        if seed is not None:
            kwargs["seed"] = seed
        for key, value in params.extra_body.items():
            if key in _EXTRA_SAMPLING:
                kwargs[key] = value
            elif key not in self._warned_extra:
                self._warned_extra.add(key)
                log.warning("LlamaCpp ignores extra_body[%r] (understood: %s)", key, ", ".join(sorted(_EXTRA_SAMPLING)))
        if grammar:
            kwargs["grammar"] = self._compiled_grammar(llm, grammar)
        return kwargs

    def _compiled_grammar(self, llm: Any, text: str) -> Any:
        """A checked `LlamaGrammar`, cached by its text (agents send the same tool grammar every step)."""
        cached = self._grammars.get(text)
        if cached is not None:
            self._grammars.move_to_end(text)
            return cached
        grammar = checked_grammar(llm, text)
        self._grammars[text] = grammar
        if len(self._grammars) > _GRAMMAR_CACHE_SIZE:
            self._grammars.popitem(last=False)
        return grammar


def template_message(message: Message) -> dict[str, Any]:
    """An OpenAI-style dict the GGUF chat template can render: string content, dict tool-call arguments."""
    d = message.to_openai()
    d.pop("reasoning_content", None)
    if isinstance(message.content, list):
        dropped = [p.type for p in message.content if not isinstance(p, TextPart)]
        if dropped:
            log.warning("LlamaCpp: dropping %s part(s) of a %s message: this text-only model cannot read them",
                        ", ".join(dropped), message.role)
    d["content"] = message.text
    if message.tool_calls:
        # Chat templates serialise the arguments with `tojson`; a JSON string would be encoded twice.
        d["tool_calls"] = [{"id": tc.id, "type": "function",
                            "function": {"name": tc.name, "arguments": tc.arguments}} for tc in message.tool_calls]
    return d
