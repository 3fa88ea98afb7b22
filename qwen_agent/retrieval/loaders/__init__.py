"""Turn one file into Sections, picking the loader by file suffix; unknown or broken files raise LoaderError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qwen_agent.retrieval.errors import LoaderError
from qwen_agent.retrieval.models import Section

__all__ = ["SUPPORTED_SUFFIXES", "Loader", "is_supported", "load_document"]

Loader = Callable[[Path], list[Section]]


def _registry() -> dict[str, Loader]:
    # Imported here so `import qwen_agent.retrieval` does not pull pypdf/docx/pandas until a file is loaded.
    from qwen_agent.retrieval.loaders import office, pdf, tabular, text

    return {
        ".txt": text.load_text,
        ".text": text.load_text,
        ".rst": text.load_text,
        ".md": text.load_markdown,
        ".markdown": text.load_markdown,
        ".html": text.load_html,
        ".htm": text.load_html,
        ".pdf": pdf.load_pdf,
        ".docx": office.load_docx,
        ".pptx": office.load_pptx,
        ".csv": tabular.load_csv,
        ".tsv": tabular.load_csv,
        ".xlsx": tabular.load_xlsx,
    }


SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".text", ".rst", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".tsv", ".xlsx"}
)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def load_document(path: Path) -> list[Section]:
    """Load ``path`` into non-empty sections. Any failure becomes a LoaderError naming the file and what to do."""
    loader = _registry().get(path.suffix.lower())
    if loader is None:
        raise LoaderError(str(path), f"unsupported file type '{path.suffix}'", kind="unsupported")
    try:
        sections = loader(path)
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(
            str(path), f"could not be parsed ({type(exc).__name__}: {exc}); the file is probably corrupt", "corrupt"
        ) from exc
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LoaderError(str(path), "contains no extractable text (a scanned PDF needs OCR first)", kind="empty")
    return sections
