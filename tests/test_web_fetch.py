"""web_fetch against a real HTTP server on 127.0.0.1: extraction, limits, loopback refused unless allow-listed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Toolbox
from qwen_agent.tools.web.fetch import WebFetch, WebFetchConfig, WebFetchError
from qwen_agent.tools.web.ssrf import LOOPBACK_ONLY, AddressPolicy, BlockedURLError, StaticResolver

ARTICLE = (
    "<!doctype html><html><head><title>Birnin Zana guide</title></head><body>"
    "<nav><a href='/'>Home</a> | <a href='/about'>About</a> | Login</nav>"
    "<article><h1>Visiting Birnin Zana</h1>"
    + "".join(f"<p>Paragraph {i}: the golden city sits by the river and trades vibranium ore.</p>" for i in range(8))
    + "<p>The museum opens at 9 o'clock.</p></article>"
    "<footer>Copyright 2026 Example Travel. All rights reserved.</footer></body></html>"
)


SEEN: list[tuple[str, str | None]] = []  # (path, Host header) of every request the server received


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # one segment per write; avoids 40 ms delayed-ACK stalls

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        SEEN.append((path, self.headers.get("Host")))
        port = self.server.server_address[1]
        if path.startswith("/to/"):
            self._send(302, b"", "text/plain", {"Location": {
                "compat": f"http://[::127.0.0.1]:{port}/notes.txt", "siit": f"http://[::ffff:0:127.0.0.1]:{port}/",
                "ietf": "http://192.0.0.8/", "relay": "http://192.88.99.1/", "hex": f"http://0x7f.1:{port}/notes.txt",
                "bad-number": f"http://1.2.3.4.5:{port}/", "zone": f"http://[fe80::1%25lo]:{port}/",
            }[path[4:]]})
        elif path == "/article":
            self._send(200, ARTICLE.encode(), "text/html; charset=utf-8")
        elif path == "/data.json":
            self._send(200, json.dumps({"city": "Birnin Zana", "population": 1234}).encode(), "application/json")
        elif path == "/notes.txt":
            self._send(200, b"line one\nline two\n", "text/plain")
        elif path == "/big":
            self._send(200, b"x" * 300_000, "text/plain")
        elif path == "/slow":
            time.sleep(2.0)
            self._send(200, b"late", "text/plain")
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(302, b"", "text/plain", {"Location": f"/hop/{n + 1}" if n < 10 else "/notes.txt"})
        elif path == "/to-article":
            self._send(301, b"", "text/plain", {"Location": "/article"})
        elif path == "/to-private":
            self._send(302, b"", "text/plain", {"Location": "http://10.20.30.40/secret"})
        elif path == "/image.png":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")
        elif path == "/missing":
            self._send(404, b"no such page", "text/plain")
        else:
            self._send(404, b"?", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class LoopbackOnly(httpx.AsyncBaseTransport):
    """Inner transport: passes loopback requests to a real transport; any other target is recorded, never sent."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("127.0.0.1", "::1"):
            self.refused.append(str(request.url))
            return httpx.Response(599, content=b"not sent")
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


def make_tool(**config: object) -> tuple[WebFetch, LoopbackOnly]:
    inner = LoopbackOnly()
    cfg = WebFetchConfig(**{"policy": LOOPBACK_ONLY, **config})  # type: ignore[arg-type]
    return WebFetch(cfg, resolver=StaticResolver({"site.test": ["127.0.0.1"]}), inner_transport=inner), inner


async def test_html_main_content_title_and_final_url(server: str) -> None:
    tool, inner = make_tool()
    page = await tool.fetch(f"{server}/to-article")
    assert page.final_url == f"{server}/article"
    assert page.title and "Birnin Zana" in page.title
    assert "museum opens at 9" in page.text
    assert "All rights reserved" not in page.text and "Login" not in page.text  # boilerplate dropped
    assert inner.refused == []
    await tool.aclose()


async def test_json_is_pretty_printed_and_text_kept(server: str) -> None:
    tool, _ = make_tool()
    page = await tool.fetch(f"{server}/data.json")
    assert page.text == json.dumps({"city": "Birnin Zana", "population": 1234}, indent=2)
    page = await tool.fetch(f"{server}/notes.txt")
    assert page.text == "line one\nline two\n" and page.title is None
    await tool.aclose()


async def test_dns_name_pinned_to_loopback_server_through_allow_list(server: str) -> None:
    tool, _ = make_tool()
    port = server.rsplit(":", 1)[1]
    page = await tool.fetch(f"http://site.test:{port}/notes.txt")
    assert page.text.startswith("line one")
    await tool.aclose()


async def test_loopback_is_refused_without_the_allow_list(server: str) -> None:
    tool = WebFetch(resolver=StaticResolver({"site.test": ["127.0.0.1"]}), inner_transport=LoopbackOnly())
    with pytest.raises(BlockedURLError, match="loopback"):
        await tool.fetch(f"{server}/article")
    port = server.rsplit(":", 1)[1]
    with pytest.raises(BlockedURLError, match="loopback"):
        await tool.fetch(f"http://site.test:{port}/article")
    with pytest.raises(BlockedURLError):
        await tool.fetch(f"http://[::1]:{port}/article")
    await tool.aclose()


async def test_size_limit_cuts_the_body(server: str) -> None:
    tool, _ = make_tool(max_bytes=10_000, max_chars=50_000)
    page = await tool.fetch(f"{server}/big")
    assert page.truncated
    assert page.text.startswith("x" * 10_000) and "cut at 10,000 bytes" in page.text
    tool2, _ = make_tool(max_chars=500)
    page = await tool2.fetch(f"{server}/big")
    assert page.truncated and len(page.text) < 600
    await tool.aclose()
    await tool2.aclose()


async def test_time_limit(server: str) -> None:
    tool, _ = make_tool(timeout_s=0.5)
    # /slow answers after 2 s: an error (rather than the page) is what shows the 0.5 s limit held; no timed bound
    with pytest.raises(WebFetchError, match=r"0.5 s|timed out"):
        await tool.fetch(f"{server}/slow")
    await tool.aclose()


async def test_redirect_limit(server: str) -> None:
    tool, _ = make_tool(max_redirects=3)
    with pytest.raises(WebFetchError, match="redirected more than 3 times"):
        await tool.fetch(f"{server}/hop/0")
    tool2, _ = make_tool(max_redirects=20)
    assert (await tool2.fetch(f"{server}/hop/0")).final_url == f"{server}/notes.txt"
    await tool.aclose()
    await tool2.aclose()


async def test_redirect_from_local_server_to_private_address_refused(server: str) -> None:
    tool, inner = make_tool()
    with pytest.raises(BlockedURLError, match=r"10.20.30.40"):
        await tool.fetch(f"{server}/to-private")
    assert inner.refused == []  # the guard stopped it; the recorder never even saw it
    await tool.aclose()


async def test_content_type_limit_and_errors_become_observations(server: str) -> None:
    tool, _ = make_tool()
    box = Toolbox([tool])
    out = await box.execute(ToolCall.make("web_fetch", {"url": f"{server}/image.png"}))
    assert out.is_error and "image/png" in out.text
    out = await box.execute(ToolCall.make("web_fetch", {"url": f"{server}/missing"}))
    assert out.is_error and "404" in out.text
    out = await box.execute(ToolCall.make("web_fetch", {"url": "file:///etc/passwd"}))
    assert out.is_error and "only http and https" in out.text
    out = await box.execute(ToolCall.make("web_fetch", {"url": f"{server}/article"}))
    assert not out.is_error and out.text.startswith("Title:") and "museum opens" in out.text
    assert out.data["final_url"] == f"{server}/article"
    await box.aclose()


def test_builtin_factory_options() -> None:
    from qwen_agent.tools.web.fetch import make_web_fetch

    tool = make_web_fetch(allow_networks=["127.0.0.1/32"], max_chars=100)
    assert tool.config.policy == AddressPolicy(allow_networks=("127.0.0.1/32",))
    assert tool.config.max_chars == 100 and tool.schema().parameters["required"] == ["url"]


ODD_LOOPBACK = ["http://2130706433:{port}/notes.txt", "http://0x7f.1:{port}/notes.txt", "http://127.1:{port}/notes.txt",
                "http://0x7f000001:{port}/notes.txt", "http://0177.1:{port}/notes.txt",
                "http://127.0.0.1.:{port}/notes.txt", "http://[::ffff:127.0.0.1]:{port}/notes.txt",
                "http://[::ffff:7f00:1]:{port}/notes.txt", "http://[::127.0.0.1]:{port}/notes.txt",
                "http://[::ffff:0:127.0.0.1]:{port}/notes.txt", "http://[64:ff9b::7f00:1]:{port}/notes.txt",
                "http://[64:ff9b:1::7f00:1]:{port}/notes.txt", "http://[::1%25lo]:{port}/notes.txt",
                "http://0:{port}/notes.txt"]


@pytest.mark.parametrize("template", ODD_LOOPBACK)
async def test_odd_forms_of_the_local_server_are_refused_and_nothing_arrives(server: str, template: str) -> None:
    SEEN.clear()
    inner = LoopbackOnly()
    tool = WebFetch(resolver=StaticResolver({}), inner_transport=inner)  # default policy: public addresses only
    with pytest.raises(BlockedURLError, match="Refused"):
        await tool.fetch(template.format(port=server.rsplit(":", 1)[1]))
    assert SEEN == [] and inner.refused == []
    await tool.aclose()


async def test_an_allowed_odd_form_connects_to_exactly_the_checked_address(server: str) -> None:
    SEEN.clear()
    tool, inner = make_tool(policy=AddressPolicy(allow_networks=("127.0.0.1/32",)))
    port = server.rsplit(":", 1)[1]
    page = await tool.fetch(f"http://0x7f.1:{port}/notes.txt")
    assert page.text.startswith("line one") and [("/notes.txt", f"0x7f.1:{port}")] == SEEN
    page = await tool.fetch(f"{server}/to/hex")  # a redirect to the same address in another spelling
    assert page.final_url == f"http://0x7f.1:{port}/notes.txt" and inner.refused == []
    await tool.aclose()


@pytest.mark.parametrize(("hop", "shown"), [
    ("compat", "::7f00:1, a IPv4-compatible"), ("siit", "SIIT"), ("ietf", "IETF protocol assignment"),
    ("relay", "6to4 relay anycast"), ("bad-number", "ends in a number"), ("zone", "zone id"),
])
async def test_redirects_to_non_global_forms_are_refused_despite_the_loopback_allow_list(
        server: str, hop: str, shown: str) -> None:
    SEEN.clear()
    tool, inner = make_tool()  # LOOPBACK_ONLY admits 127.0.0.0/8 and ::1, not their compatible or SIIT forms
    with pytest.raises(BlockedURLError, match="Refused") as info:
        await tool.fetch(f"{server}/to/{hop}")
    assert shown in str(info.value)
    assert [path for path, _ in SEEN] == [f"/to/{hop}"] and inner.refused == []
    await tool.aclose()
