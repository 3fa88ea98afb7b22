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
    # issue 10 item 9: IPv4-compatible, SIIT, local-use NAT64, site-local, IETF protocol assignments, 6to4 relay
    "http://[::127.0.0.1]/",
    "http://[::ffff:0:127.0.0.1]/",
    "http://[64:ff9b:1::7f00:1]/",
    "http://[fec0::1]/",
    "http://192.0.0.8/",
    "http://192.88.99.1/",
    # other special-purpose ranges: everything outside the global unicast space needs the allow-list
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2001::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[2001:db8::1]/",
    "http://[3fff::1]/",
    "http://[100::1]/",
    "http://[ff02::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::]/",
    "http://192.0.0.9/",
    "http://192.0.2.1/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://198.18.0.1/",
    "http://192.31.196.1/",
    "http://192.52.193.1/",
    "http://192.175.48.1/",
    "http://224.0.0.251/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    # odd literal forms: read as the C resolver reads them, or refused when they are no valid address
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0X7F.0.0.1:8080/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://127.0.0.1./",
    "http://0/",
    "http://0x/",
    "http://4294967295/",
    "http://[::FFFF:127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[fe80::1%25eth0]/",
    "http://[::1%25lo]/",
    "http://[::ffff:8.8.8.8%25eth0]/",
    "http://1.2.3.4.5/",
    "http://4294967296/",
    "http://cafe.1/",
    "http://example.0x10/",
    "http://127.0.0.1%2e/",
    "http://%31%32%37.0.0.1/",
]

GLOBAL = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "11.0.0.1", "100.128.0.1", "172.32.0.1", "192.0.1.1",
          "192.169.0.1", "198.20.0.1", "223.255.255.254", "2606:4700::1111", "2001:4860:4860::8888", "2a00:1450::1",
          "2001:200::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "64:ff9b::1.1.1.1"]


@pytest.mark.parametrize("url", BLOCKED)
async def test_private_and_local_addresses_are_refused_by_default(url: str) -> None:
    inner, resolver = Recorder(), StaticResolver({})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        with pytest.raises(BlockedURLError, match="Refused"):
            await client.get(url)
    assert inner.requests == []  # refused before any connection attempt
    assert resolver.lookups == []  # IP literals are never looked up


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


@pytest.mark.parametrize("answer", [
    ["10.1.2.3"], ["93.184.215.14", "192.168.0.7"], ["::1"], ["169.254.169.254"], ["::127.0.0.1"],
    ["::ffff:0:127.0.0.1"], ["64:ff9b:1::7f00:1"], ["fec0::1"], ["192.0.0.8"], ["192.88.99.1"], ["2002:a00:1::"],
    ["2606:4700::1111", "64:ff9b::a00:1"],
])
async def test_dns_name_resolving_to_a_private_address_is_refused(answer: list[str]) -> None:
    inner = Recorder()
    resolver = StaticResolver({"innocent.example.com": answer})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        with pytest.raises(BlockedURLError, match=r"innocent.example.com resolves to"):
            await client.get("http://innocent.example.com/")
    assert inner.requests == []


async def test_trusted_host_name_is_allowed_whatever_it_resolves_to() -> None:
    inner = Recorder()
    resolver = StaticResolver({"wiki.internal": ["10.9.8.7"]})
    policy = AddressPolicy(allow_hosts=("wiki.internal",))
    async with httpx.AsyncClient(transport=GuardedTransport(policy, resolver=resolver, inner=inner)) as client:
        await client.get("http://wiki.internal/")
    assert inner.requests[0].url.host == "10.9.8.7"


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


async def test_redirect_to_a_name_resolving_privately_is_refused() -> None:
    class Redirecting(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(301, headers={"location": "http://rebind.example.net/"})

    inner = Redirecting()
    resolver = StaticResolver({"public.example.com": ["93.184.215.14"], "rebind.example.net": ["10.0.0.2"]})
    tool = WebFetch(resolver=resolver, inner_transport=inner)
    with pytest.raises(BlockedURLError, match=r"rebind.example.net resolves to 10.0.0.2"):
        await tool.fetch("http://public.example.com/")
    assert len(inner.requests) == 1
    await tool.aclose()


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


@pytest.mark.parametrize("address", GLOBAL)
def test_globally_routable_addresses_pass_the_policy(address: str) -> None:
    assert AddressPolicy().address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", GLOBAL)
async def test_public_answers_are_pinned_to_the_checked_address(address: str) -> None:
    inner = Recorder()  # records the pinned request; nothing is sent to these public addresses
    resolver = StaticResolver({"public.example.com": [address]})
    async with httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, inner=inner)) as client:
        await client.get("http://public.example.com/")
    assert ipaddress.ip_address(inner.requests[0].url.host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(("address", "reason"), [
    ("::127.0.0.1", "IPv4-compatible (deprecated), embedding 127.0.0.1"),
    ("::ffff:0:127.0.0.1", "SIIT IPv4-translated, embedding 127.0.0.1"),
    ("64:ff9b:1::7f00:1", "local-use NAT64, embedding 127.0.0.1"),
    ("fec0::1", "site-local"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("2002:808:808::1", "6to4, embedding 8.8.8.8"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo, embedding 192.0.2.45"),
    ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata) (embedded in NAT64"),
    ("::ffff:100.64.0.1", "carrier-grade NAT (shared) (embedded in IPv4-mapped"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("198.18.0.1", "benchmarking"),
    ("2001:db8::1", "documentation"),
])
def test_refusals_name_the_range_and_the_embedded_address(address: str, reason: str) -> None:
    assert reason in (AddressPolicy().address_problem(ipaddress.ip_address(address)) or "")


def test_allow_listed_network_admits_only_embeddings_that_connect_to_it() -> None:
    policy = AddressPolicy(allow_networks=("10.0.0.0/8", "127.0.0.0/8"))
    ip = ipaddress.ip_address
    assert policy.address_problem(ip("::ffff:10.0.0.1")) is None  # IPv4-mapped: the socket goes to 10.0.0.1
    assert policy.address_problem(ip("64:ff9b::a00:1")) is None  # well-known NAT64: translated to 10.0.0.1
    for other in ("2002:a00:1::", "::10.0.0.1", "::ffff:0:10.0.0.1", "64:ff9b:1::a00:1", "::127.0.0.1"):
        assert policy.address_problem(ip(other)) is not None, other


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.1", "0X7F.0.0.1", "127.1", "127.0.1",
                                  "0x7f.0x0.0x0.0x1", "0", "4294967295", "017700000001", "0177.1", "10.0x10.1"])
def test_numeric_hosts_are_read_as_the_c_resolver_reads_them(host: str) -> None:
    import socket

    from qwen_agent.tools.web.addresses import host_literal

    # AI_NUMERICHOST: the C library parses the literal itself and never sends a DNS query.
    _family, *_rest, sockaddr = socket.getaddrinfo(host, None, socket.AF_INET, flags=socket.AI_NUMERICHOST)[0]
    assert host_literal(host) == ipaddress.ip_address(sockaddr[0])


@pytest.mark.parametrize(("url", "host_header"), [
    ("http://0x7f.1:8080/x", "0x7f.1:8080"), ("http://2130706433/x", "2130706433"), ("http://127.1/x", "127.1"),
    ("http://127.0.0.1./x", "127.0.0.1."), ("http://[::FFFF:127.0.0.1]/x", "[::FFFF:127.0.0.1]"),
])
async def test_odd_literals_are_pinned_to_the_address_that_was_checked(url: str, host_header: str) -> None:
    inner, resolver = Recorder(), StaticResolver({})
    policy = AddressPolicy(allow_networks=("127.0.0.1/32",))
    async with httpx.AsyncClient(transport=GuardedTransport(policy, resolver=resolver, inner=inner)) as client:
        await client.get(url)
    sent = inner.requests[0]
    assert ipaddress.ip_address(sent.url.host) in (ipaddress.ip_address("127.0.0.1"),
                                                    ipaddress.ip_address("::ffff:127.0.0.1"))
    assert sent.headers["Host"] == host_header and resolver.lookups == []
