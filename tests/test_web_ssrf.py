"""SSRF guard decisions, tested through the resolver/transport seam: nothing here connects to any address."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Toolbox
from qwen_agent.tools.web.fetch import WebFetch, WebFetchConfig
from qwen_agent.tools.web.ssrf import AddressPolicy, BlockedURLError, StaticResolver
from qwen_agent.tools.web.transport import GuardedTransport


class Recorder(httpx.AsyncBaseTransport):
    """Inner transport that records the pinned request and answers itself: it never opens a socket."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"content-type": "text/plain"}, content=b"recorded, not sent")


BLOCKED = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/x",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://10.255.255.254/",
    "http://172.16.0.1/",
    "http://172.31.255.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:a00:1::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://0.0.0.0/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("url", BLOCKED)
async def test_private_and_local_addresses_are_refused_by_default(url: str) -> None:
    inner, resolver = Recorder(), StaticResolver({})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        with pytest.raises(BlockedURLError, match="Refused"):
            await client.get(url)
    assert inner.requests == []  # refused before any connection attempt
    assert resolver.lookups == []  # IP literals are never looked up


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "network"),
    [
        ("http://127.0.0.1:9/", "127.0.0.1/32"),
        ("http://[::1]:9/", "::1/128"),
        ("http://10.0.0.1/", "10.0.0.0/8"),
        ("http://172.16.0.1/", "172.16.0.0/12"),
        ("http://192.168.1.1/", "192.168.0.0/16"),
        ("http://169.254.169.254/", "169.254.169.254/32"),
        ("http://[::ffff:10.0.0.1]/", "10.0.0.0/8"),
    ],
)
async def test_allow_list_lets_a_trusted_network_through(url: str, network: str) -> None:
    inner = Recorder()
    policy = AddressPolicy(allow_networks=(network,))
    async with httpx.AsyncClient(transport=GuardedTransport(policy, resolver=StaticResolver({}), inner=inner)) as c:
        response = await c.get(url)
    assert response.text == "recorded, not sent"
    assert len(inner.requests) == 1


@pytest.mark.asyncio
async def test_public_address_allowed_and_name_pinned_to_the_checked_ip() -> None:
    inner = Recorder()
    resolver = StaticResolver({"docs.example.org": ["93.184.215.14"]})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        await client.get("https://docs.example.org/page?q=1")
    sent = inner.requests[0]
    assert sent.url.host == "93.184.215.14"  # the connection goes to the address that was checked
    assert sent.headers["Host"] == "docs.example.org"
    assert sent.extensions["sni_hostname"] == "docs.example.org"  # TLS still verifies the name
    assert resolver.lookups == ["docs.example.org"]


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [["10.1.2.3"], ["93.184.215.14", "192.168.0.7"], ["::1"], ["169.254.169.254"]])
async def test_dns_name_resolving_to_a_private_address_is_refused(answer: list[str]) -> None:
    inner = Recorder()
    resolver = StaticResolver({"innocent.example.com": answer})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        with pytest.raises(BlockedURLError, match="innocent.example.com resolves to"):
            await client.get("http://innocent.example.com/")
    assert inner.requests == []


@pytest.mark.asyncio
async def test_trusted_host_name_is_allowed_whatever_it_resolves_to() -> None:
    inner = Recorder()
    resolver = StaticResolver({"wiki.internal": ["10.9.8.7"]})
    policy = AddressPolicy(allow_hosts=("wiki.internal",))
    async with httpx.AsyncClient(transport=GuardedTransport(policy, resolver=resolver, inner=inner)) as client:
        await client.get("http://wiki.internal/")
    assert inner.requests[0].url.host == "10.9.8.7"


@pytest.mark.asyncio
async def test_redirect_from_allowed_host_to_private_one_is_refused() -> None:
    class Redirecting(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(302, headers={"location": "http://192.168.0.10/admin"})

    inner = Redirecting()
    resolver = StaticResolver({"public.example.com": ["93.184.215.14"]})
    tool = WebFetch(resolver=resolver, inner_transport=inner)
    out = await Toolbox([tool]).execute(ToolCall.make("web_fetch", {"url": "http://public.example.com/"}))
    assert out.is_error and "192.168.0.10" in out.text and "Refused" in out.text
    assert [str(r.url.host) for r in inner.requests] == ["93.184.215.14"]  # the private hop never reached a socket
    await tool.aclose()


@pytest.mark.asyncio
async def test_redirect_to_a_name_resolving_privately_is_refused() -> None:
    class Redirecting(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(301, headers={"location": "http://rebind.example.net/"})

    inner = Redirecting()
    resolver = StaticResolver({"public.example.com": ["93.184.215.14"], "rebind.example.net": ["10.0.0.2"]})
    tool = WebFetch(resolver=resolver, inner_transport=inner)
    with pytest.raises(BlockedURLError, match="rebind.example.net resolves to 10.0.0.2"):
        await tool.fetch("http://public.example.com/")
    assert len(inner.requests) == 1
    await tool.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "data:text/plain,hi", "//x/y"]
)
async def test_non_http_schemes_are_refused(url: str) -> None:
    inner = Recorder()
    tool = WebFetch(WebFetchConfig(policy=AddressPolicy(allow_networks=("0.0.0.0/0", "::/0"))),
                    resolver=StaticResolver({}), inner_transport=inner)
    with pytest.raises(BlockedURLError, match="only http and https"):
        await tool.fetch(url)
    assert inner.requests == []
    await tool.aclose()


def test_policy_decisions_directly() -> None:
    policy = AddressPolicy()
    ip = ipaddress.ip_address
    assert policy.address_problem(ip("8.8.8.8")) is None
    assert policy.address_problem(ip("2606:4700::1111")) is None
    assert policy.address_problem(ip("127.0.0.1")) == "loopback"
    assert "metadata" in (policy.address_problem(ip("169.254.169.254")) or "")
    assert policy.address_problem(ip("::ffff:192.168.1.1")) is not None
    assert "embedded" in (policy.address_problem(ip("64:ff9b::c0a8:101")) or "")
    with pytest.raises(ValueError):
        AddressPolicy(allow_networks=("not-a-network",))
