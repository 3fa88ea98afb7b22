"""Agents: the tool-calling loop (`Agent`), its ReAct variant, their events and results."""

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
    "Agent", "Assistant", "ReActAgent", "AgentModelError", "AgentEvent", "AgentResult", "FinalAnswer", "ReasoningDelta",
    "StepFinished", "TextDelta", "ToolCallFinished", "ToolCallStarted",
]
