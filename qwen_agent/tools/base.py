"""The Tool base class: a named, described, validated and time-limited callable the agent can offer a model.

Subclass ``Tool`` for stateful tools (kernels, MCP sessions, indexes); use ``@tool`` (tools/function.py) for plain
functions. Either way the argument model (``Args``) is the single source of truth: its JSON schema is what the model
sees, and it validates (leniently: ``"3"`` becomes ``3``) what the model sends back.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import inspect
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from qwen_agent.messages import ToolSchema
from qwen_agent.sync import run_sync
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
from qwen_agent.tools.schemas import clean_schema, type_label

# ToolOutput and the errors are re-exported: stateful tools need only ``from qwen_agent.tools.base import ...``.
__all__ = [
    "DEFAULT_TIMEOUT",
    "UNSET",
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
    "Unset",
    "clean_schema",
    "run_in_tool_thread",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")  # what OpenAI-style APIs accept as a function name


class Unset(enum.Enum):
    """The type of `UNSET`: "not given, keep the class attribute" where None means something (no limit)."""

    UNSET = "unset"


#: Default of ``timeout=`` / ``max_output_chars=``: keep the tool class's own value.
UNSET: Final = Unset.UNSET


class NoArgs(BaseModel):
    """The argument model of a tool that takes no arguments (extra keys a model invents are ignored)."""

    model_config = ConfigDict(extra="ignore")


class Tool(ABC):
    """Base class of every tool.

    Set ``name``, ``description`` and ``Args`` (a pydantic model) as class attributes or pass them to ``__init__``,
    and implement ``run(self, args)`` either as ``async def`` (runs on the event loop: must not block) or as a plain
    ``def`` (runs in a worker thread, so a slow or blocking tool never stalls the loop or parallel calls).

    Stateful tools override ``start()`` (called once, lazily, before the first call) and ``aclose()`` (release; safe
    to call twice). As everywhere in the package, ``aclose()`` is the async close and ``close()`` the blocking one;
    after either, the next call starts the tool again. Set ``parallel_safe = False`` when calls must not overlap (one
    kernel, one session): calls are then serialised.

    Set ``adopts_unknown_names = True`` when the tool's name says nothing its arguments do not: a small model offered
    only ``code_interpreter`` writes ``{"name": "train_distance", "arguments": {"code": ...}}``, and the code is the
    call. An agent then runs a call to an unknown name whose arguments fit this tool alone (and no other such tool)
    on it. Leave it off for tools whose name is the meaning (``get_weather``): there an invented name is the model
    asking for a function nobody offered. ``adoption_hint`` is what the model is told when such a call's arguments
    did not fit (``{"name": "muffins_left", "arguments": {"muffins_baked": 14}}``): how to use this tool instead.
    """

    name: str = ""
    description: str = ""
    Args: type[BaseModel] = NoArgs
    timeout: float | None = DEFAULT_TIMEOUT  # seconds; None = no limit
    max_output_chars: int | None = DEFAULT_MAX_CHARS  # budget of ToolOutput.text; None = unlimited
    parallel_safe: bool = True
    adopts_unknown_names: bool = False
    adoption_hint: str = ""

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
        timeout: float | Unset | None = UNSET,
        max_output_chars: int | Unset | None = UNSET,
    ) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if args is not None:
            self.Args = args
        if not isinstance(timeout, Unset):
            self.timeout = timeout
        if not isinstance(max_output_chars, Unset):
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

    async def aclose(self) -> None:
        """Release resources. Must be safe to call when ``start()`` never ran or already closed.

        A subclass's override is wrapped (`__init_subclass__`) so that, like this default, it leaves the tool not
        started: the next call runs ``start()`` again.
        """
        self._started = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("aclose")
        if hook is not None and not getattr(hook, "_resets_started", False):
            cls.aclose = _resetting(hook)  # type: ignore[method-assign,assignment]  # wrapping the override is the point

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
            item = f"{pname}: {type_label(prop)}"
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

    def close(self) -> None:
        """Blocking ``aclose()``."""
        run_sync(self.aclose())

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


def _resetting(hook: Callable[[Tool], Awaitable[None]]) -> Callable[[Tool], Coroutine[Any, Any, None]]:
    """``hook`` (a subclass's ``aclose``), then the tool is no longer started, whatever the hook raised."""

    @functools.wraps(hook)
    async def aclose(self: Tool) -> None:
        try:
            await hook(self)
        finally:
            self._started = False

    aclose._resets_started = True  # type: ignore[attr-defined]
    return aclose


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


# ---- definition checks -------------------------------------------------------------------------


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
