"""Word (python-docx; sections per heading, tables as rows) and PowerPoint (python-pptx; one section per slide)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwen_agent.retrieval.models import Section

__all__ = ["load_docx", "load_pptx"]


def _docx_blocks(document: Any) -> Iterator[tuple[str, str]]:
    """Yield ("heading"|"text", text) for paragraphs and tables in body order (python-docx lists them apart)."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style = (item.style.name if item.style is not None else "") or ""
            text = item.text.strip()
            if not text:
                continue
            if style.startswith("Heading") or style == "Title":
                yield "heading", text
            else:
                yield "text", text
        elif isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            yield "text", "\n".join(r for r in rows if r.strip(" |"))


def load_docx(path: Path) -> list[Section]:
    import docx

    document = docx.Document(str(path))
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []

    def flush() -> None:
        if body:
            sections.append(Section(text="\n\n".join(body), heading=heading))
        body.clear()

    for kind, text in _docx_blocks(document):
        if kind == "heading":
            flush()
            heading = text
        else:
            body.append(text)
    flush()
    return sections


def _shape_texts(shape: Any) -> Iterator[str]:
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = shape.text_frame.text.strip()
        if text:
            yield text
    if getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            line = " | ".join(cell.text.strip() for cell in row.cells)
            if line.strip(" |"):
                yield line
    for child in getattr(shape, "shapes", []):  # group shapes
        yield from _shape_texts(child)


def load_pptx(path: Path) -> list[Section]:
    from pptx import Presentation

    deck = Presentation(str(path))
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        title_id = title_shape.shape_id if title_shape is not None else None
        # python-pptx hands out a new proxy per access, so the title is recognised by its shape id.
        parts = [t for shape in slide.shapes if shape.shape_id != title_id for t in _shape_texts(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(notes)
        if parts or title:
            sections.append(Section(text="\n\n".join(parts) or title, page=number, heading=title or None))
    return sections
