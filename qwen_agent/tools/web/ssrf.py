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
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qwen_agent.tools.errors import ToolError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class BlockedURLError(ToolError):
    """The URL (or a redirect it led to) points somewhere the address policy refuses: a private or local address,
    a cloud metadata endpoint, or a scheme other than http(s)."""


class AddressPolicy(BaseModel):
    """Where web tools may connect. By default: public (globally routable) addresses over http and https only.

    ``allow_networks`` lists trusted CIDRs (``"127.0.0.1/32"`` for a local test server, ``"10.1.2.0/24"`` for an
    internal API) and ``allow_hosts`` trusted host names (exact, case-insensitive) whose resolved addresses are
    accepted whatever they are. Everything else that is loopback, private, link-local (169.254.169.254, the cloud
    metadata address), carrier-grade NAT, multicast, reserved or unspecified is refused, also when reached through
    an IPv4-mapped, 6to4 or NAT64 IPv6 form.
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
        return [ipaddress.ip_network(n, strict=False) for n in self.allow_networks]

    def host_is_trusted(self, host: str) -> bool:
        return host.lower().rstrip(".") in {h.lower().rstrip(".") for h in self.allow_hosts}

    def check_scheme(self, url: str, scheme: str) -> None:
        if scheme.lower() not in ALLOWED_SCHEMES:
            raise BlockedURLError(f"Refused {url!r}: only http and https URLs can be fetched (got {scheme or 'no'}"
                                  " scheme).")

    def address_problem(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused (a short phrase), or None when it may be contacted."""
        if any(ip in net for net in self.networks() if net.version == ip.version):
            return None
        for inner in _embedded_ipv4(ip):
            if any(inner in net for net in self.networks() if net.version == 4):
                return None
        for candidate in (ip, *_embedded_ipv4(ip)):
            reason = _non_public_reason(candidate)
            if reason:
                return reason if candidate is ip else f"{reason} (embedded in {ip})"
        return None

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


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses hidden inside an IPv6 one (mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _non_public_reason(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local (cloud metadata)" if str(ip) in ("169.254.169.254", "fd00:ec2::254") else "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public (reserved or shared)"
    return None


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


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


LOOPBACK_ONLY = AddressPolicy(allow_networks=("127.0.0.0/8", "::1/128"))
"""A policy for tests and local examples: loopback servers are trusted (everything else non-public still refused)."""

__all__ = [
    "ALLOWED_SCHEMES",
    "LOOPBACK_ONLY",
    "AddressPolicy",
    "BlockedURLError",
    "IPAddress",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "parse_ip_literal",
]
