"""Built-in tools by name (``--tool calculator``), resolved lazily from "module:attr" import paths.

Nothing heavy is imported until a tool is asked for by name. Other packages add their tools with
``register_builtin("name", "package.module:factory")``, or third-party distributions through the
``qwen_agent.tools`` entry-point group; the target may be a Tool instance, a Tool subclass or a factory function
returning a Tool (keyword arguments of ``get_builtin`` are passed to the latter two).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from qwen_agent.tools.base import Tool
from qwen_agent.tools.errors import ToolDefinitionError, UnknownToolError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "qwen_agent.tools"

_FACTORIES: dict[str, str] = {
    "calculator": "qwen_agent.tools.builtin.calculator:make_calculator",
    "code_interpreter": "qwen_agent.tools.code_interpreter:CodeInterpreter",
    "web_fetch": "qwen_agent.tools.web.fetch:make_web_fetch",
    "current_time": "qwen_agent.tools.builtin.clock:make_current_time",
    # Tools of sibling packages are registered here by path so the CLI can name them without importing them:
    # "code_interpreter": "qwen_agent.tools.code_interpreter:...", "retrieval": ..., "web_fetch": ...
}
_entry_points_loaded = False

BUILTIN_TOOLS: Mapping[str, str] = MappingProxyType(_FACTORIES)
"""Read-only live view: name -> "module:attr" of every known built-in (iterate it for the names)."""


def register_builtin(name: str, target: str, *, replace: bool = False) -> None:
    """Make ``get_builtin(name)`` resolve ``target`` ("package.module:attr"); imported only when asked for."""
    if ":" not in target:
        raise ToolDefinitionError(f"built-in {name!r}: target must look like 'package.module:attr', got {target!r}")
    if name in _FACTORIES and _FACTORIES[name] != target and not replace:
        raise ToolDefinitionError(f"built-in tool {name!r} is already registered as {_FACTORIES[name]!r}")
    _FACTORIES[name] = target


def builtin_names() -> list[str]:
    """Names of all built-in tools, including those contributed through entry points."""
    _load_entry_points()
    return sorted(_FACTORIES)


def get_builtin(name: str, **kwargs: Any) -> Tool:
    """A new (or the shared, for stateless instances) Tool for a built-in name; UnknownToolError lists the names."""
    if name not in _FACTORIES:
        _load_entry_points()
    target = _FACTORIES.get(name)
    if target is None:
        raise UnknownToolError(name, _FACTORIES)
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ToolDefinitionError(
            f"built-in tool {name!r} ({target}) could not be loaded: {exc}. Is its optional dependency installed?"
        ) from exc
    if isinstance(obj, Tool):
        if kwargs:
            raise ToolDefinitionError(f"built-in tool {name!r} is a ready instance and takes no options")
        return obj
    if callable(obj):
        tool = obj(**kwargs)
        if isinstance(tool, Tool):
            return tool
    raise ToolDefinitionError(f"built-in tool {name!r} ({target}) did not produce a Tool (got {type(obj).__name__})")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _FACTORIES:
            _FACTORIES[ep.name] = ep.value
        else:
            logger.debug("entry point tool %s ignored: name taken by %s", ep.name, _FACTORIES[ep.name])


__all__ = ["BUILTIN_TOOLS", "ENTRY_POINT_GROUP", "builtin_names", "get_builtin", "register_builtin"]
