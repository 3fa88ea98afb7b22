"""GuardedTransport: an httpx transport that resolves, checks and pins every connection (each redirect hop too).

httpx follows redirects by sending each hop through the client's transport, so doing the check here covers every
hop. After the policy accepts the resolved addresses, the request is rewritten to the checked IP (Host header and
TLS SNI keep the original name, so virtual hosts and certificate checks still work): a second DNS answer cannot
swap in another address between check and connect (DNS rebinding). Numeric hosts in odd forms (``0x7f.1``,
``2130706433``) are read here as the C resolver would read them and also rewritten to the canonical address, so
what is connected to is always exactly what was checked.
"""

from __future__ import annotations

import logging

import httpx

from qwen_agent.tools.web.ssrf import AddressPolicy, BlockedURLError, Resolver, SystemResolver, parse_ip_literal

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks every request against an ``AddressPolicy`` after DNS, then hands it, pinned to the checked IP, to
    ``inner`` (a real ``httpx.AsyncHTTPTransport`` by default; tests pass a recorder that never connects)."""

    def __init__(
        self,
        policy: AddressPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy or AddressPolicy()
        self.resolver: Resolver = resolver or SystemResolver()
        self.inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        shown = str(url)
        self.policy.check_scheme(shown, url.scheme)
        host = url.host
        if not host:
            raise BlockedURLError(f"Refused {shown!r}: the URL has no host.")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        literal = parse_ip_literal(host, shown)
        if literal is not None:
            addresses = self.policy.check_addresses(shown, host, [literal])
        else:
            try:
                resolved = await self.resolver.resolve(host, port)
            except OSError as exc:
                raise httpx.ConnectError(f"could not resolve {host}: {exc}", request=request) from exc
            addresses = self.policy.check_addresses(shown, host, resolved)
        pinned_ip = str(addresses[0])
        pinned = request
        if host != pinned_ip:
            headers = request.headers.copy()
            headers["Host"] = url.netloc.decode("ascii")
            extensions = dict(request.extensions)
            if url.scheme == "https" and literal is None:
                extensions["sni_hostname"] = host
            pinned = httpx.Request(request.method, url.copy_with(host=pinned_ip), headers=headers,
                                   stream=request.stream, extensions=extensions)
        logger.debug("web request %s pinned to %s", shown, pinned_ip)
        response = await self.inner.handle_async_request(pinned)
        response.request = request  # redirects and messages keep the name the caller used
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["GuardedTransport"]
