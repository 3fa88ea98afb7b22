"""The tool-call benchmark's scorer (benchmarks/tool_scoring.py) rejects the near misses the substring scorer took."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from tool_scoring import call_matches, evaluate_arithmetic  # noqa: E402 - benchmarks/ is put on sys.path above

DATA = json.loads((BENCH / "data" / "tool_tasks.json").read_text())
TASKS = {t["id"]: t for t in DATA["tasks"]}
SCHEMAS = {t["name"]: t["parameters"] for t in DATA["tools"]}


@pytest.mark.parametrize(("task_id", "args", "right"), [
    (7, {"expression": "1234 + 5678"}, False), (7, {"expression": "1234*5678"}, True),
    (9, {"expression": "2 + 2"}, False), (9, {"expression": "2**32 / 7"}, True),
    (28, {"expression": "1 + 1"}, False), (28, {"expression": "0.15 * 2480"}, True),
    (3, {"city": "Cairo", "unit": "fahrenheit"}, False), (3, {"city": "cairo", "unit": "celsius"}, True),
    (0, {"city": "Paris, Texas"}, False), (0, {"city": "Paris"}, True), (0, {"city": "paris", "unit": "celsius"}, True),
    (11, {"to": "bob@example.com", "subject": "Hi", "body": "x"}, False),
    (11, {"to": "bob@example.com", "subject": "Lunch", "body": "'See you at noon.'"}, True),
    (4, {"amount": "100", "from_currency": "USD", "to_currency": "EUR"}, False),
    (4, {"amount": 100, "from_currency": "usd", "to_currency": "EUR"}, True),
    (17, {"minutes": True}, False), (29, {"minutes": 45, "label": "gym"}, False), (29, {"minutes": 45}, True),
])
def test_arguments_are_scored_exactly(task_id: int, args: dict[str, Any], right: bool) -> None:
    task = TASKS[task_id]
    assert call_matches(task, task["expected_tool"], args, SCHEMAS[task["expected_tool"]]) is right


def test_a_wrong_tool_or_unknown_argument_fails() -> None:
    task = TASKS[0]
    assert not call_matches(task, "get_population", {"country": "Paris"}, SCHEMAS["get_population"])
    assert not call_matches(task, "get_weather", {"city": "Paris", "when": "now"}, SCHEMAS["get_weather"])


def test_expressions_are_arithmetic_only() -> None:
    assert evaluate_arithmetic("(17 + 25) * 3 - 8") == 118
    assert evaluate_arithmetic("__import__('os').getcwd()") is None
    assert evaluate_arithmetic("9 ** 9 ** 9") is None  # bounded, never computed
