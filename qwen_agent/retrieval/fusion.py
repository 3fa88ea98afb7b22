"""Fusing the vector and BM25 rankings of one query: reciprocal rank, and adaptive score fusion (the default).

Reciprocal-rank fusion gives both rankers the same vote whatever they know, so an embedder that is near noise on a
language (all-MiniLM-L6-v2 on Chinese) drags the hybrid below BM25 alone. Adaptive fusion instead asks each ranker
how sure it is *for this query*: a ranker's scores are z-normalised over its own candidate list, and its weight is
how far its best candidate stands out from the rest (the top z-score above a floor). A ranker that cannot tell its
candidates apart - flat cosine scores, or no query term in the vocabulary - gets little or no weight, and one that
singles out a passage leads. Ranks still count (a small reciprocal-rank term) so agreement between the rankers lifts
passages both found. On top, a prior by query language: an embedder that was never trained on Chinese (all-MiniLM-L6-v2
is English-only) gets no vote on a Chinese/Japanese/Korean query, since there its cosine scores are confidently
wrong (measured: its top-1 z-scores on Chinese look almost like its English ones while its recall@5 is 0.15-0.19).
The prior comes from the embedder (``languages``) unless the config sets it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

__all__ = ["FusionConfig", "adaptive_fusion", "fuse", "is_cjk_query", "reciprocal_rank_fusion", "vector_prior"]

Ranking = Sequence[tuple[int, float]]
FusionMethod = Literal["adaptive", "rrf"]
RRF_K = 60
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


class FusionConfig(BaseModel):
    """How hybrid search combines the vector and BM25 candidate lists."""

    method: FusionMethod = "adaptive"
    rrf_k: int = Field(default=RRF_K, ge=1)
    confidence_floor: float = Field(
        default=0.5, description="A ranker whose top z-score is below this floor is treated as unsure (weight 0)."
    )
    rank_weight: float = Field(default=1.0, ge=0, description="Weight of the reciprocal-rank agreement term.")
    vector_weight_cjk: float | None = Field(
        default=None, ge=0,
        description="Prior on the vector ranker for CJK queries; None: 1 if the embedder knows CJK (or is "
        "unknown), else 0.",
    )
    vector_weight_other: float = Field(default=1.0, ge=0, description="Prior on the vector ranker for other queries.")


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists by sum of 1 / (k + rank): robust to the incomparable scales of cosine and BM25 scores."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _score) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def is_cjk_query(query: str) -> bool:
    """True when at least a third of the query's letters are CJK (Chinese, Japanese kana, Korean hangul)."""
    letters = [c for c in query if c.isalnum()]
    return bool(letters) and sum(bool(_CJK.match(c)) for c in letters) * 3 >= len(letters)


def _zscores(ranking: Ranking) -> tuple[dict[int, float], float, float]:
    """z-scores of a ranking's candidates, the top candidate's z, and the z given to a passage the ranker missed."""
    if not ranking:
        return {}, 0.0, 0.0
    scores = np.asarray([s for _, s in ranking], dtype=np.float64)
    std = float(scores.std())
    if len(scores) < 3 or std <= 1e-12:
        return {item: 0.0 for item, _ in ranking}, 0.0, 0.0
    z = (scores - scores.mean()) / std
    return {item: float(v) for (item, _), v in zip(ranking, z, strict=True)}, float(z[0]), float(z.min())


def vector_prior(query: str, config: FusionConfig, embedder_knows_cjk: bool | None = None) -> float:
    """How far the vector ranker is trusted for this query's language (see FusionConfig)."""
    if not is_cjk_query(query):
        return config.vector_weight_other
    if config.vector_weight_cjk is not None:
        return config.vector_weight_cjk
    return 0.0 if embedder_knows_cjk is False else 1.0


def adaptive_fusion(
    vector: Ranking, bm25: Ranking, query: str, config: FusionConfig | None = None, *,
    embedder_knows_cjk: bool | None = None,
) -> list[tuple[int, float]]:
    """Confidence-weighted sum of z-normalised scores plus a reciprocal-rank agreement term (see module docstring)."""
    cfg = config or FusionConfig()
    prior = vector_prior(query, cfg, embedder_knows_cjk)
    if prior == 0.0:
        return list(bm25) if bm25 else list(vector)
    zv, top_v, miss_v = _zscores(vector)
    zb, top_b, miss_b = _zscores(bm25)
    wv = prior * max(0.0, top_v - cfg.confidence_floor)
    wb = max(0.0, top_b - cfg.confidence_floor)
    if wv == 0.0 and wb == 0.0:  # neither stands out: fall back to rank agreement alone
        return reciprocal_rank_fusion([vector, bm25], cfg.rrf_k)
    total = wv + wb
    wv, wb = wv / total, wb / total
    rank_v = {item: r for r, (item, _) in enumerate(vector, start=1)}
    rank_b = {item: r for r, (item, _) in enumerate(bm25, start=1)}
    fused: dict[int, float] = {}
    scale = cfg.rank_weight * cfg.rrf_k  # makes the rank term ~rank_weight for a top-1 hit in both lists
    for item in set(zv) | set(zb):
        score = wv * zv.get(item, miss_v) + wb * zb.get(item, miss_b)
        for ranks in (rank_v, rank_b):
            if item in ranks:
                score += scale / (cfg.rrf_k + ranks[item])
        fused[item] = score
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse(
    vector: Ranking, bm25: Ranking, query: str, config: FusionConfig | None = None, *,
    embedder_knows_cjk: bool | None = None,
) -> list[tuple[int, float]]:
    """Hybrid ranking by the configured method."""
    cfg = config or FusionConfig()
    if cfg.method == "rrf":
        return reciprocal_rank_fusion([vector, bm25], cfg.rrf_k)
    return adaptive_fusion(vector, bm25, query, cfg, embedder_knows_cjk=embedder_knows_cjk)
