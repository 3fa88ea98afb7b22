"""The `calculator` tool: safe evaluation of arithmetic expressions (numbers, operators, math functions only).

Small models are bad at arithmetic and good at writing an expression, so this is the cheapest way to make their
answers right. Evaluation goes through ``simpleeval`` with a reduced grammar (no attribute access, no strings, no
names except math constants/functions) and size limits so that no expression can hang or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Annotated, Any

import simpleeval
from pydantic import Field

from qwen_agent.tools.function import FunctionTool

__all__ = [
    "HELP",
    "MAX_EXPONENT",
    "MAX_EXPRESSION_CHARS",
    "MAX_FACTORIAL",
    "MAX_RESULT_DIGITS",
    "calculator",
    "evaluate",
    "make_calculator",
]

MAX_EXPRESSION_CHARS = 1000
MAX_RESULT_DIGITS = 4000  # also below Python's int->str conversion limit (4300 digits)
MAX_EXPONENT = 100_000
MAX_FACTORIAL = 1000
_SIGNIFICANT_DIGITS = 15

_ALLOWED_NODES = (ast.Expr, ast.Name, ast.UnaryOp, ast.BinOp, ast.Call, ast.Constant, ast.Compare, ast.IfExp)


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_RESULT_DIGITS * 3.33:
        raise ValueError(f"result too large (more than {MAX_RESULT_DIGITS} digits)")
    return value


def _safe_pow(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, (int, float)) and abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} too large (limit {MAX_EXPONENT})")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:  # noqa: SIM102
        if exponent * math.log10(abs(base)) > MAX_RESULT_DIGITS:
            raise ValueError(f"result too large (more than {MAX_RESULT_DIGITS} digits)")
    result = operator.pow(base, exponent)
    if isinstance(result, complex):
        raise ValueError("result is a complex number (e.g. a fractional power of a negative number)")
    return result


def _binop(fn: Any) -> Any:
    return lambda a, b: _check_int(fn(a, b))


def _limited(fn: Any, limit: int) -> Any:
    def call(*args: Any) -> Any:
        if any(isinstance(a, (int, float)) and abs(a) > limit for a in args):
            raise ValueError(f"{fn.__name__}() argument too large (limit {limit})")
        return fn(*args)

    call.__name__ = fn.__name__
    return call


_OPERATORS: dict[type, Any] = {
    ast.Add: _binop(operator.add),
    ast.Sub: _binop(operator.sub),
    ast.Mult: _binop(operator.mul),
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _safe_pow,
    ast.BitXor: _safe_pow,  # models (and people) write 2^10 meaning a power
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}

_FUNCTIONS: dict[str, Any] = {
    name: getattr(math, name)
    for name in (
        *("sqrt", "cbrt", "exp", "log", "log10", "log2", "hypot", "fabs", "floor", "ceil", "trunc", "isqrt"),
        *("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh"),
        *("degrees", "radians", "gcd", "lcm"),
    )
}
_FUNCTIONS.update(
    abs=abs,
    round=round,
    min=min,
    max=max,
    factorial=_limited(math.factorial, MAX_FACTORIAL),
    comb=_limited(math.comb, MAX_FACTORIAL),
    perm=_limited(math.perm, MAX_FACTORIAL),
    pow=_safe_pow,
)
_NAMES: dict[str, Any] = {"pi": math.pi, "e": math.e, "tau": math.tau}

HELP = (
    "Use numbers, + - * / // % ** (or ^ for power), parentheses, comparisons, the constants pi, e, tau and the "
    "functions " + ", ".join(sorted(_FUNCTIONS)) + "."
)


class _Evaluator(simpleeval.SimpleEval):  # type: ignore[misc]  # simpleeval ships no type hints
    """simpleeval with only the numeric part of the grammar: no attributes, subscripts, strings or f-strings."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names=dict(_NAMES))
        self.nodes: dict[type, Any] = {k: v for k, v in self.nodes.items() if k in _ALLOWED_NODES}
        self.nodes[ast.Constant] = self._eval_number

    @staticmethod
    def _eval_number(node: ast.Constant) -> Any:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"only numbers are allowed, not {type(node.value).__name__} literals")
        return node.value


def evaluate(expression: str) -> int | float | bool:
    """Evaluate an arithmetic expression safely; raises ValueError with a message saying what is allowed."""
    # maps the Unicode multiplication, division and minus signs on purpose
    expr = expression.strip().replace("×", "*").replace("÷", "/").replace("−", "-")  # noqa: RUF001
    if not expr:
        raise ValueError("empty expression. " + HELP)
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters; split the calculation")
    try:
        value = _Evaluator().eval(expr)
    except SyntaxError as exc:
        raise ValueError(f"invalid syntax in {expression!r}. {HELP}") from exc
    except simpleeval.InvalidExpression as exc:
        raise ValueError(f"not allowed: {str(exc).rstrip('.')}. {HELP}") from exc
    value = _check_int(value)
    if isinstance(value, float) and math.isfinite(value):
        value = float(f"{value:.{_SIGNIFICANT_DIGITS}g}")  # 0.1+0.2 -> 0.3: what a reader expects
    if not isinstance(value, (int, float)):
        raise ValueError(f"the expression did not produce a number (got {type(value).__name__})")
    return value


def calculator(
    # No worked example here: small models copy an example's shape and numbers into their own call.
    expression: Annotated[str, Field(description="The arithmetic expression to evaluate, written with the numbers "
                                                 "from the question, + - * / ** ( ) and math functions")],
) -> int | float | bool:
    """Evaluate an arithmetic expression exactly and return the number. Use it for any calculation."""
    return evaluate(expression)


def make_calculator() -> FunctionTool:
    return FunctionTool(calculator, timeout=5.0)
