"""Turning store rows into `Hit`s: one chunk, or whole documents merged per page/sheet for small corpora."""

from __future__ import annotations

from typing import Any

from qwen_agent.retrieval.models import Hit

__all__ = ["row_hit", "whole_documents"]


def row_hit(row: dict[str, Any], score: float, chunk_id: int | None) -> Hit:
    return Hit.build(
        text=row["text"], source=row["source"], path=row["path"], page=row["page"], heading=row["heading"],
        sheet=row["sheet"], position=row.get("position", row.get("ord")), score=score, chunk_id=chunk_id,
    )


def whole_documents(sections: list[dict[str, Any]]) -> list[tuple[Hit, int]]:
    """Merge consecutive sections of the same document and page/sheet into one hit (keeps page citations)."""
    merged: list[tuple[dict[str, Any], list[str], int]] = []
    for sec in sections:
        key = (sec["path"], sec["page"], sec["sheet"])
        if merged and (merged[-1][0]["path"], merged[-1][0]["page"], merged[-1][0]["sheet"]) == key:
            head, texts, n = merged[-1]
            texts.append(f"{sec['heading']}\n{sec['text']}" if sec["heading"] else sec["text"])
            merged[-1] = (head, texts, n + sec["n_tokens"])
        else:
            text = f"{sec['heading']}\n{sec['text']}" if sec["heading"] else sec["text"]
            merged.append((sec, [text], sec["n_tokens"]))
    return [(row_hit({**head, "text": "\n\n".join(texts), "heading": None}, 1.0, None), n) for head, texts, n in merged]
