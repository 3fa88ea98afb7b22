"""Faults: the backend down, failing or slow; a client that disconnects; oversized requests; unknown profiles;
full queues and session caps; wrong keys. Each answers with OpenAI error JSON and the status a client acts on."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from support_serve import API_KEY, call_reply, rule_backend, serving, sse_events, wait_until

from qwen_agent.testing import ScriptedReply

QUESTION = [{"role": "user", "content": "What is 6 * 7?"}]


def chat(base_url: str, **body) -> httpx.Response:
    payload = {"model": "assistant", "messages": QUESTION, **body}
    return httpx.post(f"{base_url}/chat/completions", json=payload, timeout=30)


def test_backend_down_is_502_before_any_stream_starts() -> None:
    with serving(None) as server:  # the profiles point at a closed port
        for stream in (False, True):
            response = chat(server.base_url, stream=stream)
            assert response.status_code == 502
            assert response.headers["content-type"] == "application/json"
            error = response.json()["error"]
            assert error["code"] == "backend_unreachable" and "127.0.0.1:9" in error["message"]
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="assistant", messages=QUESTION, stream=True)
        assert info.value.status_code == 502


def test_backend_500_is_502_and_mid_stream_it_is_an_error_event() -> None:
    with rule_backend() as backend, serving(backend, profiles={"assistant": {"tools": ["calculator"]}}) as server:
        backend.script(ScriptedReply.fail(500, "GPU on fire"))
        response = chat(server.base_url)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "backend_error" and "GPU on fire" in response.text
        # the first step works (a tool runs, the stream has started), the second fails
        backend.script(call_reply("calculator", {"expression": "6*7"}), ScriptedReply.fail(500, "GPU on fire"))
        body = {"model": "assistant", "stream": True, "messages": QUESTION}
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=30) as response:
            assert response.status_code == 200
            events = sse_events(response.iter_lines())
        assert any(isinstance(e, dict) and e.get("x_agent_event", {}).get("type") == "tool_result" for e in events)
        errors = [e for e in events if isinstance(e, dict) and "error" in e]
        assert errors and errors[0]["error"]["code"] == "backend_error" and events[-1] == "[DONE]"
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        backend.script(call_reply("calculator", {"expression": "6*7"}), ScriptedReply.fail(500, "GPU on fire"))
        with pytest.raises(openai.APIError, match="GPU on fire"):
            list(client.chat.completions.create(model="assistant", messages=QUESTION, stream=True))


def test_backend_timeout_is_504_and_a_long_run_is_stopped_with_504() -> None:
    with rule_backend() as backend, serving(backend, backend_timeout_s=0.5) as server:
        backend.script(ScriptedReply.text("late", delay=3.0))
        response = chat(server.base_url)
        assert response.status_code == 504 and response.json()["error"]["code"] == "backend_timeout"
    with rule_backend() as backend, serving(backend, run_timeout_s=0.5) as server:
        backend.script(ScriptedReply.text("x" * 400, chunk_size=1, chunk_delay=0.02))
        response = chat(server.base_url)
        assert response.status_code == 504 and response.json()["error"]["code"] == "run_timeout"


def test_a_client_disconnect_cancels_the_run_and_the_backend_request() -> None:
    with rule_backend() as backend, serving(backend) as server:
        stats = server.state.stats
        backend.script(ScriptedReply.text("word " * 400, chunk_size=5, chunk_delay=0.05))  # ~20 s if read to the end
        body = {"model": "assistant", "stream": True, "messages": QUESTION}
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=30) as response:
            lines = response.iter_lines()
            got = [next(lines) for _ in range(6)]
        assert any("word" in line for line in got)
        wait_until(lambda: stats.cancelled == 1 and stats.active == 0, what="the run being cancelled")
        # the server dropped its own request to the backend: the scripted server's connection is gone
        wait_until(lambda: not backend._tasks, what="the backend connection closing")
        assert stats.finished == 0 and server.state.admission.running == 0
        assert chat(server.base_url).status_code == 200  # and it goes on serving


def test_oversized_requests_are_413() -> None:
    with rule_backend() as backend, serving(backend, max_request_bytes=2048) as server:
        big = [{"role": "user", "content": "x" * 10_000}]
        response = chat(server.base_url, messages=big)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        sid = {"X-Session-Id": "s1"}
        upload = httpx.post(f"{server.base_url}/files?filename=a.csv", content=b"x" * 40_000, headers=sid)
        assert upload.status_code == 200  # uploads have their own, larger limit
    with rule_backend() as backend, serving(backend, max_upload_bytes=1024) as server:
        upload = httpx.post(f"{server.base_url}/files?filename=a.csv", content=b"x" * 4096, headers=sid)
        assert upload.status_code == 413


def test_unknown_profile_is_404_listing_the_profiles() -> None:
    with rule_backend() as backend, serving(backend) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        assert info.value.body["code"] == "model_not_found" and "assistant" in info.value.body["message"]
        assert httpx.get(f"{server.url}/v1/nothing").status_code == 404
        assert httpx.get(f"{server.url}/v1/chat/completions").status_code == 405


def test_session_cap_is_503_with_retry_after_until_a_session_ends() -> None:
    with rule_backend() as backend, serving(backend, max_sessions=2) as server:
        for sid in ("alice", "bob"):
            assert chat(server.base_url, user=sid).status_code == 200
        response = httpx.post(f"{server.base_url}/chat/completions", headers={"X-Session-Id": "carol"},
                              json={"model": "assistant", "messages": QUESTION})
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "server_busy"
        assert chat(server.base_url, user="alice").status_code == 200  # existing sessions keep working
        assert httpx.delete(f"{server.base_url}/sessions/alice").status_code == 200
        assert httpx.delete(f"{server.base_url}/sessions/alice").status_code == 404
        assert chat(server.base_url, user="carol").status_code == 200


def test_full_queue_is_429_and_a_long_wait_is_503() -> None:
    with rule_backend() as backend, serving(backend, max_concurrent_runs=1, max_queued_runs=1,
                                            queue_timeout_s=0.5) as server:
        backend.script(ScriptedReply.text("slow", delay=3.0))
        first = threading.Thread(target=chat, args=(server.base_url,))
        first.start()
        wait_until(lambda: server.state.admission.running == 1, what="the first run starting")
        results: list[httpx.Response] = []
        second = threading.Thread(target=lambda: results.append(chat(server.base_url)))
        second.start()
        wait_until(lambda: server.state.admission.queued == 1, what="the second request queueing")
        third = chat(server.base_url)
        assert third.status_code == 429 and third.headers["retry-after"] == "1"
        assert third.json()["error"]["type"] == "rate_limit_error"
        second.join()
        first.join()
        assert results[0].status_code == 503 and "retry-after" in results[0].headers


def test_api_keys_are_required_everywhere_under_v1_but_not_for_the_page() -> None:
    with rule_backend() as backend, serving(backend, api_keys=[API_KEY]) as server:
        wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key-000000", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.chat.completions.create(model="assistant", messages=QUESTION)
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        assert httpx.post(f"{server.base_url}/chat/completions", json={}).status_code == 401
        assert httpx.post(f"{server.base_url}/files?filename=a.csv", content=b"1",
                          headers={"X-Session-Id": "s"}).status_code == 401
        assert httpx.get(f"{server.url}/").status_code == 200
        right = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        assert "42" in right.chat.completions.create(model="assistant", messages=QUESTION).choices[0].message.content


def test_sessions_of_two_keys_never_meet() -> None:
    other = "sk-other-key-987654321"
    with rule_backend() as backend, serving(backend, api_keys=[API_KEY, other]) as server:
        state = server.state
        for key in (API_KEY, other):
            response = httpx.post(f"{server.base_url}/chat/completions",
                                  json={"model": "assistant", "messages": QUESTION},
                                  headers={"Authorization": f"Bearer {key}", "X-Session-Id": "shared-name"})
            assert response.status_code == 200
        assert len(state.sessions) == 2  # same id, two keys: two sessions
        deleted = httpx.delete(f"{server.base_url}/sessions/shared-name", headers={"Authorization": f"Bearer {other}"})
        assert deleted.status_code == 200 and len(state.sessions) == 1


def test_bad_session_ids_and_upload_names_are_400() -> None:
    with rule_backend() as backend, serving(backend) as server:
        response = httpx.post(f"{server.base_url}/chat/completions", headers={"X-Session-Id": "../../etc"},
                              json={"model": "assistant", "messages": QUESTION})
        assert response.status_code == 400 and response.json()["error"]["param"] == "X-Session-Id"
        for name in ("../evil.py", ".bashrc", "a/../../b", "dir/data.csv", "c:\\x.csv", "", "x" * 300):
            response = httpx.post(f"{server.base_url}/files", params={"filename": name}, content=b"1",
                                  headers={"X-Session-Id": "s"})
            assert response.status_code == 400, name
        stored = httpx.post(f"{server.base_url}/files", params={"filename": "data (1).csv"}, content=b"a,b\n",
                            headers={"X-Session-Id": "s"})
        assert stored.status_code == 200 and stored.json()["filename"] == "data (1).csv"
        invalid = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json",
                             headers={"content-type": "application/json"})
        assert invalid.status_code == 400 and "not valid JSON" in invalid.json()["error"]["message"]
        assert json.loads(httpx.get(f"{server.url}/healthz").text) == {"status": "ok"}
