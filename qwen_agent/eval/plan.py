"""The ``plan`` suite: T-Eval's planning task (Chen et al., 2024) — the model writes a plan (a JSON list of actions)
for a query, given the tools in T-Eval's prompt; the plan is matched against the gold plan.

Data: T-Eval's plan file as published (``plan_json_v1.json``: an object of ``id -> {"origin_prompt": [messages],
"ground_truth": [{"id", "name", "args", "prev"}], "meta": {...}}``) or the same items as JSON Lines with an ``id``.

Scoring as T-Eval's ``PlanningEvaluator`` (bertscore strategy): actions are read from the reply's outermost ``[...]``
(names as strings, args as the string of their dict); a trailing ``FinishAction`` is dropped; each predicted action
is compared with each gold one by ``0.75 * cos(name) + 0.25 * cos(args)`` of sentence embeddings (ours: the offline
all-MiniLM-L6-v2; T-Eval: all-mpnet-base-v2); pairs above 0.8 are matched by maximum-weight matching; the longest
run of matched actions in gold order counts as correct; precision, recall and F1 follow. One deliberate difference:
T-Eval's LIS counts an unmatched action as a run of length one (so a plan that matches nothing still scores), ours
counts matched actions only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.eval.datafiles import load_json_or_lines, validate
from qwen_agent.eval.suite import EvalItem, ItemOutcome, RunContext, Suite
from qwen_agent.messages import as_messages

__all__ = ["PlanItem", "PlanOptions", "PlanSuite", "match_plans", "read_plan"]

FINISH = "FinishAction"


class PlanItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | str
    origin_prompt: list[dict[str, Any]] = Field(min_length=1)
    ground_truth: list[dict[str, Any]] = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)


class PlanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    name_weight: float = 0.75
    args_weight: float = 0.25
    match_threshold: float = 0.8


class Action(BaseModel):
    id: int
    name: str
    args: str


def read_plan(value: Any) -> list[Action]:
    """T-Eval's ``format_load`` for a plan: the outermost ``[...]`` of a reply (or a list already), every action
    with an int id, a name and args (kept as the string of the dict); anything unreadable gives no plan."""
    if isinstance(value, str):
        from qwen_agent.prompting.lenient_json import UNREADABLE, loads_lenient

        start, end = value.find("["), value.rfind("]")
        if start < 0 or end <= start:
            return []
        value = loads_lenient(value[start:end + 1])
        if value is UNREADABLE:
            return []
    if not isinstance(value, list):
        return []
    try:
        return [Action(id=int(a["id"]), name=str(a["name"]), args=str(a["args"])) for a in value]
    except (KeyError, TypeError, ValueError):
        return []


def match_plans(pred: list[Action], gold: list[Action], embed: Any, *, name_weight: float = 0.75,
                args_weight: float = 0.25, threshold: float = 0.8) -> dict[str, float]:
    """Precision, recall and F1 of ``pred`` against ``gold``. ``embed(texts) -> unit vectors`` (one row each)."""
    from scipy.optimize import linear_sum_assignment

    pred = sorted(pred, key=lambda a: a.id)
    gold = sorted(gold, key=lambda a: a.id)
    if pred and pred[-1].name == FINISH:
        pred = pred[:-1]
    if gold and gold[-1].name == FINISH:
        gold = gold[:-1]
    if not pred or not gold:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    names = embed([a.name for a in pred] + [a.name for a in gold])
    args = embed([a.args for a in pred] + [a.args for a in gold])
    n = len(pred)
    score = name_weight * np.maximum(names[:n] @ names[n:].T, 0) + args_weight * np.maximum(args[:n] @ args[n:].T, 0)
    weights = np.where(score > threshold, score, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    to_gold = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if weights[r, c] > 0}
    # Longest run of matched predicted actions whose gold positions increase.
    best = [0] * n
    for i in range(n):
        if i not in to_gold:
            continue
        best[i] = 1 + max((best[j] for j in range(i) if j in to_gold and to_gold[j] < to_gold[i]), default=0)
    correct = max(best)
    precision, recall = correct / len(pred), correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


class PlanSuite(Suite):
    """One chat request per item with T-Eval's own prompt; the reply's plan is scored."""

    name = "plan"
    primary = "f1"
    default_max_tokens = 1024

    def __init__(self, data: Path | str) -> None:
        self.data = Path(data)
        self._options = PlanOptions(data=str(self.data.resolve()))
        self._embedder: Any = None

    def options(self) -> PlanOptions:
        return self._options

    def items(self, limit: int | None) -> list[EvalItem]:
        items = []
        for where, value in load_json_or_lines(self.data):
            item = validate(value, PlanItem, where)
            if not read_plan(item.ground_truth):
                from qwen_agent.eval.errors import EvalDataError

                raise EvalDataError(f"{where}: 'ground_truth' is not a list of actions with id, name and args")
            view = {"messages": item.origin_prompt, "ground_truth": item.ground_truth}
            items.append(EvalItem(id=str(item.id), category=str(item.meta.get("category", "plan")), input=view,
                                  data=item))
        return items[:limit]

    def _embed(self, texts: list[str]) -> np.ndarray:
        from qwen_agent.retrieval import SentenceTransformerEmbedder

        if self._embedder is None:
            # The scorer model named above (not the RAG default, e5, whose cosines sit higher).
            self._embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        return np.asarray(self._embedder.embed_documents(texts))

    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        task: PlanItem = item.data
        messages = as_messages(task.origin_prompt)
        response = await ctx.model.achat(messages, params=ctx.params)
        pred, gold = read_plan(response.text), read_plan(task.ground_truth)
        o = self._options
        scores = await asyncio.to_thread(match_plans, pred, gold, self._embed, name_weight=o.name_weight,
                                         args_weight=o.args_weight, threshold=o.match_threshold)
        usage = response.usage
        return ItemOutcome(
            transcript=[*messages, response.message], prediction=[a.model_dump() for a in pred], score=scores["f1"],
            metrics={"precision": scores["precision"], "recall": scores["recall"], "parse_rate": float(bool(pred))},
            detail=None if pred else "no plan could be read from the reply",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0)
