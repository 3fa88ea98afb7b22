"""RAG answers with their sources: an `Assistant` that remembers the passages it gave the model, and the
``url_citation`` annotations (title, document URL, chunk location) for the markers its answer contains."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qwen_agent.agents import Assistant
from qwen_agent.retrieval import Hit

__all__ = ["CitingAssistant", "SourceIndex", "annotations_for"]

_MARKER = re.compile(r"\[([^\[\]\n]{1,200})\]")


class CitingAssistant(Assistant):
    """An `Assistant` for one request: ``hits`` holds the passages retrieved for it."""

    hits: list[Hit]

    def passages(self, question: str) -> list[Hit]:
        hits = super().passages(question)
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


def annotations_for(content: str, hits: list[Hit], base_url: str, profile: str,
                    sources: SourceIndex) -> list[dict[str, Any]]:
    """One ``url_citation`` per source marker in ``content`` that names a retrieved passage."""
    by_citation = {h.citation: h for h in hits}
    by_source: dict[str, Hit] = {}
    for h in hits:
        by_source.setdefault(h.source, h)
    out = []
    for match in _MARKER.finditer(content):
        hit = by_citation.get(match.group(0)) or by_source.get(match.group(1).strip())
        if hit is None:
            continue
        name = sources.register(hit)
        url = f"{base_url}/v1/knowledge/{sources.token}/{quote(profile, safe='')}/{quote(name)}{_location(hit)}"
        out.append({"type": "url_citation", "url_citation": {
            "start_index": match.start(), "end_index": match.end(), "url": url,
            "title": match.group(1).strip(),
            "source": hit.source, "page": hit.page, "sheet": hit.sheet, "heading": hit.heading,
            "chunk_id": hit.chunk_id, "position": hit.position,
        }})
    return out
