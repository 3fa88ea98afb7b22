"""The ``code`` suite: problems solved through the sandboxed code interpreter — math accuracy on GSM8K-style items,
executable rate of the cells the model wrote, and figures (made at all; optionally checked by a judge model).

Data (JSON Lines), one item per line:
    {"id": "m1", "question": "...", "answer": 42}                                math: the final answer's number
    {"id": "v1", "question": "Plot ...", "figure": true, "files": ["sales.csv"],  visualization: a figure must be
     "criterion": "bars for 3 regions, the tallest labelled North"}              made; the judge checks criterion
``files`` are relative to the data file and copied into the sandbox's work directory.
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwen_agent.eval.datafiles import load_records
from qwen_agent.eval.errors import EvalDataError
from qwen_agent.eval.prompts import render_prompt
from qwen_agent.eval.suite import EvalItem, ItemOutcome, RunContext, Suite
from qwen_agent.llm.base import ChatModel
from qwen_agent.messages import ImagePart, ImageURL, Message, TextPart

__all__ = ["CodeItem", "CodeOptions", "CodeSuite", "extract_number", "numbers_match"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


class CodeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int | str
    question: str
    #: The exact numeric answer of a math item.
    answer: float | None = None
    #: A visualization item: the run must produce a figure.
    figure: bool = False
    #: What a judge model checks on the figure (optional).
    criterion: str | None = None
    files: list[str] = Field(default_factory=list)
    category: str | None = None
    #: How the answer was verified (e.g. the Python expression that computes it); not shown to the model.
    solution: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CodeItem:
        if (self.answer is None) == (not self.figure):
            raise ValueError("give either a numeric 'answer' (math) or 'figure': true (visualization)")
        return self


class CodeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    judge: str | None = None
    max_steps: int = 5
    sandbox: Literal["bwrap", "none"] = "bwrap"


def extract_number(text: str) -> float | None:
    """The number an answer gives: the first one after the last "Answer:", else the last number in the text."""
    if "Answer:" in text:
        after = _NUMBER.findall(text.rsplit("Answer:", 1)[1])
        if after:
            return _parse(after[0])
    found = _NUMBER.findall(text)
    return _parse(found[-1]) if found else None


def _parse(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def numbers_match(got: float | None, want: float) -> bool:
    return got is not None and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)


class CodeSuite(Suite):
    """Each item runs an `Agent` with a fresh `CodeInterpreter`; the final answer (or the figure) is scored."""

    name = "code"
    primary = "accuracy"
    default_max_tokens = 512

    def __init__(self, data: Path | str, *, judge: str | None = None, max_steps: int = 5,
                 sandbox: Literal["bwrap", "none"] = "bwrap") -> None:
        self.data = Path(data)
        self._options = CodeOptions(data=str(self.data.resolve()), judge=judge, max_steps=max_steps, sandbox=sandbox)
        self._judge_model: ChatModel | None = None

    def options(self) -> CodeOptions:
        return self._options

    def categories(self) -> list[str]:
        return ["math", "visualization"]

    def items(self, limit: int | None) -> list[EvalItem]:
        items = []
        for number, item in load_records(self.data, CodeItem):
            for name in item.files:
                if not (self.data.parent / name).is_file():
                    raise EvalDataError(f"{self.data}:{number}: file {name!r} not found next to the data file")
            category = item.category or ("visualization" if item.figure else "math")
            items.append(EvalItem(id=str(item.id), category=category,
                                  input=item.model_dump(exclude_none=True, exclude={"solution"}),
                                  data=item))
        return items[:limit]

    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        from qwen_agent.agents import Agent, FinalAnswer, ToolCallFinished
        from qwen_agent.tools.code_interpreter import CodeInterpreter

        task: CodeItem = item.data
        files = [self.data.parent / name for name in task.files]
        interpreter = CodeInterpreter(files, sandbox=self._options.sandbox)
        system = render_prompt("code_figure", files=", ".join(task.files)) if task.figure \
            else render_prompt("code_math")
        agent = Agent(ctx.model, tools=[interpreter], system=system, max_steps=self._options.max_steps,
                      params=ctx.params, function_calling=ctx.function_calling)
        cells = ok_cells = 0
        figures: list[Path] = []
        result = None
        try:
            async for event in agent.astream(task.question):
                if isinstance(event, ToolCallFinished) and event.call.name == interpreter.name:
                    cells += 1
                    ok_cells += not event.output.is_error
                    figures += [Path(f.path) for f in event.output.files
                                if f.path and (f.mime_type or "").startswith("image/")]
                elif isinstance(event, FinalAnswer):
                    result = event.result
            assert result is not None
            if task.figure:
                score, detail = await self._score_figure(task, figures)
            else:
                got = extract_number(result.answer)
                score = float(numbers_match(got, task.answer))  # type: ignore[arg-type]
                detail = None if score else f"answer {got} != {task.answer:g}"
        finally:
            await interpreter.aclose()  # the model is shared by the run: only the kernel is closed
        metrics: dict[str, float | None] = {"executable_rate": ok_cells / cells if cells else None,
                                            "used_code": float(cells > 0)}
        return ItemOutcome(transcript=result.messages, tools=agent.toolbox.schemas(), prediction=result.answer,
                           score=score, metrics=metrics,
                           detail=detail if result.stop_reason == "answer" else f"{result.stop_reason}: {detail}",
                           prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)

    async def _score_figure(self, task: CodeItem, figures: list[Path]) -> tuple[float, str | None]:
        existing = [f for f in figures if f.is_file()]
        if not existing:
            return 0.0, "no figure was made"
        if not (self._options.judge and task.criterion):
            return 1.0, None
        if self._judge_model is None:
            from qwen_agent.llm.spec import load_model

            self._judge_model = load_model(self._options.judge)
        image = base64.b64encode(existing[-1].read_bytes()).decode()
        question = render_prompt("figure_judge", question=task.question, criterion=task.criterion)
        reply = await self._judge_model.achat([Message.user([
            TextPart(text=question), ImagePart(image_url=ImageURL(url=f"data:image/png;base64,{image}"))])])
        verdict = reply.text.strip().lower()
        return (1.0, None) if verdict.startswith("yes") else (0.0, f"judge: {reply.text.strip()[:200]}")

    async def aclose(self) -> None:
        if self._judge_model is not None:
            await self._judge_model.aclose()
