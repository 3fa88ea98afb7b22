"""OpenAPI 3 operations as typed tools: ``tools_from_openapi(spec, base_url=..., auth=...)``.

Each operation becomes one ``SchemaTool``: its path, query and header parameters and its JSON body's properties
become the arguments the model fills in; the call goes out with httpx (one pooled client per spec) and the response
comes back as an observation (status, JSON or text, cut to a budget). HTTP errors, timeouts and unreadable bodies
are observations too. Credentials come from ``OpenAPIAuth`` (a value or an environment variable read at call
time), never from the model: they are not in any schema.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from qwen_agent.tools.base import ToolOutput
from qwen_agent.tools.errors import ToolDefinitionError, ToolError
from qwen_agent.tools.output import DEFAULT_MAX_CHARS
from qwen_agent.tools.schema_tool import SchemaTool

logger = logging.getLogger(__name__)

_METHODS = ("get", "put", "post", "delete", "patch")
_MAX_REF_DEPTH = 20


class OpenAPIError(ToolError):
    """An OpenAPI call failed before any HTTP status came back (timeout, refused connection, missing secret)."""


class OpenAPIAuth(BaseModel):
    """How to authenticate: a bearer token, an API key (header or query) or basic auth.

    Give the secret as ``value`` or, better, name an environment variable in ``env`` (read at each call, so it
    never sits in configuration files and rotates without a restart).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["bearer", "api_key", "basic"] = "bearer"
    value: SecretStr | None = None
    env: str | None = None
    name: str = Field(default="X-API-Key", description="header or query parameter name for api_key")
    location: Literal["header", "query"] = "header"
    username: str | None = None  # basic auth; the password is the secret

    def secret(self) -> str:
        if self.value is not None:
            return self.value.get_secret_value()
        if self.env:
            found = os.environ.get(self.env)
            if found:
                return found
            raise OpenAPIError(f"the API credential is not available: set the environment variable {self.env}")
        raise ToolDefinitionError("OpenAPIAuth needs a value or an env variable name")

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> httpx.Auth | None:
        secret = self.secret()
        if self.kind == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif self.kind == "api_key":
            (headers if self.location == "header" else params)[self.name] = secret
        else:
            return httpx.BasicAuth(self.username or "", secret)
        return None


class _SharedClient:
    """One pooled httpx client for all tools of a spec, created on first use and re-created after ``aclose``."""

    def __init__(self, factory: Any, owned: bool) -> None:
        self._factory = factory
        self._owned = owned
        self._client: httpx.AsyncClient | None = None if owned else factory()

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class _Param(BaseModel):
    name: str  # the argument name the model sees
    wire: str  # the name on the wire
    where: Literal["path", "query", "header", "body", "body_whole"]


class OpenAPITool(SchemaTool):
    """One operation of an OpenAPI document."""

    def __init__(self, *, name: str, description: str, method: str, path: str, input_schema: dict[str, Any],
                 params: list[_Param], client: _SharedClient, auth: OpenAPIAuth | None,
                 timeout: float, max_output_chars: int | None) -> None:
        super().__init__(name=name, description=description, input_schema=input_schema, timeout=timeout + 2.0,
                         max_output_chars=max_output_chars)
        self.method = method.upper()
        self.path = path
        self.params = params
        self.client = client
        self.auth = auth
        self.request_timeout = timeout

    def build_request(self, arguments: dict[str, Any]) -> httpx.Request:
        path = self.path
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        body: Any = None
        for p in self.params:
            if p.name not in arguments or arguments[p.name] is None:
                continue
            value = arguments[p.name]
            if p.where == "path":
                path = path.replace("{" + p.wire + "}", quote(str(value), safe=""))
            elif p.where == "query":
                query[p.wire] = json.dumps(value) if isinstance(value, (dict, list)) else _scalar(value)
            elif p.where == "header":
                headers[p.wire] = str(value)
            elif p.where == "body_whole":
                body = value
            else:
                body = {} if body is None else body
                body[p.wire] = value
        auth = self.auth.apply(headers, query) if self.auth else None
        request = self.client.get().build_request(self.method, path.lstrip("/"), params=query, headers=headers,
                                            json=body if body is not None else None)
        if auth is not None:
            request = next(auth.auth_flow(request))
        return request

    async def run(self, args: BaseModel) -> ToolOutput:
        request = self.build_request(self.wire_args(args))
        try:
            response = await self.client.get().send(request)
        except httpx.TimeoutException as exc:
            raise OpenAPIError(f"{self.name}: the API did not answer within {self.request_timeout:g} s.") from exc
        except httpx.HTTPError as exc:
            raise OpenAPIError(f"{self.name}: could not reach the API ({type(exc).__name__}: {exc}).") from exc
        return response_to_output(response)

    async def aclose(self) -> None:
        await self.client.aclose()


def _scalar(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def response_to_output(response: httpx.Response) -> ToolOutput:
    """JSON bodies are parsed (data) and shown compactly; errors keep their status line for the model."""
    ctype = response.headers.get("content-type", "")
    data: Any = None
    text = response.text
    if "json" in ctype:
        try:
            data = response.json()
            text = json.dumps(data, ensure_ascii=False)
        except ValueError:
            text = f"(the API said JSON but sent invalid JSON) {text}"
    if response.is_error:
        return ToolOutput(text=f"HTTP {response.status_code} {response.reason_phrase}: {text}".strip(), is_error=True,
                          data={"status": response.status_code, "body": data})
    return ToolOutput(text=text or f"HTTP {response.status_code} (empty body)",
                      data={"status": response.status_code, "body": data})


# ---- spec loading and conversion ------------------------------------------------------------------------------------


def load_spec(source: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str | None]:
    """(spec, the URL it came from) from a dict, a JSON/YAML file path, a JSON/YAML string or an http(s) URL."""
    if isinstance(source, dict):
        return _checked(source), None
    text = str(source)
    origin = None
    if isinstance(source, str) and re.match(r"^https?://", text):
        response = httpx.get(text, timeout=30.0, follow_redirects=True)
        response.raise_for_status()
        text, origin = response.text, str(response.url)
    elif isinstance(source, Path) or not text.lstrip().startswith(("{", "openapi", "swagger")):
        text = Path(text).read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except ValueError:
        import yaml  # type: ignore[import-untyped]

        spec = yaml.safe_load(text)
    return _checked(spec), origin


def _checked(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3"):
        raise ToolDefinitionError("not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    return spec


def _resolve(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    """Inline local ``$ref``s (``#/components/...``); deep or circular ones become a plain object."""
    if isinstance(node, list):
        return [_resolve(v, spec, depth) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if depth > _MAX_REF_DEPTH or not ref.startswith("#/"):
            return {"type": "object"}
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        return _resolve(target, spec, depth + 1)
    return {k: _resolve(v, spec, depth) for k, v in node.items()}


def _tool_name(op: dict[str, Any], method: str, path: str) -> str:
    raw = op.get("operationId") or f"{method}_{path}"
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]+", "_", raw)).strip("_") or method
    if not re.match(r"[A-Za-z_]", name):
        name = "op_" + name
    return name[:64]


def _operation(spec: dict[str, Any], method: str, path: str, op: dict[str, Any],
               path_params: list[Any]) -> tuple[str, dict[str, Any], list[_Param]]:
    props: dict[str, Any] = {}
    required: list[str] = []
    params: list[_Param] = []
    merged = {(p.get("in"), p.get("name")): p for p in _resolve(path_params, spec) + _resolve(op.get("parameters", []),
                                                                                               spec)}
    for (where, wire), p in merged.items():
        if where not in ("path", "query", "header") or not wire:
            continue
        schema = dict(p.get("schema") or {"type": "string"})
        if p.get("description"):
            schema["description"] = p["description"]
        props[wire] = schema
        params.append(_Param(name=wire, wire=wire, where=where))
        if p.get("required") or where == "path":
            required.append(wire)
    body = _resolve(op.get("requestBody"), spec)
    if isinstance(body, dict):
        content = body.get("content", {})
        media = content.get("application/json") or next(iter(content.values()), None)
        schema = (media or {}).get("schema") or {}
        if schema.get("type", "object") == "object" and schema.get("properties") and \
                not set(schema["properties"]) & set(props):
            for wire, sub in schema["properties"].items():
                props[wire] = sub
                params.append(_Param(name=wire, wire=wire, where="body"))
            required += [r for r in schema.get("required", []) if r in schema["properties"]]
        elif schema:
            props["body"] = {**schema, "description": body.get("description") or "the JSON request body"}
            params.append(_Param(name="body", wire="body", where="body_whole"))
            if body.get("required"):
                required.append("body")
    description = (op.get("summary") or "").strip()
    extra = (op.get("description") or "").strip()
    if extra and extra != description:
        description = f"{description} {extra}".strip()
    description = description or f"{method.upper()} {path}"
    input_schema = {"type": "object", "properties": props, "required": required}
    return description, input_schema, params


def tools_from_openapi(
    spec: dict[str, Any] | str | Path,
    *,
    base_url: str | None = None,
    auth: OpenAPIAuth | None = None,
    operations: list[str] | None = None,
    timeout: float = 30.0,
    max_output_chars: int | None = DEFAULT_MAX_CHARS,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[OpenAPITool]:
    """One tool per operation (``operations`` limits them by name). ``base_url`` defaults to the spec's first
    server. All tools share one pooled httpx client; close it with any tool's ``aclose`` (or ``Agent.aclose``)."""
    doc, origin = load_spec(spec)
    if base_url is None:
        servers = doc.get("servers") or []
        base_url = servers[0].get("url") if servers else None
        if base_url and origin:
            base_url = str(httpx.URL(origin).join(base_url))
    if not base_url or not re.match(r"^https?://", base_url):
        raise ToolDefinitionError("no usable base_url: pass base_url=... (the spec's servers give none absolute)")
    root = base_url.rstrip("/") + "/"
    http = _SharedClient((lambda: client) if client is not None else
                         (lambda: httpx.AsyncClient(base_url=root, timeout=timeout, headers=headers)),
                         owned=client is None)
    tools: list[OpenAPITool] = []
    seen: set[str] = set()
    for path, item in (doc.get("paths") or {}).items():
        item = _resolve(item, doc)
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = _tool_name(op, method, path)
            if operations is not None and name not in operations:
                continue
            if name in seen:
                raise ToolDefinitionError(f"two OpenAPI operations map to the tool name {name!r}; set operationId")
            seen.add(name)
            description, input_schema, params = _operation(doc, method, path, op, item.get("parameters", []))
            tools.append(OpenAPITool(name=name, description=description, method=method, path=path,
                                     input_schema=input_schema, params=params, client=http, auth=auth,
                                     timeout=timeout, max_output_chars=max_output_chars))
    if not tools:
        raise ToolDefinitionError("the OpenAPI document has no (selected) operations")
    return tools


__all__ = ["OpenAPIAuth", "OpenAPIError", "OpenAPITool", "load_spec", "response_to_output", "tools_from_openapi"]
