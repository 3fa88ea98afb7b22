"""What an evaluation run writes: one `ItemRecord` per item (a JSONL line), the `RunSummary`, and the run's settings."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from qwen_agent.eval.errors import EvalRunError

__all__ = ["GroupSummary", "ItemLog", "ItemRecord", "MetricValue", "RunSummary", "load_summary", "summarize",
           "write_json_atomic"]

logger = logging.getLogger(__name__)

ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "summary.md"
SETTINGS_FILE = "run.json"


class ItemRecord(BaseModel):
    """One benchmark item as run: what went in, what came out, and how it scored."""

    id: str
    category: str
    #: The item as the suite presented it (question, tools, documents ...).
    input: dict[str, Any] = Field(default_factory=dict)
    #: The full conversation in OpenAI message form, the model's replies and tool results included.
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    #: What is scored: calls, an answer, a plan.
    prediction: Any = None
    #: The primary score in [0, 1]; 0 for an item that crashed.
    score: float = 0.0
    #: Secondary per-item metrics (None where a metric does not apply to this item).
    metrics: dict[str, float | None] = Field(default_factory=dict)
    #: Why the item scored as it did (the checker's message), for reading failures.
    detail: str | None = None
    #: Set when running the item failed; the item counts as a miss.
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class MetricValue(BaseModel):
    """A mean over the ``n`` items the metric applies to (None when it applies to none)."""

    value: float | None
    n: int


class GroupSummary(BaseModel):
    """The scores of one category (or of the whole run)."""

    name: str
    n: int
    score: float
    errors: int = 0
    metrics: dict[str, MetricValue] = Field(default_factory=dict)


class RunSummary(BaseModel):
    """``summary.json``: settings, overall and per-category scores, time and tokens."""

    suite: str
    label: str
    primary: str
    settings: dict[str, Any]
    overall: GroupSummary
    categories: list[GroupSummary]
    elapsed_s: float
    latency_median_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def summarize(suite: str, label: str, primary: str, settings: dict[str, Any], records: list[ItemRecord],
              category_order: list[str] | None = None, elapsed_s: float = 0.0) -> RunSummary:
    """Per-category and overall means; categories in ``category_order`` first, then as they appear."""
    order = list(dict.fromkeys([*(category_order or []), *(r.category for r in records)]))
    groups = [_group(c, [r for r in records if r.category == c]) for c in order]
    latencies = sorted(r.latency_s for r in records if r.error is None)
    return RunSummary(
        suite=suite, label=label, primary=primary, settings=settings, overall=_group("all", records),
        categories=[g for g in groups if g.n], elapsed_s=elapsed_s,
        latency_median_s=latencies[len(latencies) // 2] if latencies else None,
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
    )


def _group(name: str, records: list[ItemRecord]) -> GroupSummary:
    keys = list(dict.fromkeys(k for r in records for k in r.metrics))
    metrics = {}
    for key in keys:
        values = [r.metrics[key] for r in records if r.metrics.get(key) is not None]
        metrics[key] = MetricValue(value=sum(values) / len(values) if values else None, n=len(values))  # type: ignore[arg-type]
    score = sum(r.score for r in records) / len(records) if records else 0.0
    return GroupSummary(name=name, n=len(records), score=score, errors=sum(r.error is not None for r in records),
                        metrics=metrics)


class ItemLog:
    """``items.jsonl``, appended one flushed and fsynced line per finished item, so a killed run loses at most
    the line being written (dropped when the run is resumed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> list[ItemRecord]:
        """The records written so far; a torn last line (the run was killed mid-write) is cut off the file."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        records: list[ItemRecord] = []
        good_end = 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(ItemRecord.model_validate(json.loads(line)))
            except (ValueError, ValidationError) as exc:
                raise EvalRunError(
                    f"{self.path}: line {len(records) + 1} is not an item record ({exc}); the file was edited or "
                    "belongs to something else: move it away or use another --out") from exc
            good_end += len(line)
        if good_end < len(raw):
            logger.warning("%s: dropping a torn last line left by an interrupted run", self.path)
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
        return records

    def append(self, record: ItemRecord) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def load_summary(folder: Path) -> RunSummary:
    """The `RunSummary` of a finished (or partly finished) run folder."""
    path = Path(folder) / SUMMARY_FILE
    if not path.exists():
        raise EvalRunError(f"{folder} holds no {SUMMARY_FILE}; pass folders written by `qwen-agent eval ... --out`")
    try:
        return RunSummary.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise EvalRunError(f"{path} is not a run summary ({exc.errors()[0]['msg']})") from exc
