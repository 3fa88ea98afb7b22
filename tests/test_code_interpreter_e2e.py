"""End-to-end: the embedded model answers a question about the sample CSV through the sandboxed code interpreter
(real llama.cpp model, real agent loop, real kernel in a real bubblewrap sandbox) and a figure file exists after."""

from __future__ import annotations

import pytest

from qwen_agent.agents.analyst import analyst_agent
from qwen_agent.tools.code_interpreter import write_sample_csv
from qwen_agent.tools.code_interpreter.sample_data import expected_answers

DEFAULT_QUESTION = "Which region has the highest total revenue? Make a bar chart of total revenue per region."

pytestmark = pytest.mark.model


async def test_agent_analyses_sample_csv_and_makes_a_figure(embedded_model, tmp_path):
    csv = write_sample_csv(tmp_path / "sales.csv")
    agent, interpreter = analyst_agent(csv, embedded_model, max_steps=4)
    try:
        result = await agent.arun(DEFAULT_QUESTION)
        calls = [c for c in result.tool_calls if c.name == "code_interpreter"]
        assert calls, result.to_openai()
        assert interpreter.kernel is not None and interpreter.kernel.process is not None
        assert interpreter.kernel.process.sandboxed
        figures = sorted(interpreter.work_dir.glob("figure-*.png"))
        assert figures, [m.text for m in result.messages if m.role == "tool"]
        assert figures[0].read_bytes().startswith(b"\x89PNG")
        assert result.stop_reason == "answer" and result.answer.strip(), result.to_openai()
        top = str(expected_answers()["top_region"])
        assert top in result.answer, (result.answer, [m.text for m in result.messages if m.role == "tool"])
        assert any("[image saved:" in m.text for m in result.messages if m.role == "tool")
    finally:
        await interpreter.aclose()
