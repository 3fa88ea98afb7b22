"""Show an agent's event stream readably in a terminal: streamed answer text, tool calls and their results."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

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
from qwen_agent.messages import MessageLike

if TYPE_CHECKING:
    from qwen_agent.agents.agent import Agent

__all__ = ["PREVIEW_CHARS", "EventPrinter"]

#: How much of a tool result the terminal shows (the model gets all of it).
PREVIEW_CHARS = 600


class EventPrinter:
    """Prints events as they arrive. Stateful only to know whether a text line is open."""

    def __init__(self, console: Console, *, show_reasoning: bool = False) -> None:
        self.console = console
        self.show_reasoning = show_reasoning
        self._open_line = False

    def __call__(self, event: AgentEvent) -> None:
        c = self.console
        if isinstance(event, TextDelta):
            c.print(escape(event.content), end="", soft_wrap=True, highlight=False)
            self._open_line = True
        elif isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                c.print(escape(event.content), end="", style="dim italic", soft_wrap=True, highlight=False)
                self._open_line = True
        elif isinstance(event, ToolCallStarted):
            self._newline()
            args = json.dumps(event.call.arguments, ensure_ascii=False)
            c.print(f"[bold cyan]→ {escape(event.call.name)}[/]({escape(args)})", highlight=False)
        elif isinstance(event, ToolCallFinished):
            style = "red" if event.output.is_error else "green"
            text = event.output.text
            if len(text) > PREVIEW_CHARS:
                text = text[:PREVIEW_CHARS] + f"… [{len(text) - PREVIEW_CHARS} more chars]"
            c.print(f"[{style}]← {escape(event.call.name)}[/] [dim]({event.elapsed_s * 1000:.0f} ms)[/] "
                    f"{escape(text)}", highlight=False)
            for f in event.output.files:
                c.print(f"  [dim]file:[/] {escape(f.path or f.filename or '')}", highlight=False)
        elif isinstance(event, StepFinished):
            pass
        elif isinstance(event, FinalAnswer):
            self._newline()
            r = event.result
            if r.stop_reason == "model_error":
                c.print(f"[bold red]model error:[/] {escape(r.error or '')}")
            elif r.stop_reason == "max_steps":
                c.print(f"[yellow]stopped after {r.steps} steps without a final answer[/]")

    def follow(self, agent: Agent, task: Iterable[MessageLike] | str, *, show: bool = True) -> AgentResult:
        """Run ``agent`` on ``task``, printing its events as they come (unless ``show`` is off); return the result."""
        result = None
        for event in agent.stream(task):
            if show:
                self(event)
            if isinstance(event, FinalAnswer):
                result = event.result
        assert result is not None, "an agent stream always ends with FinalAnswer"
        return result

    def _newline(self) -> None:
        if self._open_line:
            self.console.print()
            self._open_line = False
