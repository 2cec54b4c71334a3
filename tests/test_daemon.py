"""The real daemon, as a process, probing the real test fleet: the metrics contract end to end."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.engine.catalogue import CATALOGUE, Protocol
from exporter.engine.verdict import FailureReason
from tests.daemon_process import ExporterProcess, http, matching, parse_exposition, value
from tests.origins import TestOrigins
from tests.prometheus_process import PrometheusProcess
from tests.servers.dnsmasq import DnsmasqServer, DnsRecords

ORIGINS = ("good", "missing_intermediate", "expired", "sslv3_only", "handshake_failed", "closed")


def fleet_config(origins: TestOrigins, names: tuple[str, ...], **top: Any) -> dict[str, Any]:
    entries = []
    for name in names:
        origin = origins[name]
        entry: dict[str, Any] = {"name": name, "host": origin.host, "port": origin.port}
        if name == "sslv3_only":
            entry["protocols"] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"]
            entry["labels"] = {"team": "legacy"}
        entries.append(entry)
    config: dict[str, Any] = {
        "defaults": {
            "interval": "2s",
            "timeout": "2s",
            "ca_file": origins.ca_file,
            "labels": {"env": "test"},
        },
        "resolve": {origins[n].host: "127.0.0.1" for n in names},
        "probe_allow": ["*.test:*"],
        "origins": entries,
    }
    config.update(top)
    return config


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def daemon(
    origins: TestOrigins, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ExporterProcess, Path]]:
    workdir = tmp_path_factory.mktemp("daemon")
    config = write(workdir / "config.yml", fleet_config(origins, ORIGINS))
    process = ExporterProcess(["serve", "--config.file", str(config)], workdir / "exporter.log")
    with process:
        process.wait_for(
            lambda: all(
                matching(process.metrics(), "origin_tls_last_probe_timestamp_seconds", origin=n)
                for n in ORIGINS
            ),
            60,
            "a first probe of every origin",
        )
        yield process, config


def test_metrics_contract(daemon: tuple[ExporterProcess, Path], origins: TestOrigins) -> None:
    process, _ = daemon
    series = process.metrics()

    good = {"origin": "good"}
    assert value(series, "origin_tls_probe_success", **good) == 1
    assert value(series, "origin_tls_cloudfront_compatible", **good) == 1
    assert 0 < value(series, "origin_tls_probe_duration_seconds", **good) < 30
    assert abs(value(series, "origin_tls_last_probe_timestamp_seconds", **good) - time.time()) < 30
    for reason in FailureReason:
        assert value(series, "origin_tls_cloudfront_failure_reason", reason=reason, **good) == 0
    negotiated = matching(series, "origin_tls_negotiated_info", **good)
    assert len(negotiated) == 1
    labels = dict(next(iter(negotiated)))
    assert labels["protocol"] == "TLSv1.2"
    assert labels["group"] == "X25519"
    assert labels["cipher"] in {s.name for s in CATALOGUE.suites}
    assert value(series, "origin_tls_protocol_accepted", protocol="TLSv1.2", **good) == 1
    assert value(series, "origin_tls_protocol_accepted", protocol="SSLv3", **good) == 0
    ciphers = matching(series, "origin_tls_cipher_accepted", **good)
    # Every catalogue suite valid in each protocol, TLSv1.3's suites under TLSv1.3.
    expected = sum(len(CATALOGUE.suites_for(p)) for p in Protocol)
    assert len(ciphers) == expected == 44  # s2n-tls's 19 suites, and TLSv1.3's 3
    assert (
        value(series, "origin_tls_cipher_accepted", protocol="TLSv1", cipher="AES128-SHA", **good)
        == 1
    )
    assert (
        value(series, "origin_tls_cipher_accepted", protocol="TLSv1.2", cipher="RC4-MD5", **good)
        == 0
    )
    assert value(series, "origin_tls_cert_name_match", field="san", **good) == 1
    assert value(series, "origin_tls_chain_complete", **good) == 1
    assert value(series, "origin_tls_chain_status", status="ok", **good) == 1
    assert value(series, "origin_tls_chain_certificates", **good) == 2
    leaf_expiry = origins.leaf_not_after["good"].timestamp()
    leaf = matching(series, "origin_tls_cert_not_after_timestamp_seconds", position="leaf", **good)
    assert list(leaf.values()) == [leaf_expiry]  # to the second
    assert dict(next(iter(leaf)))["subject"] == "CN=good.test,O=origin-tls-exporter tests"
    assert value(series, "origin_tls_chain_earliest_expiry_timestamp_seconds", **good) == min(
        leaf_expiry,
        origins.pki.intermediate.cert.not_valid_after_utc.timestamp(),
    )
    assert value(series, "origin_tls_cert_key_size", position="leaf", type="RSA", **good) == 2048
    assert (
        value(
            series,
            "origin_tls_origin_info",
            origin="good",
            host="good.test",
            port=str(origins["good"].port),
            sni="good.test",
            env="test",
            team="",
        )
        == 1
    )

    lonely = {"origin": "missing_intermediate"}
    assert value(series, "origin_tls_cloudfront_compatible", **lonely) == 0
    assert (
        value(
            series, "origin_tls_cloudfront_failure_reason", reason="missing_intermediate", **lonely
        )
        == 1
    )
    assert value(series, "origin_tls_chain_complete", **lonely) == 0
    assert value(series, "origin_tls_chain_status", status="missing_intermediate", **lonely) == 1
    assert value(series, "origin_tls_chain_status", status="ok", **lonely) == 0

    expired = {"origin": "expired"}
    assert value(series, "origin_tls_cloudfront_failure_reason", reason="expired", **expired) == 1
    assert value(series, "origin_tls_chain_complete", **expired) == 1  # complete, just expired
    expired_leaf = origins.leaf_not_after["expired"].timestamp()
    found = matching(
        series,
        "origin_tls_cert_not_after_timestamp_seconds",
        position="leaf",
        subject="CN=expired.test,O=origin-tls-exporter tests",
        **expired,
    )
    assert list(found.values()) == [expired_leaf]

    legacy = {"origin": "sslv3_only"}
    assert value(series, "origin_tls_cloudfront_compatible", **legacy) == 1
    assert value(series, "origin_tls_legacy_only", **legacy) == 1
    assert value(series, "origin_tls_protocol_accepted", protocol="SSLv3", **legacy) == 1
    assert (
        value(series, "origin_tls_cipher_accepted", protocol="SSLv3", cipher="RC4-MD5", **legacy)
        == 1
    )
    assert (
        value(
            series, "origin_tls_origin_info", origin="sslv3_only", host="legacy.test",
            port=str(origins["sslv3_only"].port), sni="legacy.test", env="test", team="legacy",
        )
        == 1
    )  # fmt: skip

    broken = {"origin": "handshake_failed"}
    assert (
        value(series, "origin_tls_cloudfront_failure_reason", reason="handshake_failed", **broken)
        == 1
    )
    assert value(series, "origin_tls_probe_success", **broken) == 1

    closed = {"origin": "closed"}
    assert value(series, "origin_tls_probe_success", **closed) == 0
    assert (
        value(series, "origin_tls_cloudfront_failure_reason", reason="connect_failed", **closed)
        == 1
    )

    assert value(series, "origin_tls_exporter_config_last_reload_successful") == 1
    assert value(series, "origin_tls_exporter_origins") == len(ORIGINS)
    assert matching(series, "origin_tls_exporter_build_info")
    assert value(series, "origin_tls_exporter_probe_errors_total", reason="connect_failed") >= 1
    assert value(series, "origin_tls_exporter_probe_duration_seconds_count") >= len(ORIGINS)
    assert matching(series, "process_resident_memory_bytes")


def test_probe_endpoint_allow_and_deny(
    daemon: tuple[ExporterProcess, Path], origins: TestOrigins
) -> None:
    process, _ = daemon
    good = origins["good"]
    answer = process.get(f"/probe?target=good.test:{good.port}")
    assert answer.status == 200, answer.body
    series = parse_exposition(answer.body)
    assert value(series, "origin_tls_cloudfront_compatible") == 1
    assert all("origin" not in dict(labels) for _, labels in series)
    # A configured origin by name, with its own settings.
    named = parse_exposition(process.get("/probe?target=missing_intermediate").body)
    assert value(named, "origin_tls_cloudfront_failure_reason", reason="missing_intermediate") == 1
    # The SNI override is honoured.
    aliased = process.get(f"/probe?target=good.test:{good.port}&sni=alias.example.net")
    assert value(parse_exposition(aliased.body), "origin_tls_cert_name_match", field="san") == 0
    debug = process.get(f"/probe?target=good.test:{good.port}&debug=true")
    assert debug.status == 200
    assert "Probe log:" in debug.body
    assert "VERDICT" in debug.body
    denied = process.get("/probe?target=example.com:443")
    assert denied.status == 403
    assert "probe_allow" in denied.body
    assert process.get("/probe").status == 400
    assert process.get("/probe?target=good.test:99999").status == 400


def test_an_adhoc_probe_gets_the_defaults_and_the_dns_section(
    origins: TestOrigins, tmp_path: Path
) -> None:
    """`/probe?target=HOST:PORT` is built like a configured origin: the `defaults` request and
    the top-level `dns` resolvers apply (no `resolve` entry: only dnsmasq knows the name)."""
    good = origins["good"]
    records = DnsRecords(hosts=((good.host, "127.0.0.1"),))
    with DnsmasqServer(records) as dns_server:
        config = {
            "defaults": {
                "interval": "1h",
                "timeout": "3s",
                "ca_file": origins.ca_file,
                "request": {"path": "/health"},
            },
            "dns": {"servers": [f"127.0.0.1:{dns_server.port}"]},
            "probe_allow": ["*.test:*"],
            "origins": [],
        }
        path = write(tmp_path / "config.yml", config)
        with ExporterProcess(["serve", "--config.file", str(path)], tmp_path / "log") as process:
            answer = process.get(f"/probe?target={good.host}:{good.port}&debug=true")
    assert answer.status == 200, answer.body
    assert f"request GET /health (Host: {good.host}): " in answer.body, answer.body
    resolved = f"resolved {good.host} to 127.0.0.1 (127.0.0.1:{dns_server.port})"
    assert resolved in answer.body, answer.body
    assert "VERDICT: CloudFront can connect to this origin." in answer.body


def test_health_and_reload_method(daemon: tuple[ExporterProcess, Path]) -> None:
    process, _ = daemon
    assert process.get("/-/healthy").status == 200
    assert process.get("/-/ready").status == 200
    assert process.get("/-/reload").status == 405


def test_reload_good_and_bad(origins: TestOrigins, tmp_path: Path) -> None:
    config_path = write(tmp_path / "config.yml", fleet_config(origins, ("good",)))
    with ExporterProcess(["serve", "--config.file", str(config_path)], tmp_path / "log") as p:
        p.wait_for(
            lambda: bool(matching(p.metrics(), "origin_tls_cloudfront_compatible", origin="good")),
            30,
            "good probed",
        )
        # A good reload through SIGHUP adds an origin.
        write(config_path, fleet_config(origins, ("good", "expired")))
        p.signal(signal.SIGHUP)
        p.wait_for(
            lambda: bool(
                matching(p.metrics(), "origin_tls_cloudfront_compatible", origin="expired")
            ),
            30,
            "expired probed after SIGHUP",
        )
        assert value(p.metrics(), "origin_tls_exporter_origins") == 2
        # A bad reload through POST keeps the running configuration.
        config_path.write_text("origins:\n  - host: good.test\n    port: 70000\n")
        answer = http(p.url + "/-/reload", method="POST")
        assert answer.status == 500
        assert "config.yml" in answer.body
        assert "port" in answer.body
        series = p.metrics()
        assert value(series, "origin_tls_exporter_config_last_reload_successful") == 0
        assert value(series, "origin_tls_exporter_origins") == 2
        assert matching(series, "origin_tls_cloudfront_compatible", origin="expired")
        # Fixing the file and reloading again recovers.
        write(config_path, fleet_config(origins, ("good",)))
        assert http(p.url + "/-/reload", method="POST").status == 200
        series = p.metrics()
        assert value(series, "origin_tls_exporter_config_last_reload_successful") == 1
        assert not matching(series, "origin_tls_cloudfront_compatible", origin="expired")


#: the hung origin's timeout (and interval) in `test_sigterm_exits_cleanly`: how long its probe
#: would hold the connection, were it waited for
HUNG_TIMEOUT = 60.0


def test_sigterm_exits_cleanly(origins: TestOrigins, tmp_path: Path) -> None:
    """SIGTERM while a probe waits on an origin that never answers: exit 0, in far less time
    than that probe would hold its connection (it is cancelled, not waited for)."""
    config = fleet_config(origins, ("good",))
    with socket.create_server(("127.0.0.1", 0)) as hung:  # accepts, never answers
        hung.settimeout(HUNG_TIMEOUT)
        config["resolve"]["hung.test"] = "127.0.0.1"
        config["origins"].append(
            {
                "name": "hung",
                "host": "hung.test",
                "port": hung.getsockname()[1],
                "interval": f"{HUNG_TIMEOUT:g}s",
                "timeout": f"{HUNG_TIMEOUT:g}s",
            }
        )
        config_path = write(tmp_path / "config.yml", config)
        process = ExporterProcess(["serve", "--config.file", str(config_path)], tmp_path / "log")
        with process:
            connection, _ = hung.accept()  # the probe of `hung` is in flight
            with connection:
                started = time.monotonic()
                assert process.stop(timeout=HUNG_TIMEOUT) == 0
                took = time.monotonic() - started
    assert took < HUNG_TIMEOUT / 3, f"SIGTERM took {took:.1f}s: it waited for the probe"
    assert "shutting down" in process.log()


def test_bad_initial_config_exits_2(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yml"
    config_path.write_text("origins: {}\n")
    process = ExporterProcess(["serve", "--config.file", str(config_path)], tmp_path / "log")
    with pytest.raises(RuntimeError, match="exited with 2"):
        process.start()
    assert "config.yml" in process.log()


def test_real_prometheus_scrapes_the_exporter(
    daemon: tuple[ExporterProcess, Path], origins: TestOrigins, tmp_path: Path
) -> None:
    process, _ = daemon
    with PrometheusProcess(tmp_path / "prometheus", [f"127.0.0.1:{process.port}"]) as prometheus:
        up = prometheus.wait_for_query('up{job="origin-tls-exporter"} == 1')
        assert len(up) == 1
        compatible = prometheus.wait_for_query("origin_tls_cloudfront_compatible")
        by_origin = {r["metric"]["origin"]: float(r["value"][1]) for r in compatible}
        assert by_origin == {
            "good": 1,
            "missing_intermediate": 0,
            "expired": 0,
            "sslv3_only": 1,
            "handshake_failed": 0,
            "closed": 0,
        }
        reasons = prometheus.query("origin_tls_cloudfront_failure_reason == 1")
        assert {(r["metric"]["origin"], r["metric"]["reason"]) for r in reasons} == {
            ("missing_intermediate", "missing_intermediate"),
            ("expired", "expired"),
            ("handshake_failed", "handshake_failed"),
            ("closed", "connect_failed"),
        }
        expiry = prometheus.query(
            'origin_tls_cert_not_after_timestamp_seconds{origin="good",position="leaf"}'
        )
        assert float(expiry[0]["value"][1]) == origins.leaf_not_after["good"].timestamp()


def test_demo_command_serves_every_cause(tmp_path: Path) -> None:
    with ExporterProcess(["demo", "--interval", "2s"], tmp_path / "demo.log") as demo:
        expected = {
            "good": set(),
            "name-mismatch": {"name_mismatch"},
            "missing-intermediate": {"missing_intermediate"},
            "expired": {"expired"},
            "expiring-soon": set(),
            "no-common-cipher": {"no_common_cipher"},
            "undocumented-suites": set(),
            "tls13-only": {"no_common_protocol"},
            "legacy-sslv3": set(),
            "self-signed": {"untrusted"},
        }
        demo.wait_for(
            lambda: len(matching(demo.metrics(), "origin_tls_cloudfront_compatible")) == 10,
            60,
            "every demo origin probed",
        )
        series = demo.metrics()
        for origin, reasons in expected.items():
            found = {
                dict(labels)["reason"]
                for labels, v in matching(
                    series, "origin_tls_cloudfront_failure_reason", origin=origin
                ).items()
                if v == 1
            }
            assert found == reasons, origin
        assert value(series, "origin_tls_legacy_only", origin="legacy-sslv3") == 1
        assert "Status page: http://127.0.0.1:" in demo.log()
        page = demo.get("/")
        assert page.status == 200
        assert "missing-intermediate" in page.body


def test_config_endpoint_shows_the_running_configuration(
    daemon: tuple[ExporterProcess, Path], origins: TestOrigins
) -> None:
    process, _ = daemon
    answer = process.get("/config")
    assert answer.status == 200
    shown = yaml.safe_load(answer.body)
    assert [o["name"] for o in shown["origins"]] == list(ORIGINS)
    good = shown["origins"][0]
    assert good["host"] == "good.test"
    assert good["address"] == "127.0.0.1"
    assert good["interval"] == "2s"
    assert good["labels"] == {"env": "test"}
    assert shown["probe_allow"] == ["*.test:*"]
