"""The monitoring bundle end to end: the real exporter demo, a real Prometheus loading the shipped
rules, a real Alertmanager with the shipped routing, and a webhook receiver run by the test.

Checks that every PromQL expression of both Grafana dashboards returns data (template variables
substituted as Grafana would), that the variable queries find the demo's origins, and that the
alerts the demo fleet deserves reach the right receiver (and no other alert does). The shipped
rule files are loaded with every `for:` shortened, so that alerts fire within seconds.

The first tests are static checks of the dashboards and provisioning files (no servers).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.engine.verdict import FailureReason
from tests.alertmanager_process import AlertmanagerProcess, Notification, WebhookReceiver
from tests.daemon_process import ExporterProcess, http, parse_exposition
from tests.pending_metrics import PENDING_METRICS, RETIRED_METRICS
from tests.prometheus_process import PrometheusProcess
from tests.servers import free_port

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = REPO / "grafana" / "provisioning"
RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
METRICS_DOC = REPO / "docs" / "metrics.md"

SHORT_FOR = "2s"
#: the demo's probe interval: a probe's deadline is its interval, and the demo's origins share
#: its process, so a short one turns probes into timeouts (and OriginTLSTimeout alerts) when
#: the machine is busy; 10 s is 50 times what a demo probe takes, and the first probes still
#: start within the scheduler's 5 s spread
DEMO_INTERVAL = "10s"
DEMO_ORIGINS = (
    "good",
    "name-mismatch",
    "missing-intermediate",
    "expired",
    "expiring-soon",
    "no-common-cipher",
    "undocumented-suites",
    "tls13-only",
    "legacy-sslv3",
    "self-signed",
)
#: every alert that must fire for each demo origin, and no other
FIRING = {
    "good": set(),
    "name-mismatch": {"OriginTLSNameMismatch"},
    "missing-intermediate": {"OriginTLSIncompleteChain"},
    "expired": {
        "OriginTLSCertificateExpired",
        "OriginTLSCertificateExpiringSoon",  # < 21 days, and inhibited by both below
        "OriginTLSCertificateExpiringCritical",  # < 7 days, inhibited by ...Expired
    },
    "expiring-soon": {"OriginTLSCertificateExpiringSoon"},  # 10 days left: not < 7 days
    "no-common-cipher": {"OriginTLSNoCommonCipher"},
    "undocumented-suites": {"OriginTLSCloudFrontWarning"},
    "tls13-only": {"OriginTLSNoCommonProtocol"},
    "legacy-sslv3": {"OriginTLSLegacyCryptoOnly"},
    "self-signed": {"OriginTLSUntrustedCertificate"},
}
#: what Alertmanager must notify (the inhibited expiry countdowns of `expired` may or may not
#: get out before the inhibiting alert arrives, so they are not required)
NOTIFIED = {
    origin: alerts - {"OriginTLSCertificateExpiringSoon", "OriginTLSCertificateExpiringCritical"}
    if origin == "expired"
    else alerts
    for origin, alerts in FIRING.items()
}
#: receivers of the shipped alertmanager.yml, per severity
RECEIVER = {"critical": "/origin-tls-pager", "warning": "/origin-tls-tickets"}
#: Grafana's built-in variables, as a dashboard over the last hour would set them
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1m", "__range_s": "60"}
#: panels whose query may rightly be empty, per single origin tested, with the reason
EMPTY_ALLOWED = {
    ("good", "Firing alerts"): "no alert fires for the healthy origin, by design",
    ("good", "Origins CloudFront cannot connect to"): "lists failing origins only, by design",
    ("good", "CloudFront warnings"): "the demo's healthy origin has no warning",
}


# --- the dashboards, read statically ---------------------------------------------------------


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str


def load_dashboard(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def queries(path: Path) -> list[Query]:
    dashboard = load_dashboard(path)
    return [
        Query(dashboard["title"], panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def js_regex(text: str) -> re.Pattern[str]:
    """A Grafana variable regex `/.../flags` as a Python pattern (the subset used here)."""
    match = re.fullmatch(r"/(.*)/([a-z]*)", text)
    assert match, text
    return re.compile(match.group(1), re.IGNORECASE if "i" in match.group(2) else 0)


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown variable ${name} in {expr}"
        return values[name]

    out = re.sub(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)", replace, expr)
    assert "$" not in out.replace('"$1"', ""), out
    return out


def contract_metrics() -> set[str]:
    names = set(re.findall(r"`(origin_tls_[a-z_]+)`", METRICS_DOC.read_text()))
    # the histogram's series
    base = "origin_tls_exporter_probe_duration_seconds"
    return names | {f"{base}_bucket", f"{base}_sum", f"{base}_count"}


def recorded() -> set[str]:
    return {
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_dashboards_are_grafana_models_with_the_variables() -> None:
    assert [p.name for p in DASHBOARDS] == ["origin-tls-origin.json", "origin-tls-overview.json"]
    uids = set()
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        uids.add(dashboard["uid"])
        assert dashboard["schemaVersion"] >= 39
        assert dashboard["id"] is None, "exported for sharing: no instance-specific id"
        found = variables(dashboard)
        assert found["datasource"]["type"] == "datasource"
        assert found["datasource"]["query"] == "prometheus"
        origin = found["origin"]
        if dashboard["uid"] == "origin-tls-overview":
            assert origin["multi"]
            assert origin["includeAll"]
            assert "allValue" not in origin, "All must expand to the filtered list, not .*"
        assert "origin_tls_origin_info" in variable_query(origin)
        assert "$filter_label" in variable_query(found["filter_value"])
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels(dashboard):
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, (path.name, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("description"), (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
    assert uids == {"origin-tls-overview", "origin-tls-origin"}


def test_origin_dashboard_shows_one_origin() -> None:
    """The origin detail dashboard is about one origin: no `All` (which made the protocol x
    cipher table an OR over the fleet), a default that is a real origin (the first listed, the
    failing ones first), and every query selects exactly that origin."""
    dashboard = load_dashboard(REPO / "grafana" / "dashboards" / "origin-tls-origin.json")
    origin = variables(dashboard)["origin"]
    assert origin["multi"] is False
    assert origin["includeAll"] is False
    assert "allValue" not in origin
    assert origin["current"] == {}, "no saved selection: Grafana takes the first origin listed"
    assert origin["sort"] == 0, "keep the query's order: failing origins first"
    assert variable_query(origin).startswith(
        "query_result(sort(max by (origin) (origin_tls_cloudfront_compatible)"
    )
    found = queries(REPO / "grafana" / "dashboards" / "origin-tls-origin.json")
    assert len(found) >= 30
    for query in found:
        if query.panel == "Firing alerts":
            assert 'origin="$origin"' in query.expr, query
            continue
        # every selector of an origin_tls series names the origin exactly
        selectors = re.findall(r"\b(origin_tls[a-z_:0-9]*)(\{[^}]*\})?", query.expr)
        assert selectors, query
        for name, labels in selectors:
            assert 'origin="$origin"' in labels, (query, name)
        assert 'origin=~"$origin"' not in query.expr, query
    for panel in panels(dashboard):
        assert "repeat" not in panel, panel["title"]


def test_dashboards_show_the_issue_panels() -> None:
    """Since when, per address, warnings, policies, HTTP; the renamed key size."""
    used = {path.name: " ".join(q.expr for q in queries(path)) for path in DASHBOARDS}
    origin, overview = used["origin-tls-origin.json"], used["origin-tls-overview.json"]
    for metric in (
        "origin_tls_cloudfront_verdict_changed_timestamp_seconds",
        "origin_tls_address_compatible",
        "origin_tls_cloudfront_warning",
        "origin_tls_cloudfront_policy_compatible",
        "origin_tls_http_status_code",
        "origin_tls_http_first_byte_seconds",
        "origin_tls_cert_key_size",
    ):
        assert metric in origin, metric
    for metric in (
        "origin_tls_cloudfront_verdict_changed_timestamp_seconds",
        "origin_tls_cloudfront_warning",
    ):
        assert metric in overview, metric
    for text in used.values():
        for retired in RETIRED_METRICS:
            assert retired not in text, retired


def test_dashboards_use_only_contract_metrics_and_recording_rules() -> None:
    known = contract_metrics() | recorded() | {"ALERTS"} | PENDING_METRICS
    for path in DASHBOARDS:
        for query in queries(path):
            names = set(re.findall(r"\b(origin_tls[a-z_:0-9]*|ALERTS)\b", query.expr))
            assert names, query
            assert names <= known, (query, sorted(names - known))


def test_provisioning_points_grafana_at_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "origin-tls.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


# --- the live stack ----------------------------------------------------------------------------


def shortened_rules(workdir: Path) -> list[Path]:
    """Copies of the shipped rule files with every `for:` set to SHORT_FOR."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for path in RULES:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
        copy = workdir / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        out.append(copy)
    return out


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The shipped alertmanager.yml, every receiver sent to the webhook at /<receiver name>."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["receivers"] = [
        {
            "name": receiver["name"],
            "webhook_configs": [
                {"url": f"{webhook_url}/{receiver['name']}", "send_resolved": True}
            ],
        }
        for receiver in config["receivers"]
    ]

    def fast(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s")):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    return dict(config)


@dataclass
class Stack:
    demo: ExporterProcess
    prometheus: PrometheusProcess
    alertmanager: AlertmanagerProcess
    webhook: WebhookReceiver
    dead_target: str  # a scrape target nothing listens on: OriginTLSExporterDown

    def notified(self) -> list[Notification]:
        return [n for n in self.webhook.notifications() if n.status == "firing"]


def per_key(notifications: list[Notification]) -> dict[str, set[str]]:
    """alertname sets per origin (or per instance, for the exporter's own alerts)."""
    out: dict[str, set[str]] = {}
    for n in notifications:
        key = n.labels.get("origin") or n.labels.get("instance", "")
        out.setdefault(key, set()).add(n.alertname)
    return out


def expected_notifications(stack: Stack) -> dict[str, set[str]]:
    expected = {origin: alerts for origin, alerts in NOTIFIED.items() if alerts}
    expected[f"127.0.0.1:{stack.demo.port}"] = {"OriginTLSExporterConfigReloadFailed"}
    expected[stack.dead_target] = {"OriginTLSExporterDown"}
    return expected


def break_demo_config(demo: ExporterProcess) -> None:
    """Write an invalid configuration over the demo's and reload: the reload must fail."""
    match = re.search(r"^Config:\s+(\S+)$", demo.log(), flags=re.MULTILINE)
    assert match, demo.log()
    Path(match.group(1)).write_text("origins: {}\n")
    answer = http(demo.url + "/-/reload", method="POST")
    assert answer.status == 500, answer


def settled(stack: Stack) -> bool:
    """Every expected notification arrived, Alertmanager applied the expiry inhibitions, and
    every origin was probed twice (the dashboards' observed interval needs two probes)."""
    intervals = stack.prometheus.query("origin_tls:probe_interval_seconds:avg6h")
    if not set(DEMO_ORIGINS) <= {r["metric"].get("origin") for r in intervals}:
        return False
    got = per_key(stack.notified())
    expected = expected_notifications(stack)
    if any(not alerts <= got.get(key, set()) for key, alerts in expected.items()):
        return False
    suppressed = {
        a["labels"]["alertname"]
        for a in stack.alertmanager.alerts()
        if a["labels"].get("origin") == "expired" and a["status"]["state"] == "suppressed"
    }
    return suppressed == {
        "OriginTLSCertificateExpiringSoon",
        "OriginTLSCertificateExpiringCritical",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("monitoring")
    dead_target = f"127.0.0.1:{free_port()}"
    with (
        WebhookReceiver() as webhook,
        ExporterProcess(["demo", "--interval", DEMO_INTERVAL], workdir / "demo.log") as demo,
        AlertmanagerProcess(
            workdir / "alertmanager", alertmanager_config(webhook.url)
        ) as alertmanager,
        PrometheusProcess(
            workdir / "prometheus",
            [f"127.0.0.1:{demo.port}", dead_target],
            rule_files=shortened_rules(workdir / "rules"),
            alertmanagers=[alertmanager.address],
        ) as prometheus,
    ):
        break_demo_config(demo)
        result = Stack(demo, prometheus, alertmanager, webhook, dead_target)
        deadline = time.monotonic() + 90
        while not settled(result):
            if time.monotonic() > deadline:
                got = per_key(result.notified())
                firing = prometheus.query('ALERTS{alertstate="firing"}')
                raise AssertionError(
                    f"alerts did not settle in 90s.\nexpected: {expected_notifications(result)}"
                    f"\nnotified: {got}\nALERTS: {[r['metric'] for r in firing]}"
                    f"\nprometheus log: {prometheus.log()[-2000:]}"
                    f"\nalertmanager log: {alertmanager.log()[-2000:]}"
                )
            time.sleep(0.5)
        yield result


@pytest.mark.slow
def test_every_demo_origin_fires_exactly_its_alerts_in_prometheus(stack: Stack) -> None:
    firing = stack.prometheus.query('ALERTS{alertstate="firing"}')
    by_origin: dict[str, set[str]] = {origin: set() for origin in DEMO_ORIGINS}
    exporter_level = set()
    for result in firing:
        labels = result["metric"]
        if "origin" in labels:
            by_origin[labels["origin"]].add(labels["alertname"])
        else:
            exporter_level.add((labels["alertname"], labels["instance"]))
    assert by_origin == FIRING
    assert exporter_level == {
        ("OriginTLSExporterConfigReloadFailed", f"127.0.0.1:{stack.demo.port}"),
        ("OriginTLSExporterDown", stack.dead_target),
    }


@pytest.mark.slow
def test_expected_alerts_reach_the_webhook_through_the_severity_routes(stack: Stack) -> None:
    notified = stack.notified()
    got = per_key(notified)
    for key, alerts in expected_notifications(stack).items():
        assert alerts <= got.get(key, set()), key
    # Nothing for the healthy origin, never the 7-day alert for 10 days left, nothing unexpected.
    assert "good" not in got
    assert "OriginTLSCertificateExpiringCritical" not in got["expiring-soon"]
    for key, alerts in got.items():
        allowed = FIRING.get(key) or expected_notifications(stack).get(key, set())
        assert alerts <= allowed, key
    for n in notified:
        assert n.path == RECEIVER[n.labels["severity"]], n


@pytest.mark.slow
def test_notifications_carry_rendered_annotations_and_runbooks(stack: Stack) -> None:
    by_name = {(n.labels.get("origin"), n.alertname): n for n in stack.notified()}
    mismatch = by_name[("name-mismatch", "OriginTLSNameMismatch")]
    assert mismatch.labels["reason"] == "name_mismatch"
    assert mismatch.labels["severity"] == "critical"
    assert mismatch.annotations["summary"] == (
        "CloudFront cannot connect to origin name-mismatch: certificate name mismatch (HTTP 502)"
    )
    assert mismatch.annotations["runbook"] == FailureReason.NAME_MISMATCH.remedy
    assert mismatch.annotations["runbook_url"].endswith("docs/alerts#origintlsnamemismatch")
    # host and SNI joined from origin_tls_origin_info (the demo's host is the SNI)
    assert mismatch.labels["host"] == mismatch.labels["sni"]
    assert mismatch.labels["host"].endswith(".demo.test")
    assert f"Origin host {mismatch.labels['host']}, SNI " in mismatch.annotations["description"]
    chain = by_name[("missing-intermediate", "OriginTLSIncompleteChain")]
    assert chain.annotations["runbook"] == FailureReason.MISSING_INTERMEDIATE.remedy
    soon = by_name[("expiring-soon", "OriginTLSCertificateExpiringSoon")]
    # 10 days minus the few seconds since the demo issued the certificate.
    assert re.search(r"expires in 9d 23h 5\dm \d+s\.", soon.annotations["description"]), soon
    for n in stack.notified():
        assert "{{" not in "".join(n.annotations.values()), n


@pytest.mark.slow
def test_alertmanager_inhibits_the_expiry_countdowns_of_the_expired_origin(stack: Stack) -> None:
    states = {
        (a["labels"].get("origin"), a["labels"]["alertname"]): a["status"]
        for a in stack.alertmanager.alerts()
    }
    soon = states[("expired", "OriginTLSCertificateExpiringSoon")]
    assert soon["state"] == "suppressed"
    assert soon["inhibitedBy"]
    assert states[("expired", "OriginTLSCertificateExpiringCritical")]["state"] == "suppressed"
    assert states[("expired", "OriginTLSCertificateExpired")]["state"] == "active"
    assert states[("expiring-soon", "OriginTLSCertificateExpiringSoon")]["state"] == "active"


def grafana_text(result: dict[str, Any]) -> str:
    """A query_result line as Grafana builds it: name{labels} value timestamp_ms."""
    metric = dict(result["metric"])
    name = metric.pop("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in metric.items())
    timestamp, value = result["value"]
    return f"{name}{{{labels}}} {value} {int(float(timestamp) * 1000)}"


def variable_values(stack: Stack, variable: dict[str, Any], values: dict[str, str]) -> list[str]:
    """What Grafana would list for a query variable, other variables set to `values`."""
    query = variable_query(variable)
    regex = js_regex(variable["regex"])
    if query.startswith("label_names("):
        selector = substitute(query[len("label_names(") : -1], values)
        answer = http(
            f"{stack.prometheus.url}/api/v1/labels?match[]={urllib.parse.quote(selector)}"
        )
        found = [str(name) for name in json.loads(answer.body)["data"]]
        return sorted(name for name in found if regex.search(name))
    assert query.startswith("query_result("), query
    expr = substitute(query[len("query_result(") : -1], values)
    out = set()
    for result in stack.prometheus.query(expr):
        found_value = regex.search(grafana_text(result))
        if found_value:
            out.add(found_value.group(1) if found_value.groups() else found_value.group(0))
    return sorted(out)


@pytest.mark.slow
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_variable_queries_find_the_demo_origins(stack: Stack, path: Path) -> None:
    found = variables(load_dashboard(path))
    labels = variable_values(stack, found["filter_label"], {})
    assert labels == ["host", "port", "scenario", "sni"]
    values = {"filter_label": "scenario", "filter_value": ".*"}
    assert variable_values(stack, found["filter_value"], values) == sorted(DEMO_ORIGINS)
    assert variable_values(stack, found["origin"], values) == sorted(DEMO_ORIGINS)
    # A filter narrows the origins (Grafana formats a multi-value selection as a regex).
    narrowed = {"filter_label": "scenario", "filter_value": "(expired|good)"}
    assert variable_values(stack, found["origin"], narrowed) == ["expired", "good"]


def not_exported_yet(stack: Stack, expr: str) -> set[str]:
    """The metrics of `expr` that the exporter is about to expose (tests/pending_metrics.py)
    and the running one does not yet: a query may be empty for them, and for nothing else."""
    exposed = {name for name, _ in parse_exposition(stack.demo.get("/metrics").body)}
    names = set(re.findall(r"\b(origin_tls[a-z_0-9]*)\b", expr))
    return (names & PENDING_METRICS) - exposed


@pytest.mark.slow
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_returns_data(stack: Stack, path: Path) -> None:
    if path.name == "origin-tls-overview.json":
        # `All` expands to the alternation of the origin variable's values, as Grafana does.
        selections = {"all origins": "(" + "|".join(DEMO_ORIGINS) + ")", "good": "good"}
    else:  # one origin at a time
        selections = {"good": "good", "name-mismatch": "name-mismatch"}
    empty = []
    pending = set()
    for selection, origin in selections.items():
        values = {
            **BUILTINS,
            "filter_label": "scenario",
            "filter_value": ".*",
            "origin": origin,
        }
        for query in queries(path):
            if (selection, query.panel) in EMPTY_ALLOWED:
                continue
            expr = substitute(query.expr, values)
            if not stack.prometheus.query(expr):
                missing = not_exported_yet(stack, expr)
                if missing:
                    pending |= missing
                    continue
                empty.append(f"{selection}: {query.panel} [{query.ref}]: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    if pending:
        print(f"{path.name}: empty until the exporter exposes {sorted(pending)}")


# --- a dead exporter must not look like an all-clear --------------------------------------------

#: the shipped durations divided by this: 5m -> 6s, 10m -> 12s, 15m -> 18s, 1h -> 72s
TIME_SCALE = 50
#: the demo origins' critical alerts with the shortest shipped `for:` (5m -> 6s)
KILL_WATCHED = {
    ("name-mismatch", "OriginTLSNameMismatch"),
    ("missing-intermediate", "OriginTLSIncompleteChain"),
    ("no-common-cipher", "OriginTLSNoCommonCipher"),
    ("self-signed", "OriginTLSUntrustedCertificate"),
}


def duration_seconds(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert match, text
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600.0 + minutes * 60 + secs


def scaled_rules(workdir: Path, factor: int) -> tuple[list[Path], dict[str, dict[str, float]]]:
    """Copies of the shipped rule files with every `for:` and `keep_firing_for:` divided by
    `factor` (the shipped ratios between them kept), and those scaled durations per alert."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, durations = [], {}
    for path in RULES:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                for key in ("for", "keep_firing_for"):
                    if key in rule:
                        scaled = duration_seconds(rule[key]) / factor
                        rule[key] = f"{int(scaled * 1000)}ms"
                        durations.setdefault(rule["alert"], {})[key] = scaled
        copy = workdir / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        out.append(copy)
    return out, durations


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killing_the_exporter_keeps_origin_alerts_firing_and_pages(tmp_path: Path) -> None:
    """The demo's broken origins fire; the exporter is killed (SIGKILL, its series go stale at
    the next scrape). Within the origin alerts' keep_firing_for, no `resolved` reaches the
    receiver for them, and OriginTLSExporterDown reaches the pager as critical before it ends.
    Afterwards they do resolve: the receiver gets `resolved` notifications, so their absence
    above is the rule's doing."""
    rules, durations = scaled_rules(tmp_path / "rules", TIME_SCALE)
    keep = durations["OriginTLSNameMismatch"]["keep_firing_for"]
    down_for = durations["OriginTLSExporterDown"]["for"]
    assert "keep_firing_for" not in durations["OriginTLSExporterDown"]
    assert {durations[name]["keep_firing_for"] for _, name in KILL_WATCHED} == {keep}
    with (
        WebhookReceiver() as webhook,
        ExporterProcess(["demo", "--interval", DEMO_INTERVAL], tmp_path / "demo.log") as demo,
        AlertmanagerProcess(tmp_path / "alertmanager", alertmanager_config(webhook.url)) as am,
        PrometheusProcess(
            tmp_path / "prometheus",
            [f"127.0.0.1:{demo.port}"],
            rule_files=rules,
            alertmanagers=[am.address],
        ) as prometheus,
    ):

        def notified(status: str) -> set[tuple[str, str]]:
            return {
                (n.labels.get("origin") or n.labels.get("instance", ""), n.alertname)
                for n in webhook.notifications()
                if n.status == status
            }

        deadline = time.monotonic() + 90
        while not notified("firing") >= KILL_WATCHED:
            assert time.monotonic() < deadline, (notified("firing"), prometheus.log()[-2000:])
            time.sleep(0.2)
        assert demo.process is not None
        demo.process.kill()
        demo.process.wait(10)
        killed = time.time()
        target = f"127.0.0.1:{demo.port}"

        def pages() -> list[Notification]:
            return [
                n
                for n in webhook.notifications()
                if n.alertname == "OriginTLSExporterDown" and n.status == "firing"
            ]

        # Wait, generously, for the page and for the origin alerts to resolve; then judge by
        # when each notification reached the receiver and by what Prometheus knew at that
        # moment, not by when this loop happened to look on a busy machine.
        deadline = time.monotonic() + keep + 60
        while not (pages() and notified("resolved") >= KILL_WATCHED):
            assert time.monotonic() < deadline, ("never paged or resolved", notified("resolved"))
            time.sleep(0.2)
        page = pages()[0]
        first_resolved = min(
            n.received
            for n in webhook.notifications()
            if n.status == "resolved" and (n.labels.get("origin", ""), n.alertname) in KILL_WATCHED
        )
        # Nothing resolved until keep_firing_for was nearly over (the conditions went empty at
        # the first failed scrape, 1 s after the kill at most) ...
        assert first_resolved - killed > keep - 2, f"resolved {first_resolved - killed:.1f}s after"
        # ... and OriginTLSExporterDown reached the pager as critical, after its `for:` and
        # before any origin alert resolved.
        assert page.received - killed > down_for, "the exporter-down alert fired before its `for:`"
        assert page.received < first_resolved, (page.received - killed, first_resolved - killed)
        assert page.labels["severity"] == "critical"
        assert page.labels["instance"] == target
        assert page.path == RECEIVER["critical"]
        # When the page went out, the origin alerts were firing in Prometheus though their
        # conditions had gone with the exporter's series: keep_firing_for held them.
        firing = {
            (r["metric"]["origin"], r["metric"]["alertname"])
            for r in prometheus.query('ALERTS{alertstate="firing"}', at=page.received)
            if "origin" in r["metric"]
        }
        assert firing >= KILL_WATCHED
        gone = f'origin_tls_cloudfront_failure_reason{{instance="{target}"}}'
        assert prometheus.query(gone, at=page.received) == []

        # Once keep_firing_for is over they resolve (the exporter is still down): above.
        assert ("127.0.0.1:" + str(demo.port), "OriginTLSExporterDown") not in notified("resolved")
