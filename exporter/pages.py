"""The pages for people: the fleet at a glance (`/`) and one origin's troubleshooting page.

Server-rendered with Jinja2 (autoescaping on: origin names, labels and every certificate field
are untrusted), no JavaScript, no external assets; filtering and sorting are plain query
parameters. This module only turns store contents into HTML; `web_pages` serves it.

Everything a template shows is computed here into small immutable view objects, so templates
stay declarative and the logic (sorting, expiry colours, the cipher matrix) is testable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar
from urllib.parse import quote, urlencode

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from .config import OriginConfig, format_duration
from .engine.catalogue import Protocol
from .engine.certs import CertificateFacts
from .engine.names import Identifier
from .engine.result import Judgment
from .engine.verdict import FailureReason
from .reproduce import openssl_commands
from .sharding import Shard
from .store import HistoryEntry, OriginState
from .view import Cell as ViewCell
from .view import (
    CellState,
    checklist,
    handshake_line,
    matrix,
    reasons_with_sources,
    spoken_word,
    viewer_status,
)

__all__ = [
    "HISTORY_SHOWN",
    "IndexQuery",
    "origin_path",
    "render_index",
    "render_not_found",
    "render_origin",
]

#: how many recent probes (and, apart, failed probes) an origin page shows
HISTORY_SHOWN = 10
#: soonest expiry colours: red below this many days (or expired), amber below the second
EXPIRY_RED_DAYS = 7
EXPIRY_AMBER_DAYS = 21

Status = Literal["failing", "compatible", "pending"]
SortKey = Literal["name", "verdict", "expiry", "last"]
VerdictFilter = Literal["all", "failing", "compatible", "pending"]

_SORT_KEYS: tuple[SortKey, ...] = ("name", "verdict", "expiry", "last")
_VERDICT_FILTERS: tuple[VerdictFilter, ...] = ("all", "failing", "compatible", "pending")
_STATUS_ORDER: dict[Status, int] = {"failing": 0, "pending": 1, "compatible": 2}
_SORTABLE: tuple[tuple[SortKey, str], ...] = (
    ("name", "Origin"),
    ("verdict", "Verdict"),
    ("expiry", "Soonest expiry"),
    ("last", "Last probe"),
)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("exporter", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


def origin_path(name: str) -> str:
    """`/origin/<name>` with every reserved character quoted (names may contain `/`)."""
    return "/origin/" + quote(name, safe="")


def _utc(moment: dt.datetime | float) -> str:
    if isinstance(moment, float | int):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc_short(moment: float, now: dt.datetime) -> str:
    """The time of day for a moment of today (UTC), else the full time."""
    at = dt.datetime.fromtimestamp(moment, dt.UTC)
    return f"{at:%H:%M:%S} UTC" if at.date() == now.astimezone(dt.UTC).date() else _utc(at)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _days(count: int) -> str:
    return "day" if count == 1 else "days"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# --- shared views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: str
    summary: str
    remedy: str
    source: str = ""  # who says it fails CloudFront: s2n-tls, aws-documentation, exporter

    @classmethod
    def of(cls, reason: FailureReason, source: str = "") -> Reason:
        return cls(str(reason), reason.summary, reason.remedy, source)


@dataclass(frozen=True)
class CloudFrontView:
    """Who decided, CloudFront's own handshake under each generation, warnings and notes."""

    decided_by: str
    library: str | None  # e.g. "s2n-tls (awscrt 0.38.1)"; None: no library here
    library_missing: str | None  # why there is none
    viewer_status: int | None
    decisive: str | None  # "CloudFront-Upstream-TLS-1-0: connects: TLSv1.2 ..."
    generations: tuple[tuple[str, bool, str], ...]  # (generation, compatible, line)
    warnings: tuple[tuple[str, str, str], ...]  # (warning, summary, detail)
    disagreements: tuple[str, ...]


def _cloudfront_view(result: Judgment) -> CloudFrontView:
    library = result.tls_library
    return CloudFrontView(
        decided_by=result.decided_by,
        library=f"{library.library} ({library.source} {library.version})"
        if library and library.library != "none"
        else None,
        library_missing=library.reason if library and library.library == "none" else None,
        viewer_status=viewer_status(result),
        decisive=f"{result.cloudfront.policy}: {handshake_line(result.cloudfront)}"
        if result.cloudfront
        else None,
        generations=tuple(
            (g.generation, g.compatible, handshake_line(g)) for g in result.generations
        ),
        warnings=tuple((str(w), w.summary, detail) for w, detail in result.warnings),
        disagreements=result.disagreements,
    )


@dataclass(frozen=True)
class Expiry:
    """A moment a certificate stops being valid, with how close it is."""

    date: str  # YYYY-MM-DD
    moment: str  # full UTC time
    days: float  # negative once expired
    level: Literal["bad", "warn", "ok"]

    @property
    def left(self) -> str:
        days = round(self.days)
        if self.days < 0:
            return "expired today" if days == 0 else f"expired {-days} {_days(-days)} ago"
        return "expires today" if days == 0 else f"{days} {_days(days)} left"

    @classmethod
    def of(cls, moment: dt.datetime, now: dt.datetime) -> Expiry:
        days = (moment - now).total_seconds() / 86400
        level: Literal["bad", "warn", "ok"] = (
            "bad" if days < EXPIRY_RED_DAYS else "warn" if days < EXPIRY_AMBER_DAYS else "ok"
        )
        return cls(f"{moment.astimezone(dt.UTC):%Y-%m-%d}", _utc(moment), days, level)


def _status(result: Judgment | None) -> Status:
    if result is None:
        return "pending"
    return "compatible" if result.compatible else "failing"


def _labels(config: OriginConfig) -> tuple[str, ...]:
    return tuple(f"{key}={value}" for key, value in config.labels)


# --- the index --------------------------------------------------------------------------------


_T = TypeVar("_T", bound=str)


def _pick(allowed: tuple[_T, ...], value: str | None, default: _T) -> _T:
    return next((choice for choice in allowed if choice == value), default)


@dataclass(frozen=True)
class IndexQuery:
    """The landing page's query string, validated: unknown values fall back to the defaults."""

    q: str = ""
    verdict: VerdictFilter = "all"
    sort: SortKey = "verdict"
    desc: bool = False

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> IndexQuery:
        verdict = _pick(_VERDICT_FILTERS, query.get("verdict"), "all")
        sort = _pick(_SORT_KEYS, query.get("sort"), "verdict")
        desc = query.get("desc", "") in ("1", "true", "yes")
        return cls(query.get("q", "").strip()[:200], verdict, sort, desc)

    def href(self, **changes: str | bool) -> str:
        """`/?...` with these changes, defaults left out so links stay short."""
        fields: dict[str, str | bool] = {
            "q": self.q,
            "verdict": self.verdict,
            "sort": self.sort,
            "desc": self.desc,
        }
        fields.update(changes)
        params = [
            (key, "1" if value is True else str(value))
            for key, value in fields.items()
            if value not in ("", False) and (key, value) not in (("verdict", "all"),)
        ]
        return "/?" + urlencode(params) if params else "/"


@dataclass(frozen=True)
class Column:
    """A sortable column header: its link and whether the table is sorted by it."""

    key: SortKey
    title: str
    href: str
    active: bool
    desc: bool


@dataclass(frozen=True)
class IndexRow:
    name: str
    href: str
    labels: tuple[str, ...]
    endpoint: str  # host:port as configured
    address: str | None  # where the probe connected (resolve map or DNS)
    status: Status
    verdict: str
    reasons: tuple[Reason, ...] = ()
    error: str | None = None
    legacy_only: bool = False
    expiry: Expiry | None = None
    protocol: str | None = None  # what CloudFront negotiates, when the handshake completes
    suite: str | None = None
    group: str | None = None
    last_at: float | None = None  # unix time the last probe started
    last: str | None = None  # full UTC time
    last_short: str | None = None  # the time of day when it was today (UTC)
    last_ago: str | None = None
    duration: str | None = None

    def matches(self, needle: str) -> bool:
        haystack = [
            self.name,
            self.endpoint,
            self.address or "",
            self.verdict,
            self.error or "",
            self.protocol or "",
            self.suite or "",
            *self.labels,
            *(r.code for r in self.reasons),
        ]
        return any(needle in value.casefold() for value in haystack)


_VERDICT_TEXT: dict[Status, str] = {
    "failing": "cannot connect",
    "compatible": "connects",
    "pending": "pending",
}


def _index_row(state: OriginState, now: dt.datetime) -> IndexRow:
    config, result = state.config, state.latest
    status = _status(result)
    row = IndexRow(
        name=config.name,
        href=origin_path(config.name),
        labels=_labels(config),
        endpoint=config.target().display,
        address=config.address,
        status=status,
        verdict=_VERDICT_TEXT[status],
    )
    if result is None:
        return row
    chain = result.chain
    n = result.negotiation
    completed = n is not None and n.completed and n.protocol and n.suite
    return replace(
        row,
        address=result.address or config.address,
        reasons=tuple(Reason.of(r) for r in result.reasons),
        error=result.error,
        legacy_only=result.compatible and result.legacy_only,
        expiry=Expiry.of(chain.earliest_expiry, now)
        if chain is not None and chain.earliest_expiry is not None
        else None,
        protocol=str(n.protocol) if completed and n else None,
        suite=n.suite.name if completed and n and n.suite else None,
        group=n.group if completed and n else None,
        last_at=result.started_at,
        last=_utc(result.started_at),
        last_short=_utc_short(result.started_at, now),
        last_ago=_ago(now.timestamp() - result.started_at - result.duration_seconds),
        duration=_duration(result.duration_seconds),
    )


def _sorted(rows: list[IndexRow], key: SortKey, desc: bool) -> list[IndexRow]:
    by_name = sorted(rows, key=lambda r: (r.name.casefold(), r.name))
    if key == "name":
        return by_name[::-1] if desc else by_name
    if key == "verdict":
        ordered = sorted(by_name, key=lambda r: (_STATUS_ORDER[r.status], -len(r.reasons)))
        return ordered[::-1] if desc else ordered
    # expiry: soonest first; last: stalest first. Rows without the value always go last.
    if key == "expiry":
        present = [r for r in by_name if r.expiry is not None]
        present.sort(key=lambda r: r.expiry.days if r.expiry else 0.0, reverse=desc)
        return present + [r for r in by_name if r.expiry is None]
    present = [r for r in by_name if r.last_at is not None]
    present.sort(key=lambda r: r.last_at or 0.0, reverse=desc)
    return present + [r for r in by_name if r.last_at is None]


REFRESH_SECONDS = 30
"""How often the status pages reload themselves (a meta refresh: no script)."""


def render_index(
    states: Sequence[OriginState],
    query: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    shard: Shard | None = None,
    configured: int | None = None,
) -> str:
    """The landing page: every origin, filtered and sorted as the query string asks."""
    now = now or dt.datetime.now(dt.UTC)
    ask = IndexQuery.parse(query or {})
    rows = [_index_row(state, now) for state in states]
    counts = {status: sum(r.status == status for r in rows) for status in _STATUS_ORDER}
    shown = [r for r in rows if ask.verdict in ("all", r.status)]
    if ask.q:
        needle = ask.q.casefold()
        shown = [r for r in shown if r.matches(needle)]
    columns = [
        Column(
            key,
            title,
            ask.href(sort=key, desc=not ask.desc if ask.sort == key else False),
            ask.sort == key,
            ask.desc,
        )
        for key, title in _SORTABLE
    ]
    return _ENV.get_template("index.html").render(
        rows=_sorted(shown, ask.sort, ask.desc),
        total=len(rows),
        failing=counts["failing"],
        pending=counts["pending"],
        compatible=counts["compatible"],
        expiring=sum(1 for r in rows if r.expiry is not None and r.expiry.level != "ok"),
        query=ask,
        filters=_VERDICT_FILTERS,
        columns={c.key: c for c in columns},
        now=_utc(now),
        refresh_seconds=REFRESH_SECONDS,
        shard=shard if shard is not None and shard.count > 1 else None,
        configured=configured if configured is not None else len(rows),
    )


# --- one origin ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckView:
    title: str
    mark: str  # PASS, FAIL or SKIP
    finding: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class NameView:
    checked: str
    ok: bool
    matched_by: str | None
    matched_field: str | None  # "SAN" or "CN"
    common_names: tuple[Identifier, ...]
    sans: tuple[Identifier, ...]


@dataclass(frozen=True)
class CertificateView:
    index: int
    position: str
    subject: str
    issuer: str
    common_names: tuple[str, ...]
    sans: tuple[str, ...]
    not_before: str
    not_after: str
    expiry: Expiry
    key: str
    signature_algorithm: str
    serial: str
    sha256: str
    is_ca: bool
    self_signed: bool
    aia_ca_issuers: tuple[str, ...]

    @classmethod
    def of(cls, cert: CertificateFacts, now: dt.datetime) -> CertificateView:
        key = f"{cert.key_type} {cert.key_bits}" if cert.key_bits else cert.key_type
        if cert.key_curve:
            key += f" ({cert.key_curve})"
        return cls(
            index=cert.index,
            position=cert.position,
            subject=cert.subject,
            issuer=cert.issuer,
            common_names=cert.common_names,
            sans=(*cert.dns_names, *cert.ip_addresses),
            not_before=_utc(cert.not_before),
            not_after=_utc(cert.not_after),
            expiry=Expiry.of(cert.not_after, now),
            key=key,
            signature_algorithm=cert.signature_algorithm,
            serial=cert.serial,
            sha256=cert.sha256_fingerprint,
            is_ca=cert.is_ca,
            self_signed=cert.self_signed,
            aia_ca_issuers=cert.aia_ca_issuers,
        )


@dataclass(frozen=True)
class ChainView:
    status: str
    ok: bool
    problems: tuple[str, ...]
    complete: bool
    detail: str
    path: tuple[str, ...]
    missing_issuer: str | None
    missing_issuer_url: str | None
    missing_after: int | None  # the sent certificate whose issuer is missing
    certificates: tuple[CertificateView, ...]


@dataclass(frozen=True)
class Cell:
    state: CellState
    text: str
    detail: str  # tooltip and screen-reader text: how it was established
    policy: bool  # the protocol is in the origin protocol policy
    negotiated: bool  # the suite CloudFront itself would negotiate


@dataclass(frozen=True)
class MatrixColumn:
    protocol: str
    policy: bool
    spoken: str  # "yes", "no", "unknown"
    note: str  # refusal, error, or the non-CloudFront suite it picked


@dataclass(frozen=True)
class MatrixRow:
    suite: str
    iana: str
    legacy: bool
    authentication: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Matrix:
    columns: tuple[MatrixColumn, ...]
    rows: tuple[MatrixRow, ...]
    tls13_spoken: str | None  # None: TLSv1.3 not probed
    tls13_suites: tuple[str, ...]


@dataclass(frozen=True)
class NegotiationView:
    protocol: str | None
    suite: str | None
    iana: str | None
    group: str | None
    completed: bool
    error: str | None


@dataclass(frozen=True)
class ProbeView:
    """One past probe from the store's history."""

    sequence: int
    at: str
    status: Status
    verdict: str
    reasons: tuple[str, ...]
    error: str | None
    duration: str
    connections: int
    log: str


def _checks(result: Judgment, now: dt.datetime) -> tuple[CheckView, ...]:
    views = []
    for check in checklist(result, now):
        views.append(
            CheckView(
                check.title, check.mark, check.finding, tuple(Reason.of(r) for r in check.reasons)
            )
        )
    return tuple(views)


def _name_view(result: Judgment) -> NameView | None:
    match = result.name_match
    if match is None or not result.identifiers:
        return None
    cns = tuple(i for i in result.identifiers if i.kind == "CN")
    sans = tuple(i for i in result.identifiers if i.kind != "CN")
    matched_field = "SAN" if match.san else "CN" if match.cn else None
    return NameView(match.name, match.ok, match.matched_by, matched_field, cns, sans)


def _chain_view(result: Judgment, now: dt.datetime) -> ChainView | None:
    chain = result.chain
    if chain is None:
        return None
    missing_after = None
    if chain.missing_issuer is not None:
        tops = [c.index for c in chain.certificates if c.issuer == chain.missing_issuer]
        missing_after = tops[-1] if tops else len(chain.certificates) - 1
    return ChainView(
        status=str(chain.status),
        ok=not chain.problems,
        problems=tuple(str(p) for p in chain.problems),
        complete=chain.complete,
        detail=chain.detail,
        path=chain.path,
        missing_issuer=chain.missing_issuer,
        missing_issuer_url=chain.missing_issuer_url,
        missing_after=missing_after,
        certificates=tuple(CertificateView.of(c, now) for c in chain.certificates),
    )


_CELL_TEXT = {
    CellState.ACCEPTED: "accepted",
    CellState.UNCONFIRMED: "picked",
    CellState.FAILED: "picked, handshake failed",
    CellState.REFUSED: "\N{EN DASH}",
    CellState.INVALID: "n/a",
}


def _cell_view(cell: ViewCell) -> Cell:
    how = f" ({cell.library})" if cell.library else ""
    if cell.state is CellState.FAILED:
        why = f": {cell.error}" if cell.error else ""
        title = f"full handshake{how}{why}"
    elif cell.state is CellState.UNCONFIRMED:
        title = "server picked it; no full handshake made"
    elif cell.state is CellState.ACCEPTED:
        title = f"full handshake{how} completed"
    elif cell.state is CellState.REFUSED:
        title = "not accepted"
    else:
        title = "not defined for this protocol"
    return Cell(cell.state, _CELL_TEXT[cell.state], title, cell.in_policy, cell.negotiated)


def _matrix(result: Judgment) -> Matrix | None:
    table = matrix(result)
    columns = table.cloudfront_columns if table else ()
    if table is None or not columns:
        return None
    rows = tuple(
        MatrixRow(
            suite.name,
            suite.iana_name,
            suite.legacy,
            suite.authentication,
            tuple(_cell_view(table.cell(c.protocol, suite)) for c in columns),
        )
        for suite in table.rows
    )
    tls13 = table.column(Protocol.TLSv1_3)
    return Matrix(
        columns=tuple(
            MatrixColumn(str(c.protocol), c.in_policy, spoken_word(c.spoken, "unknown"), c.note)
            for c in columns
        ),
        rows=rows,
        tls13_spoken=None if tls13 is None else spoken_word(tls13.spoken, "unknown"),
        tls13_suites=tuple(s.name for s in table.accepted(Protocol.TLSv1_3)),
    )


def _negotiation(result: Judgment) -> NegotiationView | None:
    n = result.negotiation
    if n is None:
        return None
    return NegotiationView(
        protocol=str(n.protocol) if n.protocol else None,
        suite=n.suite.name if n.suite else None,
        iana=n.suite.iana_name if n.suite else None,
        group=n.group,
        completed=n.completed,
        error=n.error,
    )


@dataclass(frozen=True)
class LastProbe:
    at: str
    ago: str
    duration: str
    connections: int
    address: str | None
    error: str | None
    legacy_only: bool


def _last_probe(result: Judgment, now: dt.datetime) -> LastProbe:
    return LastProbe(
        at=_utc(result.started_at),
        ago=_ago(now.timestamp() - result.started_at - result.duration_seconds),
        duration=_duration(result.duration_seconds),
        connections=result.connections,
        address=result.address,
        error=result.error,
        legacy_only=result.compatible and result.legacy_only,
    )


def _probe_view(entry: HistoryEntry) -> ProbeView:
    result = entry.result
    status = _status(result)
    return ProbeView(
        sequence=entry.sequence,
        at=_utc(result.started_at),
        status=status,
        verdict=_VERDICT_TEXT[status],
        reasons=tuple(str(r) for r in result.reasons),
        error=result.error,
        duration=_duration(result.duration_seconds),
        connections=result.connections,
        log="\n".join(result.log),
    )


def render_origin(
    state: OriginState,
    history: Sequence[HistoryEntry] = (),
    failures: Sequence[HistoryEntry] = (),
    now: dt.datetime | None = None,
) -> str:
    """One origin's troubleshooting page; `history` and `failures` newest first."""
    now = now or dt.datetime.now(dt.UTC)
    config, result = state.config, state.latest
    target = result.target if result is not None else config.target()
    status = _status(result)
    policy = tuple(str(p) for p in target.protocols)
    commands = openssl_commands(target, result.catalogue) if result else openssl_commands(target)
    return _ENV.get_template("origin.html").render(
        name=config.name,
        labels=_labels(config),
        endpoint=target.display,
        sni=target.server_name,
        checked_name=target.checked_name,
        policy=policy,
        configured_address=config.address,
        client_certificate_missing=config.client_certificate_missing,
        unread_policies=config.unread_policies,
        interval=format_duration(config.interval),
        timeout=format_duration(config.timeout),
        status=status,
        verdict=_VERDICT_TEXT[status],
        result=_last_probe(result, now) if result else None,
        reasons=tuple(Reason.of(r, src) for r, src in reasons_with_sources(result))
        if result
        else (),
        cloudfront=_cloudfront_view(result) if result else None,
        checks=_checks(result, now) if result else (),
        names=_name_view(result) if result else None,
        chain=_chain_view(result, now) if result else None,
        matrix=_matrix(result) if result else None,
        negotiation=_negotiation(result) if result else None,
        commands=tuple(zip(policy, commands, strict=True)),
        history=tuple(_probe_view(e) for e in history[:HISTORY_SHOWN]),
        failures=tuple(_probe_view(e) for e in failures[:HISTORY_SHOWN]),
        now=_utc(now),
        refresh_seconds=REFRESH_SECONDS,
        since=_since(state.verdict_since, now),
    )


def _since(moment: float | None, now: dt.datetime) -> str | None:
    """ "2026-12-01 20:31 UTC (4 min ago)": when the verdict took its current value."""
    if moment is None:
        return None
    return f"{_utc(moment)} ({_ago(now.timestamp() - moment)})"


def render_runbooks(markdown: str, now: dt.datetime | None = None) -> str:
    """docs/alerts.md as a page: the alerts' `runbook_url` links here (`/docs/alerts#NAME`).

    The Markdown is the project's own (shipped in the package), so its HTML anchors are kept;
    the page's Content-Security-Policy still allows no script."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return _ENV.get_template("runbooks.html").render(
        body=Markup(body), root="../", now=_utc(now or dt.datetime.now(dt.UTC))
    )


def render_not_found(name: str, now: dt.datetime | None = None) -> str:
    return _ENV.get_template("not_found.html").render(
        name=name, now=_utc(now or dt.datetime.now(dt.UTC))
    )
