"""End-to-end with the real embedded model: the agent calls a tool, reads the observation and answers with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qwen_agent.agents import Agent, ToolCallFinished
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.tools import tool

pytestmark = pytest.mark.model


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city name, e.g. Paris
    """
    return f"{city}: 17 °C, light rain, wind 9 km/h"


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money between currencies.

    Args:
        amount: the amount
        from_currency: ISO code, e.g. USD
        to_currency: ISO code, e.g. EUR
    """
    return f"{amount} {from_currency} = {amount * 0.92:.2f} {to_currency}"


@pytest.mark.parametrize("fc", [FunctionCalling(format="nous"), FunctionCalling(format="nous", constrained=True)],
                         ids=["nous", "nous-constrained"])
async def test_agent_with_two_tools_calls_one_and_uses_its_result(embedded_model, fc) -> None:
    agent = Agent(embedded_model, tools=[get_weather, convert_currency], function_calling=fc, max_steps=4)
    events = [e async for e in agent.astream("What is the weather in Paris right now?")]
    result = events[-1].result
    assert result.stop_reason == "answer", result
    calls = result.tool_calls
    assert calls and calls[0].name == "get_weather", [m.to_openai() for m in result.messages]
    assert "paris" in calls[0].arguments["city"].lower()
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished and not finished[0].output.is_error and "17 °C" in finished[0].output.text
    roles = [m.role for m in result.messages]
    assert roles[:3] == ["user", "assistant", "tool"] and roles[-1] == "assistant"
    assert "17" in result.answer, f"the answer should use the observation: {result.answer!r}"


def test_cli_run_one_shot_with_a_builtin_tool(embedded_model_path) -> None:
    """`qwen-agent run` on the embedded model: a real subprocess, the calculator tool, a JSON transcript."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "qwen_agent.cli", "run", "Use the calculator to compute 1234 * 5678.",
         "--tool", "calculator", "--temperature", "0", "--json", "--n-ctx", "4096"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = json.loads(proc.stdout)
    calls = [c for m in messages for c in m.get("tool_calls") or []]
    assert calls and calls[0]["function"]["name"] == "calculator"
    tool_msgs = [m for m in messages if m["role"] == "tool"]
    assert tool_msgs and "7006652" in tool_msgs[0]["content"].replace(",", "")
    assert messages[-1]["role"] == "assistant"
    answer = messages[-1]["content"] or ""
    assert "7006652" in answer.replace(",", "").replace(" ", ""), f"the answer should carry the product: {answer!r}"
