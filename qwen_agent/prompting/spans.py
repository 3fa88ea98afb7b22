"""Where JSON-ish objects and arrays end in model text: one scan for one span, or one pass for every span at once.

Both read the lenient syntax models write: double- and single-quoted strings with backslash escapes (brackets inside
strings do not count), an apostrophe directly after a letter or digit is prose (``it's``), and any closer ends the
innermost opener (``{"a": 1]`` is a span too; the decoder decides what it was). Regular expressions do the reading
(whole strings and runs of brackets at a time), so Python only sees a handful of tokens per value.

`SpanIndex` exists because the call scanner may ask about many openers of one text: an unclosed ``{"`` at the start
of a reply must not make every later opener rescan the rest of the reply (that made 600 characters take seconds).
"""

from __future__ import annotations

import bisect
import re

__all__ = ["SpanIndex", "json_span_end", "lenient_nesting_exceeds"]

# Outside strings: a quote, a run of openers, a run of closers, or a backslash pair (whose second character is read
# as usual: outside strings a backslash escapes nothing). A lone backslash can only end a text that still grows.
_TOKEN = re.compile(r"""\\.|["']|[{\[]+|[}\]]+|\\""", re.DOTALL)
# The rest of a string after its opening quote, up to and including the closing quote.
_STRING_REST = {'"': re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL),
                "'": re.compile(r"[^'\\]*+(?:\\.[^'\\]*+)*+'", re.DOTALL)}


def _opens_quote(text: str, i: int) -> bool:
    """A quote character outside strings opens one, except an apostrophe right after a letter or digit."""
    return text[i] == '"' or i == 0 or not text[i - 1].isalnum()


# A span without nested brackets, apostrophes or backslashes outside its double-quoted strings, read in one match.
_FLAT = re.compile(r"""[{\[][^{}\[\]"'\\]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"[^{}\[\]"'\\]*+)*+[}\]]""", re.DOTALL)


def json_span_end(text: str, start: int, stop: int | None = None) -> int | None:
    """Index just past the object/array that opens at ``text[start]``, or None if it is not closed (yet).

    With ``stop``, only ``text[:stop]`` is read: None then also means "not closed before ``stop``".
    """
    stop = len(text) if stop is None else min(stop, len(text))
    flat = _FLAT.match(text, start, stop)
    if flat is not None:
        return flat.end()
    depth = 0
    pos = start
    token = _TOKEN.search
    while (m := token(text, pos, stop)) is not None:
        tok = m.group()
        pos = m.end()
        c = tok[0]
        if c == "\\":
            if len(tok) == 1:
                return None
            c = tok[1]
            if c not in "\"'{[}]":
                continue
            tok = c
        if c in "{[":
            depth += len(tok)
        elif c in "}]":
            if len(tok) >= depth:
                return m.end() - len(tok) + depth
            depth -= len(tok)
        elif _opens_quote(text, pos - 1):
            rest = _STRING_REST[c].match(text, pos, stop)
            if rest is None:
                return None
            pos = rest.end()
    return None


def lenient_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether objects/arrays nest deeper than ``limit`` under the lenient quoting rules above."""
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    pos = 0
    token = _TOKEN.search
    while (m := token(text, pos)) is not None:
        tok = m.group()
        pos = m.end()
        c = tok[0]
        if c == "\\":
            if len(tok) == 1:
                return False
            c = tok[1]
            if c not in "\"'{[}]":
                continue
            tok = c
        if c in "{[":
            depth += len(tok)
            if depth > limit:
                return True
        elif c in "}]":
            depth = max(depth - len(tok), 0)
        elif _opens_quote(text, pos - 1):
            rest = _STRING_REST[c].match(text, pos)
            if rest is None:
                return False
            pos = rest.end()
    return False


# Pending openers by nesting level, innermost last: an opener's position, or a list of them once tracks merged.
_Stack = list[int | list[int]]


#: How far `SpanIndex.end` follows one span on its own before it reads the whole text instead.
_SOLO_SCAN = 8192


class SpanIndex:
    """`json_span_end` for every opener of a growing text, in one left-to-right pass over it.

    A scan from an opener is a small automaton: outside strings, in a ``"`` string or in a ``'`` string. Scans that
    are in the same state at the same position behave alike from then on, so at most three scans ("tracks") run at
    once, and an opener joins the track that is outside strings. Each track keeps its pending openers by level; a
    closer ends every opener of the innermost level. When two tracks meet in one state their stacks merge (smaller
    into larger), so the pass is O(n log n) in the worst case and O(n) in practice, however the openers overlap.
    The text is read lazily: only as far as a question about it needs.
    """

    def __init__(self) -> None:
        self._text = ""
        self._ends: dict[int, int] = {}
        self._pos = 0
        self._out: _Stack | None = None  # the track outside strings
        self._dq: _Stack | None = None  # the track inside a "..." string
        self._sq: _Stack | None = None  # the track inside a '...' string
        self._closed: list[int] | None = None  # sorted openers with an end, once the whole text is read

    def see(self, text: str) -> None:
        """The text is now ``text``, which must extend the text seen before. Nothing is read until asked."""
        if len(text) != len(self._text):
            self._closed = None
        self._text = text

    def end(self, start: int) -> int | None:
        """Where the span opening at ``start`` ends, or None while it is open. ``start`` must hold ``{`` or ``[``.

        A span the index has not reached is first scanned on its own, over at most `_SOLO_SCAN` characters: closed
        spans are what the call scanner consumes, so those scans never overlap, and most replies never need the
        index. A span not closed by then makes the index read the text, once.
        """
        if start in self._ends:
            return self._ends[start]
        if start >= self._pos:
            end = json_span_end(self._text, start, start + _SOLO_SCAN)
            if end is not None:
                return end
        self._read()
        return self._ends.get(start)

    def next_closed(self, pos: int) -> int | None:
        """The first opener at or after ``pos`` whose span is closed (reads the whole text)."""
        self._read()
        if self._closed is None:
            self._closed = sorted(self._ends)
        i = bisect.bisect_left(self._closed, pos)
        return self._closed[i] if i < len(self._closed) else None

    def _read(self) -> None:
        text = self._text
        if self._pos >= len(text):
            return
        out, dq, sq = self._out, self._dq, self._sq
        ends = self._ends
        pos = len(text)
        # The hot loop, one step per quote, bracket run or backslash pair: pushes and pops are written out inline.
        for m in _TOKEN.finditer(text, self._pos):  # strings are not skipped: other tracks read inside them
            tok = m.group()
            c = tok[0]
            if c == "{" or c == "[":
                i = m.start()
                if out is None:
                    out = []
                if len(tok) == 1:
                    out.append(i)
                else:
                    out.extend(range(i, i + len(tok)))
            elif c == "}" or c == "]":
                end = m.start()
                for _ in tok:
                    end += 1
                    if not out:
                        break
                    level = out.pop()
                    if isinstance(level, int):
                        ends[level] = end
                    else:
                        for opener in level:
                            ends[opener] = end
                if not out:
                    out = None
            elif c == '"':
                out, dq = dq, out
            elif c == "'":
                i = m.start()
                if i == 0 or not text[i - 1].isalnum():  # `_opens_quote`, inlined in this hot loop
                    out, sq = sq, out
                else:  # an apostrophe in prose: it still closes a '...' string
                    out, sq = _merge(out, sq), None
            elif len(tok) == 1:  # a lone backslash: its pair has not arrived yet
                pos = m.start()
                break
            else:
                # Inside strings the pair is an escape; outside, its second character is read as usual.
                c = tok[1]
                i = m.start() + 1
                if c == '"':
                    dq, out = _merge(dq, out), None
                elif c == "'":
                    sq, out = _merge(sq, out), None
                elif c == "{" or c == "[":
                    if out is None:
                        out = []
                    out.append(i)
                elif (c == "}" or c == "]") and out:
                    level = out.pop()
                    for opener in [level] if isinstance(level, int) else level:
                        ends[opener] = i + 1
                    if not out:
                        out = None
        self._out, self._dq, self._sq = out, dq, sq
        self._pos = pos


def _merge(a: _Stack | None, b: _Stack | None) -> _Stack | None:
    """Two tracks now in the same state: align their stacks at the innermost level and join level by level."""
    if a is None:
        return b
    if b is None:
        return a
    if len(a) < len(b):
        a, b = b, a
    for r in range(1, len(b) + 1):
        la, lb = a[-r], b[-r]
        la = [la] if isinstance(la, int) else la
        lb = [lb] if isinstance(lb, int) else lb
        if len(la) < len(lb):
            la, lb = lb, la
        la.extend(lb)
        a[-r] = la
    return a
