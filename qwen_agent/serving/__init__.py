"""Local model servers started from project code: llama.cpp's server, and vLLM (CPU) from a private cached venv.

The servers are imported on first use (``from qwen_agent.serving import VLLMServer``).
"""

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__all__ = ["LlamaCppServer", "ServingError", "VLLMServer"]

_EXPORTS = {
    "LlamaCppServer": "qwen_agent.serving.llamacpp",
    "VLLMServer": "qwen_agent.serving.vllm",
    "ServingError": "qwen_agent.serving.errors",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from qwen_agent.serving.errors import ServingError
    from qwen_agent.serving.llamacpp import LlamaCppServer
    from qwen_agent.serving.vllm import VLLMServer
