"""Preparing files for the index (load, chunk, BM25-tokenise) in a worker thread while the embedder encodes.

Loading and chunking are Python (they hold the GIL); embedding runs in onnxruntime or torch, which release it. So
a producer thread prepares documents in order while the caller's thread embeds every group of finished chunks as
soon as ``group_chunks`` are waiting - the two overlap instead of running one after the other. Results come back in
file order, so the caller commits exactly what a sequential run would have.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from qwen_agent.retrieval.bm25 import tokenize
from qwen_agent.retrieval.chunking import ChunkingConfig, TokenCounter, chunk_sections
from qwen_agent.retrieval.discovery import FoundFile, file_sha256
from qwen_agent.retrieval.embeddings import Embedder
from qwen_agent.retrieval.errors import LoaderError
from qwen_agent.retrieval.loaders import load_document
from qwen_agent.retrieval.models import Chunk, FileError, IndexReport, Section

__all__ = ["Prepared", "prepare", "prepare_and_embed"]

GROUP_CHUNKS = 256
_DONE = object()


class Prepared(BaseModel):
    """A document loaded, chunked and tokenised, waiting for its vectors."""

    found_path: str
    source: str
    sha256: str
    size: int
    sections: list[Section]
    section_tokens: list[int]
    chunks: list[Chunk]
    tokens: list[list[str]]


def prepare(
    file: FoundFile, record: Any, report: IndexReport, *, chunking: ChunkingConfig, max_bytes: int,
    counter: TokenCounter,
) -> Prepared | None:
    """Load and chunk one file; None when it is unchanged (sha256) or unreadable (recorded in ``report``)."""
    try:
        size = file.path.stat().st_size
        if size > max_bytes:
            raise LoaderError(str(file.path), f"is {size} bytes, over the {max_bytes} limit", "too_large")
        sha = file_sha256(file.path)
        if record is not None and record["sha256"] == sha:
            report.unchanged.append(file.source)
            return None
        sections = load_document(file.path)
    except LoaderError as exc:
        report.errors.append(FileError(path=str(file.path), kind=exc.kind, message=str(exc)))
        return None
    except OSError as exc:
        report.errors.append(FileError(path=str(file.path), kind="unreadable", message=f"{file.path}: {exc}"))
        return None
    chunks = chunk_sections(sections, chunking, counter)
    (report.updated if record is not None else report.added).append(file.source)
    return Prepared(
        found_path=str(file.path), source=file.source, sha256=sha, size=size, sections=sections,
        section_tokens=[counter(s.text) for s in sections], chunks=chunks,
        tokens=[tokenize(c.index_text()) for c in chunks],
    )


def prepare_and_embed(
    files: Sequence[FoundFile],
    prepare_one: Callable[[FoundFile], Prepared | None],
    embedder: Embedder,
    *,
    progress: bool = False,
    group_chunks: int = GROUP_CHUNKS,
) -> tuple[list[Prepared | None], np.ndarray | None]:
    """``prepare_one`` over ``files`` in a worker thread, embedding finished chunks in groups meanwhile.

    Returns one outcome per file (in order) and the vectors of all prepared chunks, in the same order.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=64)
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for file in files:
                if stop.is_set():
                    return
                handoff.put(prepare_one(file))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
        finally:
            handoff.put(_DONE)

    worker = threading.Thread(target=produce, name="qwen-agent-index-prepare", daemon=True)
    worker.start()
    outcomes: list[Prepared | None] = []
    pending: list[str] = []
    parts: list[np.ndarray] = []
    bar = _progress_bar() if progress else None

    def flush() -> None:
        if pending:
            parts.append(embedder.embed_documents(pending))
            if bar is not None:
                bar.update(len(pending))
            pending.clear()

    try:
        while (item := handoff.get()) is not _DONE:
            outcomes.append(item)
            if item is not None:
                pending.extend(c.index_text() for c in item.chunks)
                if bar is not None:
                    bar.total = (bar.total or 0) + len(item.chunks)
                    bar.refresh()
                if len(pending) >= group_chunks:
                    flush()
        worker.join()
        if failure:
            raise failure[0]
        flush()
    finally:
        stop.set()
        while worker.is_alive():  # an embedding error must not leave the producer blocked on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        if bar is not None:
            bar.close()
    vectors = np.concatenate(parts) if parts else None
    return outcomes, vectors


def _progress_bar() -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=0, unit="chunk", desc="embedding")
