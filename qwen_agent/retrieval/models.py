"""Pydantic models that cross the retrieval layer's public boundary: sections, chunks, hits and index reports."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Chunk", "FileError", "Hit", "IndexKind", "IndexReport", "SearchMode", "Section", "make_citation"]

SearchMode = Literal["hybrid", "vector", "bm25"]
IndexKind = Literal["auto", "flat", "ivf", "hnsw", "ivfpq"]


class Section(BaseModel):
    """A coherent piece of one document as a loader sees it: one PDF page, one slide, one sheet, one heading's body.

    Chunks never straddle sections, so every chunk inherits exactly one page/heading/sheet for its citation.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    page: int | None = None
    heading: str | None = None
    sheet: str | None = None


class Chunk(BaseModel):
    """A token-bounded piece of a section, the unit that is embedded, indexed and returned by search."""

    model_config = ConfigDict(frozen=True)

    text: str
    page: int | None = None
    heading: str | None = None
    sheet: str | None = None
    position: int = Field(description="Ordinal of this chunk within its document (0-based), for reading order.")
    n_tokens: int

    def index_text(self) -> str:
        """Text that is embedded and BM25-indexed: the heading is prepended because it often names the topic."""
        prefix = " / ".join(p for p in (self.sheet, self.heading) if p)
        return f"{prefix}\n{self.text}" if prefix else self.text


def make_citation(source: str, page: int | None = None, sheet: str | None = None) -> str:
    """The short marker the model copies into its answer: ``[doc.pdf p.3]``, ``[deck.pptx slide 2]``,
    ``[t.xlsx sheet Q1]``."""
    name = PurePosixPath(source).name or source
    suffix = PurePosixPath(name).suffix.lower()
    if page is not None:
        label = f"slide {page}" if suffix == ".pptx" else f"p.{page}"
        return f"[{name} {label}]"
    if sheet:
        return f"[{name} sheet {sheet}]"
    return f"[{name}]"


class Hit(BaseModel):
    """One retrieved passage with everything needed to show it to a model and cite it."""

    text: str
    source: str = Field(description="Path of the document relative to the folder it was indexed from (posix).")
    path: str = Field(description="Absolute resolved path of the document on disk.")
    page: int | None = None
    heading: str | None = None
    sheet: str | None = None
    position: int | None = None
    score: float = 0.0
    chunk_id: int | None = Field(default=None, description="Row id in the store; None for a whole-document hit.")
    citation: str

    @classmethod
    def build(
        cls,
        *,
        text: str,
        source: str,
        path: str,
        page: int | None,
        heading: str | None,
        sheet: str | None,
        position: int | None,
        score: float,
        chunk_id: int | None,
    ) -> Hit:
        return cls(
            text=text,
            source=source,
            path=path,
            page=page,
            heading=heading,
            sheet=sheet,
            position=position,
            score=score,
            chunk_id=chunk_id,
            citation=make_citation(source, page, sheet),
        )


class FileError(BaseModel):
    """Why one file was not indexed (encrypted, corrupt, outside the folder, unsupported, too large ...)."""

    path: str
    kind: str
    message: str


class IndexReport(BaseModel):
    """What one ``KnowledgeBase.add`` did; ``errors`` lists every file that was skipped, with the reason."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    errors: list[FileError] = Field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    total_chunks: int = 0
    total_documents: int = 0
    index_kind: str = "flat"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors
