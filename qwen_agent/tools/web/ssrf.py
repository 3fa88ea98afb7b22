"""SSRF guard: which addresses a web tool may connect to, decided after DNS resolution, plus the resolver seam.

A model-chosen URL must not reach the machine's own services, the private network or a cloud metadata endpoint.
Checking the *name* is not enough (``internal.example`` may resolve to 10.0.0.5, or change between check and
connect), so the policy judges resolved IP addresses and the transport then connects to exactly the address it
judged. The resolver is a seam: tests swap in a table so no lookup and no packet ever leaves for a real address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qwen_agent.tools.errors import ToolError
from qwen_agent.tools.web.addresses import HostFormError, IPAddress, embedded_ipv4, host_literal, non_global_reason

logger = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class BlockedURLError(ToolError):
    """The URL (or a redirect it led to) points somewhere the address policy refuses: a private or local address,
    a cloud metadata endpoint, or a scheme other than http(s)."""


class AddressPolicy(BaseModel):
    """Where web tools may connect. By default: globally routable unicast addresses over http and https only.

    ``allow_networks`` lists trusted CIDRs (``"127.0.0.1/32"`` for a local test server, ``"10.1.2.0/24"`` for an
    internal API) and ``allow_hosts`` trusted host names (exact, case-insensitive) whose resolved addresses are
    accepted whatever they are. Everything outside the global unicast space is refused (see ``addresses``):
    loopback, private, link-local (169.254.169.254, the cloud metadata address), carrier-grade NAT, multicast,
    reserved, documentation, benchmarking, site-local, and any IPv6 form that embeds such an IPv4 address.
    """

    model_config = ConfigDict(frozen=True)

    allow_networks: tuple[str, ...] = Field(default=(), description="trusted CIDRs or single addresses")
    allow_hosts: tuple[str, ...] = Field(default=(), description="trusted host names (exact match)")

    @field_validator("allow_networks")
    @classmethod
    def _valid_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # raises ValueError with a clear message
        return value

    def networks(self) -> list[IPNetwork]:
        return list(_parsed_networks(self.allow_networks))

    def host_is_trusted(self, host: str) -> bool:
        return host.lower().rstrip(".") in _normalised_hosts(self.allow_hosts)

    def check_scheme(self, url: str, scheme: str) -> None:
        if scheme.lower() not in ALLOWED_SCHEMES:
            raise BlockedURLError(f"Refused {url!r}: only http and https URLs can be fetched (got {scheme or 'no'}"
                                  " scheme).")

    def address_problem(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused (a short phrase), or None when it may be contacted.

        An allow-listed network also admits its IPv4-mapped and NAT64 (64:ff9b::/96) forms, the two embeddings
        that really connect to the IPv4 address; 6to4, Teredo or SIIT forms of it are not admitted.
        """
        networks = _parsed_networks(self.allow_networks)
        if any(ip in net for net in networks if net.version == ip.version):
            return None
        if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped is not None or ip in _NAT64_WELL_KNOWN):
            inner = embedded_ipv4(ip)
            if any(inner in net for net in networks if net.version == 4):
                return None
        return non_global_reason(ip)

    def check_addresses(self, url: str, host: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
        """The addresses to connect to, or BlockedURLError when any of them is refused.

        One bad address refuses the whole name: an attacker who controls DNS could otherwise mix a public and a
        private answer and hope the connection picks the private one.
        """
        addrs = list(addresses)
        if not addrs:
            raise BlockedURLError(f"Refused {url!r}: the host {host!r} did not resolve to any address.")
        if self.host_is_trusted(host):
            return addrs
        if host.lower().rstrip(".") in _METADATA_HOSTS:
            raise BlockedURLError(f"Refused {url!r}: {host} is a cloud metadata endpoint.")
        for ip in addrs:
            reason = self.address_problem(ip)
            if reason:
                raise BlockedURLError(
                    f"Refused {url!r}: {host} resolves to {ip}, a {reason} address. Web tools only reach public "
                    "addresses; add the network to allow_networks (or the host to allow_hosts) if it is trusted."
                )
        return addrs


@lru_cache(maxsize=64)
def _parsed_networks(allow_networks: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parsed once per distinct allow-list: the policy is consulted on every request."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)


@lru_cache(maxsize=64)
def _normalised_hosts(allow_hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(h.lower().rstrip(".") for h in allow_hosts)


class Resolver(Protocol):
    """Turns a host name into IP addresses. IP literals never reach a resolver."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a thread, via the event loop)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        seen: dict[str, IPAddress] = {}
        for _family, _type, _proto, _canon, sockaddr in infos:
            addr = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
            seen.setdefault(addr, ipaddress.ip_address(addr))
        return list(seen.values())


class StaticResolver:
    """A fixed name -> addresses table that records every lookup; for tests and for pinning names offline.

    Unknown names fail like a DNS miss (socket.gaierror), so nothing falls through to the real resolver.
    """

    def __init__(self, table: Mapping[str, Iterable[str]]) -> None:
        self.table = {k.lower(): [ipaddress.ip_address(a) for a in v] for k, v in table.items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        try:
            return list(self.table[host.lower()])
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the static resolver table") from None


def parse_ip_literal(host: str, url: str = "") -> IPAddress | None:
    """The address a URL host names without DNS (also odd forms: ``2130706433``, ``0x7f.1``, ``127.1``, a trailing
    dot), else None for a name to resolve. Numeric hosts that are no valid address, and IPv6 zone ids, raise
    BlockedURLError: they must never reach a resolver that might read them differently."""
    try:
        return host_literal(host)
    except HostFormError as exc:
        raise BlockedURLError(f"Refused {url or host!r}: {exc}.") from exc


LOOPBACK_ONLY = AddressPolicy(allow_networks=("127.0.0.0/8", "::1/128"))
"""A policy for tests and local examples: loopback servers are trusted (everything else non-public still refused)."""

__all__ = [
    "ALLOWED_SCHEMES",
    "LOOPBACK_ONLY",
    "AddressPolicy",
    "BlockedURLError",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "parse_ip_literal",
]
