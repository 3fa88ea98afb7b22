"""RAG answers with their sources: an `Assistant` that remembers the passages it gave the model, and the
``url_citation`` annotations (title, document URL, chunk location) for the markers its answer contains."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qwen_agent.agents import Assistant
from qwen_agent.agents.assistant import is_relevant, passages_within
from qwen_agent.retrieval import Hit, KnowledgeBase

__all__ = ["CitingAssistant", "SourceIndex", "annotations_for"]

_MARKER = re.compile(r"\[([^\[\]\n]{1,200})\]")


class CitingAssistant(Assistant):
    """An `Assistant` for one request: ``hits`` holds the passages retrieved for it.

    ``uploads`` is the knowledge base of the documents the user uploaded into the session. When both it and the
    profile's documents have relevant passages each gets half the token budget (uploads first: the user brought
    them for this conversation); when only one has, it gets all of it.
    """

    hits: list[Hit]

    def __init__(self, *args: Any, uploads: KnowledgeBase | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uploads = uploads
        self.hits = []

    def passages(self, question: str) -> list[Hit]:
        if self.uploads is None:
            hits = super().passages(question)
        else:
            budget, floor = self.token_budget, self.min_relevance
            use_mine = is_relevant(self.uploads, question, floor)
            use_shared = is_relevant(self.knowledge, question, floor)
            split = budget // 2 if use_mine and use_shared else budget
            hits = (passages_within(self.uploads, question, budget - split if use_shared else budget)
                    if use_mine else [])
            hits += passages_within(self.knowledge, question, split) if use_shared else []
        self.hits = hits
        return hits


class SourceIndex:
    """The documents a profile's answers cited, served back under an unguessable per-server path.

    Only documents that were cited are servable, by their exact source name: a request can name nothing else.
    """

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(18)
        self._paths: dict[str, Path] = {}

    def register(self, hit: Hit) -> str:
        self._paths[hit.source] = Path(hit.path)
        return hit.source

    def path(self, source: str) -> Path | None:
        return self._paths.get(source)


def _location(hit: Hit) -> str:
    if hit.page is not None:
        return f"#page={hit.page}"
    return ""


def annotations_for(content: str, hits: list[Hit], base_url: str, profile: str, sources: SourceIndex,
                    session_url: Callable[[Hit], str | None] | None = None) -> list[dict[str, Any]]:
    """One ``url_citation`` per source marker in ``content`` that names a retrieved passage.

    ``session_url`` gives the URL of a passage from the session's own uploads (served only under the session's
    token); the profile's documents are served under the profile's route.
    """
    by_citation = {h.citation: h for h in hits}
    by_source: dict[str, Hit] = {}
    for h in hits:
        by_source.setdefault(h.source, h)
    out = []
    for match in _MARKER.finditer(content):
        hit = by_citation.get(match.group(0)) or by_source.get(match.group(1).strip())
        if hit is None:
            continue
        own = session_url(hit) if session_url is not None else None
        if own is not None:
            url = f"{own}{_location(hit)}"
        else:
            name = sources.register(hit)
            url = f"{base_url}/v1/knowledge/{sources.token}/{quote(profile, safe='')}/{quote(name)}{_location(hit)}"
        out.append({"type": "url_citation", "url_citation": {
            "start_index": match.start(), "end_index": match.end(), "url": url,
            "title": match.group(1).strip(),
            "source": hit.source, "page": hit.page, "sheet": hit.sheet, "heading": hit.heading,
            "chunk_id": hit.chunk_id, "position": hit.position,
        }})
    return out
