"""The shipped Prometheus rules and Alertmanager example: promtool/amtool checks, unit tests, and
the conventions every alert must follow (labels, annotations, runbooks, docs, test coverage)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.engine.verdict import FailureReason
from tests.pending_metrics import PENDING_METRICS

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
TESTS_DIR = REPO / "deploy" / "prometheus" / "tests"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTS_DOC = REPO / "docs" / "alerts.md"
METRICS_DOC = REPO / "docs" / "metrics.md"
DISCOVERY_DOC = REPO / "docs" / "discovery.md"  # documents the discovery_* metrics
# The exporter serves docs/alerts.md at /docs/alerts (its --web.external-url ends in "/").
RUNBOOK_BASE = "{{ $labels.external_url }}docs/alerts#"
#: failure reasons the alerts cover before the exporter's vocabulary (exporter/engine/verdict.py)
#: has them, with the remedy the alert's runbook gives; once the exporter has a reason, the test
#: below holds the runbook to the exporter's own remedy instead.
PENDING_REASONS: dict[str, str] = {}  # reasons the rules cover before the exporter does
#: CloudFront answers 504 when the origin does not answer in time, 502 for every other failure
HTTP_504_REASONS = {"timeout", "response_timeout"}
#: metrics the alerts and dashboards use that the exporter is about to expose (not yet in
#: docs/metrics.md); tests/pending_metrics.py holds the list and its rules
SEVERITIES = {"critical", "warning"}
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: apt-get install prometheus")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def promtool_test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerting_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def recording_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def seconds(duration: str) -> int:
    match = DURATION.match(duration)
    assert duration, "empty duration"
    assert match, f"unexpected duration {duration!r}"
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def test_rules_directory_holds_only_rule_files() -> None:
    # deploy/kubernetes/prometheusrule.yaml is generated from exactly these files.
    names = sorted(p.name for p in RULES_DIR.iterdir())
    assert names == ["origin-tls-alerts.yml", "origin-tls-recording.yml"]
    for path in rule_files():
        document = load(path)
        assert set(document) == {"groups"}, path
        for group in document["groups"]:
            assert set(group) <= {"name", "interval", "rules"}, (path, group["name"])


def test_promtool_check_rules() -> None:
    result = run(tool("promtool"), "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = run(tool("promtool"), "test", "rules", *map(str, promtool_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(promtool_test_files()), result.stdout


def test_promtool_check_example_prometheus_config() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    # The example loads every rule file through its glob.
    for path in rule_files():
        assert path.name in result.stdout, result.stdout


def test_amtool_check_example_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=OriginTLSNameMismatch"], "origin-tls-pager"),
        # a dead exporter pages like a broken origin
        (["severity=critical", "alertname=OriginTLSExporterDown"], "origin-tls-pager"),
        (["severity=warning", "alertname=OriginTLSCloudFrontWarning"], "origin-tls-tickets"),
        (["severity=warning", "alertname=OriginTLSLegacyCryptoOnly"], "origin-tls-tickets"),
        (["alertname=Unrelated"], "origin-tls-tickets"),
    ],
)
def test_alertmanager_example_routes_by_severity(labels: list[str], receiver: str) -> None:
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_alert_has_severity_annotations_and_runbook() -> None:
    alerts = alerting_rules()
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alerts:
        name = rule["alert"]
        assert name.startswith("OriginTLS"), name
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: no {key}"
        assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        # Long enough to ride out one odd probe, never instant.
        assert seconds(rule.get("for", "0s")) >= 5 * 60, f"{name}: for: too short"


def per_origin(rule: dict[str, Any]) -> bool:
    """An alert about an origin (its expression keeps the `origin` label)."""
    return "origin_tls_origin_info" in rule["expr"]


def test_origin_alerts_outlast_an_exporter_outage() -> None:
    """A scrape gap must not resolve the origin alerts before the exporter-down page is out."""
    alerts = {rule["alert"]: rule for rule in alerting_rules()}
    down = alerts["OriginTLSExporterDown"]
    assert down["labels"]["severity"] == "critical", "a dead exporter must page"
    group_wait = seconds(load(ALERTMANAGER_CONFIG)["route"]["group_wait"])
    origin_alerts = [r for r in alerts.values() if per_origin(r) and "Probe" not in r["alert"]]
    assert len(origin_alerts) >= 20
    for rule in origin_alerts:
        keep = seconds(rule.get("keep_firing_for", "0s"))
        assert keep >= 2 * (seconds(down["for"]) + group_wait), rule["alert"]
    # the watchers themselves resolve at once
    for name in ("OriginTLSExporterDown", "OriginTLSExporterAbsent", "OriginTLSProbeStale"):
        assert "keep_firing_for" not in alerts[name], name


def test_alerts_carry_host_sni_and_the_exporters_links() -> None:
    context = (
        "+ on(instance, job) group_left(external_url) 0 * (\n"
        "    origin_tls_exporter_web_info\n"
        "    or on(instance, job) group by (instance, job) ("
    )
    for rule in alerting_rules():
        name, expr, annotations = rule["alert"], rule["expr"], rule["annotations"]
        if name in ("OriginTLSExporterAbsent",):
            continue  # no exporter to join
        assert "group_left(external_url)" in expr, name
        if per_origin(rule):
            assert "group_left(host, sni) 0 * (\n    origin_tls_origin_info\n" in expr, name
            assert context in expr, name
            # the fallback partner is the alert's own metric: the join never drops an alert
            own = re.findall(r"group by \(origin, instance, job\) \((\w+)\)", expr)
            assert own, name
            assert set(own) == set(re.findall(r"group by \(instance, job\) \((\w+)\)", expr))
            assert own[0] in expr.split("+ on(origin, instance, job)")[0], name
            page = "{{ . }}origin/{{ $labels.origin | urlquery }}"
            with_url = "{{ with $labels.external_url }}"
            assert annotations["origin_url"] == with_url + page + "{{ end }}", name
            assert (
                "Origin host {{ . }}{{ with $labels.sni }}, SNI {{ . }}"
                in (annotations["description"])
            ), name


def test_failing_since_in_every_cloudfront_alert() -> None:
    for rule in alerting_rules():
        if 'reason="' in rule["expr"]:
            text = rule["annotations"]["description"]
            assert "origin_tls_cloudfront_verdict_changed_timestamp_seconds" in text, rule["alert"]
            assert "humanizeTimestamp" in text, rule["alert"]


def test_one_critical_alert_per_failure_reason_with_its_remedy() -> None:
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for rule in alerting_rules():
        for reason in re.findall(r'reason="(\w+)"', rule["expr"]):
            by_reason.setdefault(reason, []).append(rule)
    known = {str(r) for r in FailureReason}
    assert set(by_reason) == known | set(PENDING_REASONS)
    for reason, rules in by_reason.items():
        assert len(rules) == 1, (reason, [r["alert"] for r in rules])
        rule = rules[0]
        assert rule["labels"]["severity"] == "critical", rule["alert"]
        remedy = FailureReason(reason).remedy if reason in known else PENDING_REASONS[reason]
        assert rule["annotations"]["runbook"] == remedy, rule["alert"]
        assert f"(reason {reason})" in rule["annotations"]["description"], rule["alert"]
        status = "HTTP 504" if reason in HTTP_504_REASONS else "HTTP 502"
        for key in ("summary", "description"):
            text = rule["annotations"][key]
            assert status in text, (rule["alert"], key)
            assert ({"HTTP 502", "HTTP 504"} - {status}).isdisjoint(re.findall(r"HTTP 50\d", text))


def test_issue_alerts_exist() -> None:
    alerts = {rule["alert"]: rule for rule in alerting_rules()}
    expiry = "origin_tls_chain_earliest_expiry_timestamp_seconds - time()"

    def condition(name: str) -> str:
        return str(alerts[name]["expr"]).split("\n+ on(")[0]

    soon = alerts["OriginTLSCertificateExpiringSoon"]
    assert condition(soon["alert"]) == f"({expiry} < 21 * 86400)"
    assert soon["labels"]["severity"] == "warning"
    critical = alerts["OriginTLSCertificateExpiringCritical"]
    assert condition(critical["alert"]) == f"({expiry} < 7 * 86400)"
    assert critical["labels"]["severity"] == "critical"
    assert condition("OriginTLSLegacyCryptoOnly") == "(origin_tls_legacy_only == 1)"
    assert alerts["OriginTLSLegacyCryptoOnly"]["labels"]["severity"] == "warning"
    assert "origin_tls_probe_success == 0" in alerts["OriginTLSProbeFailing"]["expr"]
    assert "origin_tls_last_probe_timestamp_seconds" in alerts["OriginTLSProbeStale"]["expr"]
    assert condition("OriginTLSExporterDown") == '(up{job="origin-tls-exporter"} == 0)'
    assert alerts["OriginTLSExporterDown"]["labels"]["severity"] == "critical"
    assert alerts["OriginTLSExporterAbsent"]["expr"] == 'absent(up{job="origin-tls-exporter"})'
    assert condition("OriginTLSExporterConfigReloadFailed") == (
        "(origin_tls_exporter_config_last_reload_successful == 0)"
    )
    # the issue's new alerts, by name
    assert condition("OriginTLSAddressIncompatible").startswith(
        "(\n  (origin_tls_address_compatible == 0)"
    )
    assert alerts["OriginTLSAddressIncompatible"]["labels"]["severity"] == "critical"
    address = alerts["OriginTLSAddressIncompatible"]["annotations"]
    assert "{{ $labels.address }}" in address["summary"]
    warning = alerts["OriginTLSCloudFrontWarning"]
    assert condition(warning["alert"]) == (
        '(origin_tls_cloudfront_warning{warning!="legacy_crypto_only"} == 1)'
    )
    assert warning["labels"]["severity"] == "warning"
    shards = alerts["OriginTLSExporterShardsInconsistent"]["expr"]
    for metric in (
        "origin_tls_exporter_shard_index",
        "origin_tls_exporter_shards",
        "origin_tls_exporter_origins_configured",
        "origin_tls_exporter_origins)",
    ):
        assert metric in shards, metric
    discovery = alerts["OriginTLSDiscoveryFailing"]["expr"]
    assert "origin_tls_exporter_discovery_last_success_timestamp_seconds > 3 * 300" in discovery


def promtool_cases() -> tuple[dict[str, int], dict[str, int]]:
    """How many promtool alert checks expect each alert to fire, and to stay silent."""
    firing: dict[str, int] = {}
    silent: dict[str, int] = {}
    for path in promtool_test_files():
        document = load(path)
        for case in document.get("tests", []):
            for check in case.get("alert_rule_test", []):
                counts = firing if check.get("exp_alerts") else silent
                counts[check["alertname"]] = counts.get(check["alertname"], 0) + 1
    return firing, silent


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing, silent = promtool_cases()
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - set(firing) == set(), "alerts never tested firing"
    assert names - set(silent) == set(), "alerts never tested staying silent"
    assert (set(firing) | set(silent)) - names == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_unit_tested() -> None:
    tested = {
        check["expr"]
        for path in promtool_test_files()
        for case in load(path).get("tests", [])
        for check in case.get("promql_expr_test", [])
    }
    assert {rule["record"] for rule in recording_rules()} <= tested


def test_unit_tests_load_the_shipped_rule_files() -> None:
    for path in promtool_test_files():
        for rule_file in load(path)["rule_files"]:
            assert (path.parent / rule_file).resolve().parent == RULES_DIR, (path, rule_file)


def contract_metrics() -> set[str]:
    text = METRICS_DOC.read_text() + DISCOVERY_DOC.read_text()
    return set(re.findall(r"`(origin_tls_[a-z_]+)`", text))


def used_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(origin_tls_[a-z_]+)\b", text))


def test_rules_and_unit_tests_use_only_contract_metrics() -> None:
    known = contract_metrics() | PENDING_METRICS
    assert "origin_tls_cloudfront_failure_reason" in known
    for path in [*rule_files(), *promtool_test_files()]:
        unknown = used_metrics(path.read_text()) - known
        assert not unknown, f"{path.name}: not in docs/metrics.md: {sorted(unknown)}"


def test_alerts_doc_covers_every_alert() -> None:
    text = ALERTS_DOC.read_text()
    alerts = alerting_rules()
    headings = re.findall(r"^### (\w+)$", text, flags=re.MULTILINE)
    assert headings == [rule["alert"] for rule in alerts], "docs/alerts.md: one section per alert"
    sections = dict(
        zip(headings, re.split(r"^### \w+$", text, flags=re.MULTILINE)[1:], strict=True)
    )
    for rule in alerts:
        name = rule["alert"]
        section = sections[name]
        assert f"[{name}](#{name.lower()})" in text, name
        # the runbook_url's anchor, explicit (the exporter renders this file at /docs/alerts)
        assert re.search(rf'^<a id="{name.lower()}"></a>\n\n### {name}$', text, re.MULTILINE), name
        # the runbook (for a templated one, every literal piece of it)
        for piece in re.split(r"\{\{.*?\}\}", rule["annotations"]["runbook"]):
            assert " ".join(piece.split()) in " ".join(section.split()), (name, piece)
        assert f"**Severity:** `{rule['labels']['severity']}`" in section, name
        assert f"**For:** `{rule['for']}`" in section, name
        if "keep_firing_for" in rule:
            assert f"**Keeps firing for:** `{rule['keep_firing_for']}`" in section, name
        assert rule["expr"].strip() in section, name


def test_alerts_doc_names_the_anchors_of_the_runbook_urls() -> None:
    anchors = re.findall(r'^<a id="([a-z0-9]+)"></a>$', ALERTS_DOC.read_text(), re.MULTILINE)
    assert anchors == [rule["alert"].lower() for rule in alerting_rules()]
