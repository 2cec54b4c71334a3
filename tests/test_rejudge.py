"""A reload that changes how verdicts are judged (trust, policy) re-judges the latest
observations at once: `/metrics` follows before the next probe, which is an hour away here."""

from __future__ import annotations

from pathlib import Path

from tests.daemon_process import ExporterProcess, http, matching, value
from tests.origins import TestOrigins
from tests.test_daemon import fleet_config, write


def test_reload_with_another_ca_file_changes_the_verdict_without_probing(
    origins: TestOrigins, tmp_path: Path
) -> None:
    config = fleet_config(origins, ("good",))
    config["defaults"]["interval"] = "1h"
    path = write(tmp_path / "config.yml", config)
    with ExporterProcess(["serve", "--config.file", str(path)], tmp_path / "log") as process:
        process.wait_for(
            lambda: bool(matching(process.metrics(), "origin_tls_cloudfront_compatible")),
            30,
            "good probed",
        )
        before = process.metrics()
        assert value(before, "origin_tls_cloudfront_compatible", origin="good") == 1
        probed_at = value(before, "origin_tls_last_probe_timestamp_seconds", origin="good")

        # Mozilla's roots instead of the test CA: the same chain is now untrusted.
        del config["defaults"]["ca_file"]
        write(path, config)
        assert http(process.url + "/-/reload", method="POST").status == 200
        after = process.metrics()
        assert value(after, "origin_tls_cloudfront_compatible", origin="good") == 0
        untrusted = {"origin": "good", "reason": "untrusted"}
        assert value(after, "origin_tls_cloudfront_failure_reason", **untrusted) == 1
        assert value(after, "origin_tls_last_probe_timestamp_seconds", origin="good") == probed_at

        # And back: trusted again, still from the same probe.
        config["defaults"]["ca_file"] = origins.ca_file
        write(path, config)
        assert http(process.url + "/-/reload", method="POST").status == 200
        again = process.metrics()
        assert value(again, "origin_tls_cloudfront_compatible", origin="good") == 1
        assert value(again, "origin_tls_last_probe_timestamp_seconds", origin="good") == probed_at
