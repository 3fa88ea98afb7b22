"""Loaders for plain text, Markdown (sections per heading) and HTML (main content via trafilatura, as Markdown)."""

from __future__ import annotations

import logging
from pathlib import Path

from qwen_agent.retrieval.errors import LoaderError
from qwen_agent.retrieval.models import Section

__all__ = ["load_html", "load_markdown", "load_text", "markdown_sections", "read_text_file"]

logger = logging.getLogger(__name__)


def read_text_file(path: Path) -> str:
    """Decode a text file: UTF-8 (with or without BOM) first, else charset_normalizer's best guess."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise LoaderError(str(path), "is not text in any known encoding (binary file?)", kind="corrupt")
    # Short Western text often ties between cp1250/cp1252/...; the tie goes to cp1252, by far the most common.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return str(match)
    return str(best)


def load_text(path: Path) -> list[Section]:
    return [Section(text=read_text_file(path))]


def markdown_sections(source: str) -> list[Section]:
    """Split Markdown at ATX/setext headings; each section's heading is its heading path ("Guide > Install").

    markdown-it-py finds the headings so that ``#`` lines inside code fences are not mistaken for headings.
    """
    from markdown_it import MarkdownIt

    lines = source.splitlines()
    tokens = MarkdownIt("commonmark").parse(source)
    headings: list[tuple[int, int, int, str]] = []  # (start line, end line, level, text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None:
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            headings.append((tok.map[0], tok.map[1], int(tok.tag[1:]), title))
    if not headings:
        return [Section(text=source)]
    sections: list[Section] = []
    preface = "\n".join(lines[: headings[0][0]]).strip()
    if preface:
        sections.append(Section(text=preface))
    stack: list[tuple[int, str]] = []
    for n, (_start, end, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        body_end = headings[n + 1][0] if n + 1 < len(headings) else len(lines)
        body = "\n".join(lines[end:body_end]).strip()
        if body:
            sections.append(Section(text=body, heading=" > ".join(t for _, t in stack if t) or None))
    return sections


def load_markdown(path: Path) -> list[Section]:
    return markdown_sections(read_text_file(path))


def load_html(path: Path) -> list[Section]:
    """Extract the main content with trafilatura (drops navigation, footers, scripts) and keep its headings.

    trafilatura is a maintained extractor built for exactly this; its Markdown output keeps ``#`` headings, so
    the Markdown sectioner gives HTML documents heading metadata too. Falls back to lxml's plain text when
    trafilatura finds no main content (tiny pages).
    """
    import trafilatura

    html = read_text_file(path)
    text = trafilatura.extract(
        html, output_format="markdown", include_tables=True, include_formatting=True, include_comments=False
    )
    if not text or not text.strip():
        logger.debug("trafilatura found no main content in %s; using the whole page text", path)
        import lxml.html

        root = lxml.html.fromstring(html)
        for bad in root.xpath("//script|//style|//noscript"):
            bad.drop_tree()
        text = root.text_content()
    return markdown_sections(text)
