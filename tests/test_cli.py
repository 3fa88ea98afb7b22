"""The `qwen-agent` command line as a user runs it: a real subprocess, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from qwen_agent.testing import ScriptedReply, ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


def cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEN_AGENT_")}
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "qwen_agent.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_chat_streams_shows_tool_calls_and_keeps_history(server: ScriptedServer) -> None:
    server.script(
        ScriptedReply.call("calculator", {"expression": "6*7"}),
        ScriptedReply.text("The answer is 42."),
        ScriptedReply.text("You asked about 6*7."),
    )
    proc = cli("chat", "--base-url", server.base_url, "-m", "qwen-test", "--mode", "native", "--tool", "calculator",
               stdin="What is 6*7?\nWhat did I ask?\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "→ calculator" in out and '"6*7"' in out
    assert "← calculator" in out and "42" in out
    assert "The answer is 42." in out and "You asked about 6*7." in out
    third = server.chat_requests[2].body["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "tool", "assistant", "user"], "history kept"


def test_run_json_prints_the_transcript(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text('{"name": "calculator", "arguments": {"expression": "2**10"}}'),
                  ScriptedReply.text("1024"))
    proc = cli("run", "2 to the 10th?", "--base-url", server.base_url, "-m", "qwen-test", "--tool", "calculator",
               "--json")
    assert proc.returncode == 0, proc.stderr
    messages = json.loads(proc.stdout)
    assert messages[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert messages[2] == {"role": "tool", "content": "1024", "tool_call_id": messages[1]["tool_calls"][0]["id"],
                           "name": "calculator"}
    assert messages[-1] == {"role": "assistant", "content": "1024"}


def test_model_errors_are_one_readable_line_and_exit_nonzero(server: ScriptedServer) -> None:
    proc = cli("run", "hi", "--base-url", server.base_url, "-m", "no-such-model")
    assert proc.returncode == 1
    assert "no-such-model" in proc.stdout + proc.stderr and "qwen-test" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_builtin_tool_is_a_clear_error() -> None:
    proc = cli("run", "hi", "--base-url", "http://127.0.0.1:9/v1", "--tool", "no_such_tool")
    assert proc.returncode == 1
    assert "no_such_tool" in proc.stderr and "calculator" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_list_shows_the_catalogue() -> None:
    proc = cli("models", "list")
    assert proc.returncode == 0, proc.stderr
    for name in ("qwen2.5-coder-0.5b (default)", "qwen2.5-coder-1.5b", "smollm2-135m"):
        assert name in proc.stdout
