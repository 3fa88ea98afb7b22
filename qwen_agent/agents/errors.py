"""Errors an agent run raises: only the model failing stops a run; tool failures are observations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwen_agent.llm.errors import ModelError

if TYPE_CHECKING:
    from qwen_agent.agents.events import AgentResult

__all__ = ["AgentModelError"]


class AgentModelError(ModelError):
    """The model failed mid-run. ``result`` holds the transcript up to the failure, so nothing is lost."""

    def __init__(self, message: str, *, result: AgentResult) -> None:
        super().__init__(message)
        self.result = result
