"""The overlapped prepare/embed pipeline: results in file order, groups embedded while files are still being
prepared, and an embedding error surfaces in the caller without leaving the worker thread blocked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qwen_agent.retrieval.discovery import FoundFile
from qwen_agent.retrieval.indexing import Prepared, prepare_and_embed
from qwen_agent.retrieval.models import Chunk, Section


def _prepared(i: int, n_chunks: int) -> Prepared:
    chunks = [Chunk(text=f"doc {i} chunk {j}", position=j, n_tokens=4) for j in range(n_chunks)]
    return Prepared(found_path=f"/d/{i}.md", source=f"{i}.md", sha256=str(i), size=1, sections=[Section(text="x")],
                    section_tokens=[1], chunks=chunks, tokens=[["doc"]] * n_chunks)


class RecordingEmbedder:
    model_id = "fake"
    dim = 2

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []  # (texts, files prepared when the call started)
        self.prepared = 0
        self.fail = fail

    def embed_documents(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if self.fail:
            raise RuntimeError("model crashed")
        self.calls.append((len(texts), self.prepared))
        return np.asarray([[float(t.split()[1]), float(t.split()[3])] for t in texts], dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.zeros(2, dtype=np.float32)


def _files(n: int) -> list[FoundFile]:
    return [FoundFile(path=Path(f"/d/{i}.md"), source=f"{i}.md", root=Path("/d")) for i in range(n)]


def test_vectors_follow_file_order_and_embedding_overlaps_preparation() -> None:
    embedder = RecordingEmbedder()

    def prepare_one(file: FoundFile) -> Prepared | None:
        i = int(file.source.split(".")[0])
        time.sleep(0.002)
        embedder.prepared += 1
        return None if i % 5 == 4 else _prepared(i, 3)

    outcomes, vectors = prepare_and_embed(_files(40), prepare_one, embedder, group_chunks=12)
    assert [o.source if o else None for o in outcomes] == [None if i % 5 == 4 else f"{i}.md" for i in range(40)]
    expected = [[i, j] for i in range(40) if i % 5 != 4 for j in range(3)]
    assert vectors is not None and vectors.tolist() == expected
    assert len(embedder.calls) > 1 and embedder.calls[0][1] < 40  # the first group went out before the last file


def test_embedding_error_reaches_the_caller_and_stops_the_worker() -> None:
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="model crashed"):
        prepare_and_embed(_files(500), lambda f: _prepared(0, 2), RecordingEmbedder(fail=True), group_chunks=4)
    assert threading.active_count() == before


def test_nothing_to_embed() -> None:
    outcomes, vectors = prepare_and_embed(_files(3), lambda f: None, RecordingEmbedder())
    assert outcomes == [None, None, None] and vectors is None
