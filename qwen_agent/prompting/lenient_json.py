"""Lenient JSON reading for model output: decode forgivingly, within a fixed amount of work per reply.

Small models write JSON with trailing commas, single quotes, Python ``True``/``None``, raw newlines inside strings
or a missing closing brace. Strict ``json.loads`` runs first (fast, exact); ``json_repair`` is the fallback because
it reads all of those variants. But json_repair is a heuristic Python parser: a few hundred kB/s at best, quadratic
on some inputs and very slow on deep nesting. So a model reply hands it at most `REPAIR_BUDGET` characters in total
(a `RepairBudget` per reply), in fragments of at most `REPAIR_FRAGMENT`, nested at most `MAX_DEPTH` deep; what does
not fit is `Unreadable` (with the reason), which the call reader turns into an error the model reads, never a stall
or an exception.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import json_repair

from qwen_agent.bounded_json import MAX_DEPTH, JsonDepthError, loads, value_exceeds
from qwen_agent.prompting.spans import json_span_end, lenient_nesting_exceeds

__all__ = ["MAX_DEPTH", "REPAIR_BUDGET", "REPAIR_FRAGMENT", "UNREADABLE", "RepairBudget", "Unreadable",
           "iter_json_values", "json_span_end", "loads_lenient", "repair"]

logger = logging.getLogger(__name__)

#: Characters of one reply that json_repair may read, all fragments together, and of one fragment. json_repair is
#: quadratic on some text (``["a", b"a", b"...]``), so both stay small: calls that need repair are small (the largest
#: in the raw-output corpus is 185 characters), and a larger call must be valid JSON, which json.loads reads at any
#: size. ``benchmarks/bench_parser_adversarial.py`` measures the worst case per reply.
REPAIR_BUDGET = 2048
REPAIR_FRAGMENT = 1024

_OPENER = re.compile(r"[{\[]")


class Unreadable:
    """What reading gives for text that is not JSON even leniently. ``reason`` says why when a limit refused it,
    so the model is told what to change (flatter arguments, valid JSON) rather than only that it failed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unreadable({self.reason!r})"

    def explain(self, message: str) -> str:
        """``message`` with the reason appended, if there is one."""
        return f"{message} ({self.reason})" if self.reason else message


#: The plain "not JSON" reading.
UNREADABLE = Unreadable()
_TOO_DEEP = Unreadable(f"it is nested more than {MAX_DEPTH} levels deep")


class RepairBudget:
    """What is left of one reply's json_repair allowance. One per reply, shared by every fragment read from it."""

    def __init__(self, chars: int = REPAIR_BUDGET) -> None:
        self.left = chars

    def take(self, n: int) -> bool:
        """Spend ``n`` characters if that much is left; False (and nothing spent) otherwise."""
        if n > self.left:
            return False
        self.left -= n
        return True


def loads_lenient(text: str, budget: RepairBudget | None = None, *, closed: bool = True) -> Any:
    """Decode ``text`` as JSON, repairing it if needed; an `Unreadable` when nothing sensible comes out.

    Never raises. Plain words are not JSON: json_repair turns them into ``""``, which we report as unreadable.
    Nesting deeper than `MAX_DEPTH` is unreadable; repair only runs on text of at most `REPAIR_FRAGMENT`
    characters, while ``budget`` (by default a fresh `REPAIR_BUDGET`) covers it. ``closed=False`` says the text
    is an object/array that never closes, which json.loads cannot read: only repair is tried.
    """
    stripped = text.strip()
    if not stripped:
        return UNREADABLE
    if closed:
        try:
            return loads(stripped, strict=False)
        except JsonDepthError:
            return _TOO_DEEP
        except ValueError:
            pass
    if stripped[0] not in "{[\"'":
        return UNREADABLE
    return repair(stripped, budget if budget is not None else RepairBudget())


def repair(text: str, budget: RepairBudget) -> Any:
    """json_repair's reading of ``text`` if the budget covers it and the nesting is within bounds, else Unreadable.

    The attempt is paid for even when the nesting check refuses the text: that check reads the text too. Text
    too long to repair is only looked at as far as a repair would have read, to say which limit it broke.
    """
    if len(text) > REPAIR_FRAGMENT or not budget.take(len(text)):
        if lenient_nesting_exceeds(text[:REPAIR_FRAGMENT], MAX_DEPTH):
            return _TOO_DEEP
        return Unreadable(f"{len(text)} characters of malformed JSON is more than is repaired; write valid JSON")
    if lenient_nesting_exceeds(text, MAX_DEPTH):
        return _TOO_DEEP
    try:
        value = json_repair.repair_json(text, return_objects=True)
    except Exception:  # a heuristic parser; RecursionError, ValueError, anything: just "unreadable"
        logger.debug("json_repair failed on %r", text[:80], exc_info=True)
        return UNREADABLE
    if value == "" or value is None:
        return UNREADABLE
    if value_exceeds(value, MAX_DEPTH):
        return _TOO_DEEP
    return value


def iter_json_values(text: str, budget: RepairBudget | None = None) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, end, value)`` for each top-level JSON object/array in ``text``, in order.

    Used for bodies that hold several calls (one per line, or back to back). An unclosed last value runs to the end
    of the text. Values that do not decode are yielded as `Unreadable` so callers can report them.
    """
    budget = budget if budget is not None else RepairBudget()
    i = 0
    n = len(text)
    while i < n:
        m = _OPENER.search(text, i)
        if m is None:
            return
        j = m.start()
        end = json_span_end(text, j)
        if end is None:
            yield j, n, loads_lenient(text[j:], budget, closed=False)
            return
        yield j, end, loads_lenient(text[j:end], budget)
        i = end
