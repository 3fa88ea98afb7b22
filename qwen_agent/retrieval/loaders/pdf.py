"""PDF loader (pypdf): one section per page, so every chunk cites its page; encrypted files fail clearly."""

from __future__ import annotations

from pathlib import Path

from qwen_agent.retrieval.errors import LoaderError
from qwen_agent.retrieval.models import Section

__all__ = ["load_pdf"]


def load_pdf(path: Path) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
    except PdfReadError as exc:
        raise LoaderError(str(path), f"is not a readable PDF ({exc}); re-export or repair it", "corrupt") from exc
    if reader.is_encrypted:
        # Files with only an owner password open with an empty user password; anything else needs the password.
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise LoaderError(str(path), f"is encrypted and cannot be opened ({exc})", "encrypted") from exc
        if not opened:
            raise LoaderError(
                str(path), "is password-protected; save an unencrypted copy to index it", kind="encrypted"
            )
    sections = []
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text() or ""
        if text.strip():
            sections.append(Section(text=text, page=number))
    return sections
