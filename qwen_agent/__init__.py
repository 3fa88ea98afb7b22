"""qwen-agent: agents, typed tools and function calling for Qwen chat models. The names below are the public API.

Each name is imported on first use, so ``import qwen_agent`` is instant and ``from qwen_agent import Agent`` costs
what the agent loop needs, not the model backends, the sandbox or the retrieval stack. Every name is also importable
from the sub-package that defines it (``qwen_agent.agents``, ``qwen_agent.tools``, ``qwen_agent.llm`` ...).
"""

from __future__ import annotations

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Assistant",
    "ChatModel",
    "CodeInterpreter",
    "FunctionCalling",
    "KnowledgeBase",
    "Message",
    "ModelError",
    "QwenAgentError",
    "ReActAgent",
    "RetrievalError",
    "SamplingParams",
    "Tool",
    "ToolError",
    "__version__",
    "load_model",
    "tool",
]

_EXPORTS = {
    "Agent": "qwen_agent.agents",
    "Assistant": "qwen_agent.agents",
    "ReActAgent": "qwen_agent.agents",
    "Tool": "qwen_agent.tools",
    "tool": "qwen_agent.tools",
    "ToolError": "qwen_agent.tools",
    "CodeInterpreter": "qwen_agent.tools.code_interpreter",
    "ChatModel": "qwen_agent.llm",
    "FunctionCalling": "qwen_agent.llm",
    "SamplingParams": "qwen_agent.llm",
    "load_model": "qwen_agent.llm",
    "ModelError": "qwen_agent.llm",
    "Message": "qwen_agent.messages",
    "KnowledgeBase": "qwen_agent.retrieval",
    "RetrievalError": "qwen_agent.retrieval",
    "QwenAgentError": "qwen_agent.errors",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what type checkers and editors see; at run time the names above load on first use
    from qwen_agent.agents import Agent, Assistant, ReActAgent
    from qwen_agent.errors import QwenAgentError
    from qwen_agent.llm import ChatModel, FunctionCalling, ModelError, SamplingParams, load_model
    from qwen_agent.messages import Message
    from qwen_agent.retrieval import KnowledgeBase, RetrievalError
    from qwen_agent.tools import Tool, ToolError, tool
    from qwen_agent.tools.code_interpreter import CodeInterpreter
