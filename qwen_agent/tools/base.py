"""The Tool base class: a named, described, validated and time-limited callable the agent can offer a model.

Subclass ``Tool`` for stateful tools (kernels, MCP sessions, indexes); use ``@tool`` (tools/function.py) for plain
functions. Either way the argument model (``Args``) is the single source of truth: its JSON schema is what the model
sees, and it validates (leniently: ``"3"`` becomes ``3``) what the model sends back.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from qwen_agent.messages import ToolSchema
from qwen_agent.tools.errors import (
    SandboxError,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolStartError,
    ToolTimeoutError,
    UnknownToolError,
)
from qwen_agent.tools.output import DEFAULT_MAX_CHARS, ToolOutput

# ToolOutput and the errors are re-exported: stateful tools need only ``from qwen_agent.tools.base import ...``.
__all__ = [
    "DEFAULT_TIMEOUT",
    "NoArgs",
    "SandboxError",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolOutput",
    "ToolStartError",
    "ToolTimeoutError",
    "UnknownToolError",
    "clean_schema",
    "run_in_tool_thread",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")  # what OpenAI-style APIs accept as a function name
_UNSET: Any = object()


class NoArgs(BaseModel):
    """The argument model of a tool that takes no arguments (extra keys a model invents are ignored)."""

    model_config = ConfigDict(extra="ignore")


class Tool(ABC):
    """Base class of every tool.

    Set ``name``, ``description`` and ``Args`` (a pydantic model) as class attributes or pass them to ``__init__``,
    and implement ``run(self, args)`` either as ``async def`` (runs on the event loop: must not block) or as a plain
    ``def`` (runs in a worker thread, so a slow or blocking tool never stalls the loop or parallel calls).

    Stateful tools override ``start()`` (called once, lazily, before the first call) and ``aclose()``.
    Set ``parallel_safe = False`` when calls must not overlap (one kernel, one session): calls are then serialised.
    """

    name: str = ""
    description: str = ""
    Args: type[BaseModel] = NoArgs
    timeout: float | None = DEFAULT_TIMEOUT  # seconds; None = no limit
    max_output_chars: int | None = DEFAULT_MAX_CHARS  # budget of ToolOutput.text; None = unlimited
    parallel_safe: bool = True

    # per-instance state; class-level defaults keep a subclass working even if its __init__ skips super().__init__
    _started: bool = False
    _start_lock: asyncio.Lock | None = None
    _call_lock: asyncio.Lock | None = None
    _schema: ToolSchema | None = None

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        args: type[BaseModel] | None = None,
        timeout: float | None = _UNSET,
        max_output_chars: int | None = _UNSET,
    ) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if args is not None:
            self.Args = args
        if timeout is not _UNSET:
            self.timeout = timeout
        if max_output_chars is not _UNSET:
            self.max_output_chars = max_output_chars
        _check_definition(self)
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._call_lock: asyncio.Lock | None = None
        self._schema: ToolSchema | None = None

    # ---- what subclasses implement -------------------------------------------------------------------------------

    @abstractmethod
    def run(self, args: Any) -> Any:
        """Do the work. ``args`` is a validated instance of ``self.Args``. May be ``async def``.

        Return anything ``ToolOutput.from_value`` understands (str, dict, pydantic model, Path, ToolOutput ...).
        Raise freely: exceptions become error observations the model can read.
        """

    async def start(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Acquire resources (start a kernel, open a session). Called once before the first call."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release resources. Must be safe to call when ``start()`` never ran or already closed."""

    # ---- public API ----------------------------------------------------------------------------------------------

    def schema(self) -> ToolSchema:
        """The name, description and cleaned-up JSON schema of the arguments, as offered to the model."""
        if self._schema is None:
            self._schema = ToolSchema(
                name=self.name, description=self.description, parameters=clean_schema(self.Args.model_json_schema())
            )
        return self._schema

    def validate_args(self, arguments: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validate raw arguments into ``Args`` (lax mode: ``"3"`` -> ``3``) or raise ``ToolArgumentsError``."""
        if isinstance(arguments, self.Args):
            return arguments
        if isinstance(arguments, BaseModel):
            arguments = arguments.model_dump()
        try:
            return self.Args.model_validate(dict(arguments or {}))
        except ValidationError as exc:
            raise ToolArgumentsError.from_validation_error(self.name, exc, self.signature()) from exc

    def signature(self) -> str:
        """A one-line summary such as ``add(a: integer, b: integer = 2)`` used in argument error messages."""
        params = self.schema().parameters
        required = set(params.get("required", []))
        items = []
        for pname, prop in params.get("properties", {}).items():
            item = f"{pname}: {_type_label(prop)}"
            if pname not in required:
                item += f" = {json.dumps(prop['default'], ensure_ascii=False)}" if "default" in prop else " (optional)"
            items.append(item)
        return f"{self.name}({', '.join(items)})"

    async def ensure_started(self) -> None:
        """Run ``start()`` once, even when several calls arrive at the same time."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            try:
                await self.start()
            except Exception as exc:
                raise ToolStartError(f"Tool '{self.name}' could not start: {type(exc).__name__}: {exc}") from exc
            self._started = True

    async def close(self) -> None:
        """``aclose()`` and forget the started state, so a later call starts the tool again."""
        try:
            await self.aclose()
        finally:
            self._started = False

    async def execute(self, arguments: Mapping[str, Any] | BaseModel | None) -> ToolOutput:
        """Validate, start if needed, run within ``timeout`` and normalise the result.

        Raises ``ToolArgumentsError``, ``ToolStartError``, ``ToolTimeoutError`` or ``ToolExecutionError``;
        ``Toolbox.execute`` turns those into error observations.
        """
        args = self.validate_args(arguments)
        await self.ensure_started()
        t0 = time.perf_counter()
        if self.parallel_safe:
            value = await self._run_limited(args)
        else:
            if self._call_lock is None:
                self._call_lock = asyncio.Lock()
            async with self._call_lock:
                value = await self._run_limited(args)
        out = ToolOutput.from_value(value, self.max_output_chars)
        return out.model_copy(update={"elapsed_s": time.perf_counter() - t0})

    # ---- internals -----------------------------------------------------------------------------------------------

    def _run_is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    async def _run_limited(self, args: BaseModel) -> Any:
        """Run with the timeout. An async tool is cancelled on timeout; a sync one cannot be killed (Python threads
        cannot be stopped from outside), so its thread runs on in the background and its result is dropped."""
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                return await self._invoke(args)
        except TimeoutError as exc:
            if deadline.expired():
                raise ToolTimeoutError(self.name, self.timeout or 0.0) from exc
            raise ToolExecutionError.from_exception(self.name, exc) from exc  # a timeout inside the tool's own code
        except ToolError:
            raise  # deliberate, already model-readable (SandboxError, a nested ToolArgumentsError ...)
        except Exception as exc:
            logger.debug("tool %s raised", self.name, exc_info=True)
            raise ToolExecutionError.from_exception(self.name, exc) from exc

    async def _invoke(self, args: BaseModel) -> Any:
        if self._run_is_async():
            return await self.run(args)
        value = await run_in_tool_thread(self.run, args)
        if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
            value = await value
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---- worker threads for sync tools --------------------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_MAX_TOOL_THREADS = 32


def _tool_executor() -> ThreadPoolExecutor:
    """A pool of its own, not the loop's default executor: timed-out sync tools keep their thread busy, and they
    must not starve DNS lookups or other ``to_thread`` users; 32 threads leave room for many parallel calls."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_MAX_TOOL_THREADS, thread_name_prefix="qwen-agent-tool")
    return _executor


async def run_in_tool_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Like ``asyncio.to_thread`` (context variables are propagated) but on the tools' own thread pool."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(_tool_executor(), functools.partial(ctx.run, fn, *args, **kwargs))


# ---- definition checks and schema cleanup -------------------------------------------------------------------------


def _check_definition(tool: Tool) -> None:
    if not isinstance(tool.name, str) or not _NAME_RE.match(tool.name):
        raise ToolDefinitionError(
            f"{type(tool).__name__}: invalid tool name {tool.name!r}; use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or '_' (set the `name` class attribute or pass name=...)"
        )
    if not (isinstance(tool.Args, type) and issubclass(tool.Args, BaseModel)):
        raise ToolDefinitionError(
            f"tool {tool.name!r}: `Args` must be a pydantic BaseModel subclass, got {tool.Args!r}"
        )
    if tool.timeout is not None and tool.timeout <= 0:
        raise ToolDefinitionError(f"tool {tool.name!r}: timeout must be positive seconds or None, got {tool.timeout}")


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a pydantic JSON schema easy for small models to read, without changing what it accepts in spirit.

    - ``$ref``s into ``$defs`` are inlined (recursive models keep their ``$defs``);
    - ``title`` keywords are dropped (pydantic adds one per field; they repeat the name and cost tokens);
    - ``anyOf: [X, null]`` (``Optional[X]``) becomes just ``X``: the field stays optional through ``required``
      and its ``default``, and an explicit ``null`` still validates on our side;
    - a single-item ``allOf`` is merged into its parent.
    Descriptions, ``required``, ``enum``, ``const``, ``default`` and numeric/string limits are kept.
    """
    schema = copy.deepcopy(schema)
    defs: dict[str, Any] = schema.pop("$defs", {})
    recursive = {name for name in defs if _refers_to(defs[name], name, defs, set())}
    out: dict[str, Any] = _clean(schema, defs, recursive, ())
    kept = {name: _clean(defs[name], defs, recursive, (name,)) for name in recursive}
    if kept:
        out["$defs"] = kept
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    return out


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _refers_to(node: Any, target: str, defs: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = _ref_name(ref)
            if name == target:
                return True
            if name not in seen and name in defs:
                seen.add(name)
                if _refers_to(defs[name], target, defs, seen):
                    return True
        return any(_refers_to(v, target, defs, seen) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, target, defs, seen) for v in node)
    return False


def _clean(node: Any, defs: dict[str, Any], recursive: set[str], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_clean(v, defs, recursive, stack) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.get("$ref")
    if isinstance(ref, str) and _ref_name(ref) in defs and _ref_name(ref) not in recursive:
        name = _ref_name(ref)
        del node["$ref"]
        node = {**defs[name], **node}  # the referencing site's description/default win
        return _clean(node, defs, recursive, (*stack, name))
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del node["allOf"]
        node = {**all_of[0], **node}
        return _clean(node, defs, recursive, stack)
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
        other = next(s for s in any_of if s != {"type": "null"})
        del node["anyOf"]
        node = {**other, **node} if isinstance(other, dict) else node
        return _clean(node, defs, recursive, stack)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            out[key] = {k: _clean(v, defs, recursive, stack) for k, v in value.items()}
        elif key in ("default", "enum", "const", "examples", "required"):
            out[key] = value
        else:
            out[key] = _clean(value, defs, recursive, stack)
    return out


def _type_label(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    t = prop.get("type")
    if t == "array" and isinstance(prop.get("items"), dict):
        return f"array of {_type_label(prop['items'])}"
    if isinstance(t, str):
        return t
    if "anyOf" in prop:
        return " | ".join(_type_label(p) for p in prop["anyOf"] if isinstance(p, dict))
    return "any"
