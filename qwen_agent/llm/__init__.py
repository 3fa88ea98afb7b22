"""Chat models: the `ChatModel` interface, the values that cross it, model specs, and the backends (loaded on use).

Layout: the interface (``base``, ``types``, ``errors``, ``context``, ``spec``), ``backends/`` (the HTTP client for
OpenAI-compatible servers, the in-process llama.cpp and transformers models) and ``distribution/`` (the model
catalogue, the verified local store, the GGUF -> Hugging Face conversion).
"""

from __future__ import annotations

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__all__ = [
    "Capabilities",
    "ChatDelta",
    "ChatModel",
    "ChatResponse",
    "ContextLengthError",
    "FunctionCalling",
    "LlamaCpp",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelSpecError",
    "OpenAICompatible",
    "OpenAIReplicas",
    "SamplingParams",
    "ToolChoice",
    "Transformers",
    "TruncationReport",
    "Usage",
    "load_model",
]

_EXPORTS = {
    "Capabilities": "qwen_agent.llm.base",
    "ChatModel": "qwen_agent.llm.base",
    "ChatDelta": "qwen_agent.llm.types",
    "ChatResponse": "qwen_agent.llm.types",
    "FunctionCalling": "qwen_agent.llm.types",
    "SamplingParams": "qwen_agent.llm.types",
    "ToolChoice": "qwen_agent.llm.types",
    "Usage": "qwen_agent.llm.types",
    "TruncationReport": "qwen_agent.llm.context",
    "ContextLengthError": "qwen_agent.llm.errors",
    "ModelConnectionError": "qwen_agent.llm.errors",
    "ModelError": "qwen_agent.llm.errors",
    "ModelNotFoundError": "qwen_agent.llm.errors",
    "ModelSpec": "qwen_agent.llm.spec",
    "ModelSpecError": "qwen_agent.llm.spec",
    "load_model": "qwen_agent.llm.spec",
    "LlamaCpp": "qwen_agent.llm.backends.llamacpp",
    "OpenAICompatible": "qwen_agent.llm.backends.openai_compat",
    "OpenAIReplicas": "qwen_agent.llm.backends.replicas",
    "Transformers": "qwen_agent.llm.backends.transformers",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what type checkers and editors see; at run time the names above load on first use
    from qwen_agent.llm.backends.llamacpp import LlamaCpp
    from qwen_agent.llm.backends.openai_compat import OpenAICompatible
    from qwen_agent.llm.backends.replicas import OpenAIReplicas
    from qwen_agent.llm.backends.transformers import Transformers
    from qwen_agent.llm.base import Capabilities, ChatModel
    from qwen_agent.llm.context import TruncationReport
    from qwen_agent.llm.errors import ContextLengthError, ModelConnectionError, ModelError, ModelNotFoundError
    from qwen_agent.llm.spec import ModelSpec, ModelSpecError, load_model
    from qwen_agent.llm.types import ChatDelta, ChatResponse, FunctionCalling, SamplingParams, ToolChoice, Usage
