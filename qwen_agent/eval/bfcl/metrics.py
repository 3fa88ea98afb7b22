"""The Qwen release's three tool-use metrics, computed on BFCL items: tool selection accuracy, Rouge-L of the tool
input, and false-positive accuracy (no call when no offered function fits).

- ``tool_selection_acc`` (items that need calls): the multiset of called function names equals the answer's.
- ``tool_input_rougeL`` (items that need calls): Rouge-L F1 (Google's ``rouge-score``) between the arguments written
  and the answer's, each call as canonical JSON (sorted keys; for the answer, the first acceptable value of each
  parameter, optional ones left out), calls in name order; no call scores 0.
- ``false_positive_acc`` (irrelevance items): 1 when no function was called.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

__all__ = ["answer_calls", "tool_metrics"]

Call = dict[str, dict[str, Any]]


@lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:  # pragma: no cover - the eval extra installs it
        from qwen_agent.eval.errors import EvalError

        raise EvalError("Rouge-L needs the rouge-score package: pip install 'qwen-agent[eval]'") from exc
    return rouge_scorer.RougeScorer(["rougeL"])


def answer_calls(ground_truth: list[Call]) -> list[Call]:
    """One concrete call per answer: the first acceptable value of each parameter (inside dicts too); optional
    parameters left out."""
    calls = []
    for answer in ground_truth:
        name, params = next(iter(answer.items()))
        calls.append({name: _first_values(params)})
    return calls


def _first_values(options_by_key: dict[str, Any]) -> dict[str, Any]:
    chosen = {}
    for key, values in options_by_key.items():
        concrete = [v for v in values if v != ""] if isinstance(values, list) else [values]
        if concrete:
            chosen[key] = _concrete(concrete[0])
    return chosen


def _concrete(value: Any) -> Any:
    """An acceptable value with its own nested options resolved (a dict's values are lists of options)."""
    if isinstance(value, dict):
        return _first_values(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_first_values(v) for v in value]
    return value


def _arguments_text(calls: list[Call]) -> str:
    return "\n".join(sorted(json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)
                            for call in calls for args in call.values()))


def tool_metrics(category: str, calls: list[Call], ground_truth: list[Call] | None) -> dict[str, float | None]:
    """The three metrics for one item (None where a metric does not apply to the item's category)."""
    if "irrelevance" in category:
        return {"tool_selection_acc": None, "tool_input_rougeL": None, "false_positive_acc": float(not calls)}
    if ground_truth is None:  # live_relevance: some call is needed, but there is no single right one
        return {"tool_selection_acc": None, "tool_input_rougeL": None, "false_positive_acc": None}
    gold = answer_calls(ground_truth)
    selected = sorted(n for c in calls for n in c) == sorted(n for c in gold for n in c)
    want, got = _arguments_text(gold), _arguments_text(calls)
    if not calls:
        rouge = 0.0
    elif want == got:  # also when both are empty (functions without parameters), where ROUGE has no tokens
        rouge = 1.0
    else:
        rouge = _scorer().score(want, got)["rougeL"].fmeasure
    return {"tool_selection_acc": float(selected), "tool_input_rougeL": rouge, "false_positive_acc": None}
