"""Sessions with the real sandboxed code interpreter: figures at per-session unguessable URLs, state kept across
requests, uploads into the kernel's work dir, isolation between sessions, planted symlinks and traversal refused,
kernels interrupted when the client leaves, idle sessions closed."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from support_serve import call_reply, rule_backend, serve_config, wait_until

from qwen_agent.server import BackgroundServer
from qwen_agent.testing import ScriptedReply, ScriptedServer

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.title('squares')\nplt.show()"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def backend() -> Iterator[ScriptedServer]:
    with rule_backend() as server:
        yield server


@pytest.fixture(scope="module")
def server(backend: ScriptedServer) -> Iterator[BackgroundServer]:
    profiles = {"assistant": {"tools": ["calculator"], "code_interpreter": True, "exec_timeout_s": 5}}
    with BackgroundServer(serve_config(backend, profiles=profiles, max_sessions=8)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(backend: ScriptedServer, server: BackgroundServer) -> Iterator[None]:
    backend.reset()
    yield
    for _, sid in list(server.state.sessions._by_key):  # end the test's sessions: kernels hold memory
        httpx.delete(f"{server.base_url}/sessions/{sid}")


def run_code(server: BackgroundServer, backend: ScriptedServer, code: str, session: str | None,
             answer: str = "Done.") -> dict:
    backend.script(call_reply("code_interpreter", {"code": code}), ScriptedReply.text(answer))
    headers = {"X-Session-Id": session} if session else {}
    response = httpx.post(f"{server.base_url}/chat/completions", headers=headers, timeout=120,
                          json={"model": "assistant", "messages": [{"role": "user", "content": "run it"}]})
    assert response.status_code == 200, response.text
    return response.json()


def result_of(reply: dict) -> dict:
    return next(e for e in reply["x_agent_events"] if e["type"] == "tool_result")


def test_a_figure_is_served_at_an_unguessable_url_and_referenced_as_markdown(server: BackgroundServer,
                                                                              backend: ScriptedServer) -> None:
    reply = run_code(server, backend, PLOT, "fig-session")
    event = result_of(reply)
    assert not event["is_error"] and len(event["figures"]) == 1
    url = event["figures"][0]
    session = server.state.sessions.find("local", "fig-session")
    assert re.fullmatch(rf"{server.base_url}/files/{re.escape(session.token)}/figure-[\d-]+\.png", url)
    assert len(session.token) >= 32  # 192 random bits
    content = reply["choices"][0]["message"]["content"]
    assert f"]({url})" in content and content.index(url) < content.index("Done.")
    image = httpx.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG) and image.headers["x-content-type-options"] == "nosniff"
    # the owner may ask with its session id; another session may not, even with the exact URL
    assert httpx.get(url, headers={"X-Session-Id": "fig-session"}).status_code == 200
    assert httpx.get(url, headers={"X-Session-Id": "someone-else"}).status_code == 404


def test_one_session_cannot_fetch_another_sessions_files(server: BackgroundServer, backend: ScriptedServer) -> None:
    owner = result_of(run_code(server, backend, PLOT, "owner"))["figures"][0]
    run_code(server, backend, "print('hi')", "intruder")
    intruder = server.state.sessions.find("local", "intruder")
    name = owner.rsplit("/", 1)[1]
    assert httpx.get(f"{server.base_url}/files/{intruder.token}/{name}").status_code == 404
    assert httpx.get(f"{server.base_url}/files/{'A' * 32}/{name}").status_code == 404
    # and its code cannot reach the other work dir either: the sandbox sees only its own
    owner_dir = str(server.state.sessions.find("local", "owner").interpreter.work_dir)
    seen = result_of(run_code(server, backend, f"import os\nprint(os.path.exists({owner_dir!r}))", "intruder"))
    assert seen["result"].strip().startswith("False")


def test_traversal_and_planted_symlinks_are_refused(server: BackgroundServer, backend: ScriptedServer) -> None:
    url = result_of(run_code(server, backend, PLOT, "plant"))["figures"][0]
    token = url.split("/files/")[1].split("/")[0]
    for name in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", "session.ipynb", "figure-999.png",
                 "..%5C..%5Cetc%5Cpasswd"):
        refused = httpx.get(f"{server.base_url}/files/{token}/{name}")
        # 404, or 405 where the client itself folded the dot segments into another route
        assert refused.status_code in (404, 405) and b"root:" not in refused.content, name
    assert httpx.get(f"{server.base_url}/files/{token}/../../../../etc/passwd").status_code == 404
    # the code swaps its registered figure for a symlink to a host file: the server refuses to follow it
    name = url.rsplit("/", 1)[1]
    run_code(server, backend, f"import os\nos.remove({name!r})\nos.symlink('/etc/hostname', {name!r})", "plant")
    response = httpx.get(url)
    assert response.status_code == 404 and b"error" in response.content


def test_state_and_uploads_persist_in_a_session_and_not_outside_it(server: BackgroundServer,
                                                                   backend: ScriptedServer) -> None:
    run_code(server, backend, "x = 41", "keeper")
    assert result_of(run_code(server, backend, "print(x + 1)", "keeper"))["result"].startswith("42")
    other = result_of(run_code(server, backend, "print(x + 1)", "stranger"))
    assert other["is_error"] and "NameError" in other["result"]
    csv = b"region,revenue\nnorth,10\nsouth,32\n"
    up = httpx.post(f"{server.base_url}/files", params={"filename": "sales.csv"}, content=csv,
                    headers={"X-Session-Id": "keeper"})
    assert up.status_code == 200 and up.json()["bytes"] == len(csv)
    out = result_of(run_code(server, backend, "import pandas as pd\nprint(pd.read_csv('sales.csv').revenue.sum())",
                             "keeper"))
    assert out["result"].startswith("42")
    # the model was told about the file and its columns
    system = backend.chat_requests[-2].body["messages"][0]["content"]
    assert "sales.csv (columns: region,revenue)" in system
    # an upload before the kernel starts is there when it does
    httpx.post(f"{server.base_url}/files", params={"filename": "early.csv"}, content=b"a\n1\n",
               headers={"X-Session-Id": "late-starter"})
    assert result_of(run_code(server, backend, "print(open('early.csv').read())", "late-starter"))["result"] \
        .startswith("a")


def test_deleting_a_session_stops_its_kernel_and_its_urls(server: BackgroundServer, backend: ScriptedServer) -> None:
    url = result_of(run_code(server, backend, PLOT, "short-lived"))["figures"][0]
    kernel = server.state.sessions.find("local", "short-lived").interpreter.kernel
    work_dir = kernel.work_dir
    assert httpx.delete(f"{server.base_url}/sessions/short-lived").status_code == 200
    assert not kernel.is_alive() and not work_dir.exists()
    assert httpx.get(url).status_code == 404


def test_an_anonymous_run_keeps_its_figures_until_idle(server: BackgroundServer, backend: ScriptedServer) -> None:
    before = len(server.state.sessions)
    url = result_of(run_code(server, backend, PLOT, None))["figures"][0]
    token = url.split("/v1/files/")[1].split("/")[0]
    assert httpx.get(url).status_code == 200 and server.state.sessions.by_token(token) is not None
    backend.script(ScriptedReply.text("No tools needed."))
    reply = httpx.post(f"{server.base_url}/chat/completions", json={"model": "assistant",
                                                                     "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200
    # A run that made nothing keeps nothing: its session is released after the response has been sent, so wait for
    # that rather than race it; the figure's session stays.
    wait_until(lambda: len(server.state.sessions) == before + 1, what="the empty anonymous session closing")
    assert server.state.sessions.by_token(token) is not None and httpx.get(url).status_code == 200


def test_a_disconnect_interrupts_the_sessions_kernel(server: BackgroundServer, backend: ScriptedServer) -> None:
    run_code(server, backend, "y = 1", "sleeper")
    backend.script(call_reply("code_interpreter", {"code": "import time\ntime.sleep(60)"}))
    body = {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "sleep"}]}
    stats = server.state.stats
    cancelled = stats.cancelled
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, headers={"X-Session-Id": "sleeper"},
                      timeout=30) as response:
        for line in response.iter_lines():
            if "tool_call" in line:
                break  # the code is running now: leave
    wait_until(lambda: stats.cancelled == cancelled + 1, what="the run being cancelled")
    # The kernel was interrupted: the next code runs (the profile's 5 s limit would fail it behind a 60 s sleep)
    # and the session's state survived.
    after = result_of(run_code(server, backend, "print(y + 1)", "sleeper"))
    assert not after["is_error"] and after["result"].startswith("2")


def test_idle_sessions_are_closed(backend: ScriptedServer) -> None:
    profiles = {"assistant": {"code_interpreter": True}}
    with BackgroundServer(serve_config(backend, profiles=profiles, session_idle_s=0.3)) as srv:
        url = result_of(run_code(srv, backend, PLOT, "idle"))["figures"][0]
        kernel = srv.state.sessions.find("local", "idle").interpreter.kernel
        wait_until(lambda: len(srv.state.sessions) == 0 and not kernel.is_alive(), what="the idle session closing")
        assert httpx.get(url).status_code == 404
