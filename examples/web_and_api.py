"""An agent that reads a local web page (web_fetch) and calls a small local REST API (OpenAPI tools), offline.

The example serves both itself on 127.0.0.1: a travel page and a weather API described by an OpenAPI document.
web_fetch and OpenAPI tools refuse loopback addresses by default (SSRF guard); here loopback is allow-listed on purpose.

    python examples/web_and_api.py
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from qwen_agent import Agent, FunctionCalling, SamplingParams, load_model
from qwen_agent.tools.web import LOOPBACK_ONLY, WebFetch, WebFetchConfig, tools_from_openapi

PAGE = """<!doctype html><html><head><title>Birnin Zana travel notes</title></head><body>
<nav>Home | Guides | Login</nav><article><h1>Birnin Zana travel notes</h1>
<p>The Royal Museum of Birnin Zana opens at 9:30 and closes at 18:00. Entry costs 12 golden dollars.</p>
<p>The fastest way from the airport is the maglev train, which takes 11 minutes.</p></article>
<footer>(c) 2026 Example travel</footer></body></html>"""

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Weather", "version": "1"},
    "paths": {"/weather": {"get": {
        "operationId": "get_weather",
        "summary": "Get the current weather for a city.",
        "parameters": [{"name": "city", "in": "query", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the weather"}},
    }}},
}


class Site(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # one segment per write; avoids 40 ms delayed-ACK stalls

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/weather":
            city = parse_qs(url.query).get("city", ["?"])[0]
            body, ctype = json.dumps({"city": city, "temperature_c": 24, "condition": "sunny"}), "application/json"
        elif url.path == "/openapi.json":
            body, ctype = json.dumps(SPEC), "application/json"
        else:
            body, ctype = PAGE, "text/html; charset=utf-8"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        fetch = WebFetch(WebFetchConfig(policy=LOOPBACK_ONLY, max_chars=2000))
        api_tools = tools_from_openapi(f"{base}/openapi.json", base_url=base, policy=LOOPBACK_ONLY)
        fc = FunctionCalling(format="nous", constrained=True)
        model = load_model(params=SamplingParams(temperature=0.0, max_tokens=200))
        with Agent(model, tools=[fetch, *api_tools], function_calling=fc, max_steps=4) as agent:
            for question in (f"Read {base}/guide and tell me when the Royal Museum opens.",
                             "What is the weather in Birnin Zana right now?"):
                result = agent.run(question)
                print(f"Q: {question}")
                for call in result.tool_calls:
                    print(f"   tool: {call.name}({json.dumps(call.arguments)})")
                print(f"A: {result.answer}\n")
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    main()
