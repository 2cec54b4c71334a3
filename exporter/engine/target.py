"""What to probe and how hard: the engine's whole input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .catalogue import CLOUDFRONT_PROTOCOLS, Protocol
from .net import MAX_BYTES_PER_PROBE, is_ip_literal


class ConfirmMode(StrEnum):
    """Which accepted suites get a complete handshake."""

    ALL = "all"  # every suite the server picks (exact matrix)
    NEGOTIATED = "negotiated"  # only the one CloudFront would negotiate (large fleets)


class CloudFrontPolicy(StrEnum):
    """The s2n-tls security policy generation CloudFront uses towards origins.

    Named as in s2n-tls; which suites, groups and signature schemes each offers is the
    engine's business. The oldest is the default because it is what every distribution gets
    unless AWS says otherwise.
    """

    UPSTREAM = "CloudFront-Upstream"
    UPSTREAM_2025 = "CloudFront-Upstream-2025"
    UPSTREAM_2025_PQ = "CloudFront-Upstream-2025-PQ"  # adds post-quantum key exchange


class IpAddressType(StrEnum):
    """CloudFront's `IpAddressType` for a custom origin: which addresses it connects to."""

    IPV4 = "ipv4"  # CloudFront's default
    IPV6 = "ipv6"
    DUALSTACK = "dualstack"


DEFAULT_CONNECTION_ATTEMPTS = 3  # CloudFront's ConnectionAttempts default (1..3)
DEFAULT_CONNECTION_TIMEOUT = 10.0  # CloudFront's ConnectionTimeout default, seconds (1..10)
DEFAULT_ORIGIN_READ_TIMEOUT = 30.0  # CloudFront's OriginReadTimeout default, seconds (1..120)
DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT = 5.0  # CloudFront's OriginKeepaliveTimeout default (1..120)
DEFAULT_MAX_ADDRESSES = 8  # addresses of one name probed
DEFAULT_DNS_PORT = 53
DEFAULT_DNS_TIMEOUT = 2.0


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate CloudFront presents to an origin that asks for one (origin mTLS)."""

    cert_file: str  # absolute path, PEM
    key_file: str  # absolute path, PEM


@dataclass(frozen=True)
class OriginRequest:
    """The HTTP request sent after the handshake, as CloudFront would forward a viewer's."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()  # (name, value), in the configured order


@dataclass(frozen=True)
class DnsServer:
    """A resolver to ask instead of the system's: an IP literal and a port."""

    address: str  # IPv6 without brackets
    port: int = DEFAULT_DNS_PORT

    @property
    def display(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ProbeTarget:
    """One origin as CloudFront sees it: where it connects, what SNI it sends, which protocols."""

    host: str
    port: int = 443
    sni: str | None = None  # the forwarded Host header / alias; default: `host`
    protocols: tuple[Protocol, ...] = CLOUDFRONT_PROTOCOLS  # the origin's OriginSslProtocols
    ca_file: str | None = None  # trust these roots instead of Mozilla's
    address: str | None = None  # connect here instead of resolving `host` (like curl --resolve)
    cloudfront_policy: CloudFrontPolicy = CloudFrontPolicy.UPSTREAM
    client_certificate: ClientCertificate | None = None  # presented if the origin asks
    request: OriginRequest | None = OriginRequest()  # None: no HTTP request after the handshake

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("empty host")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range 1-65535")
        if not self.protocols:
            raise ValueError("no protocols in the origin protocol policy")
        for protocol in self.protocols:
            if not protocol.cloudfront:
                raise ValueError(f"{protocol} is not a CloudFront origin protocol")

    @property
    def server_name(self) -> str | None:
        """The SNI CloudFront sends; none for an IP literal (RFC 6066)."""
        name = self.sni or self.host
        return None if is_ip_literal(name) else name

    @property
    def checked_name(self) -> str:
        """The name the certificate must cover: the SNI, else the host (IP literals too)."""
        return (self.sni or self.host).strip("[]")

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str, **kwargs: object) -> ProbeTarget:
        """`HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address; port 443 by default."""
        text = text.strip()
        if "://" in text:
            raise ValueError(f"target {text!r}: give HOST[:PORT], not a URL")
        host, port = text, 443
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                raise ValueError(f"target {text!r}: unbalanced '['")
            host, rest = text[1:close], text[close + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"target {text!r}: expected ':PORT' after ']'")
                port = _port(rest[1:], text)
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = _port(port_text, text)
        if not host:
            raise ValueError(f"target {text!r}: empty host")
        return cls(host=host, port=port, **kwargs)  # type: ignore[arg-type]


def _port(text: str, target: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"target {target!r}: port must be a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class ProbeOptions:
    timeout: float = 10.0  # per connection: connect plus the awaited answer
    deadline: float | None = None  # the whole probe; None: no overall bound
    max_connections: int = 8  # at once, to this origin
    confirm: ConfirmMode = ConfirmMode.ALL
    tls13: bool = True  # also probe TLSv1.3, for information only
    max_bytes: int = MAX_BYTES_PER_PROBE  # read from the origin, over all connections
    connection_attempts: int = DEFAULT_CONNECTION_ATTEMPTS  # CloudFront's ConnectionAttempts
    connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT  # the TCP connect (ConnectionTimeout)
    origin_read_timeout: float = DEFAULT_ORIGIN_READ_TIMEOUT  # the HTTP answer
    origin_keepalive_timeout: float = DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT
    ip_address_type: IpAddressType = IpAddressType.IPV4
    max_addresses: int = DEFAULT_MAX_ADDRESSES  # addresses of the name probed
    dns_servers: tuple[DnsServer, ...] = ()  # empty: the system resolver
    dns_timeout: float = DEFAULT_DNS_TIMEOUT
    # Watch the idle connection after the answer for the whole origin_keepalive_timeout
    # (`check --keepalive-check`), not only while the rest of the probe runs: exact, but that
    # long.
    keepalive_check: bool = False
