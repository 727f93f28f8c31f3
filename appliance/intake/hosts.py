"""Where a pre-signed PDF URL may point: ``[api] presigned_hosts``.  Pure, no I/O.

A ``GET /letters/{id}/data`` answer is a 303 whose Location the API chose; a hostile or
broken answer could send the appliance to any address it can reach (a metadata service,
a printer's admin page, another local service).  So a URL is fetched only when

* its host matches an entry: ``host`` (that host), ``*.domain`` (any name under domain),
  either with ``:port`` (that port only; without, the scheme's default port only);
* its scheme is https, or plain http for an entry written ``http://...`` (the local
  sandbox needs it);
* every address the name resolves to is a public one: loopback, private, link-local
  (169.254.169.254 and friends), multicast, reserved and unspecified addresses are
  refused, unless the entry itself is that IP address (``http://127.0.0.1:9000``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from appliance.core.errors import HostRefused

#: Where the NHS Notify environments' pre-signed links point (S3).
DEFAULT_PRESIGNED_HOSTS = ("*.amazonaws.com",)
DEFAULT_PORTS = {"https": 443, "http": 80}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class HostRule:
    scheme: str  # "https", or "http" when the entry was written http://
    host: str  # lower case; for a wildcard the domain after "*."
    wildcard: bool
    port: int | None  # None: the scheme's default port only
    ip: Address | None  # the entry is an IP address: that address is allowed whatever it is

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme != self.scheme and not (scheme == "https" and self.scheme == "http"):
            return False  # an http:// entry allows https too, never the other way round
        if port != (self.port if self.port is not None else DEFAULT_PORTS[scheme]):
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # [v6] or [v6]:port
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address must be written [address] or [address]:port")
        port = rest[1:] if rest else None
    else:
        host, sep, port = text.rpartition(":") if text.count(":") == 1 else (text, "", None)
        if not sep:
            host, port = text, None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"port {port!r} is not a number from 1 to 65535")
        return host, int(port)
    return host, None


def parse_rule(entry: str) -> HostRule:
    """One ``presigned_hosts`` entry; ValueError says what is wrong with it."""
    text = entry.strip().lower()
    scheme = "https"
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix):]
    text = text.rstrip("/")
    if not text or "/" in text or "?" in text or "@" in text:
        raise ValueError("write host, *.domain or host:port (optionally http:// or https:// first)")
    host, port = _split_host_port(text)
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if not host or "*" in host:
        raise ValueError("a wildcard may only be a leading '*.' before a domain")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and wildcard:
        raise ValueError("'*.' cannot go before an IP address")
    return HostRule(scheme, host.rstrip("."), wildcard, port, ip)


class HostPolicy:
    def __init__(self, rules: Iterable[HostRule]):
        self.rules = tuple(rules)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "HostPolicy":
        return cls(parse_rule(e) for e in entries)

    def rule_for(self, scheme: str, host: str, port: int | None) -> HostRule:
        """The entry that allows this URL's scheme, host and port, or HostRefused."""
        scheme, host = scheme.lower(), host.lower().rstrip(".")
        if scheme not in DEFAULT_PORTS:
            raise HostRefused(f"pre-signed URL scheme {scheme!r} is not https")
        port = DEFAULT_PORTS[scheme] if port is None else port
        for rule in self.rules:
            if rule.matches(scheme, host, port):
                return rule
        https_port = DEFAULT_PORTS["https"] if port == DEFAULT_PORTS["http"] else port
        if scheme == "http" and any(r.matches("https", host, https_port) for r in self.rules):
            raise HostRefused(f"pre-signed URL for {host} is plain http; only https is allowed there")
        shown = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
        raise HostRefused(f"pre-signed URL host {shown} is not in [api] presigned_hosts")

    @staticmethod
    def check_addresses(rule: HostRule, host: str, addresses: Iterable[str]) -> None:
        """Every address ``host`` resolved to must be public, unless the entry is that IP."""
        for text in addresses:
            addr = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
            if rule.ip is not None and _same(addr, rule.ip):
                continue
            if not is_public(addr):
                raise HostRefused(f"pre-signed URL host {host} resolves to {addr}, a non-public "
                                  "address; refused (list the address itself in presigned_hosts "
                                  "if this is really your storage)")


def _same(a: Address, b: Address) -> bool:
    return _unmapped(a) == _unmapped(b)


def _unmapped(addr: Address) -> Address:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_public(addr: Address) -> bool:
    """A globally routable unicast address (no loopback, private, link-local, CGNAT, ...)."""
    addr = _unmapped(addr)
    return addr.is_global and not addr.is_multicast
