"""An in-process Hugging Face model (transformers + torch) as a chat backend, on the CPU or a user's GPU.

torch generation is blocking, so like `LlamaCpp` a `Transformers` is a `LocalModel`: the model loads on its one
worker thread on first use, requests run there in turn, and text deltas travel to the async caller through an asyncio
queue. With no model given it uses the default catalogue model converted once to a bf16 folder
(`hf_convert.ensure_hf_model`). Stop words, cancellation and streaming are handled here; tool calling is the shared
prompted logic of `ChatModel`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from qwen_agent.llm.backends.local import DEFAULT_MAX_TOKENS, LocalModel
from qwen_agent.llm.backends.worker import Emit
from qwen_agent.llm.distribution.catalogue import CATALOGUE
from qwen_agent.llm.errors import ContextLengthError, ModelError, ModelNotFoundError
from qwen_agent.llm.types import FunctionCalling, RawChunk, SamplingParams, Usage
from qwen_agent.messages import Message

__all__ = ["Transformers", "TransformersNotInstalledError"]

#: A tokenizer's model_max_length above this is transformers' "no limit" placeholder, not a real bound.
_SANE_MAX_LENGTH = 10_000_000


class TransformersNotInstalledError(ModelError):
    """torch or transformers is not installed: `pip install 'qwen-agent[transformers]'`."""


def _import_torch_transformers() -> tuple[Any, Any]:
    """torch and transformers, or a typed error naming the extra to install (they are optional dependencies)."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise TransformersNotInstalledError(
            f"the Transformers backend needs torch and transformers ({exc}); install them with "
            "`pip install 'qwen-agent[transformers]'`") from exc
    return torch, transformers


class Transformers(LocalModel[tuple[Any, Any]]):
    """A causal LM loaded with transformers. ``model``: a local Hugging Face folder, a catalogue name (converted from
    its GGUF once), a hub id (downloading it is up to the user's hub settings), or None for the default model.

    ``dtype=None`` picks float32 on the CPU and the folder's own dtype when ``device_map`` places the model on an
    accelerator: on a CPU, bfloat16 matmuls are slow for a model this small, and the 0.5B model decoded several times
    faster in float32 (``benchmarks/bench_backends.py``). float32 costs twice the memory.
    """

    engine = "transformers"
    trace_provider = "transformers"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        dtype: str | Any | None = None,
        device_map: str | dict[str, Any] | None = None,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
        max_input_tokens: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.model_spec: str | Path | None = model
        name = "" if model is None else os.fspath(model)
        label = name if (not name or name in CATALOGUE) else Path(name.rstrip("/")).name
        super().__init__(worker_name="transformers", model=label or "qwen2.5-coder-0.5b", params=params,
                         function_calling=function_calling, max_input_tokens=max_input_tokens)
        self.dtype = dtype
        self.device_map = device_map
        self.trust_remote_code = trust_remote_code
        #: How the latest request ended ("stop", "length", "cancelled") and what it cost, for checks and benchmarks.
        self.last_finish_reason: str | None = None
        self.last_usage: Usage | None = None

    # ---- loading ---------------------------------------------------------------------------------------------
    def _source(self) -> str:
        """The folder or hub id to load; missing local folders fail here with a message saying what to do."""
        from qwen_agent.llm.distribution.hf_convert import ensure_hf_model

        spec = self.model_spec
        if spec is None:
            return str(ensure_hf_model())
        text = os.fspath(spec)
        if text in CATALOGUE:
            return str(ensure_hf_model(text))
        path = Path(text).expanduser()
        if path.exists() or isinstance(spec, Path) or text.startswith((".", "/", "~")) or os.path.isabs(text):
            if path.suffix == ".gguf":
                raise ModelNotFoundError(f"{path} is a GGUF file: load it with the LlamaCpp backend, or convert a "
                                         "catalogue model once with `qwen-agent models convert NAME` and pass the "
                                         "folder it prints")
            if not path.is_dir():
                raise ModelNotFoundError(
                    f"no Hugging Face model folder at {path}; pass a folder with config.json and weights, a hub id "
                    f"such as 'Qwen/Qwen2.5-0.5B-Instruct', or a catalogue name ({', '.join(CATALOGUE)}), or None "
                    "for the default model (converted from its GGUF with `qwen-agent models convert`)")
            if not (path / "config.json").is_file():
                raise ModelNotFoundError(f"{path} is not a Hugging Face model folder (no config.json); convert a "
                                         "GGUF with `qwen-agent models convert` or point to a saved model")
            return str(path)
        return text  # a hub id

    def _load(self) -> tuple[tuple[Any, Any], str]:
        torch, transformers = _import_torch_transformers()
        source = self._source()
        dtype = self._torch_dtype(torch)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=self.trust_remote_code)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, device_map=self.device_map, trust_remote_code=self.trust_remote_code)
        except OSError as exc:
            raise ModelNotFoundError(f"transformers could not load {source!r}: {exc}. Check the folder or hub id "
                                     "(and, for a hub id, your network / HF_HUB_OFFLINE settings)") from exc
        except ValueError as exc:
            raise ModelError(f"transformers could not load {source!r} as a causal language model: {exc}") from exc
        model.eval()
        if not tokenizer.chat_template:
            raise ModelError(f"{source} has no chat template (tokenizer.chat_template); this backend needs a chat "
                             "model, e.g. an instruct model")
        return (model, tokenizer), f"{source}, dtype={model.dtype}, device={model.device}"

    def _torch_dtype(self, torch: Any) -> Any:
        dtype = self.dtype
        if dtype is None:
            return torch.float32 if self.device_map in (None, "cpu") else "auto"
        if isinstance(dtype, str) and dtype != "auto":
            value = getattr(torch, dtype, None)
            if not isinstance(value, torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}; use 'bfloat16', 'float16', 'float32' or 'auto'")
            return value
        return dtype

    def _count(self, handle: tuple[Any, Any], text: str) -> int:
        _, tokenizer = handle
        return len(tokenizer.encode(text, add_special_tokens=False))

    def _count_prompt(self, handle: tuple[Any, Any], messages: list[Message]) -> int:
        from qwen_agent.llm.backends.hf_generation import prompt_ids

        _, tokenizer = handle
        return len(prompt_ids(tokenizer, messages))

    async def _context_window(self) -> int | None:
        def window() -> int | None:
            model, tokenizer = self._ensure_loaded()
            return _window(model, tokenizer)

        return await self._worker.run(window)

    # ---- generation (worker thread) ----------------------------------------------------------------------------
    def _generate(self, handle: tuple[Any, Any], messages: list[Message], params: SamplingParams,
                  grammar: str | None, emit: Emit, cancel: threading.Event) -> None:
        torch, _ = _import_torch_transformers()
        from qwen_agent.llm.backends.hf_generation import StopCutter, build_generation, prompt_ids

        model, tokenizer = handle
        ids = prompt_ids(tokenizer, messages)
        window = _window(model, tokenizer)
        if window is not None and len(ids) >= window:
            raise ContextLengthError(f"the prompt has {len(ids)} tokens and the model's context is {window};"
                                     " shorten the conversation", status_code=None)
        cutter = StopCutter(params.stop)
        max_new = params.max_tokens or DEFAULT_MAX_TOKENS
        if window is not None:
            max_new = max(1, min(max_new, window - len(ids)))
        gen = build_generation(model, tokenizer, params, max_new, cancel, cutter,
                               lambda text: emit("chunk", RawChunk(text=text)), self._warn_ignored)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        input_ids = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **gen.kwargs)
        tail = cutter.flush()
        if tail:
            emit("chunk", RawChunk(text=tail))
        completion = int(out.shape[1]) - len(ids)
        finish = gen.finish_reason(out[0, len(ids):].tolist(), completion, max_new)
        usage = Usage(prompt_tokens=len(ids), completion_tokens=completion)
        self.last_finish_reason, self.last_usage = finish, usage
        emit("chunk", RawChunk(finish_reason=finish, usage=usage))


def _window(model: Any, tokenizer: Any) -> int | None:
    window = getattr(model.config, "max_position_embeddings", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _SANE_MAX_LENGTH:
        window = min(window, limit) if window else limit
    return window
