"""Attach source markers to an answer the model wrote without them, from the passages it was given.

Small models answer from the passages correctly but rarely copy the ``[doc.pdf p.3]`` markers. When an answer
has no marker, the passage that shares the most distinctive words and numbers with it is cited; an answer that
shares too little with every passage (a refusal, a guess) gets no citation rather than a false one. A terse answer
("28 days") is cited when all of its words are in the passage and one of them is a number: it has fewer than the
three shared words a longer answer needs, and the 0.5B model writes such answers often.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen_agent.retrieval import Hit

__all__ = ["best_sources", "cite", "has_citation"]

_MARKER = re.compile(r"\[[^\[\]\n]{1,200}\]")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]{3,}|[\u4e00-\u9fff]", re.UNICODE)
_COMMON = frozenset(
    [
        "the", "and", "for", "that", "this", "with", "from", "are", "was", "were", "you", "your", "have", "has",
        "had", "not", "but", "can", "will", "would", "should", "could", "about", "into", "than", "then", "them",
        "they", "their", "there", "what", "which", "when", "where", "who", "how", "does", "did", "also", "more",
        "most", "such", "only", "other", "some", "any", "each", "been", "being", "its", "it's", "our", "out",
        "per", "all", "one", "two",
    ]
)


def _tokens(text: str) -> set[str]:
    return {t.lower() for t in _TOKEN.findall(text) if t.lower() not in _COMMON}


def has_citation(answer: str) -> bool:
    return bool(_MARKER.search(answer))


def best_sources(answer: str, hits: Sequence[Hit], *, min_shared: int = 3) -> list[str]:
    """Citations of the passages the answer draws on: the best-matching one, plus any other scoring as well.

    Numbers count double (a figure in the answer is the strongest sign of where it came from).
    """
    words = _tokens(answer)
    scored = []
    for hit in hits:
        shared = words & _tokens(hit.text)
        score = sum(2 if s[0].isdigit() else 1 for s in shared)
        terse = len(words) >= 2 and shared == words and any(w[0].isdigit() for w in words)
        if len(shared) >= min_shared or terse:
            scored.append((score, hit.citation))
    if not scored:
        return []
    top = max(s for s, _ in scored)
    return list(dict.fromkeys(c for s, c in sorted(scored, reverse=True) if s == top))


def cite(answer: str, hits: Sequence[Hit]) -> str:
    """``answer`` with the best source markers appended when it has none (unchanged otherwise)."""
    if not answer.strip() or has_citation(answer):
        return answer
    sources = best_sources(answer, hits)
    return f"{answer.rstrip()} {' '.join(sources)}" if sources else answer
