"""Turn markers a server lets through never reach the answer: streamed deltas and the final message agree."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from qwen_agent.agents import Agent, TextDelta
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.prompting.turn_markers import MarkerFilter, strip_turn_markers
from qwen_agent.testing import ScriptedReply, ScriptedServer

CASES = [
    ("<|im_start|>assistant\nThe product is 7006652.<|im_end|>\n<|im_start|>user\nthanks", "The product is 7006652."),
    ("<|im_start|>The product is 7006652.", "The product is 7006652."),
    ("It is 42.<|endoftext|>Human: and now?", "It is 42."),
    ("First line.\n<|im_start|>user\nmore", "First line.\n"),
    ("no markers, but <| and |> and <|im_st", "no markers, but <| and |> and <|im_st"),
    ("  <|im_start|>assistant\nok", "ok"),
    ("<|fim_prefix|>def f():", ""),
]


@pytest.mark.parametrize(("raw", "answer"), CASES)
def test_markers_are_cut_whole_or_streamed(raw: str, answer: str) -> None:
    assert strip_turn_markers(raw) == answer
    rng = random.Random(raw)
    for _ in range(30):  # any chunking gives the same text, and nothing after an ending marker
        f, out, i = MarkerFilter(), [], 0
        while i < len(raw):
            n = rng.randint(1, 6)
            out.append(f.feed(raw[i:i + n]))
            i += n
        out.append(f.flush())
        assert "".join(out) == answer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(models=["qwen-test"]) as s:
        yield s


@pytest.mark.parametrize("mode", ["native", "prompted"])
async def test_a_leaked_turn_marker_never_reaches_the_answer(server: ScriptedServer, mode: str) -> None:
    raw = "<|im_start|>assistant\n1234 * 5678 = 7006652.<|im_end|>\n<|im_start|>user\nWhat else?"
    server.script(ScriptedReply.text(raw, chunk_size=3))
    agent = Agent(OpenAICompatible(server.base_url, model="qwen-test", max_retries=0),
                  function_calling=FunctionCalling(mode=mode))  # type: ignore[arg-type]
    events = [e async for e in agent.astream("What is 1234 * 5678?")]
    result = events[-1].result
    assert result.answer == "1234 * 5678 = 7006652."
    assert "".join(e.content for e in events if isinstance(e, TextDelta)) == result.answer
    await agent.aclose()
