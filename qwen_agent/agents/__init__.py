"""Agents: the tool-calling loop (`Agent`), its ReAct variant, their events and results, and `analyze` (data analysis,
loaded on first use because it brings the code interpreter)."""

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports
from qwen_agent.agents.agent import Agent
from qwen_agent.agents.assistant import Assistant
from qwen_agent.agents.errors import AgentModelError
from qwen_agent.agents.events import (
    AgentEvent,
    AgentResult,
    FinalAnswer,
    ReasoningDelta,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from qwen_agent.agents.react import ReActAgent

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentModelError",
    "AgentResult",
    "Assistant",
    "FinalAnswer",
    "ReActAgent",
    "ReasoningDelta",
    "StepFinished",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "analyze",
]

__getattr__, __dir__ = lazy_exports(__name__, {"analyze": "qwen_agent.agents.analyst"}, globals())

if TYPE_CHECKING:
    from qwen_agent.agents.analyst import analyze
