"""The `qwen-agent` command line as a user runs it: a real subprocess, against a scripted server on 127.0.0.1.

Every sub-command has a test here (`run`, `chat`, `analyze`, `index`, `ask`, `serve`, `models list|pull|convert`),
each checking the exit status, what the command printed, and that no traceback escaped."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools.code_interpreter.sample_data import expected_answers


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEN_AGENT_")}
    env["COLUMNS"] = "200"
    return env


def cli(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qwen_agent.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=cli_env())


def assert_clean(proc: subprocess.CompletedProcess[str], status: int = 0) -> None:
    """The exit status the command should have, and no Python traceback on either stream."""
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


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


def test_models_pull_keeps_a_present_model_and_verifies_it(embedded_model_path: Path) -> None:
    """The model is present (the fixture fails otherwise), so this is local: a size check, then a full re-hash."""
    proc = cli("models", "pull", "--verify")
    assert_clean(proc)
    assert "qwen2.5-coder-0.5b" in proc.stdout and str(embedded_model_path) in proc.stdout.replace("\n", "")


def test_models_pull_of_an_unknown_name_is_a_clear_error() -> None:
    proc = cli("models", "pull", "no-such-model")
    assert proc.returncode != 0
    assert "no-such-model" in proc.stdout + proc.stderr and "qwen2.5-coder-0.5b" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.transformers
def test_models_convert_prints_the_verified_folder(hf_folder: Path) -> None:
    """The fixture converted (or verified) the folder; the command finds it and prints only its path on stdout."""
    proc = cli("models", "convert")
    assert_clean(proc)
    assert proc.stdout.strip() == str(hf_folder)
    assert (Path(proc.stdout.strip()) / "config.json").is_file()


def test_run_prints_the_tool_result_and_the_answer(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text('{"name": "calculator", "arguments": {"expression": "17*23"}}'),
                  ScriptedReply.text("17 times 23 is 391."))
    proc = cli("run", "What is 17*23?", "--base-url", server.base_url, "-m", "qwen-test", "--tool", "calculator")
    assert_clean(proc)
    assert "→ calculator" in proc.stdout and "← calculator" in proc.stdout
    assert "391" in proc.stdout.split("← calculator", 1)[1].splitlines()[0], "the calculator really computed"
    assert proc.stdout.rstrip().endswith("17 times 23 is 391.")
    assert "391" in json.dumps(server.chat_requests[1].body["messages"][-1]), "the model was shown the result"


ANALYSIS_CODE = (
    "import pandas as pd\n"
    "totals = pd.read_csv('sales.csv').groupby('region')['revenue'].sum()\n"
    "totals.plot.bar()\n"
    "print('top:', totals.idxmax())"
)


def test_analyze_runs_the_code_in_the_sandbox_and_lists_the_figure(server: ScriptedServer) -> None:
    """`analyze` without a file uses the sample CSV, whose top region is known. It used to crash at the end of
    every run (the interpreter's work dir was read after the agent had closed it)."""
    top = str(expected_answers()["top_region"])
    server.script(ScriptedReply.text(json.dumps({"name": "code_interpreter", "arguments": {"code": ANALYSIS_CODE}})),
                  ScriptedReply.text(f"{top} has the highest total revenue."))
    proc = cli("analyze", "--base-url", server.base_url, "-m", "qwen-test")
    assert_clean(proc)
    out = proc.stdout
    assert f"top: {top}" in out, "the kernel ran the code on the sample data"
    assert f"{top} has the highest total revenue." in out
    notebook = re.search(r"notebook: (\S+\.ipynb)", out)
    figures = re.findall(r"figure: (\S+\.png)", out)
    assert notebook and Path(notebook[1]).is_file(), out
    assert figures and all(Path(f).read_bytes().startswith(b"\x89PNG") for f in figures), out
    observation = server.chat_requests[1].body["messages"][-1]
    assert f"top: {top}" in json.dumps(observation), "the model was shown the kernel's output"


def test_analyze_exits_nonzero_when_the_model_never_answers(server: ScriptedServer, tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    call = ScriptedReply.text(json.dumps({"name": "code_interpreter", "arguments": {"code": "print(1)"}}))
    server.script(call, call)
    proc = cli("analyze", str(data), "how many rows?", "--max-steps", "2", "--base-url", server.base_url,
               "-m", "qwen-test")
    assert_clean(proc, status=1)


DOCS = {
    "holidays.md": "# Holidays\n\nFull-time staff receive 28 days of paid holiday per calendar year.\n",
    "canteen.md": "# Canteen\n\nThe staff canteen on the ground floor is open from 11:30 to 14:30 on weekdays.\n",
}


def test_index_then_ask_answers_from_the_store(server: ScriptedServer, tmp_path: Path) -> None:
    docs, store = tmp_path / "docs", tmp_path / "store"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    proc = cli("index", str(docs), "--store", str(store))
    assert_clean(proc)
    assert "2 new" in proc.stdout and "2 documents" in proc.stdout and str(store) in proc.stdout

    again = cli("index", str(docs), "--store", str(store))
    assert_clean(again)
    assert "0 new" in again.stdout and "2 unchanged" in again.stdout

    server.script(ScriptedReply.text("The canteen is open from 11:30 to 14:30 [canteen.md]."))
    asked = cli("ask", "When is the canteen open?", "--store", str(store), "--show-passages",
                "--base-url", server.base_url, "-m", "qwen-test")
    assert_clean(asked)
    assert "11:30 to 14:30" in asked.stdout.split("The canteen is open", 1)[0], "the passages were shown"
    assert "The canteen is open from 11:30 to 14:30 [canteen.md]." in asked.stdout
    prompt = json.dumps(server.chat_requests[0].body["messages"])
    assert "open from 11:30 to 14:30" in prompt and "canteen.md" in prompt, "the model was given the passage"


def test_ask_without_a_store_or_docs_is_a_usage_error() -> None:
    proc = cli("ask", "anything")
    assert proc.returncode == 2 and "--docs" in proc.stderr and "Traceback" not in proc.stderr


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_an_openai_request_and_stops_cleanly(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("Hello from the scripted model."))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qwen_agent.cli", "serve", "--port", str(port), "--model",
                             f"openai:{server.base_url}#qwen-test", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=60) as client:
            for _ in range(600):  # wait for the listener (start-up imports take a few seconds on a loaded machine)
                if proc.poll() is not None:
                    break
                try:
                    client.get(f"{base}/v1/models")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()
            models = client.get(f"{base}/v1/models").json()
            assert "assistant" in [m["id"] for m in models["data"]]
            reply = client.post(f"{base}/v1/chat/completions", json={
                "model": "assistant", "messages": [{"role": "user", "content": "Say hello."}]})
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"] == "Hello from the scripted model."
        assert server.chat_requests[0].body["messages"][-1]["content"] == "Say hello."
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), out + err
    assert "serving assistant" in out and f"127.0.0.1:{port}" in out
    assert "Traceback" not in err + out, err


@pytest.mark.parametrize(("value", "ok"), [("0.6", True), ("off", True), ("1.5", False), ("often", False)])
def test_next_call_threshold_takes_a_probability_or_off(value: str, ok: bool) -> None:
    # --limit 0 is refused by argparse too: the error names whichever option was wrong, and nothing runs
    proc = cli("eval", "bfcl", "--next-call-threshold", value, "--limit", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert "--limit: expected at least 1, got 0" in proc.stderr, proc.stderr
    else:
        assert "--next-call-threshold" in proc.stderr and "probability" in proc.stderr, proc.stderr
