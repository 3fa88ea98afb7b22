"""The ``llamafactory`` export read by LLaMA-Factory's own loader code, in its private venv (built on first use,
~6 min, ~2.2 GB; `make test` builds it beforehand): its dataset_info parser, its ShareGPT converter (which empties
any example whose roles are out of order) and its Qwen function/observation formatters."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support_trajectories import record_runs

from qwen_agent.testing.llamafactory_env import ensure_llamafactory_venv
from qwen_agent.testing.private_venv import clean_env
from qwen_agent.trajectories import export_trajectories

pytestmark = pytest.mark.llamafactory

DRIVER = Path(__file__).parent / "fixtures" / "llamafactory_load.py"


def test_llamafactory_loads_every_exported_conversation(tmp_path: Path) -> None:
    venv = ensure_llamafactory_venv()
    runs = record_runs(tmp_path / "runs")
    out = tmp_path / "data" / "agent_runs.jsonl"
    assert export_trajectories([runs], out, "llamafactory").written == 4
    env = {**clean_env(), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([os.fspath(venv / "bin" / "python"), "-I", os.fspath(DRIVER), str(out.parent),
                           "agent_runs"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("@@RESULT@@")]
    rows = json.loads(line.removeprefix("@@RESULT@@"))["rows"]
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
