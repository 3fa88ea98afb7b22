"""OpenAPITool (one operation as a typed tool) and ``tools_from_openapi``, which makes one per operation of a spec.

Every call is checked before anything is sent (pydantic types, then the JSON schema with ``pattern``,
``maxLength``, ``enum``, ``minimum`` ..., then safe path segments and header values); a refusal is a
``ToolArgumentsError`` the model reads and corrects. What is sent goes through the same ``GuardedTransport`` as
web_fetch (address policy after DNS, every redirect hop, connection pinned to the checked address), and secrets
are added only for the base URL's origin (``CredentialTransport``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from qwen_agent.tools.base import ToolOutput
from qwen_agent.tools.errors import ToolArgumentsError, ToolDefinitionError
from qwen_agent.tools.output import DEFAULT_MAX_CHARS
from qwen_agent.tools.schema_tool import SchemaTool
from qwen_agent.tools.web.openapi.arguments import SchemaChecker, expand_path, header_problem
from qwen_agent.tools.web.openapi.credentials import CredentialTransport, OpenAPIAuth, Origin, origin_of
from qwen_agent.tools.web.openapi.errors import OpenAPIError
from qwen_agent.tools.web.openapi.spec import METHODS, OperationDef, Param, load_spec, operation, resolve_refs
from qwen_agent.tools.web.ssrf import AddressPolicy, BlockedURLError, Resolver, parse_ip_literal
from qwen_agent.tools.web.transport import GuardedTransport

logger = logging.getLogger(__name__)


class _SharedClient:
    """One pooled httpx client for all tools of a spec, created on first use and re-created after ``aclose``."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class OpenAPITool(SchemaTool):
    """One operation of an OpenAPI document."""

    def __init__(self, *, op: OperationDef, base_url: httpx.URL, client: _SharedClient, checker: SchemaChecker,
                 timeout: float, max_output_chars: int | None) -> None:
        super().__init__(name=op.name, description=op.description, input_schema=op.input_schema,
                         timeout=timeout + 2.0, max_output_chars=max_output_chars)
        self.method = op.method
        self.path = op.path
        self.params: list[Param] = op.params
        self.base_url = base_url
        self._base_text = str(base_url).rstrip("/") + "/"
        self._base_path = base_url.raw_path.rstrip(b"/") + b"/"
        self._origin = origin_of(base_url)
        self.client = client
        self.checker = checker
        self.request_timeout = timeout

    def validate_args(self, arguments: Any) -> BaseModel:
        """Pydantic's type checks, then the operation's full JSON schema: nothing is sent that the spec forbids."""
        args = super().validate_args(arguments)
        problems = self.checker.problems(self.wire_args(args))
        if problems:
            raise ToolArgumentsError(self.name, problems, self.signature())
        return args

    def build_request(self, arguments: dict[str, Any]) -> httpx.Request:
        """The request for these (already validated) arguments, or ToolArgumentsError for an unsafe path or header
        value. It holds no secret: ``CredentialTransport`` adds those on the way out."""
        path, problems = expand_path(self.path, {p.wire: arguments.get(p.name) for p in self.params
                                                 if p.where == "path"})
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        body: Any = None
        for p in self.params:
            value = arguments.get(p.name)
            if value is None or p.where == "path":
                continue
            if p.where == "query":
                query[p.wire] = json.dumps(value) if isinstance(value, (dict, list)) else _scalar(value)
            elif p.where == "header":
                text = str(_scalar(value))
                problem = header_problem(p.name, text)
                if problem:
                    problems.append(problem)
                headers[p.wire] = text
            elif p.where == "body_whole":
                body = value
            else:
                body = {} if body is None else body
                body[p.wire] = value
        if problems:
            raise ToolArgumentsError(self.name, problems, self.signature())
        encoded = quote(path.lstrip("/"), safe="/%:@!$&'()*+,;=")  # values are encoded already; this covers the spec
        url = httpx.URL(self._base_text + encoded, params=query or None)  # parsed once: httpx URLs cost ~50 us each
        if origin_of(url) != self._origin or not (url.raw_path + b"/").startswith(self._base_path):
            raise OpenAPIError(f"{self.name}: the request URL {url} left the API's base URL {self.base_url}; "
                               "not sent.")
        return self.client.get().build_request(self.method, url, headers=headers,
                                               json=body if body is not None else None)

    async def run(self, args: BaseModel) -> ToolOutput:
        request = self.build_request(self.wire_args(args))
        try:
            response = await self.client.get().send(request)
        except httpx.TimeoutException as exc:
            raise OpenAPIError(f"{self.name}: the API did not answer within {self.request_timeout:g} s.") from exc
        except httpx.TooManyRedirects as exc:
            raise OpenAPIError(f"{self.name}: the API redirected too many times; giving up.") from exc
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


def _effective_policy(policy: AddressPolicy | None, base: httpx.URL, trust_base_url: bool) -> AddressPolicy:
    """``policy`` (public addresses only by default), plus exactly the base URL's host when ``trust_base_url``."""
    policy = policy or AddressPolicy()
    if not trust_base_url:
        return policy
    literal = parse_ip_literal(base.host, str(base))
    if literal is not None:
        return AddressPolicy(allow_networks=(*policy.allow_networks, f"{literal}/{literal.max_prefixlen}"),
                             allow_hosts=policy.allow_hosts)
    return AddressPolicy(allow_networks=policy.allow_networks, allow_hosts=(*policy.allow_hosts, base.host))


def _check_literal_base(policy: AddressPolicy, base: httpx.URL) -> None:
    """Refuse at definition time a base URL whose host is an IP literal the policy would refuse at every call."""
    try:
        literal = parse_ip_literal(base.host, str(base))
        if literal is not None:
            policy.check_addresses(str(base), base.host, [literal])
    except BlockedURLError as exc:
        raise ToolDefinitionError(
            f"{exc} For an API you run on this machine or your network, pass policy=AddressPolicy("
            "allow_networks=(...)) or trust_base_url=True to tools_from_openapi."
        ) from exc


def tools_from_openapi(
    spec: dict[str, Any] | str | Path,
    *,
    base_url: str | None = None,
    auth: OpenAPIAuth | None = None,
    operations: list[str] | None = None,
    timeout: float = 30.0,
    max_output_chars: int | None = DEFAULT_MAX_CHARS,
    headers: dict[str, str] | None = None,
    policy: AddressPolicy | None = None,
    trust_base_url: bool = False,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    resolver: Resolver | None = None,
    inner_transport: httpx.AsyncBaseTransport | None = None,
) -> list[OpenAPITool]:
    """One tool per operation (``operations`` limits them by name). ``base_url`` defaults to the spec's first
    server. All tools share one pooled httpx client; close it with any tool's ``aclose`` (or ``Agent.aclose``).

    ``policy`` is the address policy of every call (default: public addresses only). An API on loopback or a
    private network must be allowed explicitly: ``policy=AddressPolicy(allow_networks=("127.0.0.1/32",))`` or
    ``trust_base_url=True`` (trusts exactly the base URL's host). ``auth`` and ``headers`` are secrets: they are
    sent to the base URL's origin only, never along a redirect elsewhere. ``resolver`` and ``inner_transport`` are
    seams for tests (a table instead of DNS; a recorder instead of the network).
    """
    doc, origin = load_spec(spec)
    if base_url is None:
        servers = doc.get("servers") or []
        base_url = servers[0].get("url") if servers and isinstance(servers[0], dict) else None
        if base_url and origin:
            base_url = str(httpx.URL(origin).join(base_url))
    if not base_url or not str(base_url).lower().startswith(("http://", "https://")):
        raise ToolDefinitionError("no usable base_url: pass base_url=... (the spec's servers give none absolute)")
    base = httpx.URL(str(base_url)).copy_with(query=None, fragment=None)
    if base.userinfo:
        raise ToolDefinitionError("the base_url carries credentials (user:password@): give them as "
                                  "auth=OpenAPIAuth(kind='basic', ...) so they reach the API's origin only")
    effective = _effective_policy(policy, base, trust_base_url)
    _check_literal_base(effective, base)

    def make_client() -> httpx.AsyncClient:
        guarded = GuardedTransport(effective, resolver=resolver, inner=inner_transport)
        return httpx.AsyncClient(transport=CredentialTransport(guarded, origin_of(base), auth, headers),
                                 timeout=timeout, follow_redirects=follow_redirects, max_redirects=max_redirects,
                                 trust_env=False)  # an environment proxy would connect past the address check

    http = _SharedClient(make_client)
    version = str(doc.get("openapi", "3.0"))
    tools: list[OpenAPITool] = []
    seen: set[str] = set()
    for path, item in (doc.get("paths") or {}).items():
        item = resolve_refs(item, doc)
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            definition = operation(doc, method, path, op, item.get("parameters", []))
            if operations is not None and definition.name not in operations:
                continue
            if definition.name in seen:
                raise ToolDefinitionError(f"two OpenAPI operations map to the tool name {definition.name!r}; "
                                          "set operationId")
            seen.add(definition.name)
            tools.append(OpenAPITool(op=definition, base_url=base, client=http,
                                     checker=SchemaChecker(definition.input_schema, version), timeout=timeout,
                                     max_output_chars=max_output_chars))
    if not tools:
        raise ToolDefinitionError("the OpenAPI document has no (selected) operations")
    return tools


__all__ = ["OpenAPITool", "Origin", "response_to_output", "tools_from_openapi"]
