"""BM25 keyword search (bm25s) with a tokenizer that stems English (PyStemmer) and segments Chinese (jieba).

Tokens are computed once per chunk and kept in the store, so rebuilding the BM25 matrix after an incremental
update costs a sparse-matrix build, not a re-tokenisation of the whole corpus.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BM25Index", "tokenize"]

logger = logging.getLogger(__name__)

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | frozenset(STOPWORDS_CHINESE)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:  # stemming improves recall but is not essential
        logger.info("PyStemmer is not installed; BM25 runs without English stemming")
        return None
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free terms: stemmed English words, jieba search-mode words for Chinese runs."""
    stop = _stopwords()
    terms: list[str] = []
    pos = 0
    for run in _CJK_RUN.finditer(text):
        terms.extend(w.lower() for w in _WORD.findall(text[pos : run.start()]))
        terms.extend(w for w in _jieba().cut_for_search(run.group()) if w.strip())
        pos = run.end()
    terms.extend(w.lower() for w in _WORD.findall(text[pos:]))
    stemmer = _stemmer()
    terms = [t for t in terms if t not in stop]
    if stemmer is not None:
        terms = [t if _CJK_RUN.match(t) else stemmer.stemWord(t) for t in terms]
    return terms


class BM25Index:
    """bm25s index over chunk token lists, returning (chunk id, score) pairs."""

    def __init__(self, model: Any, ids: np.ndarray) -> None:
        self._model = model
        self._ids = ids

    @classmethod
    def build(cls, token_lists: list[list[str]], ids: np.ndarray) -> BM25Index:
        import bm25s

        model = bm25s.BM25()
        if token_lists:
            # An empty document would make bm25s drop a row; a placeholder token keeps rows aligned with ids.
            model.index([t or ["\x00"] for t in token_lists], show_progress=False)
        return cls(model, np.asarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self._ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        terms = tokenize(query)
        if not len(self._ids) or k <= 0 or not terms:
            return []
        vocab = self._model.vocab_dict
        terms = [t for t in terms if t in vocab]
        if not terms:
            return []
        docs, scores = self._model.retrieve([terms], k=min(k, len(self._ids)), show_progress=False, n_threads=1)
        return [
            (int(self._ids[d]), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]

    def save(self, folder: Path) -> None:
        """Write into a fresh folder; the caller makes it visible atomically (generation switch in the store)."""
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if len(self._ids):
            self._model.save(str(folder), show_progress=False)
        np.save(folder / "chunk_ids.npy", self._ids)
        (folder / "COMPLETE").write_text(json.dumps({"n": len(self._ids)}))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        if not (folder / "COMPLETE").is_file():
            raise FileNotFoundError(f"{folder} is incomplete")
        ids = np.load(folder / "chunk_ids.npy")
        model = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0) if len(ids) else bm25s.BM25()
        return cls(model, ids)
