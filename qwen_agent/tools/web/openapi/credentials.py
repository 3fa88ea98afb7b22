"""Credentials of OpenAPI tools: where a secret comes from, and a transport that sends it to one origin only.

Secrets (the ``OpenAPIAuth`` credential and the developer's extra headers) are added *below* the httpx client, per
request, and only when the request goes to the configured base URL's origin (scheme, host and port). httpx builds
redirects from the request it made, which never held a secret, so a redirect to another host, port or scheme (or a
path-parameter trick that would change the host) carries none, whatever header or query name the secret uses.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from typing import Literal, NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from qwen_agent.tools.errors import ToolDefinitionError
from qwen_agent.tools.web.openapi.errors import OpenAPIError

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


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

    def apply(self, headers: httpx.Headers | dict[str, str], params: dict[str, str]) -> None:
        """Put the credential into ``headers`` or ``params`` (overriding any same-named value)."""
        secret = self.secret()
        if self.kind == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif self.kind == "api_key":
            (headers if self.location == "header" else params)[self.name] = secret
        else:
            token = base64.b64encode(f"{self.username or ''}:{secret}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def origin_of(url: httpx.URL) -> Origin:
    """(scheme, host, port) with the default port filled in and the host compared case- and trailing-dot-free."""
    scheme = url.scheme.lower()
    return Origin(scheme, url.host.lower().rstrip("."), url.port or _DEFAULT_PORTS.get(scheme, 0))


class CredentialTransport(httpx.AsyncBaseTransport):
    """Adds ``auth`` and ``headers`` to requests for ``origin`` only, then hands every request to ``inner``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, origin: Origin, auth: OpenAPIAuth | None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.inner = inner
        self.origin = origin
        self.auth = auth
        self.headers = dict(headers or {})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.headers and self.auth is None:
            return await self.inner.handle_async_request(request)
        if origin_of(request.url) != self.origin:
            logger.info("request to %s leaves the API's origin %s://%s:%d: sent without credentials",
                        request.url.copy_with(query=None), *self.origin)
            return await self.inner.handle_async_request(request)
        headers = request.headers.copy()
        params: dict[str, str] = {}
        for key, value in self.headers.items():
            headers[key] = value
        if self.auth is not None:
            self.auth.apply(headers, params)
        url = request.url.copy_merge_params(params) if params else request.url
        signed = httpx.Request(request.method, url, headers=headers, stream=request.stream,
                               extensions=request.extensions)
        response = await self.inner.handle_async_request(signed)
        response.request = request  # what callers see (and log) holds no secret
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["CredentialTransport", "OpenAPIAuth", "Origin", "origin_of"]
