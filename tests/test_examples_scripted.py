"""The examples the real-model tests do not run (tests/test_examples.py runs quickstart and openai_server with
the embedded model), run as written in a subprocess against a scripted model on 127.0.0.1 named by
``QWEN_AGENT_MODEL_SPEC``: every tool, kernel, MCP server, index and web server is real, only the model's replies
are fixed. Each test checks the exit status, that no traceback escaped, and what the example printed, including
the values the real tools computed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools.code_interpreter.sample_data import expected_answers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as srv:
        yield srv


def run_example(name: str, server: ScriptedServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEN_AGENT_")}
    env.update(QWEN_AGENT_MODEL_SPEC=f"openai:{server.base_url}#qwen-test", COLUMNS="200")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def call(name: str, **arguments: Any) -> ScriptedReply:
    """A call as the embedded model writes it: bare JSON in the text (read by the prompted nous format)."""
    return ScriptedReply.text(json.dumps({"name": name, "arguments": arguments}))


def last_message_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def test_custom_tools_example_converts_with_the_async_tool(server: ScriptedServer) -> None:
    server.script(call("convert_currency", amount=120, from_currency="EUR", to_currency="GBP"),
                  ScriptedReply.text("120 EUR is about 102.05 GBP."))
    out = run_example("custom_tools.py", server).stdout
    assert "percent_of(15, 80) = 12.0" in out
    assert "120 EUR = 102.05 GBP" in out, "the async tool computed 120 * 1.08 / 1.27"
    assert out.rstrip().endswith("120 EUR is about 102.05 GBP.")
    assert "convert_currency" in json.dumps(server.chat_requests[0].body["messages"]), "the tools were offered"
    assert "120 EUR = 102.05 GBP" in last_message_text(server.chat_requests[1].body)


def test_custom_tools_example_keeps_notes_across_calls(server: ScriptedServer) -> None:
    server.script(call("notebook", action="add", text="buy milk"), call("notebook", action="list"),
                  ScriptedReply.text("Your notes: buy milk."))
    out = run_example("custom_tools.py", server, "Note 'buy milk', then list my notes.").stdout
    assert "stored note #1" in out and "1. buy milk" in out, "the stateful tool kept the note between calls"


def test_mcp_example_calls_the_demo_server_it_started(server: ScriptedServer) -> None:
    server.script(call("lookup_capital", country="Wakanda"), ScriptedReply.text("The capital is Birnin Zana."))
    out = run_example("mcp_agent.py", server).stdout
    assert "MCP tools: echo, lookup_capital" in out, "only the tools the configuration includes"
    assert 'tool: lookup_capital({"country": "Wakanda"})' in out
    assert "result: The capital of Wakanda is Birnin Zana." in out, "the MCP server process answered"
    assert "A: The capital is Birnin Zana." in out
    assert "Birnin Zana" in last_message_text(server.chat_requests[1].body)


def test_rag_example_indexes_its_documents_and_gives_the_model_the_right_passages(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("28 days [handbook.docx]."), ScriptedReply.text("11:30 [canteen.html]."))
    out = run_example("rag_qa.py", server).stdout
    indexed = re.search(r"indexed (\d+) documents", out)
    assert indexed and int(indexed[1]) == 3, out
    assert "A: 28 days [handbook.docx]." in out and "A: 11:30 [canteen.html]." in out
    prompts = [json.dumps(r.body["messages"]) for r in server.chat_requests]
    assert len(prompts) == 2, "the world-cup question matches no passage: the assistant refuses without the model"
    assert "I could not find anything about this in your documents" in out.split("Q: Who won", 1)[1]
    assert "28 days of paid holiday" in prompts[0], "retrieval found the Word file's passage"
    assert "open from 11:30 to 14:30" in prompts[1], "retrieval found the HTML page's passage"


def web_responder(body: dict[str, Any]) -> ScriptedReply:
    """Reacts like a model: fetch the URL the user names, ask the API about the city, then answer by quoting the
    observation (so the answer shows what the tool returned). The URL's port is only known at run time."""
    text = last_message_text(body)
    url = re.search(r"Read (http://127\.0\.0\.1:\d+/guide)", text)
    if url and body["messages"][-1]["role"] == "user" and "<tool_response>" not in text:
        return call("web_fetch", url=url[1])
    if "weather in Birnin Zana" in text and "<tool_response>" not in text:
        return call("get_weather", city="Birnin Zana")
    return ScriptedReply.text("From the tool: " + " ".join(text.split())[-300:])


def test_web_and_api_example_reads_the_page_and_calls_the_api() -> None:
    with ScriptedServer(models=["qwen-test"], responder=web_responder) as server:
        out = run_example("web_and_api.py", server).stdout
    assert re.search(r'tool: web_fetch\(\{"url": "http://127\.0\.0\.1:\d+/guide"\}\)', out), out
    assert 'tool: get_weather({"city": "Birnin Zana"})' in out
    answers = [line for line in out.splitlines() if line.startswith("A: ")]
    assert len(answers) == 2, out
    assert "opens at 9:30" in answers[0], "the fetched page reached the model"
    assert "24" in answers[1] and "sunny" in answers[1], "the API's JSON reached the model"


def test_data_analysis_example_runs_code_in_the_sandbox_and_saves_a_figure(server: ScriptedServer) -> None:
    top = str(expected_answers()["top_region"])
    code = ("import pandas as pd\n"
            "totals = pd.read_csv('sales.csv').groupby('region')['revenue'].sum()\n"
            "totals.plot.bar()\nprint('top:', totals.idxmax())")
    server.script(call("code_interpreter", code=code), ScriptedReply.text(f"{top} has the highest revenue."))
    out = run_example("data_analysis.py", server).stdout
    assert f"--- output:\ntop: {top}" in out, "the kernel ran the code on the sample data"
    assert f"Answer: {top} has the highest revenue." in out
    figures = re.findall(r"figure: (\S+\.png)", out)
    assert figures and all(Path(f).read_bytes().startswith(b"\x89PNG") for f in figures), out
