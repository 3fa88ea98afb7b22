"""Data analysis over a CSV/Excel file: an `Agent` with the sandboxed code interpreter and a data-analyst prompt."""

from __future__ import annotations

from pathlib import Path

from qwen_agent.agents.agent import Agent
from qwen_agent.agents.events import AgentResult
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.types import FunctionCalling, SamplingParams
from qwen_agent.prompting import render_note
from qwen_agent.tools.code_interpreter import CodeInterpreter

__all__ = ["analyst_agent", "analyze", "describe_columns"]


def describe_columns(path: Path) -> str:
    """The header line of a CSV, or the sheet columns of an Excel file, for the prompt."""
    if path.suffix.lower() in (".xlsx", ".xls"):
        import pandas as pd

        return ", ".join(map(str, pd.read_excel(path, nrows=0).columns))
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.readline().strip()


def analyst_agent(data: Path | str, model: ChatModel | None = None, *, max_steps: int = 5,
                  exec_timeout: float = 60.0, sandbox: str = "bwrap") -> tuple[Agent, CodeInterpreter]:
    """An agent whose code interpreter holds ``data`` in its work directory.

    Calls are grammar-constrained: without that the 0.5B model invents tool names and breaks the JSON of code
    arguments; with it, every step is a valid ``code_interpreter`` call or an answer.
    """
    data = Path(data)
    interpreter = CodeInterpreter([data], exec_timeout=exec_timeout, sandbox=sandbox)  # type: ignore[arg-type]
    if model is None:  # $QWEN_AGENT_MODEL_SPEC when set, else the embedded model (like every other default)
        from qwen_agent.llm.spec import load_model

        model = load_model(params=SamplingParams(temperature=0.0, max_tokens=512))
    agent = Agent(
        model,
        tools=[interpreter],
        system=render_note("data_analyst", filename=data.name, columns=describe_columns(data)),
        max_steps=max_steps,
        function_calling=FunctionCalling(format="nous", constrained=True),
    )
    return agent, interpreter


def analyze(data: Path | str, question: str, model: ChatModel | None = None, **kwargs: object
            ) -> tuple[AgentResult, list[Path], CodeInterpreter]:
    """Ask ``question`` about ``data``. Returns the result, the figure files made, and the (closed) interpreter,
    whose ``work_dir`` keeps every file of the session, including the saved notebook."""
    agent, interpreter = analyst_agent(data, model, **kwargs)  # type: ignore[arg-type]
    try:
        result = agent.run(question)
        figures = sorted(interpreter.work_dir.glob("figure-*.png")) if interpreter.kernel is not None else []
        if interpreter.kernel is not None:
            interpreter.save_notebook()
    finally:
        agent.close()
    return result, figures, interpreter
