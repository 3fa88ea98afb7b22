"""`OpenAIReplicas` over two real llama.cpp servers on 127.0.0.1: sticky sessions, then one server killed mid-run.

One module-scoped pair of servers with the smallest catalogue model (SmolLM2-135M, pulled on first use), a small
context and short replies: the subject is routing, not the model.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from qwen_agent.llm import OpenAIReplicas, SamplingParams
from qwen_agent.llm.backends.routing import session_scope
from qwen_agent.llm.distribution.store import pull
from qwen_agent.llm.errors import ModelError
from qwen_agent.messages import Message
from qwen_agent.serving.llamacpp import LlamaCppServer

pytestmark = pytest.mark.model

PARAMS = SamplingParams(max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[LlamaCppServer]]:
    path = pull("smollm2-135m")
    pair = [LlamaCppServer(path, alias="smol", n_ctx=512, n_threads=1) for _ in range(2)]
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture
def live(servers: list[LlamaCppServer]) -> list[LlamaCppServer]:
    """The module's pair, with a server that an earlier test killed started again on its port: tests run in random
    order (pytest-randomly), and the kill test must not decide what the others see."""
    for server in servers:
        if not server.running:
            server.stop()
            server.start()
    return servers


def _served(model: OpenAIReplicas) -> list[int]:
    return [r.served for r in model.stats()]


async def test_sessions_stick_to_one_real_server(live: list[LlamaCppServer]) -> None:
    model = OpenAIReplicas([s.base_url for s in live], "smol", params=PARAMS)
    homes: dict[int, set[int]] = {n: set() for n in range(4)}
    for step in range(2):
        for n in range(4):
            conversation = [Message.user(f"Name a colour, number {n}.")]
            conversation += [Message.assistant("Blue."), Message.user("Another one.")] * step
            before = _served(model)
            reply = await model.achat(conversation)
            assert reply.text
            homes[n].update(i for i, (b, a) in enumerate(zip(before, _served(model), strict=True)) if a > b)
    await model.aclose()
    assert all(len(h) == 1 for h in homes.values()), f"each conversation on one server: {homes}"
    assert {next(iter(h)) for h in homes.values()} == {0, 1}, "and the conversations spread over both"


async def test_killing_a_server_mid_run_loses_no_request_that_had_not_streamed(
        live: list[LlamaCppServer]) -> None:
    servers = live
    model = OpenAIReplicas([s.base_url for s in servers], "smol", params=PARAMS, cooldown=3600)
    streamed: dict[int, bool] = {}
    outcome: dict[int, str | BaseException] = {}

    async def ask(n: int) -> None:
        streamed[n] = False
        with session_scope(f"kill-{n}"):
            try:
                async for delta in model.astream(f"Count from {n} upwards."):
                    streamed[n] = streamed[n] or bool(delta.content)
                    if delta.response is not None:
                        outcome[n] = delta.response.text
            except ModelError as exc:
                outcome[n] = exc

    tasks = [asyncio.create_task(ask(n)) for n in range(6)]
    # llama.cpp serves one request at a time and queues the rest: wait until the victim is streaming one reply
    # with more queued behind it, then kill its whole process group (SIGKILL, as a crash would).
    victim = 1
    while not (any(streamed.values()) and model.stats()[victim].outstanding >= 2):
        assert not all(t.done() for t in tasks), "the run ended before the victim had a queue: use longer replies"
        await asyncio.sleep(0.01)
    on_victim = {n for n in range(6) if model.router.replica_of(f"k:kill-{n}") == victim}
    process = servers[victim]._process
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    await asyncio.gather(*tasks)
    served = _served(model)
    after = await model.achat("One more question, say hi.")
    failed = {n for n, o in outcome.items() if isinstance(o, BaseException)}
    retried = {}
    for n in failed:  # a reply cut mid-stream is not replayed, but its conversation goes on on the survivor
        with session_scope(f"kill-{n}"):
            retried[n] = (await model.achat(f"Count from {n} upwards.")).text
    await model.aclose()
    assert all(retried.values()) and all(model.router.replica_of(f"k:kill-{n}") == 1 - victim for n in retried)

    assert len(outcome) == 6 and on_victim
    assert all(streamed[n] for n in failed), f"only replies that had started streaming may fail: {outcome}"
    assert len(failed) <= 1, "llama.cpp streams one reply at a time: the queued ones were failed over"
    assert all(model.router.replica_of(f"k:kill-{n}") == 1 - victim for n in range(6) if n not in failed), \
        "every request that had not streamed moved to the survivor"
    assert sum(served) == 6 - len(failed), f"every other request answered exactly once: {served}"
    assert after.text and not model.stats()[victim].healthy
