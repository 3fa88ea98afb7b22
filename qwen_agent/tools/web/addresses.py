"""Which IP addresses are globally routable unicast, and which address a URL host really names (odd literal forms).

An allow-list, not a deny-list: an address passes only when it lies in the global unicast space (IPv4 outside every
IANA special-purpose block; IPv6 inside 2000::/3 and outside its special-purpose blocks) or is an IPv4-mapped or
well-known-prefix NAT64 (64:ff9b::/96) address whose embedded IPv4 passes. Everything else (IPv4-compatible,
SIIT, local-use NAT64, 6to4, Teredo, site-local, ULA, documentation, benchmarking, multicast ...) is refused with a
name for the range. The tables are explicit because ``ipaddress.is_global`` differs between Python patch releases
(3.11.7 calls 224.0.0.1, ff02::1 and ::127.0.0.1 global); ``is_global`` is still required as a second opinion.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match names the range. Sources: IANA IPv4/IPv6 Special-Purpose Address Registries, multicast and reserved.
_V4_SPECIAL: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified ('this network')"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT (shared)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.169.254/32"), "link-local (cloud metadata)"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.31.196.0/24"), "AS112 DNS anycast"),
    (_V4("192.52.193.0/24"), "AMT anycast"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("192.175.48.0/24"), "AS112 DNS anycast"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)
_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_GLOBAL_UNICAST = _V6("2000::/3")
_V6_SPECIAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("::ffff:0:0:0/96"), "SIIT IPv4-translated"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("100:0:0:1::/64"), "dummy prefix"),
    (_V6("2001::/32"), "Teredo"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2001::/23"), "IETF protocol assignment"),
    (_V6("2002::/16"), "6to4"),
    (_V6("2620:4f:8000::/48"), "AS112 DNS anycast"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "SRv6 segment identifier"),
    (_V6("fd00:ec2::254/128"), "unique local (cloud metadata)"),
    (_V6("fc00::/7"), "unique local (private)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (mapped, compatible, SIIT, NAT64, 6to4, Teredo), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client address (de-obfuscated); the server part is 2001:0:SSSS:SSSS::
    for net in (_NAT64, _V6("64:ff9b:1::/48"), _V6("::ffff:0:0:0/96")):
        if ip in net:
            return low32
    if ip in _V6("::/96") and int(ip) > 1:
        return low32
    return None


def non_global_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a globally routable unicast address (a short phrase), or None when it is one."""
    if isinstance(ip, ipaddress.IPv4Address):
        for net, label in _V4_SPECIAL:
            if ip in net:
                return label
        return None if ip.is_global else "not globally routable"
    if ip in _MAPPED or ip in _NAT64:
        inner = embedded_ipv4(ip)
        assert inner is not None
        reason = non_global_reason(inner)
        kind = "IPv4-mapped" if ip in _MAPPED else "NAT64"
        return f"{reason} (embedded in {kind} {ip})" if reason else None
    special = next((label for net, label in _V6_SPECIAL if ip in net), None)
    if special is None and ip not in _GLOBAL_UNICAST:
        special = "not globally routable (outside 2000::/3)"
    if special is None and not ip.is_global:
        special = "not globally routable"
    if special is None:
        return None
    inner = embedded_ipv4(ip)
    return f"{special}, embedding {inner}" if inner is not None else special


# ---- what a URL host names ------------------------------------------------------------------------------------------

_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]*)$")
_INET_ATON_CHARS = re.compile(r"^[0-9a-fA-FxX.]+$")
_ODD_HOST_CHARS = re.compile(r"[%\\\s\x00-\x1f\x7f]")


class HostFormError(ValueError):
    """The host looks numeric but is no valid address (``999.1.1.1``, ``1.2.3.4.5``) or carries an IPv6 zone id."""


def host_literal(host: str) -> IPAddress | None:
    """The address a URL host names without DNS, or None for a real name.

    Covers what resolvers accept beyond dotted quads: ``2130706433``, ``0x7f.1``, ``127.1``, ``0177.0.0.1``, a
    trailing dot, ``[::1]``. A host whose last label is numeric but which is no valid IPv4 raises HostFormError (the
    WHATWG URL rule), so it can never fall through to DNS. IPv6 zone ids (``fe80::1%eth0``) raise too: the zone
    would choose an interface the policy never saw.
    """
    text = host.strip()
    if text.startswith("[") or ":" in text:
        inner = text.strip("[]")
        if "%" in inner:
            raise HostFormError(f"{host!r} carries an IPv6 zone id, which web tools do not accept")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise HostFormError(f"{host!r} is not a valid IPv6 address") from exc
    if _ODD_HOST_CHARS.search(text):
        raise HostFormError(f"{host!r} contains a percent sign, backslash, space or control character")
    name = text[:-1] if text.endswith(".") else text
    if not name:
        return None
    last = name.rsplit(".", 1)[-1]
    whatwg = _whatwg_ipv4(name)
    aton = _inet_aton(name)
    if whatwg is not None and aton is not None and whatwg != aton:
        raise HostFormError(f"{host!r} is a numeric host that resolvers read in different ways")
    found = whatwg if whatwg is not None else aton
    if found is None and _NUMERIC_LABEL.match(last):
        raise HostFormError(f"{host!r} ends in a number but is not a valid IPv4 address")
    return found


def _whatwg_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser (decimal, 0-octal, 0x-hex parts; 1 to 4 of them)."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        if not part:
            return None
        if part[:2].lower() == "0x":
            digits, base = part[2:] or "0", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not (digits.isascii() and digits.isalnum()):  # int() would also take "+1", " 1" and "1_0"
            return None
        try:
            numbers.append(int(digits, base))
        except ValueError:
            return None
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _inet_aton(name: str) -> ipaddress.IPv4Address | None:
    """What the C library's inet_aton (used by getaddrinfo for numeric hosts) makes of ``name``."""
    if not _INET_ATON_CHARS.match(name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


__all__ = ["HostFormError", "IPAddress", "embedded_ipv4", "host_literal", "non_global_reason"]
