"""End to end with the real embedded model: a recorded run of the 0.5B model, exported in every format and rendered
through the model's own chat template (the converted Hugging Face folder's tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_agent.agents import Agent
from qwen_agent.tools import tool
from qwen_agent.trajectories import export_trajectories, read_trajectories

pytestmark = [pytest.mark.model, pytest.mark.transformers]


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"{city}: sunny, 21 degrees celsius"


def test_a_real_run_is_recorded_exported_and_renders(embedded_model: Any, hf_folder: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    agent = Agent(embedded_model, tools=[get_weather], record=tmp_path / "runs", max_steps=3)
    result = agent.run("What is the weather in Paris right now?")
    assert result.tool_calls, result.messages  # the model looks it up (temperature 0: deterministic)
    [run] = list(read_trajectories([tmp_path / "runs"]))
    assert run.model == embedded_model.model and run.provider == "llama_cpp" and run.format == "nous"
    assert run.stop_reason == result.stop_reason and len(run.messages) == len(result.messages)

    tokenizer = AutoTokenizer.from_pretrained(hf_folder)
    for fmt in ("openai", "axolotl", "llamafactory"):
        out = tmp_path / f"{fmt}.jsonl"
        assert export_trajectories([tmp_path / "runs"], out, fmt).written == 1  # type: ignore[arg-type]
        [record] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        if fmt == "llamafactory":
            turns = [t["from"] for t in record["conversations"]]
            assert turns[:2] == ["human", "function_call"] and len(turns) % 2 == 0
            continue
        messages = []
        for m in record["messages"]:
            m = dict(m)
            for c in m.get("tool_calls") or []:
                args = c["function"]["arguments"]
                c["function"]["arguments"] = json.loads(args) if isinstance(args, str) else args
            messages.append(m)
        text = tokenizer.apply_chat_template(messages, tools=record["tools"], tokenize=False)
        conversation = text.split("<|im_end|>", 1)[1]
        for call in result.tool_calls:
            payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
            assert f"<tool_call>\n{payload}\n</tool_call>" in conversation
        assert conversation.count("<tool_response>") == sum(m.role == "tool" for m in result.messages)
