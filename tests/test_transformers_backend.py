"""The Transformers backend with the real converted model: answers, streaming, stop words, prefill, an agent's tool
call, exact token counts and cancellation; plus the pure stop-word cutter and the error paths."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qwen_agent.agents import Agent, ToolCallFinished
from qwen_agent.llm.backends.hf_generation import StopCutter, prompt_ids
from qwen_agent.llm.backends.transformers import Transformers
from qwen_agent.llm.base import FunctionCalling, SamplingParams
from qwen_agent.llm.errors import ModelNotFoundError
from qwen_agent.messages import Message
from qwen_agent.tools import tool

QUESTION = "What is the capital of France?"


# ---- the stop-word cutter (pure) ------------------------------------------------------------------------------
def _cut(stop: list[str], pieces: list[str]) -> tuple[list[str], str, bool]:
    cutter = StopCutter(stop)
    shown = [cutter.feed(p) for p in pieces]
    return shown, "".join(shown) + cutter.flush(), cutter.stopped


def test_stop_cutter_cuts_before_a_stop_word_split_across_pieces() -> None:
    shown, text, stopped = _cut(["<tool_response>"], ["Hello <to", "ol_resp", "onse> ignored", " more"])
    assert text == "Hello " and stopped
    assert shown[0] == "Hello ", "a possible start of the stop word is held back, the rest is shown at once"
    assert all("<to" not in s for s in shown)


def test_stop_cutter_releases_a_held_tail_that_was_not_a_stop_word() -> None:
    shown, text, stopped = _cut(["Observation:"], ["Thought: ok\nObs", "erved nothing", " Obs"])
    assert text == "Thought: ok\nObserved nothing Obs" and not stopped
    assert shown == ["Thought: ok\n", "Observed nothing", " "], "the final partial match comes out at flush"


def test_stop_cutter_earliest_of_several_words_wins_and_empty_words_are_ignored() -> None:
    _, text, stopped = _cut(["", "END", "7"], ["1, 3, 5, 7, 9, END"])
    assert text == "1, 3, 5, " and stopped
    _, text, stopped = _cut([], ["no stop words at all"])
    assert text == "no stop words at all" and not stopped


# ---- errors without a model ------------------------------------------------------------------------------------
def test_missing_folder_and_non_model_folder_raise_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no Hugging Face model folder"):
        Transformers(tmp_path / "absent").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config.json"):
        Transformers(tmp_path / "empty").load()


# ---- the real model --------------------------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.transformers
async def test_chat_answers_and_streaming_deltas_make_the_final_text(hf_model: Transformers) -> None:
    response = await hf_model.achat(QUESTION)
    assert "Paris" in response.text, response.text
    assert response.finish_reason == "stop"
    assert response.usage and response.usage.prompt_tokens > 20 and response.usage.completion_tokens > 0

    deltas: list[str] = []
    final = None
    async for delta in hf_model.astream(QUESTION):
        if delta.response is not None:
            final = delta.response
        elif delta.content:
            deltas.append(delta.content)
    assert final is not None and len(deltas) > 2, deltas
    assert "".join(deltas).strip() == final.text.strip() == response.text.strip()  # greedy: same answer twice


@pytest.mark.model
@pytest.mark.transformers
async def test_a_stop_word_ends_generation_and_never_reaches_the_caller(hf_model: Transformers) -> None:
    params = SamplingParams(stop=["7"], max_tokens=80)
    deltas: list[str] = []
    final = None
    async for delta in hf_model.astream("Count from 1 to 20, separated by commas. Only the numbers.", params=params):
        if delta.response is not None:
            final = delta.response
        else:
            deltas.append(delta.content)
    assert final is not None and final.finish_reason == "stop"
    assert "7" not in final.raw_text and "7" not in "".join(deltas)
    assert "5, 6" in final.raw_text, final.raw_text
    assert hf_model.last_usage is not None and hf_model.last_usage.completion_tokens < 30, "generation went on"


@pytest.mark.model
@pytest.mark.transformers
async def test_max_tokens_gives_finish_reason_length(hf_model: Transformers) -> None:
    response = await hf_model.achat("Write a long story about a dragon.", params=SamplingParams(max_tokens=5))
    assert response.finish_reason == "length" and response.usage and response.usage.completion_tokens == 5


@pytest.mark.model
@pytest.mark.transformers
async def test_prefill_continues_the_final_assistant_message(hf_model: Transformers) -> None:
    prefix = "The capital of France is the city of"
    messages = [Message.user(QUESTION), Message.assistant(prefix)]
    _, tokenizer = hf_model._ensure_loaded()
    rendered = tokenizer.decode(prompt_ids(tokenizer, messages))
    assert rendered.endswith("<|im_start|>assistant\n" + prefix), rendered[-80:]
    # Trailing whitespace of the prefix survives (transformers' continue_final_message would strip it).
    spaced = tokenizer.decode(prompt_ids(tokenizer, [Message.user(QUESTION), Message.assistant("Based on it, ")]))
    assert spaced.endswith("Based on it, ")
    response = await hf_model.achat(messages, params=SamplingParams(max_tokens=12))
    assert response.text.lstrip().startswith("Paris"), response.text


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city name, e.g. Paris
    """
    return f"{city}: 17 °C, light rain, wind 9 km/h"


@pytest.mark.model
@pytest.mark.transformers
async def test_agent_calls_a_tool_with_the_nous_format_and_answers_with_the_observation(
        hf_model: Transformers) -> None:
    agent = Agent(hf_model, tools=[get_weather], function_calling=FunctionCalling(format="nous"), max_steps=4,
                  params=SamplingParams(max_tokens=128))
    events = [e async for e in agent.astream("What is the weather in Paris right now?")]
    result = events[-1].result
    assert result.stop_reason == "answer", result
    calls = result.tool_calls
    assert calls and calls[0].name == "get_weather", [m.to_openai() for m in result.messages]
    assert "paris" in calls[0].arguments["city"].lower()
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished and "17 °C" in finished[0].output.text
    assert "17" in result.answer, f"the answer should use the observation: {result.answer!r}"


@pytest.mark.model
@pytest.mark.transformers
async def test_token_counts_are_the_prompt_the_model_reads(hf_model: Transformers, embedded_model) -> None:
    text = "def add(a, b):\n    return a + b  # 你好 <|im_end|>"
    _, tokenizer = hf_model._ensure_loaded()
    assert hf_model.count_tokens(text) == len(tokenizer.encode(text, add_special_tokens=False))
    assert hf_model.count_tokens(text) == embedded_model.count_tokens(text)  # same tokenizer as the GGUF
    messages = [Message.system("Be brief."), Message.user(QUESTION)]
    counted = await hf_model._count_prompt_tokens(messages, None)
    assert counted == len(prompt_ids(tokenizer, messages))
    response = await hf_model.achat(messages, params=SamplingParams(max_tokens=1))
    assert response.usage is not None and response.usage.prompt_tokens == counted
    assert await hf_model._context_window() == 32768


@pytest.mark.model
@pytest.mark.transformers
async def test_closing_the_stream_or_cancelling_the_task_stops_generation(hf_model: Transformers) -> None:
    params = SamplingParams(max_tokens=400)
    prompt = "Write a very long story about a dragon who learns to cook."

    stream = hf_model.astream(prompt, params=params)
    got = [await anext(stream) for _ in range(3)]
    assert all(d.content for d in got)
    await stream.aclose()
    await hf_model._worker.run(lambda: None)  # queued behind the generation: returns once it has ended
    assert hf_model.last_finish_reason == "cancelled"
    assert hf_model.last_usage is not None and hf_model.last_usage.completion_tokens < 40

    first = asyncio.Event()

    async def consume() -> None:
        async for _ in hf_model.astream(prompt, params=params):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await hf_model._worker.run(lambda: None)
    assert hf_model.last_finish_reason == "cancelled"
    assert hf_model.last_usage.completion_tokens < 40
    # The backend is still usable afterwards.
    assert "Paris" in (await hf_model.achat(QUESTION)).text
