"""`ReActAgent`: the same loop, prompting the model with Thought / Action / Action Input / Observation."""

from __future__ import annotations

from typing import Any

from qwen_agent.agents.agent import Agent
from qwen_agent.llm.types import FunctionCalling

__all__ = ["ReActAgent"]


class ReActAgent(Agent):
    """An `Agent` that always uses the prompted ``react`` format (works with any chat model, no tool parser)."""

    def __init__(self, *args: Any, constrained: bool = False, **kwargs: Any) -> None:
        if "function_calling" in kwargs:
            raise TypeError("ReActAgent fixes the function-calling format; use Agent to choose another")
        super().__init__(*args, function_calling=FunctionCalling(mode="prompted", format="react",
                                                                 constrained=constrained), **kwargs)
