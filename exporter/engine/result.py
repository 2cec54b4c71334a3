"""Immutable results of one probe; every consumer (metrics, page, `check`) only reads these."""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import CipherSuite, Protocol
from .chain import ChainAnalysis
from .names import NameMatch
from .target import ProbeTarget
from .verdict import CONNECTIVITY_REASONS, FailureReason


@dataclass(frozen=True)
class SuiteResult:
    """A suite the server picked under one protocol, and whether a full handshake completed."""

    suite: CipherSuite
    confirmed: bool | None  # None: not confirmed (ConfirmMode.NEGOTIATED)
    backend: str | None = None  # "openssl" or "tlslite"
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.confirmed is not False


@dataclass(frozen=True)
class ProtocolResult:
    """What the origin does with one protocol version."""

    protocol: Protocol
    in_policy: bool  # enabled in the origin protocol policy (never for TLSv1.3)
    spoken: bool | None  # None: could not tell
    picked: tuple[SuiteResult, ...] = ()  # catalogue suites, in the server's preference order
    refusal: str | None = None  # how the server answered the last offer it declined
    error: str | None = None
    outside_suite: str | None = None  # IANA name of a non-CloudFront suite it picked instead

    @property
    def accepted_suites(self) -> tuple[CipherSuite, ...]:
        return tuple(r.suite for r in self.picked if r.accepted)

    @property
    def accepted(self) -> bool:
        return bool(self.accepted_suites)


@dataclass(frozen=True)
class Negotiation:
    """The handshake CloudFront itself would make under the origin protocol policy."""

    protocol: Protocol | None
    suite: CipherSuite | None
    group: str | None
    completed: bool
    error: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    target: ProbeTarget
    started_at: float  # unix time
    duration_seconds: float
    reasons: tuple[FailureReason, ...]  # empty: CloudFront can connect
    address: str | None = None
    protocols: tuple[ProtocolResult, ...] = ()
    negotiation: Negotiation | None = None
    chain: ChainAnalysis | None = None
    name_match: NameMatch | None = None
    connections: int = 0
    error: str | None = None  # why the probe stopped early, when it did
    log: tuple[str, ...] = ()

    @property
    def compatible(self) -> bool:
        """CloudFront can connect: no failure reason, and the probe itself did not fail."""
        return not self.reasons and self.error is None

    @property
    def success(self) -> bool:
        """The origin was reached and answered in TLS, so the verdict rests on its answers."""
        return not CONNECTIVITY_REASONS.intersection(self.reasons) and self.error is None

    def protocol(self, protocol: Protocol) -> ProtocolResult | None:
        for result in self.protocols:
            if result.protocol is protocol:
                return result
        return None

    @property
    def legacy_only(self) -> bool:
        """CloudFront connects, but only with SSLv3 or an RC4/3DES suite."""
        usable = [(p.protocol, s) for p in self.protocols if p.in_policy for s in p.accepted_suites]
        return bool(usable) and all(
            protocol is Protocol.SSLv3 or suite.legacy for protocol, suite in usable
        )
