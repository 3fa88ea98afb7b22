"""Custom tools three ways: a typed function with `@tool`, an async function, and a stateful `Tool` subclass.

The agent (embedded model by default) gets a calculator-style function, an async exchange-rate lookup and a small
note book that remembers what it is told across calls.

    python examples/custom_tools.py ["your question"]
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel, Field

from qwen_agent import Agent, SamplingParams, Tool, tool

RATES_TO_USD = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "CHF": 1.13}


@tool
def percent_of(percent: float, value: float) -> float:
    """Compute percent% of a value, e.g. 15% of 80 is 12.

    Args:
        percent: the percentage, e.g. 15
        value: the base value
    """
    return round(percent * value / 100, 6)


@tool(timeout=5)
async def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert money between USD, EUR, GBP, JPY and CHF at today's reference rate.

    Args:
        amount: the amount of money
        from_currency: ISO code of the amount's currency
        to_currency: ISO code of the wanted currency
    """
    await asyncio.sleep(0)  # a real tool would await an HTTP API here
    src, dst = from_currency.upper(), to_currency.upper()
    converted = amount * RATES_TO_USD[src] / RATES_TO_USD[dst]
    return f"{amount:g} {src} = {converted:.2f} {dst}"


class NoteArgs(BaseModel):
    action: str = Field(description="'add' to store a note, 'list' to read all notes")
    text: str = Field(default="", description="the note to store (for 'add')")


class Notebook(Tool):
    """A stateful tool: its notes live as long as the tool instance."""

    name = "notebook"
    description = "Store short notes and read them back later."
    Args = NoteArgs

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def run(self, args: NoteArgs) -> str:
        if args.action == "add":
            self.notes.append(args.text)
            return f"stored note #{len(self.notes)}"
        if args.action == "list":
            return "\n".join(f"{i}. {n}" for i, n in enumerate(self.notes, 1)) or "(no notes)"
        raise ValueError("action must be 'add' or 'list'")


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Convert 120 EUR to GBP."
    print(f"direct calls still work: percent_of(15, 80) = {percent_of(15, 80)}")
    agent = Agent(tools=[percent_of, convert_currency, Notebook()],
                  params=SamplingParams(temperature=0.0, max_tokens=200))
    with agent:
        result = agent.run(question)
    for m in result.messages:
        calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
        print(f"{m.role:9} {calls or m.text}")
    return 0 if result.stop_reason == "answer" else 1


if __name__ == "__main__":
    sys.exit(main())
