"""What one probe means: `judge`'s output, the only input of the views.

Everything here is decided by `judge.judge` from `Observations`; nothing computes a verdict on
its own (`compatible`, `success` and `legacy_only` are fields the judge sets, not properties).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import Catalogue, CipherSuite, Protocol
from .chain import ChainAnalysis
from .names import Identifier, NameMatch
from .observations import Observations
from .request import HttpExchange
from .s2n import CloudFrontHandshake, TlsLibraryInfo
from .target import ProbeTarget
from .verdict import CloudFrontWarning, FailureReason, Source


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
    # catalogue suites in the server's preference order (within each key exchange when a long
    # chain was split: enumeration.SPLIT_AFTER_PICKS)
    picked: tuple[SuiteResult, ...] = ()
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
class GenerationOutcome:
    """CloudFront's own handshake (s2n-tls) under one policy generation."""

    generation: str  # CloudFront-Upstream, CloudFront-Upstream-2025, ...-2025-PQ
    policy: str  # the s2n policy for the origin's lowest protocol in that generation
    compatible: bool
    handshake: CloudFrontHandshake


@dataclass(frozen=True)
class AddressVerdict:
    """One address of the origin's name: can CloudFront connect there, and if not why."""

    address: str
    compatible: bool
    reasons: tuple[FailureReason, ...] = ()
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Judgment:
    target: ProbeTarget
    observations: Observations
    catalogue: Catalogue  # the offer it was judged against: views show the same suites
    reasons: tuple[FailureReason, ...]  # empty: CloudFront can connect
    compatible: bool  # CloudFront can connect: no failure reason, and the probe did not fail
    success: bool  # the origin was reached and answered in TLS: the verdict rests on it
    legacy_only: bool  # CloudFront connects, but only with SSLv3 or an RC4/3DES suite
    protocols: tuple[ProtocolResult, ...] = ()
    negotiation: Negotiation | None = None
    chain: ChainAnalysis | None = None
    name_match: NameMatch | None = None
    identifiers: tuple[Identifier, ...] = ()  # the leaf's CN and SANs, each marked
    error: str | None = None  # why the probe stopped early, when it did
    log: tuple[str, ...] = ()  # the probe's log, then what the judge concluded
    sources: tuple[Source, ...] = ()  # who says each of `reasons` fails CloudFront, in order
    warnings: tuple[tuple[CloudFrontWarning, str], ...] = ()  # (warning, what was seen)
    disagreements: tuple[str, ...] = ()  # where the exporter's analysis and s2n-tls differ
    generation: str = "CloudFront-Upstream"  # the origin's configured policy generation
    cloudfront: GenerationOutcome | None = None  # the decisive handshake (that generation)
    generations: tuple[GenerationOutcome, ...] = ()  # every generation, for comparison
    tls_library: TlsLibraryInfo | None = None
    decided_by: str = "exporter"  # "s2n-tls", or "exporter" when s2n-tls could not decide
    addresses: tuple[AddressVerdict, ...] = ()  # every address probed, the first one first
    http: HttpExchange | None = None  # the request CloudFront forwards, on the first address

    @property
    def started_at(self) -> float:
        return self.observations.started_at

    @property
    def duration_seconds(self) -> float:
        return self.observations.duration_seconds

    @property
    def address(self) -> str | None:
        return self.observations.address

    @property
    def connections(self) -> int:
        return self.observations.connections

    def protocol(self, protocol: Protocol) -> ProtocolResult | None:
        for result in self.protocols:
            if result.protocol is protocol:
                return result
        return None
