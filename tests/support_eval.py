"""A small real `Suite` for the runner's tests: items that take a moment, one that crashes, one that stops the run."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from qwen_agent.eval import EvalItem, ItemOutcome, RunContext, Suite
from qwen_agent.llm.errors import ModelConnectionError
from qwen_agent.messages import Message

#: Never contacted: the suites here do not call the model; a real backend object is all the runner needs.
UNUSED_MODEL_SPEC = "openai:http://127.0.0.1:9/v1#unused"


class CountingOptions(BaseModel):
    n: int
    delay: float


class CountingSuite(Suite):
    """Items ``item-0 .. item-{n-1}`` in categories even/odd; odd items score 0.5. ``crash`` raises ValueError,
    ``down`` raises ModelConnectionError. The prediction records the process id, to tell runs apart."""

    name = "counting"
    primary = "score"

    def __init__(self, n: int = 6, *, delay: float = 0.0, special: dict[int, str] | None = None) -> None:
        self.n, self.delay, self.special = n, delay, special or {}
        self.ran: list[str] = []

    def options(self) -> CountingOptions:
        return CountingOptions(n=self.n, delay=self.delay)

    def categories(self) -> list[str]:
        return ["even", "odd"]

    def items(self, limit: int | None) -> list[EvalItem]:
        return [EvalItem(id=f"item-{i}", category="even" if i % 2 == 0 else "odd", input={"i": i}, data=i)
                for i in range(self.n)][:limit]

    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        self.ran.append(item.id)
        await asyncio.sleep(self.delay)
        kind = self.special.get(item.data)
        if kind == "crash":
            raise ValueError(f"item {item.data} is broken")
        if kind == "down":
            raise ModelConnectionError("cannot reach http://127.0.0.1:9/v1: connection refused")
        return ItemOutcome(transcript=[Message.user(str(item.data)), Message.assistant(str(item.data))],
                           prediction={"pid": os.getpid(), "i": item.data}, score=1.0 if item.data % 2 == 0 else 0.5,
                           metrics={"even_only": 1.0 if item.data % 2 == 0 else None}, prompt_tokens=10,
                           completion_tokens=2)
