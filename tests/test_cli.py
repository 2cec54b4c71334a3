"""The `check` and `validate` commands as a person runs them: real process, real origins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_process import REPO
from tests.origins import TestOrigins


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check(origins: TestOrigins, scenario: str, *extra: str) -> subprocess.CompletedProcess[str]:
    origin = origins[scenario]
    return cli(
        "check",
        f"{origin.host}:{origin.port}",
        "--resolve",
        "127.0.0.1",
        "--ca-file",
        origin.ca_file,
        "--timeout",
        "3",
        *extra,
    )


def test_check_compatible_exits_0_with_a_readable_report(origins: TestOrigins) -> None:
    run = check(origins, "good")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "VERDICT: CloudFront can connect to this origin." in out
    for line in (
        "[PASS] Protocols and cipher suites: CloudFront would negotiate TLSv1.2",
        "[PASS] Certificate name: 'good.test' matches SAN 'good.test'",
        "[PASS] Certificate chain:",
        "[PASS] Certificate dates:",
        "#0 leaf: CN=good.test",
        f"openssl s_client -tls1 -cipher ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
        f"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA:DES-CBC3-SHA:RC4-MD5 "
        f"-connect 127.0.0.1:{origins['good'].port} -servername good.test",
    ):
        assert line in out, line


def test_check_prints_the_request_it_sent(origins: TestOrigins) -> None:
    """The judgment keeps the probed target whole: its request, generation and certificate."""
    run = check(
        origins, "good", "--path", "/health", "--cloudfront-policy", "CloudFront-Upstream-2025"
    )
    assert run.returncode == 0, run.stderr
    assert "request GET /health (Host: good.test): " in run.stdout, run.stdout
    assert "request GET / " not in run.stdout


def test_check_incompatible_exits_1_and_explains(origins: TestOrigins) -> None:
    run = check(origins, "missing_intermediate")
    assert run.returncode == 1
    assert "VERDICT: CloudFront can NOT connect (HTTP 502): missing_intermediate" in run.stdout
    assert "[FAIL] Certificate chain:" in run.stdout
    assert "fix: Re-upload or reconfigure the certificate with its full chain" in run.stdout


def test_check_json(origins: TestOrigins) -> None:
    run = check(origins, "sslv3_only", "--output", "json", "--protocols", "SSLv3,TLSv1.2")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["compatible"] is True
    assert report["legacy_only"] is True
    assert report["target"]["protocols"] == ["SSLv3", "TLSv1.2"]
    assert report["negotiated"]["protocol"] == "SSLv3"
    assert report["negotiated"]["completed"] is True
    sslv3 = next(p for p in report["protocols"] if p["protocol"] == "SSLv3")
    assert set(sslv3["accepted"]) == {"RC4-MD5", "DES-CBC3-SHA", "AES128-SHA"}
    leaf = report["chain"]["certificates"][0]
    assert leaf["position"] == "leaf"
    assert leaf["not_after"] == origins.leaf_not_after["sslv3_only"].isoformat().replace(
        "+00:00", "Z"
    )
    assert report["reasons"] == []


def test_check_policy_and_sni_flags(origins: TestOrigins) -> None:
    run = check(origins, "good", "--sni", "nope.example.net", "--output", "json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert [r["reason"] for r in report["reasons"]] == ["name_mismatch"]
    assert report["name_match"] == {
        "name": "nope.example.net",
        "san": False,
        "cn": False,
        "matched_by": None,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check", "a.test", "--protocols", "TLSv1.3"), "CloudFront does not use TLSv1.3"),
        (("check", "a.test", "--protocols", "TLSv9"), "unknown protocol 'TLSv9'"),
        (("check", "a.test:0"), "port must be a number from 1 to 65535"),
        (("check", "https://a.test/"), "give HOST[:PORT], not a URL"),
        (("check", "a.test", "--ca-file", "/nonexistent.pem"), "/nonexistent.pem"),
        (("check", "a.test", "--timeout", "0"), "must be greater than 0"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    run = cli(*args)
    assert run.returncode == 2
    assert message in run.stderr


def test_unreachable_origin_exits_1(origins: TestOrigins) -> None:
    """CloudFront answers 502 or 504 for an origin it cannot reach: not a usage error."""
    assert check(origins, "closed").returncode == 1
    assert cli("check", "no-such-origin.invalid").returncode == 1


def test_validate(tmp_path: Path) -> None:
    good = REPO / "config" / "example.yml"
    run = cli("validate", "--config.file", str(good))
    assert run.returncode == 0, run.stderr
    assert "valid" in run.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("origins:\n  - host: a.test\n    intervall: 10s\n")
    run = cli("validate", "--config.file", str(bad))
    assert run.returncode == 2
    assert f"{bad}: origins[0].intervall: unknown key; did you mean 'interval'?" in run.stderr


def test_check_without_s2n_says_the_exporter_decides(origins: TestOrigins) -> None:
    """No awscrt (as on macOS wheels): the exporter's own analysis decides, and says so."""
    good = origins["good"]
    code = (
        "import sys; sys.modules['_awscrt'] = None; sys.modules['awscrt'] = None\n"
        "from exporter.cli import main\n"
        f"sys.exit(main(['check', 'good.test:{good.port}', '--resolve', '127.0.0.1', "
        f"'--ca-file', {good.ca_file!r}, '--output', 'json']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compatible"] is True
    assert report["decided_by"] == "exporter"
    assert report["tls_library"]["library"] == "none"
    assert report["generations"] == []
    text = subprocess.run(
        [sys.executable, "-c", code.replace(", '--output', 'json'", "")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert "no s2n-tls" in text.stdout
