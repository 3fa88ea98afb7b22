"""OpenAICompatible under server faults: retries with backoff, typed errors with useful messages, cut streams."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from support_scripted import FAST_BACKOFF, closed_port, make_model, scripted_server

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.openai_retry import Backoff, parse_retry_after
from qwen_agent.llm.errors import (
    ContextLengthError,
    ModelAuthError,
    ModelConnectionError,
    ModelNotFoundError,
    ModelProtocolError,
    ModelRateLimitError,
    ModelRequestError,
    ModelServerError,
    ModelTimeoutError,
)
from qwen_agent.testing import ScriptedReply, ScriptedServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    yield from scripted_server(monkeypatch)


async def stream_text(model: OpenAICompatible, seen: list[str]) -> str:
    async for delta in model.astream("Hi"):
        seen.append(delta.content)
        if delta.response is not None:
            return delta.response.text
    raise AssertionError("no final response")


@pytest.mark.parametrize("stream", [True, False])
async def test_retries_500_503_429_then_succeeds(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply.fail(500, "boom"), ScriptedReply.fail(503, "loading"),
                  ScriptedReply.fail(429, "slow down", headers={"retry-after": "0"}), ScriptedReply.text("finally"))
    async with make_model(server, max_retries=3) as model:
        text = await stream_text(model, []) if stream else (await model.achat("Hi")).text
    assert text == "finally"
    assert len(server.chat_requests) == 4


@pytest.mark.parametrize(("status", "error"), [(503, ModelServerError), (429, ModelRateLimitError)])
async def test_gives_up_after_max_retries_with_typed_error(server: ScriptedServer, status: int, error: type) -> None:
    server.script(*[ScriptedReply.fail(status, "overloaded") for _ in range(3)])
    async with make_model(server, max_retries=2) as model:
        with pytest.raises(error) as info:
            await model.achat("Hi")
    assert len(server.chat_requests) == 3
    assert "overloaded" in str(info.value) and "after 3 attempts" in str(info.value)
    assert server.base_url in str(info.value)


async def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for(server: ScriptedServer) -> None:
    server.script(ScriptedReply.fail(429, "wait", headers={"retry-after": "0.15"}), ScriptedReply.text("ok"))
    async with make_model(server) as model:
        start = time.perf_counter()
        assert (await model.achat("Hi")).text == "ok"
        assert time.perf_counter() - start >= 0.15  # the server's wait, not our millisecond backoff
        server.reset()
        server.script(ScriptedReply.fail(429, "come back later", headers={"retry-after": "3600"}))
        with pytest.raises(ModelRateLimitError, match="3600 s"):
            await model.achat("Hi")
    assert len(server.chat_requests) == 1


def test_backoff_grows_exponentially_and_parses_http_dates() -> None:
    backoff = Backoff(initial=0.5, multiplier=2, maximum=3, jitter=0.0)
    assert [backoff.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]
    jittered = Backoff(initial=1.0, jitter=0.25)
    assert all(0.75 <= jittered.delay(0) <= 1.25 for _ in range(50))
    assert backoff.delay(0, retry_after=7.0) == 7.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now


@pytest.mark.parametrize("stream", [True, False])
async def test_no_retry_on_400_and_the_server_message_is_shown(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply.fail(400, "top_k must be positive"))
    async with make_model(server, max_retries=3) as model:
        with pytest.raises(ModelRequestError, match="top_k must be positive") as info:
            await stream_text(model, []) if stream else await model.achat("Hi")
    assert info.value.status_code == 400
    assert len(server.chat_requests) == 1


async def test_context_length_error_is_recognised(server: ScriptedServer) -> None:
    server.script(ScriptedReply.fail(400, "This model's maximum context length is 32768 tokens. However, you "
                                          "requested 40000 tokens."))
    async with make_model(server) as model:
        with pytest.raises(ContextLengthError, match="maximum context length"):
            await model.achat("Hi")


async def test_401_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("QWEN_AGENT_API_KEY", raising=False)
    async with ScriptedServer(api_key="sk-right") as srv:
        srv.script(ScriptedReply.text("welcome"))
        async with OpenAICompatible(srv.base_url, "scripted-model", api_key="sk-wrong", backoff=FAST_BACKOFF) as bad:
            with pytest.raises(ModelAuthError, match=r"Incorrect API key.*QWEN_AGENT_API_KEY"):
                await bad.achat("Hi")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
        async with OpenAICompatible(srv.base_url, "scripted-model") as good:
            assert (await good.achat("Hi")).text == "welcome"
        assert len(srv.chat_requests) == 2  # 401 is not retried


async def test_404_for_a_wrong_model_lists_the_served_models(server: ScriptedServer) -> None:
    async with make_model(server, model="qwen-typo") as model:
        with pytest.raises(ModelRequestError) as info:
            await model.achat("Hi")
    message = str(info.value)
    assert "qwen-typo" in message and "qwen-test" in message and "qwen-other" in message
    assert isinstance(info.value, ModelNotFoundError) and info.value.status_code == 404
    # /models is read once, before the first request (server kind, context length); the error reuses it.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in server.requests] == [
        ("GET", "models"), ("POST", "completions")]


async def test_connection_refused_is_a_quick_connection_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.perf_counter()
    async with OpenAICompatible(url, "m", max_retries=2, backoff=FAST_BACKOFF) as model:
        with pytest.raises(ModelConnectionError, match="server running") as info:
            await model.achat("Hi")
    assert url in str(info.value) and "after 3 attempts" in str(info.value)
    assert time.perf_counter() - start < 30, "refused at once, not waiting out a connect timeout per attempt"


@pytest.mark.parametrize("stream", [True, False])
async def test_read_timeout_is_a_timeout_error(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply.text("too late", delay=2.0))
    timeout = httpx.Timeout(5.0, read=0.2)
    async with make_model(server, timeout=timeout) as model:
        with pytest.raises(ModelTimeoutError, match=r"0.2 s"):
            await stream_text(model, []) if stream else await model.achat("Hi")
    assert len(server.chat_requests) == 1  # a read timeout is not retried


async def test_a_stalled_stream_times_out(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("one two three four", chunk_size=4, chunk_delay=1.0))
    async with make_model(server, timeout=httpx.Timeout(5.0, read=0.2)) as model:
        with pytest.raises(ModelTimeoutError, match="sent nothing"):
            await stream_text(model, [])


async def test_stream_cut_in_the_middle_is_a_protocol_error_and_not_retried(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("This reply will be cut off", chunk_size=4, cut_after=3),
                  ScriptedReply.text("a retry must not happen"))
    seen: list[str] = []
    async with make_model(server) as model:
        with pytest.raises(ModelProtocolError, match="in the middle"):
            await stream_text(model, seen)
    assert "".join(seen) == "This rep"  # role chunk + two content chunks arrived before the cut
    assert len(server.chat_requests) == 1


async def test_stream_ended_without_done_or_finish_reason(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("half a repl", chunk_size=4, cut_after=2, cut_cleanly=True))
    async with make_model(server) as model:
        with pytest.raises(ModelProtocolError, match=r"without \[DONE\] or a finish_reason"):
            await stream_text(model, [])


async def test_invalid_json_body_is_a_protocol_error(server: ScriptedServer) -> None:
    server.script(ScriptedReply(body="<html>502 Bad Gateway</html>"))
    async with make_model(server) as model:
        with pytest.raises(ModelProtocolError, match=r"not JSON.*Bad Gateway"):
            await model.achat("Hi")


async def test_json_without_choices_is_a_protocol_error(server: ScriptedServer) -> None:
    server.script(ScriptedReply(body='{"object": "list", "data": []}'))
    async with make_model(server) as model:
        with pytest.raises(ModelProtocolError, match="no 'choices'"):
            await model.achat("Hi")


@pytest.mark.parametrize("stream", [True, False])
async def test_dropped_connection_before_any_response_is_retried(server: ScriptedServer, stream: bool) -> None:
    server.script(ScriptedReply(drop=True), ScriptedReply.text("second try"))
    async with make_model(server) as model:
        text = await stream_text(model, []) if stream else (await model.achat("Hi")).text
    assert text == "second try"
    assert len(server.chat_requests) == 2


async def test_stream_cut_before_any_text_is_retried(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("lost", cut_after=1), ScriptedReply.text("complete"))
    async with make_model(server) as model:
        assert await stream_text(model, []) == "complete"
    assert len(server.chat_requests) == 2


async def test_an_sse_event_that_is_not_json_is_a_protocol_error(server: ScriptedServer) -> None:
    server.script(ScriptedReply(stream_payloads=['{"choices": [{"index": 0, "delta": {"content": "ok"}}]}',
                                                 "{not json", "[DONE]"]))
    async with make_model(server) as model:
        with pytest.raises(ModelProtocolError, match="not JSON"):
            await stream_text(model, [])


async def test_an_error_event_in_the_stream_is_raised_with_its_message(server: ScriptedServer) -> None:
    # vLLM reports failures that happen after the 200 as an error object inside the stream.
    server.script(ScriptedReply(stream_payloads=[
        '{"error": {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError"}}', "[DONE]"]))
    async with make_model(server) as model:
        with pytest.raises(ModelServerError, match="CUDA out of memory"):
            await stream_text(model, [])


async def test_a_server_that_ignores_stream_true_still_works(server: ScriptedServer) -> None:
    server.script(ScriptedReply.text("one JSON body", ignore_stream=True))
    seen: list[str] = []
    async with make_model(server) as model:
        assert await stream_text(model, seen) == "one JSON body"
    assert "".join(seen) == "one JSON body"
