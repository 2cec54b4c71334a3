"""/metrics and /probe as scrapers want them: promtool-clean text, OpenMetrics when asked, gzip
when asked, no `_created` series; checked against the real daemon with the real promtool."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.daemon_process import ExporterProcess, matching
from tests.origins import TestOrigins
from tests.test_daemon import fleet_config, write

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture(scope="module")
def exporter(origins: TestOrigins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("exposition")
    config = fleet_config(origins, ("good", "missing_intermediate", "closed", "sslv3_only"))
    path = write(workdir / "config.yml", config)
    with ExporterProcess(["serve", "--config.file", str(path)], workdir / "log") as process:
        process.wait_for(
            lambda: len(matching(process.metrics(), "origin_tls_cloudfront_compatible")) == 4,
            30,
            "every origin probed",
        )
        yield process.url


def fetch(url: str, **headers: str) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=20) as answer:
        return dict(answer.headers), answer.read()


@pytest.mark.parametrize("path", ["/metrics", "/probe?target=good"])
def test_promtool_check_metrics_passes(exporter: str, path: str) -> None:
    _, body = fetch(exporter + path)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by .ci/run (Debian's prometheus)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_no_created_series(exporter: str) -> None:
    _, body = fetch(exporter + "/metrics")
    assert b"_created" not in body


@pytest.mark.parametrize("path", ["/metrics", "/probe?target=good"])
def test_openmetrics_when_asked(exporter: str, path: str) -> None:
    headers, body = fetch(exporter + path, Accept=OPENMETRICS)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "origin_tls_cloudfront_compatible" in names
    plain_headers, _ = fetch(exporter + path)
    assert plain_headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/metrics", "/probe?target=good"])
def test_gzip_when_asked(exporter: str, path: str) -> None:
    headers, body = fetch(exporter + path, **{"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    text = gzip.decompress(body)
    assert b"origin_tls_cloudfront_compatible" in text
    plain_headers, plain = fetch(exporter + path)
    assert "Content-Encoding" not in plain_headers
    assert len(body) < len(plain) / 4


def test_the_key_size_metric_has_its_new_name(exporter: str) -> None:
    _, body = fetch(exporter + "/metrics")
    assert b"origin_tls_cert_key_size{" in body
    assert b"origin_tls_cert_key_bits" not in body


def test_verdict_since_and_shards_are_exposed(exporter: str) -> None:
    _, body = fetch(exporter + "/metrics")
    text = body.decode()
    for name in (
        'origin_tls_cloudfront_verdict_changed_timestamp_seconds{origin="good"}',
        "origin_tls_exporter_shard_index 0.0",
        "origin_tls_exporter_shards 1.0",
        "origin_tls_exporter_origins_configured 4.0",
        "origin_tls_exporter_origins 4.0",
        "origin_tls_exporter_web_info{external_url=",
    ):
        assert name in text, name
