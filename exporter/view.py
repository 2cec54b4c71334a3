"""The one view model of a judgment: every fact a view shows, derived once.

`/metrics`, `/probe`, `check`'s text and JSON and the HTML pages only format what is here (the
matrix, the checklist, the name identifiers); none of them computes a state of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from .engine.catalogue import ALL_PROTOCOLS, CLOUDFRONT_PROTOCOLS, CipherSuite, Protocol
from .engine.result import GenerationOutcome, Judgment, ProtocolResult
from .engine.verdict import Category, FailureReason


class CellState(StrEnum):
    """One (protocol, suite) of CloudFront's offer."""

    ACCEPTED = "accepted"  # picked, and a complete handshake succeeded
    UNCONFIRMED = "unconfirmed"  # picked; no complete handshake made (confirm: negotiated)
    FAILED = "failed"  # picked, but the complete handshake failed
    REFUSED = "refused"  # not picked
    INVALID = "invalid"  # the suite does not exist under the protocol

    @property
    def usable(self) -> bool:
        """What `origin_tls_cipher_accepted` and the text matrix count as accepted."""
        return self in (CellState.ACCEPTED, CellState.UNCONFIRMED)


@dataclass(frozen=True)
class Cell:
    protocol: Protocol
    suite: CipherSuite
    state: CellState
    in_policy: bool
    negotiated: bool  # the suite CloudFront itself would complete its handshake with
    library: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Column:
    protocol: Protocol
    in_policy: bool
    spoken: bool | None
    note: str  # why, when the column has no accepted suite worth explaining
    result: ProtocolResult


@dataclass(frozen=True)
class Matrix:
    """Every probed protocol: its column, and a cell per catalogue suite valid under it."""

    columns: tuple[Column, ...]
    rows: tuple[CipherSuite, ...]  # CloudFront's suites (TLS 1.0-1.2), in its order
    cells: dict[tuple[Protocol, str], Cell]

    def column(self, protocol: Protocol) -> Column | None:
        return next((c for c in self.columns if c.protocol is protocol), None)

    def cell(self, protocol: Protocol, suite: CipherSuite) -> Cell:
        found = self.cells.get((protocol, suite.name))
        if found is None:
            column = self.column(protocol)
            return Cell(
                protocol, suite, CellState.INVALID, bool(column and column.in_policy), False
            )
        return found

    @property
    def cloudfront_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.protocol in CLOUDFRONT_PROTOCOLS)

    def accepted(self, protocol: Protocol) -> tuple[CipherSuite, ...]:
        """The usable suites under `protocol`, in the order the server picked them."""
        column = self.column(protocol)
        return column.result.accepted_suites if column else ()


def matrix(judgment: Judgment) -> Matrix | None:
    if not judgment.protocols:
        return None
    catalogue = judgment.catalogue
    n = judgment.negotiation
    chosen = (n.protocol, n.suite.name) if n and n.completed and n.protocol and n.suite else None
    columns = []
    cells: dict[tuple[Protocol, str], Cell] = {}
    for protocol in ALL_PROTOCOLS:
        result = judgment.protocol(protocol)
        if result is None:
            continue
        columns.append(Column(protocol, result.in_policy, result.spoken, _note(result), result))
        for suite in catalogue.suites_for(protocol):
            cells[(protocol, suite.name)] = _cell(result, suite, chosen)
    return Matrix(tuple(columns), catalogue.suites, cells)


def _note(result: ProtocolResult) -> str:
    if result.outside_suite:
        return f"picked {result.outside_suite}, not a CloudFront suite"
    if result.error:
        return result.error
    if not result.spoken and result.refusal:
        return result.refusal
    return ""


def _cell(result: ProtocolResult, suite: CipherSuite, chosen: tuple[Protocol, str] | None) -> Cell:
    negotiated = chosen == (result.protocol, suite.name)
    for picked in result.picked:
        if picked.suite.name != suite.name:
            continue
        if picked.confirmed is False:
            state = CellState.FAILED
        elif picked.confirmed is None:
            state = CellState.UNCONFIRMED
        else:
            state = CellState.ACCEPTED
        return Cell(
            result.protocol,
            suite,
            state,
            result.in_policy,
            negotiated and state is not CellState.FAILED,
            picked.backend,
            picked.error,
        )
    return Cell(result.protocol, suite, CellState.REFUSED, result.in_policy, False)


@dataclass(frozen=True)
class Check:
    """One line of the checklist: a cause from the article and how this origin fares."""

    title: str
    category: Category
    passed: bool | None  # None: could not be checked
    finding: str
    reasons: tuple[FailureReason, ...] = ()

    @property
    def mark(self) -> str:
        return "SKIP" if self.passed is None else "PASS" if self.passed else "FAIL"


_NO_CERTIFICATE = "not checked: no TLS 1.0-1.2 handshake got as far as the certificate"


def checklist(judgment: Judgment, now: dt.datetime) -> tuple[Check, ...]:
    """The article's causes, in its order, then expiry."""
    return tuple(
        check
        for check in (
            _connection_check(judgment),
            _handshake_check(judgment),
            _name_check(judgment),
            _chain_check(judgment),
            _dates_check(judgment, now),
        )
        if check is not None
    )


def _of(judgment: Judgment, *categories: Category) -> tuple[FailureReason, ...]:
    return tuple(r for r in judgment.reasons if r.category in categories)


def _connection_check(judgment: Judgment) -> Check:
    """DNS and TCP, before any TLS: the exporter connects from its own address, CloudFront
    from its published origin-facing ranges, so a firewall may treat them differently."""
    reasons = _of(judgment, Category.CONNECTION)
    address = judgment.address or judgment.target.address
    if reasons:
        finding = (
            f"{judgment.error or reasons[0].summary}. This exporter connects from its own "
            "address; CloudFront connects from its published origin-facing IP ranges, which "
            "the origin's firewall must allow."
        )
    else:
        finding = f"{judgment.target.host} resolves to {address}; the TCP connection opens"
    return Check("Connection", Category.CONNECTION, not reasons, finding, reasons)


def _handshake_check(judgment: Judgment) -> Check:
    if _of(judgment, Category.CONNECTION):
        return Check(
            "Protocols and cipher suites",
            Category.PROTOCOL,
            None,
            "not checked: no connection to the origin",
        )
    reasons = _of(judgment, Category.PROTOCOL)
    negotiation = judgment.negotiation
    if reasons:
        finding = (
            judgment.error
            or _protocol_finding(judgment, reasons[0])
            or (negotiation.error if negotiation and negotiation.error else None)
            or reasons[0].summary
        )
    elif negotiation is not None and negotiation.protocol and negotiation.suite:
        group = f", group {negotiation.group}" if negotiation.group else ""
        finding = (
            f"CloudFront would negotiate {negotiation.protocol} {negotiation.suite.name}{group}; "
            "the full handshake completes"
        )
    else:
        finding = "no handshake result"
    return Check("Protocols and cipher suites", Category.PROTOCOL, not reasons, finding, reasons)


def _protocol_finding(judgment: Judgment, reason: FailureReason) -> str | None:
    """Say what the origin does speak, so the remedy is concrete."""
    policy = ", ".join(str(p) for p in judgment.target.protocols)
    spoken = [p for p in judgment.protocols if p.spoken]
    if reason is FailureReason.NO_COMMON_PROTOCOL:
        names = ", ".join(str(p.protocol) for p in spoken) or "no TLS version CloudFront knows"
        return f"the policy enables {policy}; the origin speaks {names}"
    if reason is FailureReason.NO_COMMON_CIPHER:
        parts = [
            f"{p.protocol} (picked {p.outside_suite} instead)"
            if p.outside_suite
            else str(p.protocol)
            for p in spoken
            if p.in_policy
        ]
        return (
            f"the origin speaks {', '.join(parts)} but accepts none of CloudFront's "
            f"{len(judgment.catalogue.suites)} suites"
        )
    return None


def _name_check(judgment: Judgment) -> Check:
    """PASS or FAIL is the judge's (its name reasons); the exporter's own match explains it,
    and says so where CloudFront's library decided otherwise."""
    match = judgment.name_match
    leaf = judgment.chain.certificates[0] if judgment.chain else None
    if match is None or leaf is None:
        return Check("Certificate name", Category.NAME, None, _NO_CERTIFICATE)
    reasons = _of(judgment, Category.NAME)
    if match.ok:
        field = "SAN" if match.san else "CN"
        finding = f"{match.name!r} matches {field} {match.matched_by!r}"
    else:
        covered = f"CN {list(leaf.common_names)}, SANs {[*leaf.dns_names, *leaf.ip_addresses]}"
        finding = f"{match.name!r} is not covered by {covered}"
    if match.ok == bool(reasons):
        source = dict(reasons_with_sources(judgment)).get(reasons[0]) if reasons else "s2n-tls"
        verdict = "rejects" if reasons else "accepts"
        finding += f" (the exporter's own match); CloudFront's library ({source}) {verdict} it"
    return Check("Certificate name", Category.NAME, not reasons, finding, reasons)


def _chain_check(judgment: Judgment) -> Check:
    chain = judgment.chain
    if chain is None:
        return Check("Certificate chain", Category.CHAIN, None, _NO_CERTIFICATE)
    reasons = _of(judgment, Category.CHAIN)
    return Check("Certificate chain", Category.CHAIN, not reasons, chain.detail, reasons)


def _dates_check(judgment: Judgment, now: dt.datetime) -> Check | None:
    chain = judgment.chain
    if chain is None or chain.earliest_expiry is None:
        return None
    reasons = _of(judgment, Category.DATES)
    days = (chain.earliest_expiry - now).total_seconds() / 86400
    soonest = min(chain.certificates, key=lambda c: c.not_after)
    finding = (
        f"earliest expiry {iso(chain.earliest_expiry)} ({days:.0f} days) "
        f"for {soonest.position} {soonest.subject}"
    )
    if reasons:
        finding = f"{', '.join(reasons)}: {finding}"
    return Check("Certificate dates", Category.DATES, not reasons, finding, reasons)


def viewer_status(judgment: Judgment) -> int | None:
    """The HTTP status viewers get from CloudFront: 504 when it gives up waiting, else 502;
    None when CloudFront can connect."""
    if judgment.compatible:
        return None
    statuses = [r.http_status for r in judgment.reasons]
    return 504 if 504 in statuses else 502


def reasons_with_sources(judgment: Judgment) -> tuple[tuple[FailureReason, str], ...]:
    """Each reason with who says it fails CloudFront (s2n-tls, AWS's documentation, or the
    exporter's own analysis when there is no s2n-tls to ask)."""
    sources = judgment.sources or ("exporter",) * len(judgment.reasons)
    return tuple((r, str(s)) for r, s in zip(judgment.reasons, sources, strict=True))


def handshake_line(outcome: GenerationOutcome) -> str:
    """CloudFront's handshake under one generation, in one line."""
    h = outcome.handshake
    if h.completed:
        group = f", group {h.group}" if h.group else ""
        verdict = "connects" if outcome.compatible else "connects, but AWS documents a 502"
        return f"{verdict}: {h.protocol} {h.cipher}{group}"
    alert = f", alert {h.alert}" if h.alert is not None else ""
    return f"fails: {h.error}{alert}"


def request_line(judgment: Judgment) -> str:
    """`GET / (Host: www.example.com)`: what CloudFront forwards after its handshake."""
    target = judgment.target
    if target.request is None:
        return "(none)"
    return f"{target.request.method} {target.request.path} (Host: {target.sni or target.host})"


def warnings_judged(judgment: Judgment) -> bool:
    """A stopped probe judged no warning: the warning series stay absent rather than 0."""
    return judgment.observations.stopped is None


def iso(moment: dt.datetime | float) -> str:
    if isinstance(moment, float | int):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def spoken_word(spoken: bool | None, unknown: str = "?") -> str:
    return "yes" if spoken else "no" if spoken is False else unknown
