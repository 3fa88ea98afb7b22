"""Getting model files: the catalogue of embedded models, the verified local store, and the GGUF -> HF conversion.

Modules: ``catalogue`` (what can be pulled, pinned by hash), ``store`` (download, verify, locate), ``hf_convert`` (a
verified bf16 Hugging Face folder for vLLM and transformers). Names are imported on first use.
"""

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "ensure_hf_model", "list_models", "pull", "resolve"]

_EXPORTS = {
    "CATALOGUE": "qwen_agent.llm.distribution.catalogue",
    "DEFAULT_MODEL": "qwen_agent.llm.distribution.catalogue",
    "list_models": "qwen_agent.llm.distribution.store",
    "pull": "qwen_agent.llm.distribution.store",
    "resolve": "qwen_agent.llm.distribution.store",
    "ensure_hf_model": "qwen_agent.llm.distribution.hf_convert",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from qwen_agent.llm.distribution.catalogue import CATALOGUE, DEFAULT_MODEL
    from qwen_agent.llm.distribution.hf_convert import ensure_hf_model
    from qwen_agent.llm.distribution.store import list_models, pull, resolve
