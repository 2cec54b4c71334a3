"""What observations mean: the one place that decides every reason, state and verdict.

`judge` is a pure function of the observations, the trust store, the catalogue, the origin's
policy and the time: no I/O, no clock, no globals. Re-judging the same observations under a new
trust store or policy (a reload) needs no probe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from tlslite.constants import AlertDescription
from tlslite.constants import CipherSuite as TlsliteSuites

from .catalogue import Catalogue, Protocol
from .certs import CertificateParseError
from .chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
from .names import NameMatch, match_identifiers, match_name
from .observations import (
    EnumerationRecord,
    HandshakeRecord,
    HelloAnswerRecord,
    HelloExchange,
    Observations,
    StopRecord,
    TargetRecord,
)
from .result import Judgment, Negotiation, ProtocolResult, SuiteResult
from .target import ProbeTarget
from .verdict import Category, FailureReason

_CHAIN_REASONS = {
    ChainStatus.MISSING_INTERMEDIATE: FailureReason.MISSING_INTERMEDIATE,
    ChainStatus.WRONG_ORDER: FailureReason.WRONG_ORDER,
    ChainStatus.UNTRUSTED: FailureReason.UNTRUSTED,
    ChainStatus.EXPIRED: FailureReason.EXPIRED,
    ChainStatus.NOT_YET_VALID: FailureReason.NOT_YET_VALID,
}


@dataclass(frozen=True)
class Policy:
    """The origin's settings that a verdict depends on (not how it was probed)."""

    protocols: tuple[Protocol, ...]  # OriginSslProtocols

    @classmethod
    def of(cls, target: ProbeTarget) -> Policy:
        return cls(target.protocols)


def judge(
    observations: Observations,
    trust: TrustStore,
    catalogue: Catalogue,
    policy: Policy,
    now: dt.datetime,
) -> Judgment:
    target = _target(observations, policy)
    stop = observations.stopped
    # A probe stopped before its handshakes were all made says nothing of the matrix.
    decided = stop is None or bool(observations.handshakes)
    protocols = (
        tuple(_protocol(e, policy, observations, catalogue) for e in observations.enumerations)
        if decided
        else ()
    )
    negotiation = _negotiation(observations, policy, catalogue) if decided else None
    log = list(observations.log)
    note = _Notes(log, observations.duration_seconds)
    chain, match, chain_error = _certificates(observations, trust, target.checked_name, now, note)
    leaf = chain.certificates[0] if chain is not None else None
    identifiers = (
        match_identifiers(target.checked_name, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
        if leaf is not None
        else ()
    )
    reasons = (
        _stop_reasons(stop.kind)
        if stop is not None
        else _reasons(protocols, negotiation, chain, match, chain_error)
    )
    compatible = not reasons and stop is None
    return Judgment(
        target=target,
        observations=observations,
        catalogue=catalogue,
        reasons=reasons,
        compatible=compatible,
        success=stop is None and not any(r.category is Category.CONNECTION for r in reasons),
        legacy_only=_legacy_only(protocols),
        protocols=protocols,
        negotiation=negotiation,
        chain=chain,
        name_match=match,
        identifiers=identifiers,
        error=stop.detail if stop else None,
        log=tuple(log),
    )


def internal_error(
    target: ProbeTarget, started_at: float, duration: float, detail: str, catalogue: Catalogue
) -> Judgment:
    """The judgment of a probe that crashed (a bug, a vanished ca_file): no reason, failed."""
    observations = Observations(
        target=TargetRecord.of(target),
        started_at=started_at,
        duration_seconds=duration,
        stopped=StopRecord("internal_error", detail),
    )
    now = dt.datetime.fromtimestamp(started_at, dt.UTC)
    return judge(observations, TrustStore("none", ()), catalogue, Policy.of(target), now)


def _stop_reasons(kind: str) -> tuple[FailureReason, ...]:
    """The reason a stopped probe gives; none for the exporter's own failure (a crash)."""
    return (FailureReason(kind),) if kind in FailureReason.__members__.values() else ()


def _target(observations: Observations, policy: Policy) -> ProbeTarget:
    t = observations.target
    return ProbeTarget(
        host=t.host,
        port=t.port,
        sni=t.sni,
        protocols=policy.protocols,
        ca_file=t.ca_file,
        address=t.address,
    )


class _Notes:
    """The judge's conclusions, appended to the probe's log at the probe's end time."""

    def __init__(self, log: list[str], at: float) -> None:
        self._log = log
        self._at = at

    def __call__(self, message: str) -> None:
        self._log.append(f"{self._at:7.3f}s {message}")


def _reasons(
    protocols: Sequence[ProtocolResult],
    negotiation: Negotiation | None,
    chain: ChainAnalysis | None,
    match: NameMatch | None,
    chain_error: str | None,
) -> tuple[FailureReason, ...]:
    reasons: list[FailureReason] = []
    if negotiation is None or not negotiation.completed:
        reasons.append(_handshake_reason(protocols, negotiation))
    if chain_error is not None:
        reasons.append(FailureReason.HANDSHAKE_FAILED)
    if match is not None and not match.ok:
        reasons.append(FailureReason.NAME_MISMATCH)
    if chain is not None:
        reasons.extend(_CHAIN_REASONS[p] for p in chain.problems)
    return tuple(dict.fromkeys(reasons))


def _handshake_reason(
    protocols: Sequence[ProtocolResult], negotiation: Negotiation | None
) -> FailureReason:
    in_policy = [p for p in protocols if p.in_policy]
    if negotiation is not None and any(p.protocol is negotiation.protocol for p in in_policy):
        # The server answered CloudFront's own hello with a protocol in the policy, and still
        # the handshake cannot complete (a suite CloudFront did not offer, or the confirmation
        # failed): whatever the other hellos say.
        return FailureReason.HANDSHAKE_FAILED
    if not any(p.spoken for p in in_policy):
        return FailureReason.NO_COMMON_PROTOCOL
    if not any(p.picked for p in in_policy):
        return FailureReason.NO_COMMON_CIPHER
    return FailureReason.HANDSHAKE_FAILED


def _legacy_only(protocols: Sequence[ProtocolResult]) -> bool:
    usable = [(p.protocol, s) for p in protocols if p.in_policy for s in p.accepted_suites]
    return bool(usable) and all(
        protocol is Protocol.SSLv3 or suite.legacy for protocol, suite in usable
    )


def _handshakes(observations: Observations) -> dict[tuple[str, str], HandshakeRecord]:
    return {(h.protocol, h.suite): h for h in observations.handshakes}


def _protocol(
    record: EnumerationRecord, policy: Policy, observations: Observations, catalogue: Catalogue
) -> ProtocolResult:
    protocol = Protocol(record.protocol)
    in_policy = protocol in policy.protocols
    if record.error is not None:
        return ProtocolResult(protocol, in_policy, None, error=record.error)
    offers = [e for e in record.exchanges if not e.broad]
    # Picks of suites outside `catalogue` (observed under a larger one) are not its business.
    picks = [e for e in offers if _picked_in(e, protocol) and e.answer.suite in catalogue.by_code]
    handshakes = _handshakes(observations)
    picked = []
    for exchange in picks:
        suite = catalogue.by_code[exchange.answer.suite or 0]
        done = handshakes.get((record.protocol, suite.name))
        picked.append(
            SuiteResult(suite, None)
            if done is None
            else SuiteResult(suite, done.completed, done.library, done.error)
        )
    last = offers[-1] if offers and not _picked_in(offers[-1], protocol) else None
    broad = next((e for e in record.exchanges if e.broad), None)
    outside = broad.answer.suite if broad is not None and _picked_in(broad, protocol) else None
    return ProtocolResult(
        protocol=protocol,
        in_policy=in_policy,
        spoken=_spoken(protocol, bool(picks), offers, outside is not None),
        picked=tuple(picked),
        refusal=_refusal(last.answer) if last is not None else None,
        outside_suite=None if outside is None else _iana_name(outside),
    )


def _picked_in(exchange: HelloExchange, protocol: Protocol) -> bool:
    return exchange.answer.is_server_hello and exchange.answer.protocol == str(protocol)


def _spoken(
    protocol: Protocol, picked: bool, offers: Sequence[HelloExchange], outside: bool
) -> bool:
    if picked:
        return True
    if protocol is Protocol.TLSv1_3:
        return False
    first = offers[0].answer if offers else None
    if first is not None and first.alert == AlertDescription.protocol_version:
        return False
    return outside


def _refusal(answer: HelloAnswerRecord) -> str:
    if answer.is_server_hello:
        return f"answered with {_version_name(answer)}"
    return answer.describe()


def _version_name(answer: HelloAnswerRecord) -> str:
    if answer.protocol is not None:
        return answer.protocol
    major, minor = answer.wire_version or (0, 0)
    return f"version {major}.{minor}"


def _iana_name(code: int) -> str:
    return str(TlsliteSuites.ietfNames.get(code, f"0x{code:04X}"))


def _negotiation(
    observations: Observations, policy: Policy, catalogue: Catalogue
) -> Negotiation | None:
    hello = observations.cloudfront_hello
    if hello is None:
        return None
    answer = hello.answer
    if not answer.is_server_hello:
        return Negotiation(None, None, None, False, f"server declined: {answer.describe()}")
    protocol = Protocol(answer.protocol) if answer.protocol else None
    suite = catalogue.by_code.get(answer.suite or 0)
    group = catalogue.group_name(answer.group)
    if protocol is None or protocol not in policy.protocols:
        version = answer.protocol or f"version {answer.wire_version}"
        error = f"server chose {version}, which the origin protocol policy does not enable"
        return Negotiation(protocol, suite, group, False, error)
    if suite is None or not suite.valid_in(protocol):
        error = f"server chose suite 0x{answer.suite or 0:04X}, which CloudFront did not offer"
        return Negotiation(protocol, suite, group, False, error)
    done = _handshakes(observations).get((str(protocol), suite.name))
    if done is None:
        return Negotiation(protocol, suite, group, False, "no complete handshake was made")
    return Negotiation(protocol, suite, group, done.completed, done.error)


def _certificates(
    observations: Observations,
    trust: TrustStore,
    name: str,
    now: dt.datetime,
    note: _Notes,
) -> tuple[ChainAnalysis | None, NameMatch | None, str | None]:
    """Chain and name analysis of the certificates as sent; (None, None, error) if unparsable."""
    if not observations.certificates:
        return None, None, None
    try:
        chain = analyse_chain(observations.certificates, trust, now)
    except CertificateParseError as exc:
        note(f"certificates: {exc}")
        return None, None, str(exc)
    leaf = chain.certificates[0]
    match = match_name(name, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
    note(f"chain: {chain.status}: {chain.detail}")
    note(f"name {name}: {'matches ' + str(match.matched_by) if match.ok else 'not covered'}")
    return chain, match, None
