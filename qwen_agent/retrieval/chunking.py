"""Split sections into token-bounded, overlapping chunks on paragraph, line and sentence boundaries (CJK-aware).

Tokens are counted by a pluggable ``TokenCounter``. The knowledge base passes the embedding model's own
tokenizer (exact, so no chunk is silently truncated by the embedder); without one, a fast approximation counts
each CJK character as one token (BERT-style tokenizers split CJK per character), each plain word as
1 + len/6 pieces and each word with digits as 1 + len/2 pieces (ids and hashes explode into many pieces).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pydantic import BaseModel, Field, model_validator

from qwen_agent.retrieval.models import Chunk, Section

__all__ = ["ChunkingConfig", "TokenCounter", "chunk_section", "chunk_sections", "count_tokens"]

_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\uac00-\ud7af"  # hangul
)
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\s{_CJK}\W]+|[^\s\w]", re.UNICODE)
# For joining, CJK punctuation (。，！) and full-width forms count as CJK too: no space goes next to them.
_CJK_JOIN_RE = re.compile(rf"[{_CJK}\u3000-\u303f\uff00-\uffef]")
# A sentence ends at . ! ? ; followed by whitespace, or right after a CJK full stop/question/exclamation mark.
_SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n+")


class ChunkingConfig(BaseModel):
    """How big chunks are. Defaults suit ~200-token passages within MiniLM (256) and e5 (512) token windows."""

    max_tokens: int = Field(default=200, ge=16)
    overlap_tokens: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self


TokenCounter = Callable[[str], int]
_DIGIT_RE = re.compile(r"\d")


def count_tokens(text: str) -> int:
    """Approximate subword-token count: CJK characters and punctuation 1, words 1 + len // 6 (digits: len // 2)."""
    total = 0
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        if len(piece) > 1:
            total += 1 + (len(piece) // 2 if _DIGIT_RE.search(piece) else len(piece) // 6)
        else:
            total += 1
    return total


def _is_cjk(ch: str) -> bool:
    return bool(_CJK_JOIN_RE.match(ch))


def _join(parts: list[str], sep: str) -> str:
    """Join pieces; between two CJK characters a space separator is dropped (Chinese has no spaces)."""
    if sep != " ":
        return sep.join(parts)
    out = ""
    for part in parts:
        if out and not (_is_cjk(out[-1]) and part and _is_cjk(part[0])):
            out += " "
        out += part
    return out


def _windows(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Last resort for a "sentence" longer than a chunk (tables, CJK without punctuation): cut by token count."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for match in re.finditer(rf"[{_CJK}]|\S+", text):
        word = match.group()
        cost = count(word) or 1
        if current and used + cost > max_tokens:
            pieces.append(_join(current, " "))
            current, used = [], 0
        current.append(word)
        used += cost
    if current:
        pieces.append(_join(current, " "))
    return pieces


def _units(text: str, max_tokens: int, count: TokenCounter) -> list[tuple[str, str]]:
    """Break text into (unit, separator-before-next) pieces each <= max_tokens, preferring the coarsest boundary."""
    units: list[tuple[str, str]] = []
    for para in _PARAGRAPH_RE.split(text):
        para = para.strip()
        if not para:
            continue
        if count(para) <= max_tokens:
            units.append((para, "\n\n"))
            continue
        for line in para.split("\n"):
            line = line.strip()
            if not line:
                continue
            if count(line) <= max_tokens:
                units.append((line, "\n"))
                continue
            for sentence in _SENTENCE_RE.split(line):
                sentence = sentence.strip()
                if not sentence:
                    continue
                if count(sentence) <= max_tokens:
                    units.append((sentence, " "))
                else:
                    units.extend((w, " ") for w in _windows(sentence, max_tokens, count))
            units[-1] = (units[-1][0], "\n")
        units[-1] = (units[-1][0], "\n\n")
    return units


def _assemble(units: list[tuple[str, str]]) -> str:
    out = ""
    for i, (text, _sep) in enumerate(units):
        if i:
            sep = units[i - 1][1]
            if sep == " ":
                out = _join([out, text], " ")
                continue
            out += sep
        out += text
    return out


def chunk_section(
    section: Section, config: ChunkingConfig, start_position: int = 0, count: TokenCounter = count_tokens
) -> list[Chunk]:
    """Greedily pack units up to max_tokens; each new chunk repeats trailing units worth <= overlap_tokens."""
    units = _units(section.text, config.max_tokens, count)
    costs = [count(u) for u, _ in units]
    chunks: list[Chunk] = []
    start = 0
    while start < len(units):
        end, used = start, 0
        while end < len(units) and (end == start or used + costs[end] <= config.max_tokens):
            used += costs[end]
            end += 1
        chunks.append(
            Chunk(
                text=_assemble(units[start:end]),
                page=section.page,
                heading=section.heading,
                sheet=section.sheet,
                position=start_position + len(chunks),
                n_tokens=used,
            )
        )
        if end >= len(units):
            break
        # Step back over whole units for the overlap, but always make progress.
        back, carried = end, 0
        while back - 1 > start and carried + costs[back - 1] <= config.overlap_tokens:
            back -= 1
            carried += costs[back]
        start = back
    return chunks


def chunk_sections(
    sections: Iterable[Section], config: ChunkingConfig | None = None, count: TokenCounter | None = None
) -> list[Chunk]:
    """Chunk every section of one document; positions run across the whole document."""
    config = config or ChunkingConfig()
    counter = count or count_tokens
    chunks: list[Chunk] = []
    for section in sections:
        chunks.extend(chunk_section(section, config, start_position=len(chunks), count=counter))
    return chunks
