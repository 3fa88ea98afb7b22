"""The ``bfcl`` suite: BFCL v4 single-turn categories, one request per item, scored by BFCL's AST rules plus the
release's tool-use metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.eval.bfcl.checker import check_prediction
from qwen_agent.eval.bfcl.dataset import (
    BFCL_VERSION,
    CATEGORIES,
    DEFAULT_CATEGORIES,
    BfclEntry,
    bfcl_wheel,
    load_category,
    to_tool_schemas,
)
from qwen_agent.eval.bfcl.metrics import tool_metrics
from qwen_agent.eval.errors import EvalDataError
from qwen_agent.eval.suite import EvalItem, ItemOutcome, RunContext, Suite
from qwen_agent.messages import as_messages

__all__ = ["BfclOptions", "BfclSuite"]


class BfclOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    version: str = BFCL_VERSION


class BfclSuite(Suite):
    """One chat request per BFCL question with its functions as tools; the calls in the reply are the prediction."""

    name = "bfcl"
    primary = "ast_accuracy"
    default_max_tokens = 512

    def __init__(self, categories: list[str] | None = None, *, wheel: Path | None = None) -> None:
        self._options = BfclOptions(categories=list(categories or DEFAULT_CATEGORIES))
        unknown = [c for c in self._options.categories if c not in CATEGORIES]
        if unknown:
            raise EvalDataError(f"unknown BFCL categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                                f"choose from: {', '.join(CATEGORIES)}")
        self._wheel = wheel

    def options(self) -> BfclOptions:
        return self._options

    def categories(self) -> list[str]:
        return list(self._options.categories)

    def items(self, limit: int | None) -> list[EvalItem]:
        wheel = self._wheel or bfcl_wheel()
        items = []
        for category in self._options.categories:
            for entry in load_category(category, wheel)[:limit]:
                view = {"messages": entry.messages, "functions": [f["name"] for f in entry.functions],
                        "ground_truth": entry.ground_truth}
                items.append(EvalItem(id=entry.id, category=category, input=view, data=entry))
        return items

    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        entry: BfclEntry = item.data
        messages = as_messages(entry.messages)
        tools = to_tool_schemas(entry.functions)
        response = await ctx.model.achat(messages, tools, params=ctx.params, function_calling=ctx.function_calling)
        calls = [{c.name: dict(c.arguments)} for c in response.tool_calls]
        usage = response.usage
        return self._score(entry, calls).model_copy(update={
            "transcript": [*messages, response.message],
            "tools": tools,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
        })

    def rescore(self, item: EvalItem, prediction: Any) -> ItemOutcome:
        return self._score(item.data, prediction)

    @staticmethod
    def _score(entry: BfclEntry, calls: list[dict[str, dict[str, Any]]]) -> ItemOutcome:
        result = check_prediction(entry.category, entry.functions, calls, entry.ground_truth)
        return ItemOutcome(prediction=calls, score=float(result.valid),
                           metrics=tool_metrics(entry.category, calls, entry.ground_truth),
                           detail=None if result.valid else f"{result.error_type}: {result.error}")
