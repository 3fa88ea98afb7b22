"""Turn decoded JSON (or a name plus argument text) into ToolCalls, accepting the shapes models actually write.

Accepted: ``{"name", "arguments"}``, ``"parameters"``/``"args"``/``"input"`` instead of ``"arguments"``, the OpenAI
shape ``{"type": "function", "function": {...}}``, ``{"tool_calls": [...]}``, lists of any of these, and arguments
given as a JSON string (decoded; the string is kept as ``raw_arguments``). How strict to be depends on where the JSON
stood: inside explicit call syntax (a ``<tool_call>`` tag, ``✿FUNCTION✿``, ``Action:``) anything with a name is a
call, even an unknown one, so the agent can tell the model the tool does not exist; bare JSON in prose is a call only
when it has a call's shape, because models also print ordinary JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qwen_agent.messages import ToolCall, ToolSchema
from qwen_agent.prompting.lenient_json import RepairBudget, Unreadable, loads_lenient

__all__ = [
    "MAX_CALLS",
    "MAX_ERRORS",
    "Found",
    "Tools",
    "arguments_from_text",
    "call_from_name_and_text",
    "calls_from_value",
    "is_call_shaped",
    "may_be_call_shaped",
    "snippet",
]

_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name")
_ARG_KEYS = ("arguments", "parameters", "args", "arguments_json", "input", "tool_input", "params")
#: Bare JSON in prose needs one of these to count as a call; "input"/"params" are too common in ordinary JSON.
_BARE_ARG_KEYS = ("arguments", "parameters", "args")
_SNIPPET = 60
#: The most calls read from one reply (and from one JSON list): more is a runaway reply, not a plan.
MAX_CALLS = 64
#: The most parse errors reported for one reply: they go back to the model, and a few say what is wrong.
MAX_ERRORS = 16
_SNIPPET_WINDOW = 1024


@dataclass
class Tools:
    """The tools a reply may call. ``None`` names mean "any name" (the caller did not say which tools exist).

    Made once per reply (`of`), so it also carries that reply's json_repair allowance: every fragment read from
    the reply draws on the same `RepairBudget`, which is what keeps reading a hostile reply cheap.
    """

    names: frozenset[str] | None
    single_string_param: dict[str, str] = field(default_factory=dict)
    budget: RepairBudget = field(default_factory=RepairBudget)

    @classmethod
    def of(cls, tools: list[ToolSchema] | None) -> Tools:
        if tools is None:
            return cls(None)
        single: dict[str, str] = {}
        for t in tools:
            props = t.parameters.get("properties") or {}
            strings = [k for k, v in props.items() if isinstance(v, Mapping) and v.get("type") == "string"]
            required = [k for k in t.parameters.get("required") or [] if k in props]
            # Plain-text arguments go to the one string parameter the call cannot do without.
            candidates = [k for k in strings if k in required] if required else strings
            if len(candidates) == 1 and all(k in strings for k in required):
                single[t.name] = candidates[0]
        return cls(frozenset(t.name for t in tools), single)

    @property
    def none_allowed(self) -> bool:
        return self.names is not None and not self.names

    def knows(self, name: str) -> bool:
        return self.names is None or name in self.names


@dataclass
class Found:
    """Calls read from one fragment, and descriptions of parts that looked like calls but could not be read."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def snippet(text: str) -> str:
    """The start of ``text`` on one line, for error messages. Reads a bounded head, however long the text."""
    head = " ".join(text[:_SNIPPET_WINDOW].split())
    if len(text) > _SNIPPET_WINDOW and len(head) < _SNIPPET:
        head += " …"  # mostly whitespace: nothing more worth quoting in the window
    return head if len(head) <= _SNIPPET else head[: _SNIPPET - 1] + "…"


def _unwrap(value: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = value.get("function")
    if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
        return fn
    return value


def _name_of(value: Mapping[str, Any], tools: Tools) -> tuple[str, str] | None:
    """``(key, name)`` of the function name; ``"type"`` counts only when it holds a known tool's name."""
    for key in _NAME_KEYS:
        v = value.get(key)
        if isinstance(v, str) and v.strip():
            return key, v.strip()
    v = value.get("type")
    if tools.names is not None and isinstance(v, str) and v in tools.names:
        return "type", v
    return None


def _flat_arguments(item: Mapping[str, Any], name_key: str) -> dict[str, Any]:
    """Arguments written next to the name (``{"name": "get_weather", "city": "Paris"}``)."""
    return {k: v for k, v in item.items() if k not in (name_key, "id", "type", "index")}


def _args_key(value: Mapping[str, Any]) -> str | None:
    for key in _ARG_KEYS:
        if key in value:
            return key
    return None


def is_call_shaped(value: Any, tools: Tools) -> bool:
    """Would this decoded JSON be read as a call even without surrounding call syntax?"""
    if isinstance(value, list):
        return bool(value) and all(is_call_shaped(v, tools) for v in value)
    if not isinstance(value, Mapping):
        return False
    if isinstance(value.get("tool_calls"), list):
        return is_call_shaped(value["tool_calls"], tools)
    if _keyed_by_tool(value, tools):
        return True
    value = _unwrap(value)
    named = _name_of(value, tools)
    if named is None:
        return False
    name = named[1]
    if any(key in value for key in _BARE_ARG_KEYS):
        return True
    # {"name": "get_time"} for a known tool without parameters is still clearly a call.
    return tools.names is not None and name in tools.names


def may_be_call_shaped(fragment: str, tools: Tools) -> bool:
    """False when the JSON text ``fragment`` certainly decodes to nothing `is_call_shaped` accepts: a call needs a
    key such as ``name``/``function``/``tool_calls`` or a tool's name, and without backslash escapes a decoded key
    is spelled out in the text. Lets prose JSON be passed over without decoding it."""
    if "\\" in fragment:
        return True
    if any(key in fragment for key in ("name", "function", "tool")):
        return True
    return tools.names is not None and ("type" in fragment or any(n in fragment for n in tools.names))


def _keyed_by_tool(value: Mapping[str, Any], tools: Tools) -> bool:
    """``{"get_weather": {"city": "Paris"}, "get_time": {...}}``: every key a known tool, every value its arguments.

    Small models write this when asked for several calls at once; with known tool names it cannot be mistaken.
    """
    return (tools.names is not None and bool(value) and all(k in tools.names for k in value)
            and all(isinstance(v, Mapping) or v is None for v in value.values()))


def arguments_from_text(name: str, text: str, tools: Tools) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Read argument text: ``(arguments, raw_arguments, error)``.

    JSON objects are decoded leniently. Non-JSON text for a tool with one string parameter becomes that parameter
    (``Action Input: Paris`` for ``get_weather(city)``, a fenced code block for ``code_interpreter(code)``).
    """
    stripped = text.strip()
    if not stripped:
        return {}, None, None
    value = loads_lenient(stripped, tools.budget)
    if isinstance(value, Unreadable) and stripped.startswith("```"):  # ```json {...} ``` around the arguments
        value = loads_lenient(_strip_fence(stripped), tools.budget)
    if isinstance(value, Mapping):
        return dict(value), None, None
    if isinstance(value, str) and value.strip().startswith("{"):  # a JSON string that holds the JSON object
        inner = loads_lenient(value, tools.budget)
        if isinstance(inner, Mapping):
            return dict(inner), value, None
    param = tools.single_string_param.get(name)
    if param is not None:
        plain = value if isinstance(value, str) else _strip_fence(stripped)
        return {param: plain}, None, None
    error = f"the arguments of {name!r} are not a JSON object: {snippet(stripped)}"
    return None, None, value.explain(error) if isinstance(value, Unreadable) else error


def _strip_fence(text: str) -> str:
    if text.startswith("```"):
        first_nl = text.find("\n")
        body = text[first_nl + 1 :] if first_nl >= 0 else ""
        end = body.rfind("```")
        return (body[:end] if end >= 0 else body).strip("\n")
    return text.strip("`").strip() if text.startswith("`") else text


def calls_from_value(value: Any, tools: Tools, *, explicit: bool, source: str) -> Found | None:
    """Interpret one decoded value. None means "not a call" (only possible when ``explicit`` is False).

    ``explicit``: the value stood inside call syntax, so anything unreadable is an error, not prose.
    """
    if not explicit and not is_call_shaped(value, tools):
        return None
    found = Found()
    if isinstance(value, Unreadable):
        found.errors.append(value.explain(f"could not read the tool call {snippet(source)!r}"))
        return found
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_CALLS:
        found.errors.append(f"{len(items)} calls in one list, more than the {MAX_CALLS} read from one reply")
        items = items[:MAX_CALLS]
    for item in items:
        if isinstance(item, Mapping) and _keyed_by_tool(item, tools):
            found.calls += [ToolCall.make(name, dict(args or {})) for name, args in item.items()]
            continue
        if isinstance(item, Mapping) and isinstance(item.get("tool_calls"), list):
            inner = calls_from_value(item["tool_calls"], tools, explicit=True, source=source)
            if inner is not None:
                found.calls += inner.calls
                found.errors += inner.errors
            continue
        _one(item, tools, found, source)
    return found


def _one(item: Any, tools: Tools, found: Found, source: str) -> None:
    if not isinstance(item, Mapping):
        found.errors.append(f"a tool call must be a JSON object with a name: {snippet(source)!r}")
        return
    item = _unwrap(item)
    named = _name_of(item, tools)
    if named is None:
        found.errors.append(f"the tool call has no function name: {snippet(source)!r}")
        return
    name_key, name = named
    key = _args_key(item)
    raw = item.get(key) if key else None
    if key is None:
        found.calls.append(ToolCall.make(name, _flat_arguments(item, name_key)))
    elif raw is None:
        found.calls.append(ToolCall.make(name, {}))
    elif isinstance(raw, Mapping):
        found.calls.append(ToolCall.make(name, dict(raw)))
    elif isinstance(raw, str):
        args, raw_args, error = arguments_from_text(name, raw, tools)
        if args is None:
            found.errors.append(error or f"unreadable arguments for {name!r}")
            return
        call = ToolCall.make(name, args)
        # The model's own argument text was a JSON string: keep it verbatim for lossless round trips.
        if raw_args is not None or raw.strip().startswith("{"):
            call.function.raw_arguments = raw
        found.calls.append(call)
    else:
        found.errors.append(f"the arguments of {name!r} must be a JSON object, got {type(raw).__name__}")


def call_from_name_and_text(name: str, arg_text: str, tools: Tools, source: str) -> Found:
    """A call written as a name plus argument text (``✿FUNCTION✿``/``✿ARGS✿``, ``Action``/``Action Input``)."""
    name = name.strip().strip("`'\"*").strip()
    found = Found()
    if not name:
        found.errors.append(f"the tool call has no function name: {snippet(source)!r}")
        return found
    args, raw_args, error = arguments_from_text(name, arg_text, tools)
    if args is None:
        found.errors.append(error or f"unreadable arguments for {name!r}")
        return found
    call = ToolCall.make(name, args)
    if raw_args is not None:
        call.function.raw_arguments = raw_args
    found.calls.append(call)
    return found
