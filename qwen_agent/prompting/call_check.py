"""Calls checked against the functions that were offered: what a small model writes is repaired where the schema
says how, and refused where it cannot be a call at all.

A reply that names a function nobody offered is not a call (small models invent ``get_weather`` when asked about the
weather with only a calculator at hand): handing it back as ``tool_calls`` makes every client try to run it. The same
holds for arguments that still break the schema after repair. Such calls are taken out of the reply and described in
an error, so an agent can tell the model once and a client never sees them.

Repairs are the ones the schema itself decides, never guesses: ``"5"`` for an integer, ``"true"`` for a boolean, an
enum value in the wrong case, a JSON string where an object or array is declared, a number where a string is
declared, and keys the schema does not declare when it lists its properties. Defaults are not filled in: the tool
applies its own, and a call that states what the model wrote is what gets logged and scored.

Names are never guessed here: on BFCL's irrelevance items an invented name whose arguments happen to fit the one
offered function is how a small model says "I would call something else", and renaming it turned refusals into false
positives (0.52 -> 0.38 over 50 items). `adopt_name` does the rename for the agent, only for tools whose name carries no
meaning beyond their arguments (``Tool.adopts_unknown_names``: code to run).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qwen_agent.messages import ToolCall, ToolSchema

__all__ = ["CallCheck", "adopt_name", "check_calls", "coerce_arguments"]

_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_MAX_DEPTH = 32


@dataclass
class CallCheck:
    """The calls that may run (repaired), and one error line per call that was taken out."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Names of the taken-out calls that no offered function has (the model invented them).
    unknown: list[str] = field(default_factory=list)
    #: The taken-out calls themselves, as the model wrote them, in the order of ``errors``.
    refused: list[ToolCall] = field(default_factory=list)


def check_calls(calls: list[ToolCall], schemas: list[ToolSchema]) -> CallCheck:
    """Keep the calls to offered functions whose arguments fit (after `coerce_arguments`); explain the rest."""
    if not calls:
        return CallCheck()
    offered = {s.name: s for s in schemas}
    out = CallCheck()
    for call in calls:
        schema = offered.get(call.name)
        if schema is None:
            names = ", ".join(offered) or "none"
            out.unknown.append(call.name)
            out.refused.append(call)
            out.errors.append(f"`{call.name}` is not one of the offered functions ({names}); it was not called. "
                              "Call an offered function by its exact name, or answer without a call if none of "
                              "them serves the request.")
            continue
        raw = call.function.raw_arguments
        if not call.arguments and raw is not None and raw.strip() not in ("", "{}"):
            out.calls.append(call)  # text that did not decode: the tool call reports why, with the text itself
            continue
        arguments = coerce_arguments(dict(call.arguments), schema.parameters)
        problem = _schema_problem(arguments, schema.parameters)
        if problem is not None:
            out.refused.append(call)
            out.errors.append(f"the arguments of `{call.name}` do not fit its parameters ({problem}); it was not "
                              "called.")
            continue
        # Compared as JSON (3.0 == 3 in Python, not in JSON): the repaired arguments are what runs and is re-rendered.
        if _dump(arguments) != _dump(call.arguments):
            function = call.function.model_copy(update={"arguments": arguments, "raw_arguments": None})
            call = call.model_copy(update={"function": function})
        out.calls.append(call)
    return out


def adopt_name(call: ToolCall, schemas: list[ToolSchema]) -> ToolCall | None:
    """``call`` renamed to the one function in ``schemas`` whose declared properties hold every argument it gives,
    whose required ones it has and whose schema accepts them after repair; None when none or several do. A call
    without arguments fits too much to say which function it meant, so it is never renamed."""
    if not call.arguments:
        return None
    fits = []
    for schema in schemas:
        props = schema.parameters.get("properties")
        required = schema.parameters.get("required") or []
        if not isinstance(props, Mapping) or not set(call.arguments) <= set(props):
            continue
        if not isinstance(required, list) or not set(required) <= set(call.arguments):
            continue
        if _schema_problem(coerce_arguments(dict(call.arguments), schema.parameters), schema.parameters) is None:
            fits.append(schema)
    if len(fits) != 1:
        return None
    function = call.function.model_copy(update={"name": fits[0].name})
    return call.model_copy(update={"function": function})


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def coerce_arguments(arguments: dict[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` repaired where ``parameters`` (a JSON Schema object) names the type; anything else as is."""
    value = _coerce(arguments, parameters, 0)
    return value if isinstance(value, dict) else arguments


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def _coerce(value: Any, schema: Any, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return value
    kinds = _types(schema)
    if not kinds or any(_fits(value, k) for k in kinds):
        value = _inner(value, schema, kinds, depth)
    else:
        for kind in kinds:
            converted = _convert(value, kind)
            if converted is not _NO:
                value = _inner(converted, schema, kinds, depth)
                break
    enum = schema.get("enum")
    if isinstance(value, str) and isinstance(enum, list) and value not in enum:
        folded = [e for e in enum if isinstance(e, str) and e.casefold() == value.strip().casefold()]
        if len(folded) == 1:
            value = folded[0]
    return value


def _inner(value: Any, schema: Mapping[str, Any], kinds: list[str], depth: int) -> Any:
    """Coerce inside objects (declared properties; undeclared keys dropped when properties are listed and extra
    ones are not allowed) and arrays (their ``items``)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return value
        extra = schema.get("additionalProperties", False)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in props:
                out[key] = _coerce(item, props[key], depth + 1)
            elif extra:
                out[key] = _coerce(item, extra, depth + 1) if isinstance(extra, Mapping) else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce(item, schema["items"], depth + 1) for item in value]
    return value


_NO = object()


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "boolean": bool, "array": list, "object": dict,
                                                     "null": type(None)}


def _fits(value: Any, kind: str) -> bool:
    """Whether ``value`` already is of JSON Schema type ``kind`` (a type name JSON Schema lacks fits anything)."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    python_type = _PYTHON_TYPES.get(kind)
    return python_type is None or isinstance(value, python_type)


def _convert(value: Any, kind: str) -> Any:
    """``value`` as ``kind`` when the conversion loses nothing, else `_NO`."""
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer" and _INT.fullmatch(text):
            return int(text)
        if kind == "number" and _NUMBER.fullmatch(text):
            number = float(text)
            return int(number) if _INT.fullmatch(text) else number
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in ("array", "object") and text[:1] in "[{":
            try:
                parsed = json.loads(text)
            except ValueError:
                return _NO
            return parsed if isinstance(parsed, list if kind == "array" else dict) else _NO
        return _NO
    if kind == "integer" and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _NO


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A validator for one tool's parameters (checked against its metaschema once: that check cost ~3 ms per call,
    more than the rest of a served request), or None for a schema that is itself invalid."""
    import jsonschema

    schema = json.loads(schema_json)
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except (jsonschema.exceptions.SchemaError, RecursionError):
        return None
    return validator_cls(schema)


def _schema_problem(arguments: dict[str, Any], parameters: Mapping[str, Any]) -> str | None:
    """How ``arguments`` break ``parameters`` (at most three ways, most relevant first), or None. A schema that is
    itself invalid (BFCL and user-written schemas name types JSON Schema does not have) never makes a call
    invalid."""
    import jsonschema

    try:
        key = json.dumps(parameters, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    validator = _validator(key)
    if validator is None:
        return None
    try:
        errors = sorted(validator.iter_errors(arguments), key=jsonschema.exceptions.relevance)
    except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.UnknownType, RecursionError):
        return None
    if not errors:
        return None
    lines = []
    for error in errors[:3]:
        where = "/".join(str(p) for p in error.absolute_path)
        lines.append(f"{where}: {error.message}" if where else error.message)
    return "; ".join(lines)
