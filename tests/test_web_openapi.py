"""OpenAPI operations as tools, round-tripped against a real HTTP API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from qwen_agent.messages import ToolCall
from qwen_agent.tools import ToolArgumentsError, Toolbox, ToolDefinitionError
from qwen_agent.tools.web.openapi import OpenAPIAuth, tools_from_openapi
from qwen_agent.tools.web.ssrf import LOOPBACK_ONLY, AddressPolicy, StaticResolver

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Cities", "version": "1"},
    "paths": {
        "/cities/{city_id}": {
            "parameters": [{"name": "city_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {
                "operationId": "getCity",
                "summary": "Get one city by id.",
                "parameters": [{"name": "units", "in": "query", "schema": {"type": "string", "enum": ["km", "mi"]},
                                "description": "distance units"}],
                "responses": {"200": {"description": "ok"}},
            },
            "delete": {"operationId": "deleteCity", "responses": {"204": {"description": "gone"}}},
        },
        "/cities": {
            "get": {
                "operationId": "listCities",
                "summary": "List cities.",
                "parameters": [{"name": "country", "in": "query", "required": True, "schema": {"type": "string"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 10}},
                               {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}},
            },
            "post": {
                "operationId": "createCity",
                "summary": "Create a city.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NewCity"}}}},
                "responses": {"201": {"description": "created"}},
            },
        },
        "/secret": {"get": {"operationId": "getSecret", "responses": {"200": {"description": "ok"}}}},
        "/broken": {"get": {"operationId": "getBroken", "responses": {"200": {"description": "ok"}}}},
        "/slow": {"get": {"operationId": "getSlow", "responses": {"200": {"description": "ok"}}}},
        "/fail": {"get": {"responses": {"500": {"description": "boom"}}}},
    },
    "components": {"schemas": {"NewCity": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"},
                       "tags": {"type": "array", "items": {"type": "string"}}}}}},
}


class Api(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # one segment per write; avoids 40 ms delayed-ACK stalls

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, payload: object, ctype: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/cities/"):
            cid = url.path.rsplit("/", 1)[1]
            if cid != "7":
                self._json(404, {"detail": f"no city {cid}"})
            else:
                self._json(200, {"id": 7, "name": "Birnin Zana", "units": q.get("units")})
        elif url.path == "/cities":
            self._json(200, {"country": q.get("country"), "limit": q.get("limit"),
                             "trace": self.headers.get("X-Trace")})
        elif url.path == "/secret":
            if self.headers.get("Authorization") == "Bearer s3cret":
                self._json(200, {"secret": "vibranium"})
            else:
                self._json(401, {"detail": "bad token"})
        elif url.path == "/broken":
            self._json(200, b"{not json", "application/json")
        elif url.path == "/slow":
            time.sleep(2)
            self._json(200, {"ok": True})
        else:
            self._json(500, {"detail": "boom"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._json(201, {"created": body})

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_schemas_from_path_query_header_and_body(api: str) -> None:
    box = Toolbox(tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY))
    assert set(box.names) == {"getCity", "deleteCity", "listCities", "createCity", "getSecret", "getBroken",
                              "getSlow", "get_fail"}
    get_city = box.get("getCity").schema().parameters
    assert get_city["required"] == ["city_id"]
    assert get_city["properties"]["units"] == {"type": "string", "enum": ["km", "mi"], "description": "distance units"}
    create = box.get("createCity").schema().parameters
    assert create["required"] == ["name"] and create["properties"]["tags"]["type"] == "array"
    assert box.get("listCities").schema().parameters["properties"]["limit"]["default"] == 10


async def test_round_trips(api: str) -> None:
    async with Toolbox(tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY)) as box:
        out = await box.execute(ToolCall.make("getCity", {"city_id": "7", "units": "km"}))
        assert not out.is_error and out.data["body"] == {"id": 7, "name": "Birnin Zana", "units": "km"}
        out = await box.execute(ToolCall.make("listCities", {"country": "Wakanda", "X-Trace": "t-1"}))
        assert out.data["body"] == {"country": "Wakanda", "limit": None, "trace": "t-1"}  # unset default not sent
        out = await box.execute(ToolCall.make("createCity", {"name": "Golden City", "population": 9, "tags": ["a"]}))
        assert out.data == {"status": 201, "body": {"created": {"name": "Golden City", "population": 9,
                                                                "tags": ["a"]}}}
        out = await box.execute(ToolCall.make("deleteCity", {"city_id": 7}))
        assert not out.is_error and out.data["status"] == 204


async def test_path_values_are_checked_then_escaped(api: str) -> None:
    tool = tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY, operations=["getCity"])[0]
    with pytest.raises(ToolArgumentsError, match="slash"):
        tool.build_request({"city_id": "../secret?x=1"})
    request = tool.build_request({"city_id": "7 & x=1"})
    assert request.url.raw_path == b"/cities/7%20%26%20x%3D1"
    assert request.url.host == "127.0.0.1"
    await tool.aclose()


async def test_errors_become_observations(api: str) -> None:
    async with Toolbox(tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY, timeout=0.5)) as box:
        out = await box.execute(ToolCall.make("getCity", {"city_id": 99}))
        assert out.is_error and out.text.startswith("HTTP 404") and "no city 99" in out.text
        out = await box.execute(ToolCall.make("get_fail", {}))
        assert out.is_error and "HTTP 500" in out.text
        out = await box.execute(ToolCall.make("getBroken", {}))
        assert not out.is_error and "invalid JSON" in out.text
        out = await box.execute(ToolCall.make("getSlow", {}))
        assert out.is_error and "did not answer within 0.5 s" in out.text
        out = await box.execute(ToolCall.make("getCity", {"units": "km"}))
        assert out.is_error and "city_id" in out.text


async def test_auth_comes_from_config_or_environment(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY, operations=["getSecret"],
                              auth=OpenAPIAuth(kind="bearer", env="CITIES_TOKEN"))[0]
    assert tool.schema().parameters["properties"] == {}  # the model never sees a credential field
    box = Toolbox([tool])
    out = await box.execute(ToolCall.make("getSecret", {}))
    assert out.is_error and "CITIES_TOKEN" in out.text
    monkeypatch.setenv("CITIES_TOKEN", "s3cret")
    out = await box.execute(ToolCall.make("getSecret", {}))
    assert out.data["body"] == {"secret": "vibranium"}
    out = await box.execute(ToolCall.make("getSecret", {"Authorization": "Bearer s3cret-from-model"}))
    assert out.data["body"] == {"secret": "vibranium"}
    await box.aclose()
    tool = tools_from_openapi(SPEC, base_url=api, policy=LOOPBACK_ONLY, operations=["getSecret"],
                              auth=OpenAPIAuth(kind="bearer", value="wrong"))[0]
    out = await Toolbox([tool]).execute(ToolCall.make("getSecret", {}))
    assert out.is_error and "401" in out.text
    await tool.aclose()


def test_yaml_file_and_servers_base_url(api: str, tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "servers": [{"url": api}]}))
    tools = tools_from_openapi(path, policy=LOOPBACK_ONLY)
    assert len(tools) == 8
    with pytest.raises(ToolDefinitionError, match="base_url"):
        tools_from_openapi(SPEC)
    with pytest.raises(ToolDefinitionError, match="OpenAPI 3"):
        tools_from_openapi({"swagger": "2.0", "paths": {}})


# ---- hardening: path segments, schema, address policy, credentials ------------------------------------------------

TOKEN = "tok-4f1d9"  # distinctive, so a leak anywhere in a request line or header is found by substring search
ORDERS = {
    "openapi": "3.0.3",
    "info": {"title": "Orders", "version": "1"},
    "paths": {
        "/v1/orders/{order_id}": {"get": {
            "operationId": "getOrder",
            "parameters": [{"name": "order_id", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 60}}],
            "responses": {"200": {"description": "ok"}}}},
        "/v1/search": {"get": {
            "operationId": "search",
            "parameters": [
                {"name": "q", "in": "query", "required": True,
                 "schema": {"type": "string", "minLength": 2, "maxLength": 10}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5}},
                {"name": "price", "in": "query",
                 "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
                {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["new", "old"]}},
                {"name": "code", "in": "query", "schema": {"type": "string", "pattern": "^[A-Z]{3}$"}},
                {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                {"name": "Host", "in": "header", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}}}},
        "/v1/orders": {"post": {
            "operationId": "createOrder",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}}}}}},
            "responses": {"201": {"description": "created"}}}},
        "/v1/hop/{where}": {"get": {
            "operationId": "hop",
            "parameters": [{"name": "where", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": ["same", "port", "host", "private"]}}],
            "responses": {"200": {"description": "ok"}}}},
    },
}


class Recording(BaseHTTPRequestHandler):
    """Records every request line and header set it receives; answers /v1/hop/* with redirects."""

    disable_nagle_algorithm = True
    seen: list[tuple[str, str, dict[str, str]]]  # set per server class
    targets: dict[str, str]

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        self.seen.append((self.command, self.path, dict(self.headers.items())))
        path = urlsplit(self.path).path
        if path.startswith("/v1/hop/") and path[8:] in self.targets:
            self.send_response(302)
            self.send_header("Location", self.targets[path[8:]])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle


class Servers:
    """The API on 127.0.0.1, another origin on 127.0.0.1 (other port), another host on 127.0.0.2."""

    def __init__(self) -> None:
        self.httpds: list[ThreadingHTTPServer] = []
        self.api, self.api_seen = self._start("127.0.0.1")
        self.port_other, self.port_seen = self._start("127.0.0.1")
        self.host_other, self.host_seen = self._start("127.0.0.2")
        Recording.targets = {}

    def _start(self, host: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
        seen: list[tuple[str, str, dict[str, str]]] = []
        handler = type("Handler", (Recording,), {"seen": seen})
        httpd = ThreadingHTTPServer((host, 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.httpds.append(httpd)
        return f"http://{host}:{httpd.server_address[1]}", seen

    def clear(self) -> None:
        for seen in (self.api_seen, self.port_seen, self.host_seen):
            seen.clear()

    def everything_sent(self) -> list[str]:
        return [f"{m} {p} {h}" for seen in (self.api_seen, self.port_seen, self.host_seen) for m, p, h in seen]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    for name, target in (("same", "/v1/orders/7"), ("port", f"{s.port_other}/landing"),
                         ("host", f"{s.host_other}/landing"), ("private", "http://10.0.0.7/landing")):
        Recording.targets[name] = target
    yield s
    for httpd in s.httpds:
        httpd.shutdown()
        httpd.server_close()


class LoopbackOnly(httpx.AsyncBaseTransport):
    """Inner transport: loopback requests go to a real transport; anything else is recorded and never sent."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.url.host.startswith("127.") or request.url.host == "::1"):
            self.refused.append(str(request.url))
            return httpx.Response(599, content=b"not sent")
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


def orders_box(servers: Servers, **kwargs: object) -> tuple[Toolbox, LoopbackOnly]:
    inner = LoopbackOnly()
    options: dict[str, object] = {"base_url": servers.api, "policy": LOOPBACK_ONLY,
                                  "auth": OpenAPIAuth(kind="bearer", value=TOKEN), "inner_transport": inner}
    options.update(kwargs)
    return Toolbox(tools_from_openapi(ORDERS, **options)), inner  # type: ignore[arg-type]


# Each is an order_id that must never leave: dot segments, separators and their encoded and folded forms.
PATH_ATTACKS = [
    ".", "..", "...", " .. ", ". .", "%2e", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%252e%252e", "%25252e%25252e",
    "..%2f", "..%2F..%2Fadmin", "%2fadmin", "a/b", "../admin", "..\\admin", "a\\b", "%5c", "%5C..", "..%5c",
    "..;", "..;jsessionid=1", "%2e%2e;x", "", "\uff0e\uff0e", "%ef%bc%8e%ef%bc%8e", "\u2025", "%c0%ae%c0%ae",
    "%c0%af", "%e0%80%ae", "%u002e%u002e", "%u002f", "\uff0fadmin", "%ef%bc%8fadmin", "?admin", "a#b", "%3fx=1",
    "%23", "%253f", "a%00", "a\x00b", "a\r\nX-Injected: 1", "%0d%0aX-Injected:%201", "\u202eabc", "a\tb",
    "%252525252e%252525252e",
]


@pytest.mark.parametrize("value", PATH_ATTACKS)
async def test_unsafe_path_values_never_reach_the_server(servers: Servers, value: str) -> None:
    servers.clear()
    box, inner = orders_box(servers)
    out = await box.execute(ToolCall.make("getOrder", {"order_id": value}))
    assert out.is_error and out.text.startswith("Invalid arguments for tool 'getOrder': argument 'order_id'"), out.text
    assert "plain value" in out.text or "UTF-8" in out.text or "percent-encoded more than" in out.text
    assert servers.everything_sent() == [] and inner.refused == []  # nothing arrived anywhere, token included
    await box.aclose()


@pytest.mark.parametrize(("value", "wire"), [
    ("7", "/v1/orders/7"), ("a b", "/v1/orders/a%20b"), ("x&y=z", "/v1/orders/x%26y%3Dz"),
    ("50%", "/v1/orders/50%25"), ("ü", "/v1/orders/%C3%BC"), ("a,b", "/v1/orders/a,b"), ("a;b", "/v1/orders/a%3Bb"),
    ("~u.v-w_x", "/v1/orders/~u.v-w_x"), ("{x}", "/v1/orders/%7Bx%7D"), ("..a", "/v1/orders/..a"),
])
async def test_safe_path_values_are_sent_percent_encoded(servers: Servers, value: str, wire: str) -> None:
    servers.clear()
    box, _ = orders_box(servers)
    out = await box.execute(ToolCall.make("getOrder", {"order_id": value}))
    assert not out.is_error, out.text
    assert [(m, p) for m, p, _ in servers.api_seen] == [("GET", wire)]
    assert servers.api_seen[0][2]["Authorization"] == f"Bearer {TOKEN}"
    await box.aclose()


@pytest.mark.parametrize(("tool", "args", "expected"), [
    ("search", {"q": "a"}, "argument 'q': 'a' is too short"),
    ("search", {"q": "abcdefghijk"}, "argument 'q': 'abcdefghijk' is too long"),
    ("search", {"q": "ok", "page": 0}, "argument 'page': 0 is less than the minimum of 1"),
    ("search", {"q": "ok", "page": 6}, "argument 'page': 6 is greater than the maximum of 5"),
    ("search", {"q": "ok", "page": "two"}, "argument 'page'"),
    ("search", {"q": "ok", "price": 0}, "argument 'price': 0.0 is less than or equal to the minimum of 0"),
    ("search", {"q": "ok", "sort": "random"}, "argument 'sort'"),
    ("search", {"q": "ok", "code": "abc"}, "argument 'code': 'abc' does not match '^[A-Z]{3}$'"),
    ("search", {"q": "ok", "X-Trace": "t\r\nX-Injected: 1"}, "argument 'X-Trace': a header value must be printable"),
    ("search", {"page": 2}, "argument 'q'"),
    ("createOrder", {"items": []}, "argument 'items': [] should be non-empty"),
    ("createOrder", {"items": [{"sku": "a", "qty": 0}]}, "argument 'items[0].qty': 0 is less than the minimum of 1"),
    ("createOrder", {"items": [{"qty": 2}]}, "argument 'items[0]': 'sku' is a required property"),
    ("createOrder", {"items": [{"sku": "a", "qty": "x"}]}, "argument 'items[0].qty': 'x' is not of type 'integer'"),
    ("hop", {"where": "elsewhere"}, "argument 'where'"),
])
async def test_schema_violations_are_refused_before_any_request(servers: Servers, tool: str, args: dict,
                                                                expected: str) -> None:
    servers.clear()
    box, _ = orders_box(servers)
    out = await box.execute(ToolCall.make(tool, args))
    assert out.is_error and out.text.startswith(f"Invalid arguments for tool '{tool}'") and expected in out.text, \
        out.text
    assert servers.everything_sent() == []
    await box.aclose()


async def test_conforming_arguments_go_through_and_unsafe_headers_are_not_offered(servers: Servers) -> None:
    servers.clear()
    box, _ = orders_box(servers)
    assert "Host" not in box.get("search").schema().parameters["properties"]
    out = await box.execute(ToolCall.make("search", {"q": "ok", "page": "5", "price": 0.5, "sort": "new",
                                                     "code": "ABC", "X-Trace": "t-1", "Host": "evil.example"}))
    assert not out.is_error, out.text
    out = await box.execute(ToolCall.make("createOrder", {"items": [{"sku": "a", "qty": 1}]}))
    assert not out.is_error, out.text
    (_, path, headers), (method, _, _) = servers.api_seen
    assert path.startswith("/v1/search?") and "page=5" in path and "code=ABC" in path and method == "POST"
    assert headers["Host"] == servers.api.removeprefix("http://") and headers["X-Trace"] == "t-1"
    await box.aclose()


@pytest.mark.parametrize("auth", [
    OpenAPIAuth(kind="bearer", value=TOKEN),
    OpenAPIAuth(kind="api_key", value=TOKEN, name="X-Api-Key"),
    OpenAPIAuth(kind="api_key", value=TOKEN, name="key", location="query"),
    OpenAPIAuth(kind="basic", value=TOKEN, username="u"),
], ids=["bearer", "api-key-header", "api-key-query", "basic"])
async def test_secrets_go_to_the_base_origin_only_never_along_redirects(servers: Servers, auth: OpenAPIAuth) -> None:
    import base64

    servers.clear()
    box, inner = orders_box(servers, auth=auth, headers={"X-Static-Secret": f"static-{TOKEN}"})
    marks = (TOKEN, base64.b64encode(f"u:{TOKEN}".encode()).decode())
    for where, seen in (("port", servers.port_seen), ("host", servers.host_seen)):
        out = await box.execute(ToolCall.make("hop", {"where": where}))
        assert not out.is_error and out.data["body"] == {"path": "/landing"}, out.text
        assert len(seen) == 1 and not any(m in f"{seen[0][1]} {seen[0][2]}" for m in marks)
        assert "Authorization" not in seen[0][2] and "X-Static-Secret" not in seen[0][2]
    out = await box.execute(ToolCall.make("hop", {"where": "same"}))  # same origin: the secret is still sent
    assert out.data["body"]["path"].split("?")[0] == "/v1/orders/7"
    api_requests = [f"{p} {h}" for _, p, h in servers.api_seen]
    assert len(api_requests) == 4 and all(any(m in r for m in marks) and "static-" in r for r in api_requests)
    assert inner.refused == []
    await box.aclose()


async def test_redirect_to_a_private_address_is_refused_by_the_guard(servers: Servers) -> None:
    servers.clear()
    box, inner = orders_box(servers)
    out = await box.execute(ToolCall.make("hop", {"where": "private"}))
    assert out.is_error and "Refused" in out.text and "10.0.0.7" in out.text and "private" in out.text
    assert inner.refused == [] and len(servers.api_seen) == 1  # the guard stopped the hop before any socket
    await box.aclose()


async def test_loopback_base_url_needs_an_explicit_allow(servers: Servers) -> None:
    servers.clear()
    for base in (servers.api, servers.api.replace("127.0.0.1", "0x7f.1"), "http://10.0.0.5/",
                 "http://[::ffff:127.0.0.1]:1/", "http://[fe80::1%25eth0]/"):
        with pytest.raises(ToolDefinitionError, match=r"Refused.*(allow_networks|trust_base_url)"):
            tools_from_openapi(ORDERS, base_url=base)
    with pytest.raises(ToolDefinitionError, match="OpenAPIAuth"):
        tools_from_openapi(ORDERS, base_url=servers.api.replace("//", "//u:pw@"), policy=LOOPBACK_ONLY)
    box, inner = orders_box(servers, policy=None, trust_base_url=True)  # trusts exactly 127.0.0.1, nothing else
    out = await box.execute(ToolCall.make("getOrder", {"order_id": "7"}))
    assert not out.is_error and out.data["body"] == {"path": "/v1/orders/7"}
    out = await box.execute(ToolCall.make("hop", {"where": "host"}))  # 127.0.0.2 is not the trusted base host
    assert out.is_error and "Refused" in out.text and "127.0.0.2" in out.text
    assert servers.host_seen == [] and inner.refused == []
    await box.aclose()


class Recorder(httpx.AsyncBaseTransport):
    """Records the pinned request and answers itself: it never opens a socket."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"recorded": True})


async def test_openapi_calls_go_through_the_guarded_transport() -> None:
    resolver = StaticResolver({"api.internal": ["10.1.2.3"], "api.example.com": ["93.184.215.14"]})
    inner = Recorder()
    tools = tools_from_openapi(ORDERS, base_url="http://api.internal/", resolver=resolver, inner_transport=inner,
                               auth=OpenAPIAuth(value=TOKEN), operations=["getOrder"])
    out = await Toolbox(tools).execute(ToolCall.make("getOrder", {"order_id": "7"}))
    assert out.is_error and "api.internal resolves to 10.1.2.3, a private address" in out.text
    assert inner.requests == []  # refused after DNS, before any connection
    await tools[0].aclose()
    for policy in (AddressPolicy(allow_hosts=("api.internal",)), AddressPolicy(allow_networks=("10.1.2.0/24",))):
        tools = tools_from_openapi(ORDERS, base_url="http://api.internal/", resolver=resolver, inner_transport=inner,
                                   policy=policy, operations=["getOrder"])
        out = await Toolbox(tools).execute(ToolCall.make("getOrder", {"order_id": "7"}))
        assert out.data["body"] == {"recorded": True}
        await tools[0].aclose()
    tools = tools_from_openapi(ORDERS, base_url="https://api.example.com/", resolver=resolver, inner_transport=inner,
                               auth=OpenAPIAuth(value=TOKEN), operations=["getOrder"])
    out = await Toolbox(tools).execute(ToolCall.make("getOrder", {"order_id": "7"}))
    assert out.data["body"] == {"recorded": True}
    pinned = inner.requests[-1]  # public name: pinned to the checked address, recorded, never sent
    assert pinned.url.host == "93.184.215.14" and pinned.headers["Host"] == "api.example.com"
    assert pinned.url.raw_path == b"/v1/orders/7" and pinned.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [str(r.url.host) for r in inner.requests] == ["10.1.2.3", "10.1.2.3", "93.184.215.14"]
    await tools[0].aclose()


async def test_sloppy_property_schemas_fall_back_to_type_checks_and_3_1_uses_its_own_dialect(servers: Servers) -> None:
    sloppy = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/v1/search": {"get": {
        "operationId": "search",
        "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "required": True}},  # invalid
                       {"name": "page", "in": "query", "schema": {"type": "integer", "maximum": 5}}],
        "responses": {"200": {"description": "ok"}}}}}}
    spec_31 = {**sloppy, "openapi": "3.1.0", "paths": {"/v1/search": {"get": {
        "operationId": "search", "parameters": [
            {"name": "page", "in": "query", "schema": {"type": "integer", "exclusiveMinimum": 0}}],
        "responses": {"200": {"description": "ok"}}}}}}
    servers.clear()
    cases = ((sloppy, {"q": "x", "page": 6}, {"q": "x", "page": 5}), (spec_31, {"page": 0}, {"page": 1}))
    for spec, bad, good in cases:
        async with Toolbox(tools_from_openapi(spec, base_url=servers.api, policy=LOOPBACK_ONLY)) as box:
            out = await box.execute(ToolCall.make("search", bad))
            assert out.is_error and "argument 'page'" in out.text, out.text
            out = await box.execute(ToolCall.make("search", good))
            assert not out.is_error, out.text
    assert [p for _, p, _ in servers.api_seen] == ["/v1/search?q=x&page=5", "/v1/search?page=1"]
