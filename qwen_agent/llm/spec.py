"""Choose a backend from one string: ``llamacpp:``, ``openai:`` and ``transformers:`` model specs.

One spelling for the CLI (``--model``), the examples and the Python API, so a script written against the embedded
model runs against a vLLM server by changing one string::

    llamacpp:                                   the default embedded model (pulled with `qwen-agent models pull`)
    llamacpp:qwen2.5-coder-1.5b                 a catalogue model
    llamacpp:/models/qwen2.5-7b-instruct.gguf   any GGUF file
    openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct
                                                an OpenAI-compatible server (vLLM, SGLang, llama.cpp, ...); the part
                                                after ``#`` is the served model name, optional when it serves one
    openai:http://a:8000/v1,http://b:8000/v1#Qwen/Qwen2.5-7B-Instruct
                                                replicas of one model: sessions spread over them, sticky per
                                                conversation, with failover (`OpenAIReplicas`)
    transformers:                               in-process Hugging Face model: the default model converted from GGUF
    transformers:/path/to/hf-folder             or a folder / hub name (``Qwen/Qwen2.5-0.5B-Instruct``)

Without a prefix, a catalogue name or a ``.gguf`` path means llama.cpp and an ``http(s)://`` URL means a server.
The environment variable ``QWEN_AGENT_MODEL_SPEC`` supplies the spec where none is given.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qwen_agent.errors import QwenAgentError
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.distribution.catalogue import CATALOGUE
from qwen_agent.llm.types import FunctionCalling, SamplingParams

__all__ = ["ENV_VAR", "ModelSpec", "ModelSpecError", "load_model"]

ENV_VAR = "QWEN_AGENT_MODEL_SPEC"
Backend = Literal["llamacpp", "openai", "transformers"]
_FORMS = ("llamacpp:[catalogue name or .gguf path], openai:http://host:port/v1[#served-model-name], "
          "transformers:[folder or hub name]")


class ModelSpecError(QwenAgentError, ValueError):
    """A model spec that names no known backend or lacks what its backend needs."""


class ModelSpec(BaseModel):
    """A parsed model spec. ``target``: GGUF path/catalogue name, server base URL, or HF folder/name
    (empty: the backend's default model). ``served_name``: the model name on an OpenAI-compatible server."""

    model_config = ConfigDict(frozen=True)

    backend: Backend
    target: str = ""
    served_name: str = ""

    @classmethod
    def parse(cls, spec: str | None = None) -> ModelSpec:
        """Parse ``spec`` (None: ``$QWEN_AGENT_MODEL_SPEC``, else the default embedded model)."""
        text = (spec if spec is not None else os.environ.get(ENV_VAR, "")).strip()
        if not text:
            return cls(backend="llamacpp")
        prefix, sep, rest = text.partition(":")
        if sep and prefix in ("llamacpp", "transformers"):
            return cls(backend=prefix, target=rest.strip())  # type: ignore[arg-type]
        if sep and prefix == "openai":
            return cls._server(rest.strip(), text)
        if text.startswith(("http://", "https://")):
            return cls._server(text, text)
        if text in CATALOGUE or text.endswith(".gguf"):
            return cls(backend="llamacpp", target=text)
        if sep and not os.path.exists(text):
            raise ModelSpecError(f"unknown backend {prefix!r} in model spec {text!r}; use one of: {_FORMS}")
        raise ModelSpecError(f"cannot tell which backend {text!r} is for; write it as one of: {_FORMS} "
                             f"(catalogue models: {', '.join(CATALOGUE)})")

    @classmethod
    def _server(cls, rest: str, text: str) -> ModelSpec:
        urls, _, name = rest.partition("#")
        parts = [u.strip().rstrip("/") for u in urls.split(",")]
        if not all(u.startswith(("http://", "https://")) for u in parts):
            raise ModelSpecError(f"model spec {text!r}: an openai: spec needs the server's base URL (or several, "
                                 "comma-separated, for replicas), e.g. "
                                 "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct")
        return cls(backend="openai", target=",".join(parts), served_name=name.strip())

    @property
    def urls(self) -> list[str]:
        """The server base URLs of an ``openai`` spec: one, or several replicas of the same model."""
        return [u for u in self.target.split(",") if u] if self.backend == "openai" else []

    def __str__(self) -> str:
        if self.backend == "openai":
            return f"openai:{self.target}" + (f"#{self.served_name}" if self.served_name else "")
        return f"{self.backend}:{self.target}"


def load_model(
    spec: str | ModelSpec | None = None,
    *,
    params: SamplingParams | None = None,
    function_calling: FunctionCalling | None = None,
    max_input_tokens: int | None = None,
    **backend_options: Any,
) -> ChatModel:
    """Build the `ChatModel` a spec names. ``backend_options`` go to that backend's constructor (``n_ctx`` for
    llama.cpp, ``api_key``/``timeout`` for servers, ``dtype``/``device_map`` for transformers).

    Nothing is loaded or contacted here: models load on first use, and a server that is down or does not serve
    the named model fails the first request with `ModelConnectionError` / `ModelNotFoundError` (which lists the
    models the server offers).
    """
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    common: dict[str, Any] = {"params": params, "function_calling": function_calling,
                              "max_input_tokens": max_input_tokens, **backend_options}
    if parsed.backend == "llamacpp":
        from qwen_agent.llm.backends.llamacpp import LlamaCpp

        return LlamaCpp(parsed.target or None, **common)
    if parsed.backend == "openai" and len(parsed.urls) > 1:
        from qwen_agent.llm.backends.replicas import OpenAIReplicas

        return OpenAIReplicas(parsed.urls, parsed.served_name, **common)
    if parsed.backend == "openai":
        from qwen_agent.llm.backends.openai_compat import OpenAICompatible

        return OpenAICompatible(parsed.target, parsed.served_name, **common)
    from qwen_agent.llm.backends.transformers import Transformers

    return Transformers(parsed.target or None, **common)
