"""The examples run as written (real model, real servers on 127.0.0.1), and a model spec in the environment
switches them to a server without a code change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_agent.serving.llamacpp import LlamaCppServer

pytestmark = pytest.mark.model
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QWEN_AGENT_")}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=600, env={**clean, **(env or {})}, check=False)


def test_openai_server_example_starts_llama_cpp_server_and_gets_an_answer() -> None:
    proc = run_example("openai_server.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "get_order_status({'order_id': 'A-1001'})" in proc.stdout
    assert "2026-11-29" in proc.stdout.splitlines()[-1] or "November 29" in proc.stdout.splitlines()[-1]


def test_quickstart_runs_against_a_server_named_by_the_spec_variable(embedded_model_path: Path) -> None:
    with LlamaCppServer(embedded_model_path, n_ctx=4096) as server:
        proc = run_example("quickstart.py", env={"QWEN_AGENT_MODEL_SPEC": f"openai:{server.base_url}#{server.model}"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"openai:{server.base_url}" in proc.stdout, "the demo says which model it talks to"
    assert "convert_length" in proc.stdout
    # 8849 m = 29,032.15 ft: the tool's figure must reach the final answer (the last line of the transcript).
    assert "8849 m = 29,032.15 ft" in proc.stdout, "the converter ran with the question's numbers"
    answer = " ".join(proc.stdout.rsplit("\nassistant ", 1)[-1].split("model steps")[0].split())  # final answer
    assert "29,032" in answer or "29032" in answer, proc.stdout[-1500:]
