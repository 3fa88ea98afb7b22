"""Lenient JSON reading for model output: find where a JSON value ends in free text, and decode it forgivingly.

Small models write JSON with trailing commas, single quotes, Python ``True``/``None``, raw newlines inside strings
or a missing closing brace. Strict ``json.loads`` runs first (fast, exact); ``json_repair`` is the fallback because
it reads all of those variants. The span finder lets the call scanner cut a JSON object out of surrounding prose
without decoding it first, which is also what makes streaming possible: a span is either closed or still open.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import json_repair

log = logging.getLogger(__name__)

_OPEN = {"{": "}", "[": "]"}
_CLOSE = {"}", "]"}

#: Sentinel: the text is not readable as JSON even leniently.
UNREADABLE = object()


def json_span_end(text: str, start: int) -> int | None:
    """Index just past the JSON object/array that opens at ``text[start]``, or None if it is not closed yet.

    Understands double- and single-quoted strings with backslash escapes, so braces inside strings do not count.
    A mismatched closer (``{"a": 1]``) also ends the span: the decoder then decides what it was.
    """
    depth = 0
    quote = ""
    escaped = False
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch == '"' or ch == "'":
            # An apostrophe directly after a letter is prose ("it's"), not a quote.
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                pass
            else:
                quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth <= 0:
                return i + 1
        i += 1
    return None


def loads_lenient(text: str) -> Any:
    """Decode ``text`` as JSON, repairing it if needed; `UNREADABLE` when nothing sensible comes out.

    Never raises. Plain words are not JSON: json_repair turns them into ``""``, which we report as unreadable.
    """
    stripped = text.strip()
    if not stripped:
        return UNREADABLE
    try:
        return json.loads(stripped, strict=False)
    except ValueError:
        pass
    if stripped[0] not in "{[\"'":
        return UNREADABLE
    try:
        value = json_repair.repair_json(stripped, return_objects=True)
    except Exception:  # json_repair is a heuristic parser; any failure just means "unreadable"
        log.debug("json_repair failed on %r", stripped[:80], exc_info=True)
        return UNREADABLE
    if value == "" or value is None:
        return UNREADABLE
    return value


def iter_json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, end, value)`` for each top-level JSON object/array in ``text``, in order.

    Used for bodies that hold several calls (one per line, or back to back). An unclosed last value runs to the end
    of the text. Values that do not decode are yielded as `UNREADABLE` so callers can report them.
    """
    i = 0
    n = len(text)
    while i < n:
        j = _next_opener(text, i)
        if j < 0:
            return
        end = json_span_end(text, j)
        if end is None:
            yield j, n, loads_lenient(text[j:])
            return
        yield j, end, loads_lenient(text[j:end])
        i = end


def _next_opener(text: str, start: int) -> int:
    a = text.find("{", start)
    b = text.find("[", start)
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)
