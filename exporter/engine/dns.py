"""Name resolution as CloudFront does it: every address of the origin, in the family it uses.

CloudFront resolves the origin domain itself and connects to the addresses it gets back, so a
name with several A records is several origins in practice: one of them with a stale
certificate gives intermittent 502s. The probe therefore needs *every* address, not the first
one `getaddrinfo` returns, and it needs the answer of the DNS CloudFront sees (public DNS, not
a split-horizon resolver on the exporter's host) when the operator names DNS servers.

`IpAddressType` mirrors the origin setting of the same name (CustomOriginConfig.IpAddressType:
ipv4, ipv6 or dualstack; ipv4 when unset). Resolution never raises for one family's failure
in dualstack mode: each family's answer or error is kept, and only "no address at all" is a
`ResolveError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ResolveError

if TYPE_CHECKING:
    import dns.asyncresolver
from .net import is_ip_literal, sni_name
from .target import DEFAULT_DNS_TIMEOUT, DnsServer, IpAddressType

SYSTEM_RESOLVER = "system"


RECORD_TYPES = {
    IpAddressType.IPV4: ("A",),
    IpAddressType.IPV6: ("AAAA",),
    IpAddressType.DUALSTACK: ("A", "AAAA"),
}


@dataclass(frozen=True)
class DnsSettings:
    """Which resolver to ask and how long to wait; no servers means the host's resolver."""

    servers: tuple[DnsServer, ...] = ()  # IP literals only: parsed by the configuration
    timeout: float = DEFAULT_DNS_TIMEOUT

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"DNS timeout must be positive, not {self.timeout!r}")

    @property
    def resolver_name(self) -> str:
        """How a report names this resolver: "system" or "127.0.0.1:53, [::1]:53"."""
        if not self.servers:
            return SYSTEM_RESOLVER
        return ", ".join(s.display for s in self.servers)


@dataclass(frozen=True)
class FamilyAnswer:
    """One record type's outcome: its addresses, or why there are none."""

    record_type: str  # "A" or "AAAA"
    addresses: tuple[str, ...] = ()
    canonical_name: str | None = None  # where a CNAME chain ended (DNS servers only)
    error: str | None = None


@dataclass(frozen=True)
class Resolution:
    """Every address CloudFront could connect to for one origin name."""

    host: str
    addresses: tuple[str, ...]  # deduplicated, IPv4 before IPv6, numeric order, capped
    resolver: str  # "system", the servers asked, "literal" or "override"
    duration_seconds: float
    answers: tuple[FamilyAnswer, ...] = ()
    truncated_from: int | None = None  # how many addresses there were, when some were cut

    @property
    def truncated(self) -> bool:
        return self.truncated_from is not None


def order_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """Deduplicated and sorted (IPv4 first, then numerically): the same set, the same order.

    DNS servers rotate record order; a stable order keeps per-address metrics and reports
    from jumping around between scrapes.
    """
    parsed = {ipaddress.ip_address(a) for a in addresses}
    return tuple(str(a) for a in sorted(parsed, key=lambda a: (a.version, int(a))))


async def resolve_addresses(
    host: str,
    settings: DnsSettings,
    ip_address_type: IpAddressType = IpAddressType.IPV4,
    max_addresses: int = 8,
    override: str | None = None,
) -> Resolution:
    """All addresses of `host` in the families of `ip_address_type`, at most `max_addresses`.

    `override` (comma-separated IPs, like curl's --resolve) and IP literals skip DNS. Raises
    ResolveError naming the name, the resolver and the cause when no address is found.
    """
    if max_addresses < 1:
        raise ValueError(f"max_addresses must be at least 1, not {max_addresses}")
    started = time.monotonic()
    if override:
        return _fixed(host, _parse_override(override), "override", max_addresses, started)
    if is_ip_literal(host):
        return _fixed(host, [host.strip("[]")], "literal", max_addresses, started)
    name = sni_name(host)
    if name is None:
        raise ResolveError("cannot resolve an empty name")
    query = _query_servers if settings.servers else _query_system
    answers = await asyncio.gather(
        *(query(name, rdtype, settings) for rdtype in RECORD_TYPES[ip_address_type])
    )
    found = order_addresses(a for answer in answers for a in answer.addresses)
    if not found:
        raise ResolveError(_failure_message(host, settings, answers))
    return Resolution(
        host=host,
        addresses=found[:max_addresses],
        resolver=settings.resolver_name,
        duration_seconds=time.monotonic() - started,
        answers=tuple(answers),
        truncated_from=len(found) if len(found) > max_addresses else None,
    )


def _parse_override(override: str) -> list[str]:
    addresses = [part.strip().strip("[]") for part in override.split(",") if part.strip()]
    bad = [a for a in addresses if not is_ip_literal(a)]
    if bad or not addresses:
        raise ValueError(f"override {override!r}: expected comma-separated IP addresses")
    return addresses


def _fixed(
    host: str, addresses: list[str], source: str, max_addresses: int, started: float
) -> Resolution:
    found = order_addresses(addresses)
    return Resolution(
        host=host,
        addresses=found[:max_addresses],
        resolver=source,
        duration_seconds=time.monotonic() - started,
        truncated_from=len(found) if len(found) > max_addresses else None,
    )


def _failure_message(host: str, settings: DnsSettings, answers: Iterable[FamilyAnswer]) -> str:
    causes = "; ".join(f"{a.record_type}: {a.error or 'no addresses'}" for a in answers)
    return f"cannot resolve {host!r} via {settings.resolver_name}: {causes}"


def _make_resolver(settings: DnsSettings) -> dns.asyncresolver.Resolver:
    """A resolver that asks exactly `settings.servers`: no /etc/resolv.conf, no search list."""
    import dns.asyncresolver
    import dns.nameserver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [
        dns.nameserver.Do53Nameserver(s.address, s.port) for s in settings.servers
    ]
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.timeout
    return resolver


async def _query_servers(name: str, rdtype: str, settings: DnsSettings) -> FamilyAnswer:
    # dnspython costs ~30 ms to import: only when DNS servers are configured (not for `check`
    # on the system resolver).
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    resolver = _make_resolver(settings)
    try:
        # dnspython enforces the lifetime itself; the outer bound only guards against a bug
        async with asyncio.timeout(settings.timeout + 1.0):
            answer = await resolver.resolve(name, rdtype, search=False)
    except (TimeoutError, dns.resolver.LifetimeTimeout):
        return FamilyAnswer(rdtype, error=f"no answer within {settings.timeout:g}s")
    except dns.resolver.NXDOMAIN:
        return FamilyAnswer(rdtype, error="NXDOMAIN (the name does not exist)")
    except dns.resolver.NoAnswer:
        return FamilyAnswer(rdtype, error=f"no {rdtype} record (NOERROR, empty answer)")
    except dns.resolver.NoNameservers as exc:
        return FamilyAnswer(rdtype, error=f"every server failed: {exc}")
    except dns.exception.DNSException as exc:
        return FamilyAnswer(rdtype, error=f"{type(exc).__name__}: {exc}")
    addresses = tuple(str(r.address) for r in answer if r.rdtype == dns.rdatatype.from_text(rdtype))
    canonical = answer.canonical_name.to_text(omit_final_dot=True)
    return FamilyAnswer(rdtype, order_addresses(addresses), canonical_name=canonical)


async def _query_system(name: str, rdtype: str, settings: DnsSettings) -> FamilyAnswer:
    family = socket.AF_INET if rdtype == "A" else socket.AF_INET6
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(settings.timeout):
            infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
    except TimeoutError:
        return FamilyAnswer(rdtype, error=f"no answer within {settings.timeout:g}s")
    except (OSError, UnicodeError, ValueError) as exc:  # gaierror; a NUL or overlong label
        return FamilyAnswer(rdtype, error=str(exc) or type(exc).__name__)
    addresses = (str(info[4][0]) for info in infos if info[0] == family)
    return FamilyAnswer(rdtype, order_addresses(addresses))
