"""Toolbox: the set of tools an agent offers, and the dispatcher that turns model tool calls into observations.

``execute`` never raises for tool-side problems (unknown tool, bad arguments, an exception, a timeout): each becomes
an ``is_error`` ToolOutput whose text tells the model what went wrong, so the agent loop can feed it back and let
the model correct itself. Only cancellation (and interpreter exits) propagate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

from qwen_agent import bounded_json
from qwen_agent.bounded_json import JsonDepthError
from qwen_agent.messages import ToolCall, ToolSchema
from qwen_agent.sync import run_sync
from qwen_agent.tools.base import Tool
from qwen_agent.tools.errors import DuplicateToolError, ToolArgumentsError, ToolError, UnknownToolError
from qwen_agent.tools.function import as_tool
from qwen_agent.tools.output import ToolOutput

__all__ = ["ToolLike", "Toolbox"]

logger = logging.getLogger(__name__)

ToolLike = Tool | Callable[..., Any] | str
"""A Tool, a Tool subclass, a typed function (wrapped as with ``@tool``) or a built-in tool's name."""

_LOG_ARGS_CHARS = 300


class Toolbox:
    """Tools by name, their schemas for the model, and safe (never-raising) concurrent execution of calls."""

    def __init__(self, tools: Iterable[ToolLike] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    # ---- registry ------------------------------------------------------------------------------------------------

    def add(self, tool: ToolLike) -> Tool:
        """Register a tool (see ``ToolLike``) and return the Tool instance. Duplicate names raise."""
        if isinstance(tool, str):
            from qwen_agent.tools.builtin import get_builtin  # lazy: built-ins are only imported when named

            instance = get_builtin(tool)
        else:
            instance = as_tool(tool)
        if instance.name in self._tools:
            raise DuplicateToolError(
                f"a tool named {instance.name!r} is already in this Toolbox; give one of them another name "
                "(e.g. @tool(name=...))"
            )
        self._tools[instance.name] = instance
        return instance

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name, self._tools) from None

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __repr__(self) -> str:
        return f"Toolbox({self.names})"

    def schemas(self) -> list[ToolSchema]:
        """The schemas to offer the model, in registration order."""
        return [t.schema() for t in self._tools.values()]

    def adoption_hints(self) -> list[str]:
        """What the tools that adopt unknown names tell a model whose invented call did not fit them."""
        return [t.adoption_hint for t in self._tools.values() if t.adopts_unknown_names and t.adoption_hint]

    def adopting_schemas(self) -> list[ToolSchema]:
        """The schemas of the tools that take calls to unknown names whose arguments fit them
        (``Tool.adopts_unknown_names``)."""
        return [t.schema() for t in self._tools.values() if t.adopts_unknown_names]

    # ---- execution -----------------------------------------------------------------------------------------------

    async def execute(self, call: ToolCall) -> ToolOutput:
        """Run one call. Every tool-side failure comes back as ``ToolOutput(is_error=True)``, never as an exception.

        Timeouts: an async tool is cancelled; a sync tool's thread cannot be killed, so it keeps running in the
        background (its result is discarded) while the agent moves on.
        """
        t0 = time.perf_counter()
        try:
            tool = self.get(call.name)
            problem = _arguments_problem(call)
            if problem is not None:
                raise ToolArgumentsError(tool.name, [problem], tool.signature())
            out = await tool.execute(call.arguments)
        except ToolError as exc:
            out = ToolOutput(text=str(exc), is_error=True, error_type=type(exc).__name__)
        except Exception as exc:  # a bug in a Tool subclass's plumbing must not crash the loop
            logger.warning("tool %s failed outside its run(): %r", call.name, exc, exc_info=True)
            out = ToolOutput(text=f"{call.name} raised {type(exc).__name__}: {exc}", is_error=True,
                             error_type=type(exc).__name__)
        elapsed = time.perf_counter() - t0
        out = out.model_copy(update={"elapsed_s": elapsed})
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "tool call %s %s(%s) -> %s in %.3f s: %s",
                call.id,
                call.name,
                call.function.arguments_json()[:_LOG_ARGS_CHARS],
                "error" if out.is_error else "ok",
                elapsed,
                out.text[:_LOG_ARGS_CHARS],
            )
        return out

    async def execute_many(self, calls: Sequence[ToolCall]) -> list[ToolOutput]:
        """Run the calls of one model reply concurrently; results come back in call order."""
        if not calls:
            return []
        if len(calls) == 1:
            return [await self.execute(calls[0])]
        return list(await asyncio.gather(*(self.execute(c) for c in calls)))

    def execute_sync(self, call: ToolCall) -> ToolOutput:
        """Blocking ``execute`` for scripts and notebooks (runs on the framework's background loop)."""
        return run_sync(self.execute(call))

    def execute_many_sync(self, calls: Sequence[ToolCall]) -> list[ToolOutput]:
        """Blocking ``execute_many``."""
        return run_sync(self.execute_many(calls))

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every stateful tool now instead of on first use (e.g. to boot a kernel before the first question)."""
        await asyncio.gather(*(t.ensure_started() for t in self._tools.values()))

    async def aclose(self) -> None:
        """Close every tool; one failing to close does not stop the others (failures are logged)."""
        results = await asyncio.gather(*(t.aclose() for t in self._tools.values()), return_exceptions=True)
        for t, res in zip(self._tools.values(), results, strict=True):
            if isinstance(res, BaseException):
                logger.warning("closing tool %s failed: %r", t.name, res)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _arguments_problem(call: ToolCall) -> str | None:
    """What is wrong with the raw argument text when it did not parse into an object (and no repair filled
    ``arguments``), else None.

    Without this a garbled call would surface as "field required", hiding the real problem from the model.
    """
    raw = call.function.raw_arguments
    if raw is None or call.function.arguments or not raw.strip():
        return None
    try:
        if isinstance(bounded_json.loads(raw), dict):
            return None
    except JsonDepthError as exc:
        return f"the arguments are not usable: {exc}"
    except ValueError:
        pass
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return f"the arguments are not a JSON object: {shown}"
