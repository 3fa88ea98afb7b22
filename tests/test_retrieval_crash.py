"""kill -9 of a child process in the middle of writing an index update leaves the previous index loadable.

The child stands in a deterministic hash-seeded embedder for the model (same model id and dimension): what is
under test is the store's write path (SQLite transaction, FAISS/BM25 files, generation switch), and loading
torch in every child would only make the test slow. The parent reopens the store with the real model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_docgen as docgen

from qwen_agent.retrieval import KnowledgeBase

CHILD = textwrap.dedent(
    """
    import hashlib, os, sys, time
    import numpy as np
    from qwen_agent.retrieval import KnowledgeBase
    from qwen_agent.retrieval import index as index_mod, store as store_mod
    from qwen_agent.retrieval.embeddings import DEFAULT_MODEL

    class HashEmbedder:
        model_id = DEFAULT_MODEL
        dim = 384
        def _vec(self, text):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
            return v / np.linalg.norm(v)
        def embed_documents(self, texts, *, show_progress=False):
            return np.stack([self._vec(t) for t in texts])
        def embed_query(self, text):
            return self._vec(text)

    def pause():
        print("READY", flush=True)
        time.sleep(600)

    point = sys.argv[3]
    if point == "mid_insert":
        original_insert = store_mod.Store.insert_file
        def insert_file(self, **kw):
            ids = original_insert(self, **kw)
            pause()
        store_mod.Store.insert_file = insert_file
    elif point == "mid_faiss_write":
        import faiss
        serialized = faiss.serialize_index
        def write_index(index, path, *rest):
            faiss.write_index = original_write
            data = serialized(index).tobytes()
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush(); os.fsync(f.fileno())
            pause()
        original_write = faiss.write_index
        faiss.write_index = write_index
    elif point == "before_commit":
        original_set = store_mod.Store.set_meta
        def set_meta(self, key, value):
            original_set(self, key, value)
            if key == "generation":
                pause()
        store_mod.Store.set_meta = set_meta
    kb = KnowledgeBase.open(sys.argv[1], embedder=HashEmbedder())
    kb.add(sys.argv[2])
    print("FINISHED", flush=True)
    """
)


@pytest.mark.parametrize("point", ["mid_insert", "mid_faiss_write", "before_commit"])
def test_kill_during_write_keeps_previous_index(tmp_path: Path, point: str) -> None:
    docs, store = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    corpus = {d["name"]: d for d in docgen.load_corpus()["documents"]}
    for name in ("helpdesk_faq.html", "garden_guide.md"):
        docgen.write_document(docs, corpus[name])
    KnowledgeBase.build(docs, store, embedder=docgen.shared_embedder()).close()
    before = sorted(p.name for p in store.iterdir())
    (docs / "garden_guide.md").write_text("# Rules\n\nPlot rent is 99 pounds a year.\n")
    (docs / "new.md").write_text("# Parking\n\nVisitors park in the violet car park.\n")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(docs), point],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1],
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip() == "READY", child.stderr.read() if child.stderr else line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert sorted(p.name for p in store.iterdir()) != before or point == "mid_insert"  # it really was mid-write

    kb = KnowledgeBase.open(store, embedder=docgen.shared_embedder())
    stats = kb.stats()
    assert stats["documents"] == 2
    hit = kb.search("yearly plot rent", k=1)[0]
    assert "48 pounds" in hit.text  # the old content, intact
    assert all(h.source != "new.md" for h in kb.search("violet car park", k=5))
    report = kb.add(docs)  # the next writer sweeps the orphaned files and completes the update
    assert report.added == ["new.md"] and report.updated == ["garden_guide.md"]
    assert kb.search("violet car park", k=1)[0].source == "new.md"
    gen = kb._store.generation
    assert sorted(p.name for p in store.glob("vectors.*")) == [f"vectors.{gen}.faiss"]
    kb.close()
