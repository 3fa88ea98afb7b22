"""The chat page in a real headless Chromium (Debian's package, driven by Playwright through executable_path):
it loads, streams, renders tool steps and PNG figures, keeps hostile model output inert, stops runs on the
server, uploads files; a finished data-analysis conversation is saved as a screenshot artifact."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support_serve import call_reply, rule_backend, serve_config, wait_until

from qwen_agent.server import BackgroundServer
from qwen_agent.testing import ScriptedReply, ScriptedServer

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("QWEN_AGENT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make browser` as root (make test does)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One browser for all the page tests (they are all in this module). Module-scoped rather than
    session-scoped: Playwright's sync API keeps an event loop running on the main thread while it is open, which
    would break the pytest-asyncio tests of later modules."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:  # launch() gives the browser a fresh temporary --user-data-dir of its own
        instance = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def backend() -> Iterator[ScriptedServer]:
    with rule_backend() as server:
        yield server


@pytest.fixture(scope="module")
def server(backend: ScriptedServer) -> Iterator[BackgroundServer]:
    profiles = {"assistant": {"tools": ["calculator"], "code_interpreter": True, "description": "tools"},
                "plain": {"description": "no tools"}}
    with BackgroundServer(serve_config(backend, profiles=profiles)) as srv:
        yield srv


@pytest.fixture
def page(browser, server: BackgroundServer, backend: ScriptedServer) -> Iterator[object]:
    backend.reset()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    p.set_default_timeout(60_000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(server.url + "/")
    p.wait_for_selector("body[data-ready='1']")
    yield p
    context.close()
    assert not errors, errors


def ask(page, text: str) -> None:
    page.fill("#input", text)
    page.click("#send")


def wait_done(page) -> None:
    page.wait_for_selector("#stop", state="hidden")


def last_answer(page):
    return page.locator("[data-testid=message][data-role=assistant]").last


def test_page_loads_with_profiles_and_security_headers(page, server: BackgroundServer) -> None:
    assert page.title() == "qwen-agent"
    assert page.locator("#profile option").all_inner_texts() == ["assistant", "plain"]
    import httpx

    headers = httpx.get(server.url + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"


def test_a_question_streams_and_a_tool_step_renders(page, backend: ScriptedServer) -> None:
    backend.script(ScriptedReply.text("alpha " + "beta " * 60 + "omega", chunk_size=6, chunk_delay=0.03))
    page.select_option("#profile", "plain")
    ask(page, "Say something long")
    answer = last_answer(page).locator("[data-testid=answer]")
    page.wait_for_selector("[data-testid=answer]:has-text('alpha')")
    assert page.is_visible("#stop")  # text is on screen while the run is still going
    assert "omega" not in answer.inner_text()
    wait_done(page)
    assert answer.inner_text().strip().endswith("omega")
    page.select_option("#profile", "assistant")
    ask(page, "Use the calculator to compute '17*23'")
    wait_done(page)
    step = last_answer(page).locator("[data-testid=tool-step]")
    assert step.count() == 1 and "calculator" in step.locator("summary").inner_text()
    step.locator("summary").click()
    assert "391" in step.locator("pre.result").inner_text()
    assert "391" in last_answer(page).locator("[data-testid=answer]").inner_text()


def test_a_png_figure_renders_inline(page, backend: ScriptedServer) -> None:
    code = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.show()"
    backend.script(call_reply("code_interpreter", {"code": code}), ScriptedReply.text("Here is the chart."))
    ask(page, "plot it")
    wait_done(page)
    img = last_answer(page).locator("img.figure")
    img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("i => i.naturalWidth") > 0
    assert "python" in last_answer(page).locator("[data-testid=tool-step] code").get_attribute("class")


def test_hostile_model_output_renders_inert(page, backend: ScriptedServer) -> None:
    hostile = ('Look <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script> '
               'and [click me](javascript:window.pwned=3) and ![i](javascript:window.pwned=4) '
               'and [data](data:text/html,<script>alert(1)</script>) and [ok](https://example.com/)')
    backend.script(ScriptedReply.text(hostile))
    page.select_option("#profile", "plain")
    ask(page, "be evil")
    wait_done(page)
    answer = last_answer(page).locator("[data-testid=answer]")
    assert "<img src=x onerror=" in answer.inner_text()  # shown as text
    assert answer.locator("img").count() == 0 and answer.locator("script").count() == 0
    hrefs = [a.get_attribute("href") for a in answer.locator("a").all()]
    assert hrefs == ["https://example.com/"]
    assert page.evaluate("() => window.pwned") is None
    answer.get_by_text("click me").click()  # plain text now: nothing happens
    assert page.evaluate("() => window.pwned") is None


def test_a_bare_url_renders_as_a_link(page, backend: ScriptedServer) -> None:
    """A bare URL used to make the renderer link its own text again and again ("Maximum call stack size
    exceeded"); streamed, even a markdown link is a bare URL until its closing parenthesis arrives."""
    backend.script(ScriptedReply.text("See https://example.com/docs for more, or [the guide](https://example.com/g"))
    page.select_option("#profile", "plain")
    ask(page, "where are the docs?")
    wait_done(page)
    answer = last_answer(page).locator("[data-testid=answer]")
    hrefs = [a.get_attribute("href") for a in answer.locator("a").all()]
    assert hrefs == ["https://example.com/docs", "https://example.com/g"]
    assert answer.locator("a").first.inner_text() == "https://example.com/docs"


def test_stop_cancels_the_run_on_the_server(page, backend: ScriptedServer, server: BackgroundServer) -> None:
    stats = server.state.stats
    cancelled = stats.cancelled
    backend.script(ScriptedReply.text("slow " * 400, chunk_size=5, chunk_delay=0.05))
    page.select_option("#profile", "plain")
    ask(page, "talk slowly")
    page.wait_for_selector("[data-testid=answer]:has-text('slow')")
    page.click("#stop")
    wait_done(page)
    wait_until(lambda: stats.cancelled == cancelled + 1 and stats.active == 0, what="the server cancelling the run")
    assert "Stopped" in last_answer(page).inner_text()
    assert last_answer(page).locator("[data-testid=answer]").inner_text().count("slow") < 400


def test_conversations_are_kept_in_the_browser(page, backend: ScriptedServer) -> None:
    page.select_option("#profile", "plain")
    ask(page, "What is 6 * 7?")
    wait_done(page)
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert "42" in last_answer(page).inner_text()
    assert page.locator("#conversations li").count() >= 1


def test_a_data_analysis_conversation_with_an_upload(page, backend: ScriptedServer, tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("region,revenue\nnorth,120\nsouth,340\neast,210\nwest,90\n")
    page.select_option("#profile", "assistant")
    page.set_input_files("#upload", str(csv))
    page.wait_for_selector("[data-role=note]:has-text('Uploaded sales.csv')")
    code = ("import pandas as pd\nimport matplotlib.pyplot as plt\ndf = pd.read_csv('sales.csv')\n"
            "totals = df.groupby('region').revenue.sum().sort_values()\nprint(totals)\n"
            "totals.plot.bar(title='Revenue per region')\nplt.tight_layout()\nplt.show()")
    backend.script(call_reply("code_interpreter", {"code": code}),
                   ScriptedReply.text("**South** has the highest revenue (340), followed by east (210)."))
    ask(page, "Which region sells most? Plot revenue per region.")
    wait_done(page)
    img = last_answer(page).locator("img.figure")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    step = last_answer(page).locator("[data-testid=tool-step]")
    step.locator("summary").click()
    assert "south" in step.locator("pre.result").inner_text()
    # the model was told about the uploaded file
    assert "sales.csv" in backend.chat_requests[0].body["messages"][0]["content"]
    page.set_viewport_size({"width": 1200, "height": 1500})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve-data-analysis.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
