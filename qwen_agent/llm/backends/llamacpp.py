"""The embedded backend: a GGUF chat model run in-process by llama.cpp (llama-cpp-python), no server, no GPU.

llama-cpp-python is synchronous and not thread-safe, so `LlamaCpp` is a `LocalModel`: the model loads on its one
worker thread on first use, every request runs there in turn (concurrent requests queue), and tokens travel to the
async caller through an asyncio queue. The `Llama` object lives as long as the backend, so its KV cache carries over
from one request to the next: an agent's follow-up step only evaluates the tokens added since the previous step.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from qwen_agent.llm.backends.llamacpp_runtime import (
    chat_prompt,
    checked_grammar,
    continuation_prompt,
    default_thread_counts,
    import_llama_cpp,
    load_llama,
    next_token_probability,
    perf_counters,
)
from qwen_agent.llm.backends.llamacpp_sampling import FULL_GRAMMAR_FLAG
from qwen_agent.llm.backends.llamacpp_sampling import install as install_checked_grammar
from qwen_agent.llm.backends.local import DEFAULT_MAX_TOKENS, LocalModel, template_message
from qwen_agent.llm.backends.worker import Emit
from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL
from qwen_agent.llm.distribution.store import resolve
from qwen_agent.llm.errors import ContextLengthError, ModelError, ModelRequestError
from qwen_agent.llm.types import FunctionCalling, RawChunk, SamplingParams, Usage
from qwen_agent.messages import Message

__all__ = ["MAX_CONTEXT", "LlamaCpp", "LlamaPerf"]

logger = logging.getLogger(__name__)

#: The Qwen2.5 models' trained context; larger windows only cost memory for nothing.
MAX_CONTEXT = 32768
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


class LlamaCpp(LocalModel[Any]):
    """A GGUF model run in-process. ``model_path``: a file path, a catalogue name, or None for the default model."""

    supports_grammar = True
    supports_token_probability = True
    trace_provider = "llama_cpp"
    engine = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_batch: int = 512,
        seed: int | None = None,
        chat_format: str | None = None,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        verbose: bool = False,
        extra_buffer_types: bool = False,
        max_input_tokens: int | None = None,
        grammar_sampling: Literal["checked", "full"] = "checked",
    ) -> None:
        """``chat_format=None`` uses the GGUF's own chat template. ``extra_buffer_types`` enables llama.cpp's
        weight-repacking buffers (AMX, CPU repack); off by default because the AMX path crashes the process on
        some virtual machines that advertise AMX, and the quantisations we ship gain little from it.
        ``n_threads`` (decoding) and ``n_threads_batch`` (prompt evaluation) default to every usable core
        (`default_thread_counts` says why). ``grammar_sampling``: ``"checked"`` asks a constraining grammar about
        the token the model chose and checks the whole vocabulary only when it is refused, as llama.cpp's own
        server does (`llamacpp_sampling`: same tokens, constrained steps 1.4-1.5x faster on a quiet machine and
        far more under load); ``"full"`` is
        llama-cpp-python's way, the grammar over every token at every step."""
        if not 0 < n_ctx <= MAX_CONTEXT:
            raise ValueError(f"n_ctx must be between 1 and {MAX_CONTEXT}, got {n_ctx}")
        spec = DEFAULT_MODEL if model_path is None else os.fspath(model_path)
        super().__init__(worker_name="llamacpp", model=spec if spec in CATALOGUE else Path(spec).stem, params=params,
                         function_calling=function_calling, max_input_tokens=max_input_tokens)
        self.model_spec = spec
        self.n_ctx = n_ctx
        decode_threads, prompt_threads = default_thread_counts()
        self.n_threads = n_threads or decode_threads
        self.n_threads_batch = n_threads_batch or prompt_threads
        self.n_batch = n_batch
        self.seed = seed
        self.chat_format = chat_format
        self.verbose = verbose
        self.extra_buffer_types = extra_buffer_types
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self.grammar_sampling = grammar_sampling

    # ---- loading and counting (worker thread) ------------------------------------------------------------------
    def _load(self) -> tuple[Any, str]:
        path = resolve(self.model_spec)
        llm = load_llama(
            path, extra_buffer_types=self.extra_buffer_types, n_ctx=self.n_ctx, n_threads=self.n_threads,
            n_threads_batch=self.n_threads_batch, n_batch=self.n_batch, chat_format=self.chat_format,
            verbose=self.verbose,
            **({"seed": self.seed} if self.seed is not None else {}),
        )
        install_checked_grammar(llm, import_llama_cpp())
        return llm, f"{path}, n_ctx={self.n_ctx}, {self.n_threads} decode / {self.n_threads_batch} prompt threads"

    def _release(self, handle: Any) -> None:
        handle.close()

    def _count(self, handle: Any, text: str) -> int:
        return len(handle.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _count_prompt(self, handle: Any, messages: list[Message]) -> int:
        return self._count(handle, chat_prompt(handle, [template_message(m) for m in messages]))

    async def _context_window(self) -> int | None:
        return self.n_ctx

    async def _token_probability(self, messages: list[Message], token: str) -> float:
        def job() -> float:
            handle = self._ensure_loaded()
            return next_token_probability(handle, chat_prompt(handle, [template_message(m) for m in messages]), token)

        return await self._worker.run(job)

    def perf(self) -> LlamaPerf:
        """llama.cpp's evaluation counters (the model must be loaded)."""
        if self._handle is None:
            raise ModelError("the model is not loaded yet; call load() or send a request first")
        data = perf_counters(self._handle)
        return LlamaPerf(load_seconds=self.load_seconds or 0.0, prompt_tokens_evaluated=data.n_p_eval,
                         prompt_eval_ms=data.t_p_eval_ms, generated_tokens_evaluated=data.n_eval,
                         generation_ms=data.t_eval_ms)

    # ---- generation (worker thread) ----------------------------------------------------------------------------
    def _generate(self, handle: Any, messages: list[Message], params: SamplingParams, grammar: str | None,
                  emit: Emit, cancel: threading.Event) -> None:
        request = [template_message(m) for m in messages]
        handle.__dict__[FULL_GRAMMAR_FLAG] = self.grammar_sampling == "full"
        try:
            kwargs = self._sampling_kwargs(handle, params, grammar)
            finish: str | None = None
            if request and request[-1]["role"] == "assistant":
                # A final assistant message is a prefix to continue (answer prefill), not a finished turn.
                stream = handle.create_completion(continuation_prompt(handle, request), stream=True, **kwargs)
            else:
                stream = handle.create_chat_completion(messages=request, stream=True, **kwargs)
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
        except ValueError as exc:
            if "context window" in str(exc):
                raise ContextLengthError(f"{exc}; shorten the conversation or raise n_ctx (up to {MAX_CONTEXT})",
                                         status_code=None) from exc
            raise ModelRequestError(f"llama.cpp rejected the request: {exc}") from exc
        stats = handle.stats
        usage = Usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                      cached_prompt_tokens=stats.cached_prompt_tokens)
        emit("chunk", RawChunk(finish_reason=finish or "stop", usage=usage))

    def _sampling_kwargs(self, llm: Any, params: SamplingParams, grammar: str | None) -> dict[str, Any]:
        # An agent step rarely needs more than DEFAULT_MAX_TOKENS; set max_tokens to change it.
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
            else:
                self._warn_ignored(key, ", ".join(sorted(_EXTRA_SAMPLING)))
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
