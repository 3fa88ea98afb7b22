"""KnowledgeBase: the facade the Assistant, the retrieval tool and the CLI use to index folders and search them."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, Field

from qwen_agent.retrieval.bm25 import BM25Index
from qwen_agent.retrieval.chunking import ChunkingConfig, TokenCounter, count_tokens
from qwen_agent.retrieval.discovery import FoundFile, discover
from qwen_agent.retrieval.embeddings import Embedder, SentenceTransformerEmbedder
from qwen_agent.retrieval.errors import StoreError
from qwen_agent.retrieval.fusion import FusionConfig, fuse
from qwen_agent.retrieval.hits import row_hit, whole_documents
from qwen_agent.retrieval.index import VectorIndex, choose_kind
from qwen_agent.retrieval.indexing import Prepared, prepare, prepare_and_embed
from qwen_agent.retrieval.models import Hit, IndexKind, IndexReport, SearchMode
from qwen_agent.retrieval.pgvector_store import PgVectorStore, open_synced
from qwen_agent.retrieval.search import Reranker
from qwen_agent.retrieval.store import Store
from qwen_agent.retrieval.store_indexes import build_bm25, drop_generation, load_bm25, load_vectors, updated_vectors
from qwen_agent.retrieval.vector_store import VectorStore
from qwen_agent.tracing import genai
from qwen_agent.tracing.api import capture_content, start_span

__all__ = ["KnowledgeBase", "KnowledgeBaseConfig"]

logger = logging.getLogger(__name__)

#: Candidates an IVF-PQ index proposes per wanted hit before exact re-scoring. On clustered 384-dim vectors,
#: recall@10 at 100k: 0.79 at x4, 0.98 at x8, 1.00 at x16; at 1M: 0.69 at x16, 0.98 at x64, 1.00 at x200 (p50 2.7,
#: 3.5 and 5.7 ms with the exact vectors memory-mapped). The codes rank, exact vectors decide; nprobe 32 -> 128
#: bought nothing at 1M, the codes' ranking is the limit.
REFINE_FACTOR = 64


class KnowledgeBaseConfig(BaseModel):
    """Tuning knobs; the defaults suit multilingual-e5-small / all-MiniLM-L6-v2 on a laptop CPU."""

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    index_kind: IndexKind = "auto"
    max_file_bytes: int = Field(default=100 * 1024 * 1024, description="Larger files are skipped with an error.")
    candidates: int = Field(default=50, description="Per-retriever candidate list length for fusion/reranking.")
    rerank_candidates: int = 20
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    #: Where vectors are searched: FAISS files next to the store (default), or a PostgreSQL + pgvector table.
    vector_store: Literal["faiss", "pgvector"] = "faiss"
    #: PostgreSQL connection string for ``pgvector`` (default: ``$QWEN_AGENT_PG_DSN``; never written to the store).
    pg_dsn: str | None = None
    #: Table for ``pgvector`` (default: one per store folder, `pgvector_store.default_table`).
    pg_table: str | None = None


class KnowledgeBase:
    """Index documents into a store directory and search them (vector, BM25 or hybrid)."""

    def __init__(
        self,
        store: Store,
        *,
        embedder: Embedder | None = None,
        config: KnowledgeBaseConfig | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self._store = store
        self.config = config or KnowledgeBaseConfig()
        self.reranker = reranker
        stored_model = store.get_meta("model_id")
        if embedder is None:
            embedder = SentenceTransformerEmbedder(stored_model)
        elif stored_model is not None and embedder.model_id != stored_model:
            raise StoreError(
                f"{store.folder} was indexed with embedding model '{stored_model}', not '{embedder.model_id}'; "
                "open it with that model or index into a new store."
            )
        self.embedder = embedder
        self._counter: TokenCounter = count_tokens
        if isinstance(embedder, SentenceTransformerEmbedder):
            self._counter = embedder.token_counter() or count_tokens
        self._lock = threading.RLock()
        self._loaded_gen: int | None = None
        self._vectors: VectorStore | None = None
        self._bm25: BM25Index | None = None
        self.last_report: IndexReport | None = None

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        store_path: str | os.PathLike[str],
        *,
        create: bool = False,
        embedder: Embedder | None = None,
        model: str | None = None,
        config: KnowledgeBaseConfig | None = None,
        reranker: Reranker | None = None,
    ) -> KnowledgeBase:
        """Open an existing store (``create=True`` makes an empty one). ``model``: a sentence-transformers path."""
        if embedder is None and model is not None:
            embedder = SentenceTransformerEmbedder(model)
        store = Store(Path(store_path), create=create)
        return cls(store, embedder=embedder, config=config, reranker=reranker)

    @classmethod
    def build(
        cls,
        docs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        store_path: str | os.PathLike[str],
        *,
        progress: bool = False,
        **kwargs: Any,
    ) -> KnowledgeBase:
        """Create or update the store at ``store_path`` from ``docs``; the IndexReport is in ``.last_report``."""
        kb = cls.open(store_path, create=True, **kwargs)
        kb.add(docs, progress=progress)
        return kb

    def close(self) -> None:
        if isinstance(self._vectors, PgVectorStore):
            self._vectors.close()
        self._store.close()

    def _uses_pgvector(self) -> bool:
        """Chosen at the first write and remembered in the store, so reopening needs no option (only the DSN)."""
        stored = self._store.get_meta("vector_store")
        return (stored or self.config.vector_store) == "pgvector"

    def _pg(self, dim: int) -> PgVectorStore:
        if isinstance(self._vectors, PgVectorStore):
            return self._vectors
        table = self.config.pg_table or self._store.get_meta("pg_table")
        return open_synced(self._store, self.config.pg_dsn, table, dim)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store_path(self) -> Path:
        return self._store.folder

    def stats(self) -> dict[str, Any]:
        docs, chunks, tokens = self._store.counts()
        self._ensure_loaded()
        kind = self._vectors.kind if self._vectors is not None else "flat"
        return {"documents": docs, "chunks": chunks, "tokens": tokens, "index_kind": kind}

    # --- indexing ---------------------------------------------------------------------------------------------
    def add(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, progress: bool = False
    ) -> IndexReport:
        """Index new and changed files under ``paths``; drop indexed files that vanished from a given folder.

        Only files whose sha256 changed are re-read and re-embedded. A file that fails to load is reported in
        ``errors`` (and its stale chunks, if any, removed) while the rest is indexed.
        """
        started = time.perf_counter()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        found, errors, roots = discover(paths)
        report = IndexReport(errors=errors)
        existing = self._store.files()
        seen = {str(f.path) for f in found}
        stale: list[int] = []
        for path, record in existing.items():
            if path not in seen and any(Path(path).is_relative_to(root) for root in roots):
                stale.append(int(record["id"]))
                report.removed.append(str(record["source"]))
        prepared: list[Prepared] = []

        def prepare_one(file: FoundFile) -> Prepared | None:
            return prepare(
                file, existing.get(str(file.path)), report, chunking=self.config.chunking,
                max_bytes=self.config.max_file_bytes, counter=self._counter,
            )

        outcomes, vectors = prepare_and_embed(found, prepare_one, self.embedder, progress=progress)
        for file, outcome in zip(found, outcomes, strict=True):
            if outcome is not None:
                prepared.append(outcome)
                if str(file.path) in existing:
                    stale.append(int(existing[str(file.path)]["id"]))
            elif str(file.path) in existing and file.source not in report.unchanged:
                stale.append(int(existing[str(file.path)]["id"]))  # now unreadable: its old text is not trusted
                report.removed.append(file.source)
        if stale or prepared:
            self._commit(stale, prepared, vectors, report)
        docs, chunks, _ = self._store.counts()
        report.total_documents, report.total_chunks = docs, chunks
        report.index_kind = self._vectors.kind if self._vectors is not None else "flat"
        report.seconds = time.perf_counter() - started
        self.last_report = report
        for err in report.errors:
            logger.warning("not indexed: %s", err.message)
        return report

    def _commit(
        self, stale: list[int], prepared: list[Prepared], vectors: np.ndarray | None, report: IndexReport
    ) -> None:
        store = self._store
        with self._lock:
            self._ensure_loaded()
            # Opened (and re-synced if needed) before this write changes anything in SQLite.
            pg = self._pg(self._dim()) if self._uses_pgvector() else None
            try:
                with store.write():
                    gen = store.generation
                    removed: list[int] = []
                    for file_id in stale:
                        removed.extend(store.delete_file(file_id))
                    new_ids: list[int] = []
                    offset = 0
                    for doc in prepared:
                        n = len(doc.chunks)
                        vecs = vectors[offset : offset + n] if vectors is not None else np.zeros((0, 1), np.float32)
                        offset += n
                        new_ids += store.insert_file(
                            path=doc.found_path, source=doc.source, sha256=doc.sha256, size=doc.size,
                            sections=doc.sections, section_tokens=doc.section_tokens, chunks=doc.chunks,
                            tokens=doc.tokens, vectors=vecs,
                        )
                    if new_ids and store.get_meta("model_id") is None:
                        store.set_meta("model_id", self.embedder.model_id)
                        store.set_meta("dim", str(self.embedder.dim))
                    vindex: VectorStore
                    if pg is not None:
                        # PostgreSQL commits first, stamped gen + 1: a crash before SQLite's commit leaves it one
                        # generation ahead, which the next load sees and repairs from SQLite.
                        pg.apply(np.asarray(removed, dtype=np.int64), np.asarray(new_ids, dtype=np.int64),
                                 vectors, gen + 1)
                        store.set_meta("vector_store", "pgvector")
                        store.set_meta("pg_table", pg.table)
                        vindex = pg
                    else:
                        current = self._vectors if isinstance(self._vectors, VectorIndex) else None
                        vindex = updated_vectors(store, current, self._dim(), self.config.index_kind, removed,
                                                 new_ids, vectors)
                        vindex.save(store.faiss_path(gen + 1))
                    bm25 = build_bm25(store)
                    bm25.save(store.bm25_path(gen + 1))
                    store.set_meta("index_kind", vindex.kind)
                    store.set_meta("generation", str(gen + 1))
            except BaseException:
                self._loaded_gen = None  # in-memory indexes may have been mutated; reload from disk
                raise
            self._vectors, self._bm25, self._loaded_gen = vindex, bm25, gen + 1
            drop_generation(store, gen)
            report.chunks_added, report.chunks_removed = len(new_ids), len(removed)

    def _dim(self) -> int:
        stored = self._store.get_meta("dim")
        return int(stored) if stored else self.embedder.dim

    # --- loading indexes --------------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        """Load the current generation's index files; rebuild them from SQLite if missing or damaged."""
        with self._lock:
            gen = self._store.generation
            if gen == self._loaded_gen:
                return
            if gen == 0 or self._store.get_meta("dim") is None:
                self._vectors, self._bm25, self._loaded_gen = None, None, gen
                return
            dim = self._dim()
            _, total, _ = self._store.counts()
            kind = self._store.get_meta("index_kind") or choose_kind(total, self.config.index_kind)
            vectors: VectorStore = self._load_pg(dim, gen, total) if self._uses_pgvector() \
                else load_vectors(self._store, dim, gen, total, kind, self.config.index_kind)
            self._vectors, self._bm25, self._loaded_gen = vectors, load_bm25(self._store, gen, total), gen

    def _load_pg(self, dim: int, gen: int, total: int) -> PgVectorStore:
        """The table, re-synced from SQLite when another writer or a crash left it at another generation."""
        pg = self._pg(dim)
        if pg.generation != gen or len(pg) != total:
            pg.close()
            self._vectors = None
            pg = self._pg(dim)
        return pg

    # --- searching --------------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 5,
        mode: SearchMode = "hybrid",
        *,
        rerank: bool | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Top-``k`` chunks for ``query``. ``hybrid`` fuses vector and BM25 rankings (``config.fusion``).

        ``rerank`` defaults to "yes if a reranker was configured"; it re-scores the fused top candidates.
        ``query_vector`` lets a caller that embedded many queries in one batch skip the per-query embedding.
        Scores: cosine for vector, BM25 for bm25, the fusion's for hybrid, the cross-encoder's when reranked.
        """
        if mode not in ("hybrid", "vector", "bm25"):
            raise ValueError(f"mode must be 'hybrid', 'vector' or 'bm25', not {mode!r}")
        if not query.strip() or k <= 0:
            return []
        span = start_span(f"retrieval {self._store.folder.name}", {
            genai.OPERATION: "retrieval", genai.DATA_SOURCE_ID: self._store.folder.name,
            genai.REQUEST_TOP_K: float(k), "qwen_agent.retrieval.mode": mode,
        }, kind="CLIENT")
        try:
            hits = self._search(query, k, mode, rerank, query_vector)
        except BaseException as exc:
            span.error(type(exc).__name__, str(exc)[:500])
            span.end()
            raise
        if span.recording:
            span.set("qwen_agent.retrieval.hits", len(hits))
            if capture_content():
                span.set("gen_ai.retrieval.query.text", query)
                span.set("gen_ai.retrieval.documents", json.dumps(
                    [{"id": h.citation, "score": h.score, "content": h.text} for h in hits], ensure_ascii=False))
        span.end()
        return hits

    def _search(self, query: str, k: int, mode: SearchMode, rerank: bool | None,
                query_vector: np.ndarray | None) -> list[Hit]:
        with self._lock:
            self._ensure_loaded()
            vectors, bm25 = self._vectors, self._bm25
        if vectors is None or bm25 is None or len(vectors) == 0:
            return []
        use_rerank = self.reranker is not None if rerank is None else rerank
        if use_rerank and self.reranker is None:
            raise ValueError("rerank=True needs a reranker: "
                             "KnowledgeBase.open(..., reranker=CrossEncoderReranker(path))")
        wanted = max(k, self.config.candidates) if (mode == "hybrid" or use_rerank) else k
        rankings = []
        if mode in ("vector", "hybrid"):
            vector = self.embedder.embed_query(query) if query_vector is None else query_vector
            rankings.append(self._vector_search(vectors, vector, wanted))
        if mode in ("bm25", "hybrid"):
            rankings.append(bm25.search(query, wanted))
        if mode == "hybrid":
            knows_cjk = getattr(self.embedder, "knows_cjk", None)
            ranked = fuse(rankings[0], rankings[1], query, self.config.fusion, embedder_knows_cjk=knows_cjk)
        else:
            ranked = rankings[0]
        if use_rerank and self.reranker is not None:
            head = ranked[: max(k, self.config.rerank_candidates)]
            rows = self._store.chunk_rows([cid for cid, _ in head])
            head = [(cid, s) for cid, s in head if cid in rows]
            scores = self.reranker.score(query, [rows[cid]["text"] for cid, _ in head])
            ranked = sorted(zip((cid for cid, _ in head), scores, strict=True), key=lambda kv: -kv[1])
        top = ranked[:k]
        rows = self._store.chunk_rows([cid for cid, _ in top])
        return [row_hit(rows[cid], score, cid) for cid, score in top if cid in rows]

    def _vector_search(self, vectors: VectorStore, vector: np.ndarray, wanted: int) -> list[tuple[int, float]]:
        """Nearest chunks; a compressed (IVF-PQ) index proposes ``REFINE_FACTOR`` times more candidates, which are
        re-scored with their exact vectors from the store, so its codes cost recall only at the proposal stage."""
        if vectors.kind != "ivfpq":
            return vectors.search(vector, wanted)
        # The head is what a reply cites: refine it fully, the tail of a long hybrid candidate list 2x.
        candidates = vectors.search(vector, max(wanted * 2, min(wanted, 10) * REFINE_FACTOR))
        exact = self._store.vectors_for([cid for cid, _ in candidates])
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        scored = [(cid, float(exact[cid] @ query)) for cid, _ in candidates if cid in exact]
        return sorted(scored, key=lambda kv: -kv[1])[:wanted]

    def context_for(
        self, query: str, token_budget: int, *, mode: SearchMode = "hybrid", max_hits: int = 20
    ) -> list[Hit]:
        """Passages for a prompt within ``token_budget`` tokens (embedding-tokenizer tokens, a close proxy).

        When every document fits, they are returned whole (one hit per page/sheet/document, in reading order)
        because nothing beats the full text for a small corpus; otherwise the best search hits that fit.
        """
        _, _, total = self._store.counts()
        if total and total <= token_budget:
            whole = whole_documents(self._store.all_sections())
            cost = sum(n + self._counter(h.citation) + 4 for h, n in whole)
            if cost <= token_budget:
                return [h for h, _ in whole]
        chosen: list[Hit] = []
        used = 0
        for hit in self.search(query, k=max_hits, mode=mode):
            cost = self._counter(hit.text) + self._counter(hit.citation) + 4
            if used + cost <= token_budget:
                chosen.append(hit)
                used += cost
        return chosen

