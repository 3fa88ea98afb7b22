"""Strict JSON decoding with a nesting cap, for JSON that a model or a model server wrote (untrusted text).

``json.loads`` recurses once per level of nesting: 2,000 ``[`` in a tool call's arguments raise `RecursionError`,
which no ``except ValueError`` catches, and a value a few hundred levels deep still breaks later code that
recurses over it (validation, ``json.dumps``, templates). No tool takes arguments nested anywhere near `MAX_DEPTH`
levels deep, so deeper text is refused up front, as a typed error that is also a ``ValueError``: every caller that
already handles malformed JSON handles over-deep JSON the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from qwen_agent.errors import QwenAgentError

__all__ = ["MAX_DEPTH", "JsonDepthError", "loads", "nesting_exceeds", "value_exceeds"]

#: The deepest nesting of objects/arrays accepted from a model. Real tool arguments stay far below it.
MAX_DEPTH = 64

# Strict JSON outside strings: a string's opening quote, or a run of openers or closers.
_TOKEN = re.compile(r'"|[{\[]+|[}\]]+')
# The rest of a string after its opening quote (escapes included), up to and including the closing quote.
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_LENIENT_DECODER = json.JSONDecoder(strict=False)


class JsonDepthError(QwenAgentError, ValueError):
    """JSON nested deeper than the cap. Ask for flatter arguments; nothing this deep is a sensible tool call."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON is nested more than {limit} levels deep; write flatter JSON")
        self.limit = limit


def nesting_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the objects/arrays in ``text`` nest deeper than ``limit`` (brackets inside strings do not count).

    Linear and non-recursive; text with at most ``limit`` brackets is answered without scanning.
    """
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    pos = 0
    token = _TOKEN.search
    while (m := token(text, pos)) is not None:
        tok = m.group()
        pos = m.end()
        if tok == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:  # unterminated: json.loads stops there
                return False
            pos = rest.end()
        elif tok[0] in "{[":
            depth += len(tok)
            if depth > limit:
                return True
        else:
            depth = max(depth - len(tok), 0)
    return False


def value_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a decoded value nests lists/dicts deeper than ``limit`` (iterative: safe on any depth)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, strict: bool = True) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with `JsonDepthError` (a ``ValueError``).

    Raises only ``ValueError`` subclasses (``json.JSONDecodeError`` for malformed text, ``UnicodeDecodeError`` for
    undecodable bytes), never `RecursionError`. Bytes are decoded as ``json.loads`` decodes them (UTF-8/16/32).
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
    if nesting_exceeds(text, max_depth):
        raise JsonDepthError(max_depth)
    try:
        return json.loads(text) if strict else _LENIENT_DECODER.decode(text)
    except RecursionError as exc:  # not reachable below the cap; kept so no path can leak it
        raise JsonDepthError(max_depth) from exc
