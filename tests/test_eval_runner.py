"""The eval runner with a real suite: records, summary and table, a crashing item, resume (also after SIGKILL),
settings that must match on resume, a fatal error, bad data naming the line, `compare` and its plot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen_agent.eval import (
    EvalDataError,
    EvalRunError,
    EvalSettings,
    ItemRecord,
    compare_table,
    load_summary,
    run_eval,
)
from qwen_agent.eval.datafiles import load_json_or_lines, load_records
from qwen_agent.llm.errors import ModelConnectionError
from qwen_agent.llm.spec import load_model
from tests.support_eval import UNUSED_MODEL_SPEC, CountingSuite

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def model():
    m = load_model(UNUSED_MODEL_SPEC)
    yield m
    m.close()


def records(folder: Path) -> list[ItemRecord]:
    return [ItemRecord.model_validate_json(line) for line in (folder / "items.jsonl").read_text().splitlines()]


def test_a_run_writes_records_summary_and_table(tmp_path: Path, model) -> None:
    seen = []
    suite = CountingSuite(5, special={3: "crash"})
    summary = run_eval(suite, EvalSettings(label="first"), tmp_path / "run", model=model, progress=seen.append)
    recs = {r.id: r for r in records(tmp_path / "run")}
    assert sorted(recs) == [f"item-{i}" for i in range(5)]
    crashed = recs["item-3"]
    assert crashed.error == "ValueError: item 3 is broken" and crashed.score == 0.0 and crashed.input == {"i": 3}
    assert recs["item-0"].transcript == [{"role": "user", "content": "0"}, {"role": "assistant", "content": "0"}]
    assert recs["item-1"].prediction["i"] == 1 and recs["item-1"].score == 0.5
    # overall: (1 + 0.5 + 1 + 0 + 1) / 5; the crash counts as a miss and as an error
    assert summary.overall.score == pytest.approx(0.7) and summary.overall.errors == 1
    assert [(g.name, g.n) for g in summary.categories] == [("even", 3), ("odd", 2)]
    assert summary.overall.metrics["even_only"].n == 3
    assert summary.prompt_tokens == 40 and summary.label == "first"
    assert load_summary(tmp_path / "run") == summary
    table = (tmp_path / "run" / "summary.md").read_text()
    assert "| category | n | score | even_only | errors |" in table
    assert "| odd | 2 | 0.250 | – | 1 |" in table
    # the progress callback reports a running score after every item
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].score == pytest.approx(0.7)


def test_a_folder_with_a_run_needs_resume(tmp_path: Path, model) -> None:
    run_eval(CountingSuite(2), EvalSettings(), tmp_path, model=model)
    with pytest.raises(EvalRunError, match="already holds a run; pass --resume"):
        run_eval(CountingSuite(2), EvalSettings(), tmp_path, model=model)


def test_resume_refuses_other_settings_but_allows_a_larger_limit(tmp_path: Path, model) -> None:
    run_eval(CountingSuite(6), EvalSettings(limit=2), tmp_path, model=model)
    with pytest.raises(EvalRunError, match=r"temperature: 0\.0 -> 0\.7"):
        run_eval(CountingSuite(6), EvalSettings(limit=2, temperature=0.7), tmp_path, model=model, resume=True)
    with pytest.raises(EvalRunError, match="options"):
        run_eval(CountingSuite(6, delay=0.01), EvalSettings(limit=2), tmp_path, model=model, resume=True)
    suite = CountingSuite(6)
    summary = run_eval(suite, EvalSettings(limit=4, workers=3), tmp_path, model=model, resume=True)
    assert suite.ran == ["item-2", "item-3"]  # the first two were not redone
    assert summary.overall.n == 4 and len(records(tmp_path)) == 4


def test_resume_after_the_process_was_killed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from qwen_agent.eval import EvalSettings, run_eval\n"
              "from tests.support_eval import CountingSuite, UNUSED_MODEL_SPEC\n"
              f"run_eval(CountingSuite(12, delay=0.3), EvalSettings(model=UNUSED_MODEL_SPEC), {str(out)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not ((out / "items.jsonl").exists() and len((out / "items.jsonl").read_text().splitlines()) >= 3):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run wrote no records"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    before = records(out)
    assert 3 <= len(before) < 12 and not (out / "summary.json").exists()  # killed: no summary was written
    # a torn line, as a kill in the middle of a write leaves it
    with open(out / "items.jsonl", "a") as f:
        f.write('{"id": "item-11", "category": "odd", "sco')
    suite = CountingSuite(12, delay=0.3)
    model = load_model(UNUSED_MODEL_SPEC)
    try:
        summary = run_eval(suite, EvalSettings(model=UNUSED_MODEL_SPEC), out, resume=True, model=model)
    finally:
        model.close()
    after = records(out)
    assert [r.id for r in after[:len(before)]] == [r.id for r in before]
    assert all(r.prediction["pid"] == proc.pid for r in after[:len(before)])  # kept, not redone
    assert sorted(suite.ran) == sorted({f"item-{i}" for i in range(12)} - {r.id for r in before})
    assert sorted(r.id for r in after) == sorted(f"item-{i}" for i in range(12))  # each once, the torn line gone
    assert summary.overall.n == 12


def test_a_fatal_model_error_stops_the_run_and_keeps_what_is_done(tmp_path: Path, model) -> None:
    with pytest.raises(ModelConnectionError):
        run_eval(CountingSuite(5, special={2: "down"}), EvalSettings(), tmp_path, model=model)
    assert [r.id for r in records(tmp_path)] == ["item-0", "item-1"]
    assert load_summary(tmp_path).overall.n == 2  # the partial summary, for `compare` and for reading


def test_bad_data_names_the_file_and_line(tmp_path: Path) -> None:
    from qwen_agent.eval.code import CodeItem

    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": 2}\n\n{"id": "b", "question": "2+2?", "answer": 4\n')
    with pytest.raises(EvalDataError, match=r"items.jsonl:3: not valid JSON"):
        load_records(data, CodeItem)
    data.write_text('{"id": "a", "question": "1+1?", "answer": 2}\n{"id": "b", "question": "plot it"}\n')
    with pytest.raises(EvalDataError, match=r"items.jsonl:2: .*give either a numeric 'answer'"):
        load_records(data, CodeItem)
    data.write_text('["not", "an", "object"]\n')
    with pytest.raises(EvalDataError, match=r"items.jsonl:1: expected a JSON object, got list"):
        load_records(data, CodeItem)
    with pytest.raises(EvalDataError, match=r"missing.jsonl: no such file"):
        load_records(tmp_path / "missing.jsonl", CodeItem)
    data.write_text("")
    with pytest.raises(EvalDataError, match="no items"):
        load_records(data, CodeItem)
    mapping = tmp_path / "plan.json"
    mapping.write_text(json.dumps({"q1": {"x": 1}, "q2": {"x": 2}}))
    assert load_json_or_lines(mapping) == [(f"{mapping}['q1']", {"id": "q1", "x": 1}),
                                           (f"{mapping}['q2']", {"id": "q2", "x": 2})]


def test_duplicate_ids_are_bad_data(tmp_path: Path, model) -> None:
    from qwen_agent.eval.code import CodeSuite

    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": 2}\n{"id": "a", "question": "2+2?", "answer": 4}\n')
    with pytest.raises(EvalDataError, match="item id 'a' appears twice"):
        run_eval(CodeSuite(data), EvalSettings(), tmp_path / "out", model=model)


def test_compare_prints_runs_side_by_side_and_plots_them(tmp_path: Path, model) -> None:
    from qwen_agent.cli import main

    run_eval(CountingSuite(4), EvalSettings(label="small"), tmp_path / "a", model=model)
    run_eval(CountingSuite(6, special={1: "crash"}), EvalSettings(label="large"), tmp_path / "b", model=model)
    table = compare_table([load_summary(tmp_path / "a"), load_summary(tmp_path / "b")])
    lines = table.splitlines()
    assert lines[0] == "|  | small | large |"
    assert "| even | 1.000 (n=2) | 1.000 (n=3) |" in lines
    assert "| odd | 0.500 (n=2) | 0.333 (n=3) |" in lines  # 0 (crashed), 0.5, 0.5
    assert "| **all** | 0.750 (n=4) | 0.667 (n=6) |" in lines
    assert "| even_only | 1.000 (n=2) | 1.000 (n=3) |" in lines
    plot = tmp_path / "runs.png"
    proc = subprocess.run([sys.executable, "-m", "qwen_agent.cli", "eval", "compare", str(tmp_path / "a"),
                           str(tmp_path / "b"), "--plot", str(plot)], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "| **all** | 0.750 (n=4) | 0.667 (n=6) |" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", "compare", str(tmp_path / "missing")]) == 1  # a typed error, one readable line
