"""Our BFCL checker against bfcl-eval's, case for case: predictions from real runs plus systematic variations of
the possible answers (each kind of mistake the rules know, and the variations the rules accept)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qwen_agent.eval.bfcl.checker import check_prediction
from qwen_agent.eval.bfcl.dataset import BfclEntry, load_category
from qwen_agent.eval.bfcl.metrics import answer_calls
from qwen_agent.eval.bfcl.reference import ReferenceCase, reference_check
from qwen_agent.eval.records import ITEMS_FILE, ItemRecord

__all__ = ["AgreementReport", "cases_from_runs", "compare_with_reference", "variation_cases"]

Call = dict[str, dict[str, Any]]


class Disagreement(BaseModel):
    case: ReferenceCase
    ours: bool
    reference: bool
    detail: str | None = None


class AgreementReport(BaseModel):
    n: int
    agree: int
    #: Cases the reference checker judged valid / invalid.
    reference_valid: int
    by_source: dict[str, int]
    disagreements: list[Disagreement]

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else 0.0


def compare_with_reference(cases: list[tuple[str, ReferenceCase]], *, root: Path | str | None = None
                           ) -> AgreementReport:
    """Score every (source, case) with both checkers; list the cases where they differ."""
    verdicts = reference_check([c for _, c in cases], root=root)
    agree, disagreements = 0, []
    for (_, case), ref in zip(cases, verdicts, strict=True):
        ours = check_prediction(case.category, case.functions, case.calls, case.ground_truth)
        if ours.valid == ref.valid:
            agree += 1
        else:
            detail = f"ours: {ours.error_type}; bfcl-eval: {ref.error_type or ref.crash}"
            disagreements.append(Disagreement(case=case, ours=ours.valid, reference=ref.valid, detail=detail))
    return AgreementReport(n=len(cases), agree=agree, reference_valid=sum(v.valid for v in verdicts),
                           by_source=dict(Counter(source for source, _ in cases)), disagreements=disagreements)


def cases_from_runs(folders: Iterable[Path], wheel: Path | None = None) -> list[tuple[str, ReferenceCase]]:
    """The predictions recorded in run folders (``items.jsonl`` of `qwen-agent eval bfcl` runs)."""
    entries: dict[str, BfclEntry] = {}
    cases = []
    for folder in folders:
        for line in (Path(folder) / ITEMS_FILE).read_text(encoding="utf-8").splitlines():
            record = ItemRecord.model_validate(json.loads(line))
            if record.error is not None:
                continue
            if record.category not in {e.category for e in entries.values()}:
                entries.update({e.id: e for e in load_category(record.category, wheel)})
            entry = entries[record.id]
            cases.append((f"run:{Path(folder).name}", ReferenceCase(
                category=entry.category, functions=entry.functions, calls=record.prediction,
                ground_truth=entry.ground_truth)))
    return cases


def variation_cases(entries: Iterable[BfclEntry]) -> list[tuple[str, ReferenceCase]]:
    """For each entry: the answer itself and variations of it, one change at a time."""
    cases = []
    for entry in entries:
        for kind, calls in _variations(entry):
            cases.append((f"variation:{kind}", ReferenceCase(category=entry.category, functions=entry.functions,
                                                             calls=calls, ground_truth=entry.ground_truth)))
    return cases


def _variations(entry: BfclEntry) -> Iterator[tuple[str, list[Call]]]:
    if entry.ground_truth is None:  # relevance categories: with and without a call
        yield "no_call", []
        yield "a_call", [{entry.functions[0]["name"] if entry.functions else "some_function": {}}]
        return
    gold = answer_calls(entry.ground_truth)
    yield "answer", gold
    yield "no_call", []
    yield "duplicate_call", gold + gold[:1]
    if len(gold) > 1:
        yield "reversed_order", list(reversed(gold))
        yield "one_call_missing", gold[:-1]
    first = copy.deepcopy(gold)
    name, args = next(iter(first[0].items()))
    fn = next(f for f in entry.functions if f["name"] == name)
    props = fn["parameters"]["properties"]
    required = fn["parameters"].get("required", [])
    expected = next(iter(entry.ground_truth[0].values()))
    yield "wrong_name", [{name + "_v2": args}, *first[1:]]
    yield "extra_param", [{name: {**args, "unexpected_param": 1}}, *first[1:]]
    yield "only_required", [{name: {k: v for k, v in args.items() if k in required}}, *first[1:]]
    for param, values in expected.items():
        given = {k: v for k, v in args.items() if k != param}
        if param in args:
            yield "param_left_out", [{name: given}, *first[1:]]
        alternatives = [v for v in values if v != "" and v != args.get(param)]
        if alternatives:
            yield "other_acceptable_value", [{name: {**args, param: alternatives[0]}}, *first[1:]]
        if param not in args or param not in props:
            continue
        for kind, value in _value_variations(args[param], props[param].get("type")):
            yield kind, [{name: {**args, param: value}}, *first[1:]]


def _value_variations(value: Any, declared: str | None) -> Iterator[tuple[str, Any]]:
    if isinstance(value, bool):
        yield "bool_flipped", not value
        yield "bool_as_string", str(value).lower()
        yield "bool_as_int", int(value)
    elif isinstance(value, int):
        yield "int_changed", value + 1
        yield "int_as_string", str(value)
        yield "int_as_float", float(value)
    elif isinstance(value, float):
        yield "float_changed", value + 0.5
        yield "float_as_string", str(value)
        if value == int(value):
            yield "integral_float_as_int", int(value)
    elif isinstance(value, str):
        yield "string_changed", value + " extra"
        yield "string_case_and_punctuation", value.upper().replace(" ", " - ")
        yield "string_as_list", [value]
        if value.strip().lstrip("-").isdigit():
            yield "numeric_string_as_int", int(value)
    elif isinstance(value, list):
        yield "list_reversed", list(reversed(value))
        yield "list_extended", [*value, value[0] if value else "x"]
        yield "list_as_string", json.dumps(value)
        if value and all(isinstance(v, str) for v in value):
            yield "list_strings_recased", [v.upper() for v in value]
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            yield "list_ints_as_strings", [str(v) for v in value]
    elif isinstance(value, dict):
        yield "dict_as_string", json.dumps(value)
        if value:
            key = next(iter(value))
            yield "dict_key_dropped", {k: v for k, v in value.items() if k != key}
            yield "dict_extra_key", {**value, "unexpected_key": 1}
    if declared == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield "float_param_as_int", int(value)
