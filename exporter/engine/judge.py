"""What observations mean: the one place that decides every reason, state and verdict.

`judge` is a pure function of the observations, the trust store, the catalogue, the origin's
policy and the time: no I/O, no clock, no globals. Re-judging the same observations under a new
trust store or policy (a reload) needs no probe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tlslite.constants import AlertDescription
from tlslite.constants import CipherSuite as TlsliteSuites

from .catalogue import Catalogue, Protocol
from .certs import CertificateParseError
from .chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
from .names import NameMatch, match_identifiers, match_name
from .observations import (
    AddressRecord,
    EnumerationRecord,
    HandshakeRecord,
    HelloAnswerRecord,
    HelloExchange,
    Observations,
    StopRecord,
    TargetRecord,
)
from .request import HttpExchange, Outcome
from .result import (
    AddressVerdict,
    GenerationOutcome,
    Judgment,
    Negotiation,
    ProtocolResult,
    SuiteResult,
)
from .s2n import GENERATIONS, CloudFrontHandshake, policy_for
from .target import (
    DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT,
    CloudFrontPolicy,
    ProbeOptions,
    ProbeTarget,
)
from .verdict import Category, CloudFrontWarning, FailureReason, Source

W = CloudFrontWarning


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
    cloudfront_policy: str = CloudFrontPolicy.UPSTREAM  # the s2n-tls policy generation
    origin_keepalive_timeout: float = DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT

    @classmethod
    def of(cls, target: ProbeTarget, options: ProbeOptions | None = None) -> Policy:
        keepalive = (options or ProbeOptions()).origin_keepalive_timeout
        return cls(target.protocols, target.cloudfront_policy, keepalive)


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
    chain, match, chain_error = _certificates(
        observations.certificates, trust, target.checked_name, now, note
    )
    leaf = chain.certificates[0] if chain is not None else None
    identifiers = (
        match_identifiers(target.checked_name, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
        if leaf is not None
        else ()
    )
    own = (
        _stop_reasons(stop.kind)
        if stop is not None
        else _reasons(protocols, negotiation, chain, match, chain_error)
    )
    generations = _generations(observations, policy, own)
    decisive = next((g for g in generations if g.generation == policy.cloudfront_policy), None)
    usable = _s2n_usable(observations, trust, decisive, stop is not None)
    if isinstance(usable, str):
        # A probe that stopped has nothing for s2n-tls to disagree with; say why otherwise.
        notes = (usable,) if own and stop is None else ()
        decision = _Decision(own, (Source.EXPORTER,) * len(own), (), notes)
        if observations.tls_library is not None or stop is None:
            note(f"decided without s2n-tls: {usable}")
    else:
        decision = _decide(own, usable.handshake, _stale(observations, now))
    if stop is None:
        decision = _with_request(decision, observations.http)
    primary = AddressVerdict(
        observations.address or "", not decision.reasons and stop is None, decision.reasons
    )
    others = tuple(
        _address_verdict(a, trust, catalogue, policy, now, target.checked_name)
        for a in observations.other_addresses
    )
    addresses = (primary, *others)
    decision = _with_addresses(decision, addresses[1:])
    reasons = decision.reasons
    compatible = not reasons and stop is None
    return Judgment(
        target=target,
        observations=observations,
        catalogue=catalogue,
        reasons=reasons,
        compatible=compatible,
        success=stop is None and not any(r.category is Category.CONNECTION for r in reasons),
        legacy_only=_legacy_only(protocols) and compatible,
        protocols=protocols,
        negotiation=negotiation,
        chain=chain,
        name_match=match,
        identifiers=identifiers,
        error=stop.detail if stop else None,
        log=tuple(log),
        sources=decision.sources,
        warnings=_warnings(catalogue, policy, protocols, chain, decisive, decision)
        + _request_warnings(observations.http, policy),
        addresses=addresses,
        http=observations.http,
        disagreements=decision.disagreements,
        generation=policy.cloudfront_policy,
        cloudfront=decisive,
        generations=generations,
        tls_library=observations.tls_library,
        decided_by="exporter" if isinstance(usable, str) else "s2n-tls",
    )


def _stale(observations: Observations, now: dt.datetime) -> bool:
    """Judged well after the probe: s2n-tls checked the dates of then, not of `now`."""
    return now.timestamp() > observations.started_at + observations.duration_seconds + 60


_REQUEST_REASONS = {
    Outcome.RESPONSE_TIMEOUT: FailureReason.RESPONSE_TIMEOUT,
    Outcome.INVALID_RESPONSE: FailureReason.HTTP_INVALID_RESPONSE,
    Outcome.CLOSED: FailureReason.HTTP_INVALID_RESPONSE,
}


def _with_request(decision: _Decision, http: HttpExchange | None) -> _Decision:
    """The request CloudFront forwards once its handshake completes: no first byte within
    the origin response timeout is a 504, an answer that is not HTTP/1.x a 502. The origin's
    own 4xx/5xx is its answer, not a failure of CloudFront's connection."""
    if http is None or decision.reasons:
        return decision
    reason = _REQUEST_REASONS.get(http.outcome)
    if http.outcome is Outcome.TLS_ERROR and "certificate required" in (http.detail or ""):
        reason = FailureReason.CLIENT_CERTIFICATE_REQUIRED
    if reason is None:
        if http.outcome is Outcome.TLS_ERROR:
            note = f"the exporter's own request could not complete TLS ({http.detail})"
            return replace(decision, disagreements=(*decision.disagreements, note))
        return decision
    return replace(decision, reasons=(reason,), sources=(Source.EXPORTER,))


def _request_warnings(
    http: HttpExchange | None, policy: Policy
) -> tuple[tuple[CloudFrontWarning, str], ...]:
    if http is None or http.outcome is not Outcome.OK:
        return ()
    if http.connection_close:
        return ((W.CLOSES_KEEPALIVE_EARLY, "the origin answers Connection: close"),)
    idle = http.idle_close_seconds
    if idle is not None and idle < policy.origin_keepalive_timeout:
        detail = (
            f"the origin closed the idle connection after {idle:.1f}s, before CloudFront's "
            f"{policy.origin_keepalive_timeout:g}s keep-alive timeout"
        )
        return ((W.CLOSES_KEEPALIVE_EARLY, detail),)
    return ()


def _address_verdict(
    record: AddressRecord,
    trust: TrustStore,
    catalogue: Catalogue,
    policy: Policy,
    now: dt.datetime,
    name: str,
) -> AddressVerdict:
    """Another address: its whole judgment when it was probed in full, else CloudFront's
    handshake there, explained by the chain it sent."""
    if record.full is not None:
        full = judge(record.full, trust, catalogue, policy, now)
        return AddressVerdict(record.address, full.compatible, full.reasons, full.sources)
    if record.stopped is not None:
        reasons = _stop_reasons(record.stopped.kind)
        return AddressVerdict(record.address, False, reasons, (Source.EXPORTER,) * len(reasons))
    if not record.cloudfront_handshakes:
        return AddressVerdict(record.address, True, ())
    handshake = record.cloudfront_handshakes[0]
    own: tuple[FailureReason, ...] = ()
    if handshake.peer_chain:
        chain, match, error = _certificates(handshake.peer_chain, trust, name, now, _Notes([], 0))
        own = _certificate_reasons(chain, match, error)
    decision = _decide(own, handshake, stale=False)
    return AddressVerdict(record.address, not decision.reasons, decision.reasons, decision.sources)


def _certificate_reasons(
    chain: ChainAnalysis | None, match: NameMatch | None, error: str | None
) -> tuple[FailureReason, ...]:
    reasons: list[FailureReason] = [FailureReason.HANDSHAKE_FAILED] if error else []
    if match is not None and not match.ok:
        reasons.append(FailureReason.NAME_MISMATCH)
    if chain is not None:
        reasons.extend(_CHAIN_REASONS[p] for p in chain.problems)
    return tuple(reasons)


def _with_addresses(decision: _Decision, others: Sequence[AddressVerdict]) -> _Decision:
    """CloudFront may connect to any address: the reasons of any failing one are the
    origin's (each with its own source), said once."""
    reasons, sources = list(decision.reasons), list(decision.sources)
    notes = list(decision.disagreements)
    for verdict in others:
        if verdict.compatible:
            continue
        notes.append(f"{verdict.address} fails: {', '.join(verdict.reasons)}")
        for reason, source in zip(verdict.reasons, verdict.sources, strict=False):
            if reason not in reasons:
                reasons.append(reason)
                sources.append(source)
    return replace(
        decision, reasons=tuple(reasons), sources=tuple(sources), disagreements=tuple(notes)
    )


@dataclass(frozen=True)
class _Decision:
    reasons: tuple[FailureReason, ...]
    sources: tuple[Source, ...]
    kept_as_warnings: tuple[FailureReason, ...]  # own findings s2n-tls overrules
    disagreements: tuple[str, ...]


# Stages of CloudFront's connection, in order: s2n-tls failing at one says nothing of later ones,
# and contradicts a finding that it failed earlier.
_STAGES = {
    Category.CONNECTION: 0,
    Category.PROTOCOL: 1,
    Category.NAME: 2,
    Category.CHAIN: 2,
    Category.DATES: 2,
    Category.HTTP: 3,
}

_S2N_REASONS = {
    "connect_failed": FailureReason.CONNECT_FAILED,
    "timeout": FailureReason.TIMEOUT,
    "S2N_ERR_CERT_UNTRUSTED": FailureReason.UNTRUSTED,
    "S2N_ERR_CERT_EXPIRED": FailureReason.EXPIRED,
    "S2N_ERR_CERT_NOT_YET_VALID": FailureReason.NOT_YET_VALID,
    "S2N_ERR_CERT_INVALID_HOSTNAME": FailureReason.NAME_MISMATCH,
    "S2N_ERR_PROTOCOL_VERSION_UNSUPPORTED": FailureReason.NO_COMMON_PROTOCOL,
}


def _s2n_reason(handshake: CloudFrontHandshake) -> FailureReason:
    """What s2n-tls's own error means, when the exporter's analysis found no cause."""
    if handshake.client_certificate_requested and not handshake.client_certificate_sent:
        return FailureReason.CLIENT_CERTIFICATE_REQUIRED
    if handshake.alert == AlertDescription.protocol_version:
        return FailureReason.NO_COMMON_PROTOCOL
    reason = _S2N_REASONS.get(handshake.error or "")
    if reason is None and (handshake.error or "").startswith("S2N_ERR_CERT"):
        return FailureReason.UNTRUSTED
    return reason or FailureReason.HANDSHAKE_FAILED


def _decide(
    own: tuple[FailureReason, ...], handshake: CloudFrontHandshake, stale: bool
) -> _Decision:
    """s2n-tls's pass/fail decides; the exporter's analysis explains, never contradicts it.

    Passing, only a condition AWS documents as a 502 cause (a chain out of order) still fails;
    every other finding of the exporter's becomes a warning or a stated disagreement. Judged
    later than the probe (`stale`), a certificate that has expired since fails too: s2n-tls
    checked the dates of then."""
    policy = handshake.policy
    if handshake.completed:
        since = tuple(r for r in own if stale and r.category is Category.DATES)
        documented = tuple(r for r in own if r is FailureReason.WRONG_ORDER)
        overruled = tuple(r for r in own if r not in documented and r not in since)
        notes = tuple(
            f"s2n-tls completes CloudFront's handshake under {policy}, but the exporter's own "
            f"analysis finds {r} ({r.summary})"
            for r in overruled
        )
        sources = (Source.AWS_DOCUMENTATION,) * len(documented) + (Source.EXPORTER,) * len(since)
        return _Decision(documented + since, sources, overruled, notes)
    if handshake.client_certificate_requested and not handshake.client_certificate_sent:
        # s2n-tls saw the request for a certificate it had none to answer with.
        reason = FailureReason.CLIENT_CERTIFICATE_REQUIRED
        return _Decision((reason,), (Source.TLS_LIBRARY,), (), ())
    stage = _failing_stage(handshake)
    explaining = tuple(r for r in own if _STAGES[r.category] >= stage)
    contradicting = tuple(r for r in own if _STAGES[r.category] < stage)
    notes = tuple(
        f"s2n-tls got past {r.category} under {policy} before failing ({handshake.error}), so "
        f"the exporter's own finding {r} does not apply to CloudFront"
        for r in contradicting
    )
    if not explaining:
        reason = _s2n_reason(handshake)
        explaining = (reason,)
        notes += (
            f"s2n-tls fails under {policy} ({handshake.error}"
            f"{', alert ' + str(handshake.alert) if handshake.alert is not None else ''}); "
            f"the exporter's own analysis finds no cause, read as {reason}",
        )
    return _Decision(explaining, (Source.TLS_LIBRARY,) * len(explaining), (), notes)


def _failing_stage(handshake: CloudFrontHandshake) -> int:
    error = handshake.error or ""
    if error in ("connect_failed", "timeout"):
        return 0
    if error.startswith("S2N_ERR_CERT"):
        return 2
    return 1


def _s2n_usable(
    observations: Observations,
    trust: TrustStore,
    decisive: GenerationOutcome | None,
    stopped: bool,
) -> GenerationOutcome | str:
    """The handshake that decides, or why s2n-tls cannot decide this judgment."""
    library = observations.tls_library
    if stopped:
        return "the probe stopped before CloudFront's handshake could decide"
    if library is None or library.library == "none":
        reason = library.reason if library else "not asked"
        return f"no s2n-tls here ({reason}): the exporter's own analysis decides"
    if decisive is None:
        return "no s2n-tls handshake under the origin's current policy: judged until re-probed"
    if observations.trust_digest != trust.digest:
        return "the trust store changed since the probe: judged until re-probed"
    return decisive


def _generations(
    observations: Observations, policy: Policy, own: tuple[FailureReason, ...]
) -> tuple[GenerationOutcome, ...]:
    """Each generation's handshake, if it is the one CloudFront makes for `policy` (a probe
    judged under another policy may hold handshakes of other policies: they do not count)."""
    made = {h.policy: h for h in observations.cloudfront_handshakes}
    outcomes = []
    for generation in GENERATIONS:
        handshake = made.get(_policy_or_none(policy, generation) or "")
        if handshake is None:
            continue
        compatible = handshake.completed and FailureReason.WRONG_ORDER not in own
        outcomes.append(GenerationOutcome(generation, handshake.policy, compatible, handshake))
    return tuple(outcomes)


def _policy_or_none(policy: Policy, generation: str) -> str | None:
    try:
        return policy_for(policy.protocols, generation)
    except ValueError:
        return None


def _warnings(
    catalogue: Catalogue,
    policy: Policy,
    protocols: Sequence[ProtocolResult],
    chain: ChainAnalysis | None,
    decisive: GenerationOutcome | None,
    decision: _Decision,
) -> tuple[tuple[CloudFrontWarning, str], ...]:
    found: list[tuple[CloudFrontWarning, str]] = []
    handshake = decisive.handshake if decisive else None
    certificates = chain.certificates if chain else ()
    if handshake is not None and handshake.completed:
        documented = any(s.documented for p in protocols if p.in_policy for s in p.accepted_suites)
        suite = catalogue.by_name.get(handshake.cipher or "")
        if not documented and suite is not None and not suite.documented:
            found.append((W.UNDOCUMENTED_SUITES_ONLY, f"s2n-tls negotiated {handshake.cipher}"))
        if handshake.protocol is not None and handshake.protocol not in policy.protocols:
            found.append(
                (W.NEGOTIATED_OUTSIDE_POLICY, f"{handshake.protocol} under {handshake.policy}")
            )
        if handshake.client_certificate_requested and not handshake.client_certificate_sent:
            found.append((W.CLIENT_CERTIFICATE_REQUESTED, "completed without one"))
    strict = [r for r in decision.kept_as_warnings if r.category is Category.CHAIN]
    if strict and chain is not None:
        found.append((W.STRICT_VALIDATION_FAILS, chain.detail))
    sha1 = [
        c for c in certificates if "sha1" in c.signature_algorithm.lower() and not c.self_signed
    ]
    if sha1:
        found.append((W.SHA1_SIGNATURE, ", ".join(f"{c.position} {c.subject}" for c in sha1)))
    weak = [c for c in certificates if c.key_type == "RSA" and c.key_bits < 2048]
    if weak:
        found.append((W.WEAK_RSA_KEY, ", ".join(f"{c.position} RSA {c.key_bits}" for c in weak)))
    if _legacy_only(protocols):
        found.append((W.LEGACY_CRYPTO_ONLY, "only SSLv3, RC4 or 3DES connect"))
    return tuple(found)


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
    """The target as probed, under the policy judged now (a reload may have changed it)."""
    t = observations.target
    return ProbeTarget(
        host=t.host,
        port=t.port,
        sni=t.sni,
        protocols=policy.protocols,
        ca_file=t.ca_file,
        address=t.address,
        cloudfront_policy=CloudFrontPolicy(policy.cloudfront_policy),
        client_certificate=t.client_certificate,
        request=t.request,
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
    reasons.extend(_certificate_reasons(chain, match, chain_error))
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
    # A suite outside the catalogue picked from a broad offer, or from a first offer that
    # carried every suite after CloudFront's: the protocol is spoken, CloudFront's suites not.
    wide = (e for e in record.exchanges if e.broad or e.with_broad)
    outside = next(
        (
            e.answer.suite
            for e in wide
            if _picked_in(e, protocol) and (e.broad or e.answer.suite not in catalogue.by_code)
        ),
        None,
    )
    if picks:
        outside = None
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
    if first is not None and first.alert == AlertDescription.insufficient_security:
        # "Your suites are too weak" is said in the protocol: it is spoken.
        return True
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
    certificates: tuple[bytes, ...],
    trust: TrustStore,
    name: str,
    now: dt.datetime,
    note: _Notes,
) -> tuple[ChainAnalysis | None, NameMatch | None, str | None]:
    """Chain and name analysis of the certificates as sent; (None, None, error) if unparsable."""
    if not certificates:
        return None, None, None
    try:
        chain = analyse_chain(certificates, trust, now)
    except CertificateParseError as exc:
        note(f"certificates: {exc}")
        return None, None, str(exc)
    leaf = chain.certificates[0]
    match = match_name(name, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
    note(f"chain: {chain.status}: {chain.detail}")
    note(f"name {name}: {'matches ' + str(match.matched_by) if match.ok else 'not covered'}")
    return chain, match, None
