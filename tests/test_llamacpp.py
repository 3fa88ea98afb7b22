"""End-to-end tests of the embedded llama.cpp backend with the real Qwen2.5-Coder-0.5B GGUF (greedy, short replies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.base import SamplingParams
from qwen_agent.llm.distribution.store import default_model_path
from qwen_agent.llm.errors import ModelError, ModelNotFoundError, ModelRequestError
from qwen_agent.messages import ImagePart, ImageURL, Message, TextPart

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0, seed=7, max_tokens=32)


@pytest.fixture
async def model() -> AsyncIterator[LlamaCpp]:
    llm = LlamaCpp(default_model_path(), n_ctx=4096, params=GREEDY)
    try:
        yield llm
    finally:
        await llm.aclose()


async def test_plain_chat_answers(model: LlamaCpp) -> None:
    reply = await model.achat("What is 2+2? Answer with the number only.")
    assert "4" in reply.text
    assert reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens < 32
    assert model.count_tokens("<|im_start|>user\nhello<|im_end|>") == 5  # special tokens count as one each


async def test_stream_concatenation_equals_chat(model: LlamaCpp, caplog: pytest.LogCaptureFixture) -> None:
    question = [Message.user([TextPart(text="Name three primary colours, comma separated."),
                              ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA"))])]
    whole = await model.achat(question)
    deltas: list[str] = []
    final = None
    async for delta in model.astream(question):
        if delta.response is not None:
            final = delta.response
        elif delta.content:
            deltas.append(delta.content)
    assert len(deltas) >= 3
    assert "".join(deltas) == whole.text == final.text
    assert whole.text.strip()
    assert "dropping image_url part" in caplog.text  # the text-only model cannot see it, and says so


async def test_stop_words_stop(model: LlamaCpp) -> None:
    prompt = "Count from 1 to 10, separated by commas. Only the numbers."
    full = await model.achat(prompt)
    assert "5" in full.text and "7" in full.text
    cut = await model.achat(prompt, params=SamplingParams(stop=["5"]))
    assert "4" in cut.text and "5" not in cut.text and "7" not in cut.text
    assert cut.usage.completion_tokens < full.usage.completion_tokens


async def test_second_turn_reuses_the_kv_cache(model: LlamaCpp) -> None:
    history = [Message.system("You are terse."), Message.user("What is the capital of France? One word.")]
    first = await model.achat(history)
    assert "Paris" in first.text and first.usage.cached_prompt_tokens == 0
    before = model.perf()

    history += [first.message, Message.user("And of Italy? One word.")]
    second = await model.achat(history)
    after = model.perf()
    assert "Rome" in second.text
    u1, u2 = first.usage, second.usage
    # Everything the first turn evaluated (its prompt and its reply) is reused; only the new turn is read.
    assert u1.prompt_tokens + u1.completion_tokens - 2 <= u2.cached_prompt_tokens <= u2.prompt_tokens
    new_tokens = u2.prompt_tokens - u2.cached_prompt_tokens
    assert 5 <= new_tokens <= 20
    # llama.cpp's own counters agree: the second prompt cost only the new tokens, not the whole conversation.
    assert after.prompt_tokens_evaluated - before.prompt_tokens_evaluated == new_tokens

    cold = LlamaCpp(default_model_path(), n_ctx=4096, params=GREEDY)
    try:
        again = await cold.achat(history)
        assert again.text == second.text and again.usage.cached_prompt_tokens == 0
        assert cold.perf().prompt_tokens_evaluated == u2.prompt_tokens > 2 * new_tokens
    finally:
        await cold.aclose()


async def test_grammar_constrains_decoding(model: LlamaCpp) -> None:
    messages = [Message.user("Is water wet? Explain in detail.")]
    params = model.params.merged(SamplingParams(max_tokens=16))
    free = await model._complete_raw(messages, params)
    assert free.text.strip().lower() not in {"yes", "no"}
    bound = await model._complete_raw(messages, params, grammar='root ::= "yes" | "no"')
    assert bound.text in {"yes", "no"}

    with pytest.raises(ModelRequestError, match="GBNF"):
        await model._complete_raw(messages, params, grammar="root ::= (")
    assert (await model.achat("Say hi.")).text  # a refused grammar leaves the model usable


async def test_corrupt_and_missing_files_raise_typed_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf at all" * 1000)
    truncated = tmp_path / "truncated.gguf"
    with default_model_path().open("rb") as f:
        truncated.write_bytes(f.read(4 << 20))  # a valid header whose tensors lie beyond the end
    for path in (garbage, truncated):
        broken = LlamaCpp(path)
        with pytest.raises(ModelError, match="not a valid GGUF"):
            await broken.achat("hi")
        await broken.aclose()
    with pytest.raises(ModelNotFoundError, match="models pull"):
        await LlamaCpp(tmp_path / "absent.gguf").achat("hi")


async def test_concurrent_requests_are_serialised(model: LlamaCpp) -> None:
    a, b = await asyncio.gather(model.achat("What is 3+4? Number only."), model.achat("What is 10-2? Number only."))
    assert "7" in a.text and "8" in b.text
    solo = await model.achat("What is 3+4? Number only.")
    assert solo.text == a.text


async def test_cancelled_stream_stops_generation(model: LlamaCpp) -> None:
    stream = model.astream("Write a long story about a dragon.", params=SamplingParams(max_tokens=300))
    seen = 0
    async for delta in stream:
        seen += bool(delta.content)
        if seen == 3:
            break
    await stream.aclose()
    reply = await model.achat("What is 2+2? Number only.")
    assert "4" in reply.text
    # The abandoned story stopped within a few tokens instead of running to 300.
    assert model.perf().generated_tokens_evaluated < 3 + 10 + reply.usage.completion_tokens + 2
