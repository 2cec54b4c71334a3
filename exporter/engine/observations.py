"""What an origin did during one probe, and nothing more: the engine's output.

Observations hold no interpretation (no reason, no verdict, no "spoken"): `judge` decides what
they mean, so a change of trust store, policy or catalogue can be judged again from the same
observations without probing. They round-trip through JSON (`to_json` / `from_json`), which is
how tests record real servers once and replay them.
"""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar

from .hello import Refusal, ServerHelloInfo
from .request import HttpExchange
from .s2n import CloudFrontHandshake, TlsLibraryInfo
from .target import ClientCertificate, OriginRequest, ProbeTarget

SCHEMA_VERSION = 1

AnswerKind = Literal["server_hello", "alert", "closed", "reset"]


@dataclass(frozen=True)
class HelloAnswerRecord:
    """The server's answer to one ClientHello: a ServerHello, or how it refused."""

    kind: AnswerKind
    protocol: str | None = None  # the version it picked, as a Protocol value; None: unknown
    wire_version: tuple[int, int] | None = None
    suite: int | None = None
    group: int | None = None
    alert: int | None = None
    certificates: int = 0
    hello_retry: bool = False

    @classmethod
    def of(cls, answer: ServerHelloInfo | Refusal) -> HelloAnswerRecord:
        if isinstance(answer, Refusal):
            kind: AnswerKind = "alert" if answer.how == "alert" else answer.how  # type: ignore[assignment]
            return cls(kind=kind, alert=answer.alert)
        return cls(
            kind="server_hello",
            protocol=str(answer.protocol) if answer.protocol is not None else None,
            wire_version=answer.wire_version,
            suite=answer.suite,
            group=answer.group,
            certificates=len(answer.certificates),
            hello_retry=answer.hello_retry,
        )

    @property
    def is_server_hello(self) -> bool:
        return self.kind == "server_hello"

    def describe(self) -> str:
        """The refusal in words (the engine's own phrasing, kept for logs and reports)."""
        if self.is_server_hello:
            return f"server hello {self.protocol or self.wire_version} 0x{self.suite or 0:04X}"
        return Refusal(self.kind, self.alert).describe()


@dataclass(frozen=True)
class HelloExchange:
    """One ClientHello (its protocol and offered suite codes) and the answer to it."""

    protocol: str
    offered: tuple[int, ...]
    answer: HelloAnswerRecord
    broad: bool = False  # a broad offer (any suite), not CloudFront's
    cloudfront_hello: bool = False  # this exchange is CloudFront's own hello, reused
    # CloudFront's suites first, then every other suite: a protocol's first offer, whose
    # refusal says "not spoken" at once (no broad offer after it)
    with_broad: bool = False


@dataclass(frozen=True)
class EnumerationRecord:
    """Every hello of one protocol's enumeration, in order, or why it stopped."""

    protocol: str
    exchanges: tuple[HelloExchange, ...] = ()
    error: str | None = None

    @property
    def server_hello_in_protocol(self) -> bool:
        """Some hello got a ServerHello of this very protocol (the engine's cue to fetch
        certificates with it); what that means is the judge's business."""
        return any(
            e.answer.is_server_hello and e.answer.protocol == self.protocol for e in self.exchanges
        )


@dataclass(frozen=True)
class HandshakeRecord:
    """One complete handshake attempt, with the library that made it."""

    protocol: str
    suite: str  # catalogue (OpenSSL) name
    completed: bool
    library: str  # "openssl", "tlslite", "-" (never started)
    error: str | None = None


@dataclass(frozen=True)
class StopRecord:
    """Why the probe stopped before learning everything: the engine error's kind and text."""

    kind: str  # dns_failed, connect_failed, timeout, not_tls, handshake_failed, internal_error
    detail: str


@dataclass(frozen=True)
class TargetRecord:
    """What was probed, as the engine was asked to probe it: the whole `ProbeTarget`, so a
    judgment made from the record shows the request and certificate the probe used."""

    host: str
    port: int
    sni: str | None
    protocols: tuple[str, ...]
    ca_file: str | None
    address: str | None
    cloudfront_policy: str = "CloudFront-Upstream"
    client_certificate: ClientCertificate | None = None
    # recordings before it: the default GET /
    request: OriginRequest | None = dataclasses.field(default_factory=OriginRequest)

    @classmethod
    def of(cls, target: ProbeTarget) -> TargetRecord:
        return cls(
            host=target.host,
            port=target.port,
            sni=target.sni,
            protocols=tuple(str(p) for p in target.protocols),
            ca_file=target.ca_file,
            address=target.address,
            cloudfront_policy=target.cloudfront_policy,
            client_certificate=target.client_certificate,
            request=target.request,
        )


@dataclass(frozen=True)
class ResolutionRecord:
    """What the origin's name resolved to, through which resolver."""

    resolver: str  # "system", the DNS servers asked, "literal" or "override"
    addresses: tuple[str, ...]
    truncated_from: int | None = None  # how many there were, when max_addresses cut some
    duration_seconds: float = 0.0


@dataclass(frozen=True)
class AddressRecord:
    """Another address of the origin's name: CloudFront's handshake there, and the whole
    probe again (`full`) when it answered differently from the first address."""

    address: str
    cloudfront_handshakes: tuple[CloudFrontHandshake, ...] = ()
    full: Observations | None = None
    stopped: StopRecord | None = None
    connections: int = 0


@dataclass(frozen=True)
class Observations:
    target: TargetRecord
    started_at: float  # unix time
    duration_seconds: float
    address: str | None = None
    cloudfront_hello: HelloExchange | None = None
    enumerations: tuple[EnumerationRecord, ...] = ()
    handshakes: tuple[HandshakeRecord, ...] = ()
    certificates: tuple[bytes, ...] = ()  # DER, exactly as sent, leaf first as sent
    certificates_from: str | None = None  # "cloudfront_hello" or "broad_offer"
    cloudfront_handshakes: tuple[CloudFrontHandshake, ...] = ()  # s2n-tls, one per generation
    tls_library: TlsLibraryInfo | None = None  # None: not asked (the probe stopped first)
    trust_digest: str | None = None  # the roots s2n-tls verified against (see `TrustStore`)
    resolution: ResolutionRecord | None = None
    other_addresses: tuple[AddressRecord, ...] = ()  # the first address is `address`
    http: HttpExchange | None = None  # the request CloudFront forwards, on the first address
    connections: int = 0
    bytes_read: int = 0
    stopped: StopRecord | None = None
    log: tuple[str, ...] = ()
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], _encode(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observations:
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"observations schema {data.get('schema')!r}, not {SCHEMA_VERSION}")
        return typing.cast(Observations, _decode(cls, data))


_T = TypeVar("_T")


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(kind: Any, data: Any) -> Any:
    """`data` (from `_encode`) back into `kind`, guided by the type annotations."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        if data is None:
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return _decode(inner, data)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
    if origin is Literal:
        return data
    if kind is bytes:
        return base64.b64decode(data)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _decode(hints[k], v) for k, v in data.items() if k in names})  # type: ignore[operator]
    return data
