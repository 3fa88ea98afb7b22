"""End-to-end with the real embedded model: an agent calls a generated OpenAPI tool on a local API and answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from qwen_agent.agents import Agent, ToolCallFinished
from qwen_agent.llm.base import FunctionCalling
from qwen_agent.tools.web import LOOPBACK_ONLY
from qwen_agent.tools.web.openapi import tools_from_openapi

pytestmark = pytest.mark.model

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Weather", "version": "1"},
    "paths": {"/weather": {"get": {
        "operationId": "get_weather",
        "summary": "Get the current weather for a city.",
        "parameters": [{"name": "city", "in": "query", "required": True, "schema": {"type": "string"},
                        "description": "the city name, e.g. Paris"}],
        "responses": {"200": {"description": "the weather"}},
    }}},
}
REQUESTS: list[str] = []


class WeatherApi(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # one segment per write; avoids 40 ms delayed-ACK stalls

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        city = parse_qs(url.query).get("city", ["?"])[0]
        REQUESTS.append(city)
        body = json.dumps({"city": city, "temperature_c": 17, "condition": "light rain"}).encode()
        self.send_response(200 if url.path == "/weather" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def weather_api() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), WeatherApi)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("fc", [FunctionCalling(format="nous"), FunctionCalling(format="nous", constrained=True)],
                         ids=["nous", "nous-constrained"])
async def test_agent_answers_from_a_local_openapi_api(embedded_model, weather_api: str, fc) -> None:
    REQUESTS.clear()
    tools = tools_from_openapi(SPEC, base_url=weather_api, policy=LOOPBACK_ONLY)
    agent = Agent(embedded_model, tools=tools, function_calling=fc, max_steps=4)
    events = [e async for e in agent.astream("What is the weather in Paris right now?")]
    await agent.toolbox.aclose()
    result = events[-1].result
    assert result.stop_reason == "answer", result
    assert result.tool_calls and result.tool_calls[0].name == "get_weather"
    assert REQUESTS and "paris" in REQUESTS[0].lower()  # the HTTP API was really called
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished and not finished[0].output.is_error and '"temperature_c": 17' in finished[0].output.text
    assert "17" in result.answer, f"the answer should use the API's observation: {result.answer!r}"
