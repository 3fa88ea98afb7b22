"""Typed tool-layer errors whose messages double as observations a (small) model can read and act on.

The Toolbox turns every ``ToolError`` raised while executing a call into an error observation instead of
crashing the agent loop, so ``str(error)`` is written for the model: short, concrete, saying what to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from qwen_agent.errors import QwenAgentError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "DuplicateToolError",
    "SandboxError",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolStartError",
    "ToolTimeoutError",
    "UnknownToolError",
    "format_validation_problems",
]

_MAX_INPUT_REPR = 60
_MAX_EXC_MESSAGE = 600


class ToolError(QwenAgentError):
    """Anything that went wrong declaring, finding or running a tool."""


class ToolDefinitionError(ToolError, TypeError):
    """A tool was declared wrongly (bad name, ``*args``, an unannotated parameter ...). Raised at definition time.

    It is also a ``TypeError`` so code that guards decoration with ``except TypeError`` keeps working.
    """


class DuplicateToolError(ToolError, ValueError):
    """Two tools with the same name were added to one Toolbox. Rename one (``@tool(name=...)``)."""


class UnknownToolError(ToolError, LookupError):
    """The model (or the caller) asked for a tool that is not registered."""

    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        names = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"Unknown tool '{name}'. Available tools: {names}. Call one of these by its exact name.")


class ToolArgumentsError(ToolError, ValueError):
    """The arguments failed validation against the tool's ``Args`` model.

    ``problems`` holds one short line per field error (``"argument 'x': field required"``); ``expected`` is a
    one-line signature of what the tool accepts, so the model can fix its call in a single retry.
    """

    def __init__(self, tool: str, problems: Sequence[str], expected: str = "") -> None:
        self.tool = tool
        self.problems = list(problems)
        self.expected = expected
        text = f"Invalid arguments for tool '{tool}': " + "; ".join(self.problems) + "."
        if expected:
            text += f" Expected: {expected}."
        super().__init__(text)

    @classmethod
    def from_validation_error(cls, tool: str, exc: ValidationError, expected: str = "") -> ToolArgumentsError:
        return cls(tool, format_validation_problems(exc), expected)


class ToolTimeoutError(ToolError, TimeoutError):
    """The tool did not finish within its ``timeout``."""

    def __init__(self, tool: str, timeout: float) -> None:
        self.tool = tool
        self.timeout = timeout
        super().__init__(
            f"Tool '{tool}' timed out after {timeout:g} s and was stopped. "
            "Try a smaller or simpler request, or a different approach."
        )


class ToolExecutionError(ToolError):
    """An exception escaped the tool's own code. Keeps the exception's type name and message, not the traceback.

    The traceback is useful to the developer (it is logged and kept in ``__cause__``), not to the model: a short
    ``"calculator raised ZeroDivisionError: division by zero"`` is what a model can react to.
    """

    def __init__(self, tool: str, exc_type: str, exc_message: str) -> None:
        self.tool = tool
        self.exc_type = exc_type
        self.exc_message = exc_message
        text = f"{tool} raised {exc_type}"
        super().__init__(f"{text}: {exc_message}" if exc_message else text)

    @classmethod
    def from_exception(cls, tool: str, exc: BaseException) -> ToolExecutionError:
        message = str(exc).strip()
        if len(message) > _MAX_EXC_MESSAGE:
            message = message[:_MAX_EXC_MESSAGE] + f"... [{len(message) - _MAX_EXC_MESSAGE} more characters]"
        err = cls(tool, type(exc).__name__, message)
        err.__cause__ = exc
        return err


class ToolStartError(ToolError):
    """A stateful tool's ``start()`` failed (kernel did not boot, MCP server did not answer ...)."""


class SandboxError(ToolError):
    """The code-execution sandbox could not be created or broke down (not an error in the user's code)."""


def format_validation_problems(exc: ValidationError) -> list[str]:
    """One short, model-readable line per pydantic error: ``argument 'items[0].qty': input should be ... (got 'x')``."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _format_loc(err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        msg = msg[:1].lower() + msg[1:]
        line = f"argument '{loc}': {msg}" if loc else msg
        if err.get("type") not in ("missing", "extra_forbidden") and "input" in err:
            line += f" (got {_short_repr(err['input'])})"
        problems.append(line)
    return problems or ["invalid arguments"]


def _format_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."
