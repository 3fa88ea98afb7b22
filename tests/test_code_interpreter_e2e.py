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
        # The right answer is known (expected_answers), but the 0.5B model often plots without printing the totals
        # and then guesses, so "names the top region" is not a property of the plumbing in every run. What holds:
        # when the kernel's output showed the per-region totals, the answer must name the top region.
        truth = expected_answers()
        outputs = "\n".join(m.text for m in result.messages if m.role == "tool")
        if all(region in outputs for region in truth["revenue_by_region"]):  # type: ignore[union-attr]
            assert str(truth["top_region"]) in result.answer, (result.answer, outputs)
        assert any("[image saved:" in m.text for m in result.messages if m.role == "tool")
    finally:
        await interpreter.aclose()
