"""Recorded real agent runs on the scripted server, shared by the trajectory tests (a module-scoped fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen_agent.agents import Agent
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.testing import ScriptedReply, ScriptedServer
from qwen_agent.tools import tool
from qwen_agent.trajectories import TrajectoryRecorder


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather for a city.

    Args:
        city: the city
        unit: celsius or fahrenheit
    """
    return f"{city}: 21 degrees {unit}"


@tool
def get_time(tz: str) -> str:
    """Current local time in a timezone.

    Args:
        tz: an IANA timezone name
    """
    return f"12:00 in {tz}"


def _calls(*calls: tuple[str, dict[str, Any]]) -> ScriptedReply:
    return ScriptedReply(tool_calls=[{"name": n, "arguments": a} for n, a in calls])


def record_runs(folder: Path) -> Path:
    """Four recorded real runs: parallel calls, two sequential steps, one cut by max_steps, one without tools."""
    recorder = TrajectoryRecorder(folder)
    with ScriptedServer(models=["qwen-test"]) as server:
        model = OpenAICompatible(server.base_url, model="qwen-test")
        fc = FunctionCalling(mode="native")
        agent = Agent(model, tools=[get_weather, get_time], system="You are a travel helper.", function_calling=fc,
                      record=recorder, name="travel")
        server.script(_calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})))
        server.script(ScriptedReply.text("Paris and Tokyo are both at 21 degrees."))
        agent.run("Weather in Paris and Tokyo?")
        server.script(_calls(("get_time", {"tz": "Europe/Paris"})))
        server.script(_calls(("get_weather", {"city": "Paris", "unit": "fahrenheit"})))
        server.script(ScriptedReply.text("It is noon and 21 degrees fahrenheit."))
        agent.run("Time in Paris, then its weather in fahrenheit.")
        short = Agent(model, tools=[get_weather], function_calling=fc, record=recorder, max_steps=1)
        server.script(_calls(("get_weather", {"city": "Oslo"})))
        short.run("Weather in Oslo?")
        plain = Agent(model, record=recorder)
        server.script(ScriptedReply.text("Hello!"))
        plain.run("Say hello.")
    recorder.close()
    return folder
