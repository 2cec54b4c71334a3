"""The metrics contract: probe results in, Prometheus metric families out. No I/O here.

Every per-origin family is built by `ResultFamilies`, the one place that decides label names and
values, so the `/metrics` (with `origin`) and `/probe` (without) expositions cannot drift apart.
Names, labels and values are a public contract: see docs/metrics.md.
"""

from __future__ import annotations

import logging
import platform
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .engine.catalogue import CATALOGUE, Catalogue
from .engine.chain import ChainStatus
from .engine.result import Judgment
from .engine.s2n import TlsLibraryInfo, tls_library
from .engine.verdict import CloudFrontWarning, FailureReason
from .store import OriginState, ResultStore, SeenChain
from .view import Matrix, matrix, warnings_judged

PREFIX = "origin_tls"
log = logging.getLogger("origin_tls_exporter.metrics")
RESERVED_INFO_LABELS = ("origin", "host", "port", "sni")


@dataclass(frozen=True)
class Labelled:
    """One result and the constant labels that identify it (`origin`, or none for /probe)."""

    labels: dict[str, str]
    result: Judgment
    verdict_since: float | None = None  # when `compatible` took its value (the store knows)
    certificates: SeenChain | None = None  # the last chain seen, through failed probes


class ResultFamilies:
    """Builds every per-origin family; `base` are the identifying label names (or none)."""

    def __init__(self, base: Sequence[str], cipher_series: bool = True) -> None:
        self.base = tuple(base)
        self.cipher_series = cipher_series
        self._families: dict[str, GaugeMetricFamily] = {}

    def _family(
        self, name: str, documentation: str, labels: Sequence[str] = ()
    ) -> GaugeMetricFamily:
        family = self._families.get(name)
        if family is None:
            family = GaugeMetricFamily(
                f"{PREFIX}_{name}", documentation, labels=[*self.base, *labels]
            )
            self._families[name] = family
        return family

    def _set(
        self,
        name: str,
        documentation: str,
        base: dict[str, str],
        value: float,
        **labels: str,
    ) -> None:
        family = self._family(name, documentation, tuple(labels))
        values = [base[n] for n in self.base] + list(labels.values())
        family.add_metric(values, value)

    def add(self, item: Labelled) -> None:
        base, result = item.labels, item.result
        s = self._set
        s(
            "probe_success",
            "1 if the origin was reached and answered in TLS.",
            base,
            float(result.success),
        )
        s("probe_duration_seconds", "How long the last probe took.", base, result.duration_seconds)
        s("last_probe_timestamp_seconds", "When the last probe started.", base, result.started_at)
        s(
            "cloudfront_compatible",
            "1 if CloudFront can complete its handshake to the origin.",
            base,
            float(result.compatible),
        )
        if item.verdict_since is not None:
            s(
                "cloudfront_verdict_changed_timestamp_seconds",
                "When origin_tls_cloudfront_compatible last changed (the first probe counts).",
                base,
                item.verdict_since,
            )
        for reason in FailureReason:
            s(
                "cloudfront_failure_reason",
                "1 for each reason CloudFront cannot connect, 0 for the others.",
                base,
                float(reason in result.reasons),
                reason=str(reason),
            )
        if result.protocols:  # a claim about the suites only when they were measured
            s(
                "legacy_only",
                "1 if CloudFront connects only with SSLv3 or RC4/3DES suites.",
                base,
                float(result.legacy_only),
            )
        negotiation = result.negotiation
        if negotiation and negotiation.completed and negotiation.protocol and negotiation.suite:
            s(
                "negotiated_info",
                "The protocol, suite and group CloudFront would negotiate.",
                base,
                1.0,
                protocol=str(negotiation.protocol),
                cipher=negotiation.suite.name,
                group=negotiation.group or "",
            )
        self._add_cloudfront(base, result)
        self._add_around(base, result)
        table = matrix(result)
        if table is not None:
            self._add_matrix(base, table)
        self._add_certificates(base, result)
        self._add_seen_certificates(base, item)

    def _add_around(self, base: dict[str, str], result: Judgment) -> None:
        """Every address of the name, and the request CloudFront forwards."""
        s = self._set
        if result.addresses:
            s(
                "addresses",
                "Addresses the origin's name resolves to (probed).",
                base,
                float(len(result.addresses)),
            )
        for verdict in result.addresses:
            s(
                "address_compatible",
                "1 if CloudFront can connect to the origin at this address, 0 if not.",
                base,
                float(verdict.compatible),
                address=verdict.address,
            )
        http = result.http
        if http is None:
            return
        if http.status_code is not None:
            s(
                "http_status_code",
                "The status code of the origin's answer to the request.",
                base,
                float(http.status_code),
            )
        if http.first_byte_seconds is not None:
            s(
                "http_first_byte_seconds",
                "From the request to the first byte of the answer.",
                base,
                http.first_byte_seconds,
            )
        if http.response_seconds is not None:
            s(
                "http_response_seconds",
                "From the request to the whole answer (bounded).",
                base,
                http.response_seconds,
            )

    def _add_cloudfront(self, base: dict[str, str], result: Judgment) -> None:
        """CloudFront's own handshake (s2n-tls): the decisive one, each generation, warnings."""
        s = self._set
        decisive = result.cloudfront
        if decisive is not None and decisive.handshake.completed:
            handshake = decisive.handshake
            s(
                "cloudfront_handshake_info",
                "1: CloudFront's handshake (its TLS library, under the origin's policy) completed.",
                base,
                1.0,
                library=handshake.library,
                policy=handshake.policy,
                protocol=str(handshake.protocol or ""),
                cipher=handshake.cipher or "",
                group=handshake.group or "",
            )
        for outcome in result.generations:
            s(
                "cloudfront_policy_compatible",
                "1 if CloudFront can connect under the policy generation, 0 if not.",
                base,
                float(outcome.compatible),
                policy=outcome.generation,
            )
        if warnings_judged(result):
            seen = {warning for warning, _ in result.warnings}
            for warning in CloudFrontWarning:
                s(
                    "cloudfront_warning",
                    "1 for each current warning, 0 for the others (see docs/metrics.md).",
                    base,
                    float(warning in seen),
                    warning=str(warning),
                )

    def _add_matrix(self, base: dict[str, str], table: Matrix) -> None:
        for column in table.columns:
            protocol = column.protocol
            accepted = table.accepted(protocol)
            self._set(
                "protocol_accepted",
                "1 if the origin accepts a CloudFront suite under the protocol "
                "(TLSv1.3: any suite; information only).",
                base,
                float(bool(accepted)),
                protocol=str(protocol),
            )
            if not self.cipher_series:
                continue
            for (cell_protocol, _), cell in table.cells.items():
                if cell_protocol is not protocol:
                    continue
                self._set(
                    "cipher_accepted",
                    "1 if a full handshake with the suite under the protocol completes.",
                    base,
                    float(cell.state.usable),
                    protocol=str(protocol),
                    cipher=cell.suite.name,
                )

    def _add_certificates(self, base: dict[str, str], result: Judgment) -> None:
        match = result.name_match
        if match is not None:
            for field_name, matched in (("san", match.san), ("cn", match.cn)):
                self._set(
                    "cert_name_match",
                    "1 if the name CloudFront sends matches the leaf certificate's field.",
                    base,
                    float(matched),
                    field=field_name,
                )
        chain = result.chain
        if chain is None:
            return
        self._set(
            "chain_complete",
            "1 if the certificates as sent link the leaf to a trusted root.",
            base,
            float(chain.complete),
        )
        for status in ChainStatus:
            present = not chain.problems if status is ChainStatus.OK else status in chain.problems
            self._set(
                "chain_status",
                "1 for each current chain status, 0 for the others.",
                base,
                float(present),
                status=str(status),
            )

    def _add_seen_certificates(self, base: dict[str, str], item: Labelled) -> None:
        """The certificates' own facts, from this probe or (through a failed probe) the last
        one that saw them, with when that was."""
        if item.result.chain is not None:
            chain, seen_at = item.result.chain, item.result.started_at
        elif item.certificates is not None:
            chain, seen_at = item.certificates.chain, item.certificates.seen_at
        else:
            return
        self._set(
            "chain_last_seen_timestamp_seconds",
            "When the certificates below were seen: the last probe that got them.",
            base,
            seen_at,
        )
        self._set(
            "chain_certificates",
            "How many certificates the origin sends.",
            base,
            float(len(chain.certificates)),
        )
        if chain.earliest_expiry is not None:
            self._set(
                "chain_earliest_expiry_timestamp_seconds",
                "The earliest not_after of the certificates sent.",
                base,
                chain.earliest_expiry.timestamp(),
            )
        seen: set[tuple[str, str, str]] = set()
        weakest: dict[tuple[str, str], int] = {}
        for cert in chain.certificates:
            identity = (cert.position, cert.subject, cert.serial)
            if identity in seen:
                continue  # the same certificate sent twice: one series
            seen.add(identity)
            labels = {"position": cert.position, "subject": cert.subject, "serial": cert.serial}
            self._set(
                "cert_not_after_timestamp_seconds",
                "The certificate's not_after, per certificate sent.",
                base,
                cert.not_after.timestamp(),
                **labels,
            )
            self._set(
                "cert_not_before_timestamp_seconds",
                "The certificate's not_before, per certificate sent.",
                base,
                cert.not_before.timestamp(),
                **labels,
            )
            key = (cert.position, cert.key_type)
            weakest[key] = min(weakest.get(key, cert.key_bits), cert.key_bits)
        for (position, key_type), bits in weakest.items():
            self._set(
                "cert_key_size",
                "Key size in bits of the certificates sent (the smallest per position and type).",
                base,
                float(bits),
                position=position,
                type=key_type,
            )

    def families(self) -> list[Metric]:
        return list(self._families.values())


def result_families(
    items: Iterable[Labelled], base: Sequence[str], cipher_series: bool = True
) -> list[Metric]:
    builder = ResultFamilies(base, cipher_series)
    for item in items:
        builder.add(item)
    return builder.families()


class RenderError(RuntimeError):
    """The origins' exposition could not be rendered (a bug): /metrics answers 500."""


class OriginsCollector(Collector):
    """Exposes the store's latest results on each scrape; never probes, never raises.

    `render()` is the fast path /metrics uses: a result is immutable, so its samples are
    rendered once, when it first appears, and each scrape only concatenates them family by
    family (a thousand origins are ~80,000 samples: formatting them on every scrape would cost
    about a second). `collect()` gives the same families through the client library.
    """

    def __init__(self, store: ResultStore, cipher_series: bool = True) -> None:
        self.store = store
        self.cipher_series = cipher_series
        self.collect_errors = 0
        self._lock = threading.Lock()
        # origin -> (identity key, samples, the judgment itself, kept so its id stays unique)
        self._rendered: dict[str, tuple[tuple[object, ...], dict[str, bytes], Judgment]] = {}
        self._headers: dict[str, bytes] = {}

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.store.snapshot()
            yield _info_family(snapshot)
            items = [_labelled(state) for state in snapshot if state.latest is not None]
            yield from result_families(items, ("origin",), self.cipher_series)
        except Exception:  # a bug here must not fail the whole scrape
            self._failed("collect")

    def judged(self, origin: str, judgment: Judgment, probed: bool) -> None:
        """Render a new judgment now, so scrapes only concatenate (the scheduler's observer)."""
        self.prepare(origin)

    def prepare(self, origin: str) -> None:
        """Render an origin's latest state now (after its probe), so scrapes only concatenate."""
        state = self.store.state(origin)
        if state is None or state.latest is None:
            return
        try:
            with self._lock:
                self._samples(_labelled(state))
        except Exception:
            self._failed("prepare", origin)

    def render(self) -> bytes:
        """The origins' families in the text exposition format. Raises RenderError: a scrape
        must fail loudly (and `up` drop) rather than answer 200 without the origins."""
        try:
            return self._render()
        except Exception as exc:
            self._failed("render")
            raise RenderError(f"rendering the origins' metrics failed: {exc!r}") from exc

    def _failed(self, stage: str, origin: str | None = None) -> None:
        self.collect_errors += 1
        log.exception("metrics %s failed", stage, extra={"origin": origin or ""})

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def _render(self) -> bytes:
        snapshot = self.store.snapshot()
        families: dict[str, list[bytes]] = {}
        with self._lock:
            live = set()
            for state in snapshot:
                if state.latest is None:
                    continue
                live.add(state.config.name)
                for family, samples in self._samples(_labelled(state)).items():
                    families.setdefault(family, []).append(samples)
            for name in set(self._rendered) - live:
                del self._rendered[name]
            headers = dict(self._headers)
        info = render_families([_info_family(snapshot)])
        body = [info]
        for family, chunks in families.items():
            body.append(headers[family])
            body.extend(chunks)
        return b"".join(body)

    def _samples(self, item: Labelled) -> dict[str, bytes]:
        origin = item.labels["origin"]
        # Identity, not equality: judgments are immutable, and comparing them is not cheap.
        key = (id(item.result), item.verdict_since, id(item.certificates), self.cipher_series)
        cached = self._rendered.get(origin)
        if cached is not None and cached[0] == key and cached[2] is item.result:
            return cached[1]
        families = result_families([item], ("origin",), self.cipher_series)
        samples = {}
        for family in families:
            header, body = _render_family(family)
            self._headers.setdefault(family.name, header)
            samples[family.name] = body
        self._rendered[origin] = (key, samples, item.result)
        return samples


def _labelled(state: OriginState) -> Labelled:
    assert state.latest is not None
    return Labelled(
        {"origin": state.config.name}, state.latest, state.verdict_since, state.certificates
    )


def _info_family(snapshot: list[OriginState]) -> Metric:
    extra = sorted({name for s in snapshot for name, _ in s.config.labels})
    info = Metric(f"{PREFIX}_origin_info", "Configured origins and their labels.", "gauge")
    for state in snapshot:
        config = state.config
        labels = {
            "origin": config.name,
            "host": config.host,
            "port": str(config.port),
            "sni": config.target().server_name or "",
        }
        own = dict(config.labels)
        labels.update({name: own.get(name, "") for name in extra})
        info.add_sample(f"{PREFIX}_origin_info", labels, 1.0)
    return info


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render_families(families: list[Metric]) -> bytes:
    """The client library's own text formatting, for exactly these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def _render_family(family: Metric) -> tuple[bytes, bytes]:
    """One family through the client library's formatter: (HELP and TYPE lines, samples)."""
    help_line, type_line, samples = render_families([family]).split(b"\n", 2)
    return help_line + b"\n" + type_line + b"\n", samples


class SelfMetrics:
    """The exporter's own health, in the registry the daemon owns (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.probe_duration = Histogram(
            f"{PREFIX}_exporter_probe_duration_seconds",
            "Duration of origin probes.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.probes = Counter(
            f"{PREFIX}_exporter_probes",
            "Probes run, by whether CloudFront could connect.",
            ["result"],
            registry=registry,
        )
        self.probe_errors = Counter(
            f"{PREFIX}_exporter_probe_errors",
            "Failure reasons found by probes, plus internal_error for probe crashes.",
            ["reason"],
            registry=registry,
        )
        self.reload_successful = Gauge(
            f"{PREFIX}_exporter_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            f"{PREFIX}_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=registry,
        )
        self.origins = Gauge(
            f"{PREFIX}_exporter_origins",
            "Origins this replica probes (its shard of the configuration).",
            registry=registry,
        )
        self.origins_configured = Gauge(
            f"{PREFIX}_exporter_origins_configured",
            "Origins in the whole configuration (every shard), discovered ones included.",
            registry=registry,
        )
        self.shard_index = Gauge(
            f"{PREFIX}_exporter_shard_index",
            "This replica's --shard.index (0 when not sharded).",
            registry=registry,
        )
        self.shard_count = Gauge(
            # Not `_shard_count`: promtool reserves `_count` for histograms and summaries.
            f"{PREFIX}_exporter_shards",
            "This replica's --shard.count: how many shards split the configuration (1: none).",
            registry=registry,
        )
        self.web = Gauge(
            f"{PREFIX}_exporter_web_info",
            "1, with --web.external-url: where people reach this exporter (alert links).",
            ["external_url"],
            registry=registry,
        )
        build = Gauge(
            f"{PREFIX}_exporter_build_info",
            "Versions of the exporter and the TLS code it runs.",
            ["version", "python_version", "tlslite_version", "openssl_version"],
            registry=registry,
        )
        build.labels(
            __version__, platform.python_version(), _version("tlslite-ng"), ssl.OPENSSL_VERSION
        ).set(1)
        for reason in FailureReason:
            self.probe_errors.labels(str(reason))
        self.probe_errors.labels("internal_error")
        for outcome in ("compatible", "incompatible", "error"):
            self.probes.labels(outcome)

    def judged(self, origin: str, judgment: Judgment, probed: bool) -> None:
        """Count probes (not re-judgments), with a crash as `internal_error`."""
        if not probed:
            return
        self.probe_duration.observe(judgment.duration_seconds)
        outcome = "compatible" if judgment.compatible else "incompatible"
        if not judgment.success:
            outcome = "error"
        self.probes.labels(outcome).inc()
        for reason in judgment.reasons:
            self.probe_errors.labels(str(reason)).inc()
        stopped = judgment.observations.stopped
        if stopped is not None and stopped.kind == "internal_error":
            self.probe_errors.labels("internal_error").inc()

    def reloaded(self, ok: bool) -> None:
        self.reload_successful.set(1 if ok else 0)
        if ok:
            self.reload_timestamp.set(time.time())

    def serving(self, probed: int, configured: int) -> None:
        """What apply() made of the configuration: this replica's origins, and the fleet's."""
        self.origins.set(probed)
        self.origins_configured.set(configured)

    def identify(self, shard_index: int, shard_count: int, external_url: str) -> None:
        self.shard_index.set(shard_index)
        self.shard_count.set(shard_count)
        self.web.labels(external_url).set(1)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def new_registry(
    store: ResultStore, cipher_series: bool = True, catalogue: Catalogue = CATALOGUE
) -> tuple[CollectorRegistry, OriginsCollector, SelfMetrics]:
    """Self-metrics and process collectors in a registry; the origins collector beside it.

    The origins collector is not registered: /metrics renders it through its cached fast path
    and appends the registry's exposition.
    """
    # `_created` samples are not what Prometheus' text format means by a gauge family, and
    # nothing here needs them: off for the client library (a process-wide switch).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    collector = OriginsCollector(store, cipher_series)
    for shared in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(shared)
    registry.register(_RenderErrors(collector))
    registry.register(_Constants(catalogue, tls_library()))
    return registry, collector, SelfMetrics(registry)


class _Constants(Collector):
    """What does not change while the exporter runs: CloudFront's suites, the TLS library."""

    def __init__(self, catalogue: Catalogue, library: TlsLibraryInfo) -> None:
        suites = GaugeMetricFamily(
            f"{PREFIX}_cloudfront_cipher_info",
            "CloudFront's cipher suites (s2n-tls's CloudFront-Upstream), and whether AWS "
            "documents each.",
            labels=["cipher", "iana", "documented"],
        )
        for suite in catalogue.suites:
            suites.add_metric([suite.name, suite.iana_name, str(suite.documented).lower()], 1)
        tls = GaugeMetricFamily(
            f"{PREFIX}_exporter_tls_library_info",
            'The TLS library that makes CloudFront\'s handshake; library="none": the '
            "exporter's own analysis decides.",
            labels=["library", "version", "source"],
        )
        tls.add_metric([library.library, library.version, library.source], 1)
        self._families = [suites, tls]

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _RenderErrors(Collector):
    """`origin_tls_exporter_metrics_render_errors_total`: the origins collector's failures."""

    def __init__(self, collector: OriginsCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            f"{PREFIX}_exporter_metrics_render_errors",
            "Failures rendering the origins' metrics (each also logged); a bug to report.",
        )
        family.add_metric([], float(self.collector.collect_errors))
        yield family
