"""BFCL v4's data from the pinned bfcl-eval wheel (fetched into the cache on first use; a failure to fetch fails
these tests), its tools as JSON schema, and `qwen-agent eval bfcl` end to end against the rule-based model server:
records, --fail-under, and a --resume that sends no request for items already done."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qwen_agent.eval import EvalDataError, load_summary
from qwen_agent.eval.bfcl import AST_CATEGORIES, BfclSuite, bfcl_wheel, check_prediction, load_category, to_tool_schemas
from qwen_agent.eval.bfcl.dataset import BFCL_SHA256, _sha256
from qwen_agent.eval.bfcl.metrics import answer_calls
from qwen_agent.testing import RuleModel, ScriptedServer

SIZES = {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240,
         "live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24,
         "live_irrelevance": 884, "live_relevance": 16}


#: Entries of this BFCL version whose possible answers no prediction can pass (a required parameter whose only
#: acceptable value is "left out", two answers for one call ...): BFCL's own checker fails them too.
UNREACHABLE = {"parallel_multiple_12", "parallel_multiple_26", "live_simple_106-63-0", "live_simple_112-68-0",
               "live_multiple_507-149-4", "live_multiple_862-181-3", "live_multiple_964-207-0"}


@pytest.fixture(scope="module")
def wheel() -> Path:
    return bfcl_wheel()


def test_the_wheel_is_the_pinned_one(wheel: Path) -> None:
    assert wheel.name == "bfcl_eval-2026.3.23-py3-none-any.whl" and _sha256(wheel) == BFCL_SHA256


@pytest.mark.parametrize("category", list(SIZES))
def test_categories_load_with_their_answers(wheel: Path, category: str) -> None:
    entries = load_category(category, wheel)
    assert len(entries) == SIZES[category]
    assert all(e.category == category and e.messages and e.messages[-1]["role"] == "user" for e in entries)
    if category in AST_CATEGORIES:
        # the answers line up with the questions, and the answer itself passes the checker
        for e in entries:
            assert e.ground_truth is not None
            valid = check_prediction(category, e.functions, answer_calls(e.ground_truth), e.ground_truth).valid
            assert valid == (e.id not in UNREACHABLE), e.id
    else:
        assert all(e.ground_truth is None for e in entries)


def test_functions_become_json_schema_tools(wheel: Path) -> None:
    entry = load_category("simple_python", wheel)[0]
    (tool,) = to_tool_schemas(entry.functions)
    assert tool.name == "calculate_triangle_area"
    assert tool.description.endswith("Note that the provided function is in Python 3 syntax.")
    assert tool.parameters["type"] == "object"  # BFCL writes "dict"
    assert tool.parameters["properties"]["base"]["type"] == "integer"
    floats = next(e for e in load_category("simple_python", wheel)
                  if any(p["type"] == "float" for f in e.functions for p in f["parameters"]["properties"].values()))
    prop = next(p for t in to_tool_schemas(floats.functions) for p in t.parameters["properties"].values()
                if p.get("format") == "float")
    assert prop["type"] == "number" and prop["description"].endswith("This is a float type value.")
    assert entry.functions[0]["parameters"]["type"] == "dict"  # the original is left as it was


def test_unknown_categories_are_refused() -> None:
    with pytest.raises(EvalDataError, match="unknown BFCL category simple_rust; choose from: simple_python"):
        BfclSuite(["simple_python", "simple_rust"])


def test_the_cli_runs_bfcl_against_a_server_and_resumes_without_new_requests(tmp_path: Path, wheel: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from qwen_agent.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "run"
    with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=8192)) as server:
        spec = f"openai:{server.base_url}#rule-model"
        args = ["eval", "bfcl", "-c", "simple_python,irrelevance", "--limit", "2", "--model", spec, "--out", str(out),
                "--no-progress"]
        assert main([*args, "--fail-under", "1.01"]) == 1  # no model scores above 1
        sent = len(server.chat_requests)
        assert sent == 4
        assert main([*args, "--resume"]) == 0
        assert len(server.chat_requests) == sent  # nothing was asked again
    lines = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == ["simple_python_0", "simple_python_1", "irrelevance_0", "irrelevance_1"]
    for r in lines:
        assert r["transcript"][-1]["role"] == "assistant" and r["error"] is None
        assert set(r["metrics"]) == {"tool_selection_acc", "tool_input_rougeL", "false_positive_acc"}
    summary = load_summary(out)
    assert [(g.name, g.n) for g in summary.categories] == [("simple_python", 2), ("irrelevance", 2)]
    assert summary.settings["model"] == spec and summary.settings["options"]["categories"] == ["simple_python",
                                                                                               "irrelevance"]
    assert os.path.exists(out / "summary.md")


def test_rescore_scores_recorded_predictions_again(tmp_path: Path, wheel: Path) -> None:
    from qwen_agent.cli import main
    from qwen_agent.eval import EvalSettings, ItemRecord, run_eval
    from qwen_agent.llm.spec import load_model

    with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=8192)) as server:
        model = load_model(f"openai:{server.base_url}#rule-model")
        try:
            before = run_eval(BfclSuite(["simple_python", "irrelevance"]), EvalSettings(limit=2), tmp_path,
                              model=model)
        finally:
            model.close()
    items = tmp_path / "items.jsonl"
    records = [ItemRecord.model_validate_json(line) for line in items.read_text().splitlines()]
    assert any(r.score < 1.0 for r in records)  # the rule model misses some: rescoring has something to restore
    # what an older scorer might have written: everything right
    items.write_text("".join(r.model_copy(update={"score": 1.0, "detail": None}).model_dump_json() + "\n"
                             for r in records))
    assert main(["eval", "rescore", str(tmp_path)]) == 0
    again = [ItemRecord.model_validate_json(line) for line in items.read_text().splitlines()]
    assert [(r.id, r.score, r.detail, r.prediction) for r in again] == \
        [(r.id, r.score, r.detail, r.prediction) for r in records]
    assert load_summary(tmp_path).overall.score == before.overall.score
