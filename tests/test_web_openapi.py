"""OpenAPI operations as tools, round-tripped against a real HTTP API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Toolbox, ToolDefinitionError
from qwen_agent.tools.web.openapi import OpenAPIAuth, tools_from_openapi

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
    box = Toolbox(tools_from_openapi(SPEC, base_url=api))
    assert set(box.names) == {"getCity", "deleteCity", "listCities", "createCity", "getSecret", "getBroken",
                              "getSlow", "get_fail"}
    get_city = box.get("getCity").schema().parameters
    assert get_city["required"] == ["city_id"]
    assert get_city["properties"]["units"] == {"type": "string", "enum": ["km", "mi"], "description": "distance units"}
    create = box.get("createCity").schema().parameters
    assert create["required"] == ["name"] and create["properties"]["tags"]["type"] == "array"
    assert box.get("listCities").schema().parameters["properties"]["limit"]["default"] == 10


@pytest.mark.asyncio
async def test_round_trips(api: str) -> None:
    async with Toolbox(tools_from_openapi(SPEC, base_url=api)) as box:
        out = await box.execute(ToolCall.make("getCity", {"city_id": "7", "units": "km"}))
        assert not out.is_error and out.data["body"] == {"id": 7, "name": "Birnin Zana", "units": "km"}
        out = await box.execute(ToolCall.make("listCities", {"country": "Wakanda", "X-Trace": "t-1"}))
        assert out.data["body"] == {"country": "Wakanda", "limit": None, "trace": "t-1"}  # unset default not sent
        out = await box.execute(ToolCall.make("createCity", {"name": "Golden City", "population": 9, "tags": ["a"]}))
        assert out.data == {"status": 201, "body": {"created": {"name": "Golden City", "population": 9,
                                                                "tags": ["a"]}}}
        out = await box.execute(ToolCall.make("deleteCity", {"city_id": 7}))
        assert not out.is_error and out.data["status"] == 204


@pytest.mark.asyncio
async def test_path_values_are_escaped(api: str) -> None:
    tool = tools_from_openapi(SPEC, base_url=api, operations=["getCity"])[0]
    request = tool.build_request({"city_id": "../secret?x=1"})
    assert request.url.raw_path == b"/cities/..%2Fsecret%3Fx%3D1"
    assert request.url.host == "127.0.0.1"
    await tool.aclose()


@pytest.mark.asyncio
async def test_errors_become_observations(api: str) -> None:
    async with Toolbox(tools_from_openapi(SPEC, base_url=api, timeout=0.5)) as box:
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


@pytest.mark.asyncio
async def test_auth_comes_from_config_or_environment(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tools_from_openapi(SPEC, base_url=api, operations=["getSecret"],
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
    tool = tools_from_openapi(SPEC, base_url=api, operations=["getSecret"],
                              auth=OpenAPIAuth(kind="bearer", value="wrong"))[0]
    out = await Toolbox([tool]).execute(ToolCall.make("getSecret", {}))
    assert out.is_error and "401" in out.text
    await tool.aclose()


def test_yaml_file_and_servers_base_url(api: str, tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "servers": [{"url": api}]}))
    tools = tools_from_openapi(path)
    assert len(tools) == 8
    with pytest.raises(ToolDefinitionError, match="base_url"):
        tools_from_openapi(SPEC)
    with pytest.raises(ToolDefinitionError, match="OpenAPI 3"):
        tools_from_openapi({"swagger": "2.0", "paths": {}})
