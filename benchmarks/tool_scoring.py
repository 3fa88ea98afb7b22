"""Exact scoring of one tool call against a task of ``data/tool_tasks.json`` (shared by bench_tool_calling.py and
bench_backends.py).

The earlier scorer matched strings by substring and numbers through ``float()``: it accepted ``1234 + 5678`` for
1234 × 5678, ``"100"`` for a number, "Paris, Texas" for Paris and any arguments where the task listed none. Here a
call is right only when

* it names the expected tool and its arguments are valid against the tool's JSON schema, with JSON types taken
  strictly (a string is not a number, a bool is not an integer, no unknown keys, enums respected);
* every argument the request determines has the requested value. Strings compare *normalised*, not by substring
  (Unicode NFKC, case-folded, whitespace collapsed, surrounding quotes and a final ``.``/``!``/``?`` dropped), against
  one value or a short list of equivalent spellings (``"USD"``; ``["french", "fr"]``); a calculator expression is
  evaluated (arithmetic only, no names) and compared with the value the request asks for;
* arguments the task lists under ``optional_args`` are absent or have one of the listed values; a schema property the
  task mentions in neither place is left open by the request (e.g. the unit when none was asked) and may take any
  schema-valid value.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = ["call_matches", "evaluate_arithmetic", "normalise", "schema_valid"]

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def schema_valid(schema: dict[str, Any], args: dict[str, Any]) -> bool:
    """Required keys present, no unknown keys, enums respected, JSON types strict (``"100"`` is not a number)."""
    props: dict[str, Any] = schema.get("properties", {})
    if any(k not in args for k in schema.get("required", [])) or any(k not in props for k in args):
        return False
    for key, value in args.items():
        prop = props[key]
        if "enum" in prop and value not in prop["enum"]:
            return False
        check = _JSON_TYPES.get(prop.get("type", ""))
        if check is not None and not check(value):
            return False
    return True


def normalise(text: str) -> str:
    """The form two strings are compared in: NFKC, case-folded, whitespace collapsed, wrapping quotes and one final
    sentence mark removed (``'See you at noon.'`` and ``see you at noon`` are the same body)."""
    s = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()
    while len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"`":
        s = s[1:-1].strip()
    return s[:-1].rstrip() if s.endswith((".", "!", "?")) else s


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def evaluate_arithmetic(expression: str) -> float | None:
    """The value of a plain arithmetic expression (numbers, + - * / // % **, parentheses; ``^`` and ``×`` read as
    the power and times a person means), or None when it is anything else or too large to be an answer."""
    text = expression.replace("×", "*").replace("^", "**").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise OverflowError("exponent too large")
            return float(_BINARY[type(node.op)](left, right)) if isinstance(node.op, ast.Div) else \
                _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")

    try:
        value = ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return float(value)


def _value_matches(got: Any, want: Any) -> bool:
    """One argument against its expectation: ``{"evaluates_to": x}``, a list of equivalent values, or one value."""
    if isinstance(want, dict) and "evaluates_to" in want:
        if not isinstance(got, str):
            return False
        value = evaluate_arithmetic(got)
        return value is not None and math.isclose(value, float(want["evaluates_to"]), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, list):
        return any(_value_matches(got, w) for w in want)
    if isinstance(want, str):
        return isinstance(got, str) and normalise(got) == normalise(want)
    if isinstance(want, bool) or want is None:
        return got is want
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and \
            math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-9)
    return bool(got == want)


def call_matches(task: dict[str, Any], name: str, args: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether a call ``name(args)`` is the right first call for ``task`` (see the module docstring)."""
    if name != task["expected_tool"] or not schema_valid(schema, args):
        return False
    expected: dict[str, Any] = task.get("expected_args") or {}
    optional: dict[str, Any] = task.get("optional_args") or {}
    if any(key not in args or not _value_matches(args[key], want) for key, want in expected.items()):
        return False
    return all(key not in args or _value_matches(args[key], want) for key, want in optional.items())
