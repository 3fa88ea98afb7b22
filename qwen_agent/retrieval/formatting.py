"""Render retrieved hits as the passage block an agent injects into its prompt, each under its citation marker."""

from __future__ import annotations

from collections.abc import Sequence

from qwen_agent.retrieval.models import Hit

__all__ = ["format_passages"]


def format_passages(hits: Sequence[Hit], *, max_chars_per_passage: int | None = None) -> str:
    """One block per hit: ``[doc.pdf p.3] (Heading)`` on its own line, then the passage text.

    The marker is exactly the citation the model should copy, so small models cite correctly by imitation.
    Returns an empty string for no hits, so the caller's template can say "nothing was found".
    """
    blocks = []
    for hit in hits:
        header = hit.citation
        if hit.heading:
            header += f" ({hit.heading})"
        text = hit.text.strip()
        if max_chars_per_passage is not None and len(text) > max_chars_per_passage:
            text = text[:max_chars_per_passage].rstrip() + " ..."
        blocks.append(f"{header}\n{text}")
    return "\n\n".join(blocks)
