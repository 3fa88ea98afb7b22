"""The `make demo` script: an agent on the embedded Qwen model uses a tool and answers.

Two typed tools (a unit converter and a small city lookup), one question that needs a tool call. Prints the events
as they happen, then the transcript: the call, the observation and the final answer that uses it.

    python examples/quickstart.py ["your question"]

The model is the embedded one unless ``QWEN_AGENT_MODEL_SPEC`` names another, e.g. a vLLM server:
``QWEN_AGENT_MODEL_SPEC=openai:http://127.0.0.1:8000/v1 python examples/quickstart.py``.
"""

from __future__ import annotations

import sys
from typing import Literal

from rich.console import Console

from qwen_agent import Agent, SamplingParams, tool
from qwen_agent.agents import FinalAnswer
from qwen_agent.cli import EventPrinter
from qwen_agent.llm import ModelSpec

# metres per unit, for the length units the converter knows
LENGTH = {"m": 1.0, "km": 1000.0, "cm": 0.01, "ft": 0.3048, "in": 0.0254, "mi": 1609.344, "yd": 0.9144}

CITIES = {
    "lhasa": {"country": "China", "elevation_m": 3656, "population": 867_891},
    "la paz": {"country": "Bolivia", "elevation_m": 3640, "population": 755_732},
    "quito": {"country": "Ecuador", "elevation_m": 2850, "population": 2_011_388},
    "denver": {"country": "United States", "elevation_m": 1609, "population": 715_522},
}


@tool
def convert_length(value: float, from_unit: Literal["m", "km", "cm", "ft", "in", "mi", "yd"],
                   to_unit: Literal["m", "km", "cm", "ft", "in", "mi", "yd"]) -> str:
    """Convert a length from one unit to another.

    Args:
        value: the length to convert
        from_unit: the unit of value
        to_unit: the unit wanted
    """
    result = value * LENGTH[from_unit] / LENGTH[to_unit]
    return f"{value:g} {from_unit} = {result:,.2f} {to_unit}"


@tool
def city_info(city: str) -> dict:
    """Look up a city's country, elevation in metres and population.

    Args:
        city: the city's name, e.g. Quito
    """
    info = CITIES.get(city.strip().lower())
    if info is None:
        raise KeyError(f"no data for {city!r}; known cities: {', '.join(c.title() for c in CITIES)}")
    return {"city": city.title(), **info}


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Mount Everest is 8849 metres high. How high is that in feet?"
    console = Console()
    spec = ModelSpec.parse(None)
    where = "embedded Qwen2.5-Coder-0.5B (llama.cpp, CPU)" if spec == ModelSpec.parse("") else str(spec)
    console.rule(f"[bold]qwen-agent demo — {where}")
    console.print(f"[bold]user>[/] {question}")
    agent = Agent(
        tools=[convert_length, city_info],
        system="You are a precise assistant. Use a tool whenever it can compute or look up the answer.",
        params=SamplingParams(temperature=0.0, max_tokens=256),
    )
    printer = EventPrinter(console)
    result = None
    with agent:
        for event in agent.stream(question):
            printer(event)
            if isinstance(event, FinalAnswer):
                result = event.result
    assert result is not None
    console.rule("transcript")
    for m in result.messages:
        if m.tool_calls:
            for c in m.tool_calls:
                console.print(f"[cyan]{m.role}[/] calls {c.name}({c.arguments})", highlight=False)
        else:
            console.print(f"[cyan]{m.role}[/] {m.text}", highlight=False)
    console.print(f"[dim]{result.steps} model steps, {len(result.tool_calls)} tool call(s), "
                  f"{result.usage.prompt_tokens} prompt / {result.usage.completion_tokens} completion tokens[/]")
    return 0 if result.stop_reason == "answer" and result.tool_calls else 1


if __name__ == "__main__":
    sys.exit(main())
