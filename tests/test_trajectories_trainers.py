"""Exports read by the trainers' own loader code, in their private venv (built on first use, ~6 min, ~2.2 GB;
`make test` builds it beforehand): LLaMA-Factory's dataset_info parser, ShareGPT converter (which empties any
example whose roles are out of order) and Qwen function/observation formatters; Axolotl's ``chat_template`` prompt
strategy configured by the YAML the export wrote, tokenizing with the embedded model's own chat template."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support_trajectories import record_runs

from qwen_agent.testing.private_venv import clean_env
from qwen_agent.testing.trainer_loaders import ensure_trainer_loaders_venv
from qwen_agent.trajectories import export_trajectories

pytestmark = pytest.mark.trainer_loaders

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def venv() -> Path:
    return ensure_trainer_loaders_venv()


def _drive(venv: Path, tmp_path: Path, script: str, *args: str) -> list[dict[str, Any]]:
    env = {**clean_env(), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([os.fspath(venv / "bin" / "python"), "-I", os.fspath(FIXTURES / script), *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("@@RESULT@@")]
    rows: list[dict[str, Any]] = json.loads(line.removeprefix("@@RESULT@@"))["rows"]
    return rows


def test_llamafactory_loads_every_exported_conversation(venv: Path, tmp_path: Path) -> None:
    runs = record_runs(tmp_path / "runs")
    out = tmp_path / "data" / "agent_runs.jsonl"
    assert export_trajectories([runs], out, "llamafactory").written == 4
    rows = _drive(venv, tmp_path, "llamafactory_load.py", str(out.parent), "agent_runs")
    assert len(rows) == 4
    for row in rows:  # a broken example comes out of the converter with an empty prompt and response
        assert row["prompt"] >= 1 and row["response"] == 1, row
    parallel = rows[0]
    assert parallel["roles"] == ["user", "function", "observation", "assistant"]
    assert parallel["system"] == "You are a travel helper."
    call, results = parallel["rendered"]
    assert call.count("<tool_call>") == 2 and '{"name": "get_weather", "arguments": {"city": "Tokyo"}}' in call
    assert results.count("<tool_response>") == 2 and "Tokyo: 21 degrees celsius" in results
    assert '"name": "get_time"' in parallel["tools"] and "<tools>" in parallel["tools"]
    assert rows[1]["roles"] == ["user", "function", "observation", "function", "observation", "assistant"]
    assert rows[2]["roles"] == ["user", "function"]  # the max_steps run, cut back to its last model turn


def test_axolotl_tokenizes_every_exported_conversation(venv: Path, tmp_path: Path, hf_folder: Path) -> None:
    runs = record_runs(tmp_path / "runs")
    out = tmp_path / "ax" / "agent_runs.jsonl"
    report = export_trajectories([runs], out, "axolotl")
    assert report.written == 4 and report.config_file is not None
    rows = _drive(venv, tmp_path, "axolotl_load.py", str(out), report.config_file, str(hf_folder))
    assert len(rows) == 4
    assert all(row["trained"] > 0 for row in rows)  # the assistant turns carry labels
    parallel = rows[0]["text"].split("<|im_end|>", 1)[1]  # after the system turn, which describes the format
    assert parallel.count("<tool_call>") == 2 and parallel.count("<tool_response>") == 2
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>' in parallel
    assert rows[0]["text"].startswith("<|im_start|>system\nYou are a travel helper.") and "<tools>" in rows[0]["text"]
