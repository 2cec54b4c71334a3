"""`check` validates every option by the configuration file's rules, naming the option.

Each bad option runs the real command (`python3 -m exporter check ...`) and must exit 2 with
the message on stderr, before any connection; an origin that cannot be reached is CloudFront's
502/504, so it exits 1. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.demo.pki import issue
from tests.daemon_process import REPO


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


BAD_OPTIONS = [
    (("--timeout", "nan"), "--timeout: invalid duration 'nan'"),
    (("--timeout", "inf"), "--timeout: invalid duration 'inf'"),
    (("--timeout", "1e30"), "--timeout: invalid duration '1e30'"),
    (("--timeout", "1000000000000000000000y"), "--timeout: must be at most 10m, got 1000000"),
    (("--timeout", "11m"), "--timeout: must be at most 10m, got 11m"),
    (("--timeout", "50ms"), "--timeout: must be at least 100ms, got 50ms"),
    (("--timeout", "0"), "--timeout: must be greater than 0"),
    (("--timeout", "-1"), "--timeout: must be greater than 0"),
    (("--resolve", "not-an-ip"), "--resolve: must be an IP address, got 'not-an-ip'"),
    (("--sni", "bad sni!"), "--sni: must be a host name, got 'bad sni!'"),
    (("--sni", "bad_sni!"), "--sni: must be a host name, got 'bad_sni!'"),
    (("--sni", "a..b"), "--sni: must be a host name, got 'a..b'"),
    (("--sni=-a.test",), "label '-a' is not 1-63 letters"),
    (("--protocols", "TLSv1.3"), "--protocols: CloudFront does not use TLSv1.3 towards origins"),
    (("--protocols", "TLSv9"), "--protocols: unknown protocol 'TLSv9'"),
    (("--protocols", "TLSv1.2,"), "--protocols: must not be empty"),
    (("--ca-file", "/nonexistent.pem"), "--ca-file: cannot read '/nonexistent.pem'"),
    (("--confirm", "some"), "argument --confirm: invalid choice: 'some'"),
    (
        ("--cloudfront-policy", "CloudFront-Upstream-2030"),
        "--cloudfront-policy: must be one of 'CloudFront-Upstream', 'CloudFront-Upstream-2025', "
        "'CloudFront-Upstream-2025-PQ', got 'CloudFront-Upstream-2030'",
    ),
    (("--dns-server", "dns.example"), "--dns-server: must be IP or IP:PORT"),
    (("--dns-server", "127.0.0.1:0"), "--dns-server: port must be from 1 to 65535, got '0'"),
    (("--dns-server", "[::1]:x"), "--dns-server: port must be from 1 to 65535, got 'x'"),
    (("--dns-server", "[127.0.0.1]:53"), "--dns-server: must be IP or IP:PORT"),
    (("--dns-server", "[::1]53"), "--dns-server: port must be from 1 to 65535, got ''"),
    (("--path", "index.html"), "--path: must start with '/', got 'index.html'"),
    (("--path", "/a b"), "--path: must not contain spaces or control characters"),
    (("--path", "/a\r\nX-Injected: 1"), "--path: must not contain CR, LF or NUL"),
    (("--origin-read-timeout", "121s"), "--origin-read-timeout: must be at most 2m, got 121s"),
    (("--origin-read-timeout", "1.5"), "--origin-read-timeout: must be a whole number of seconds"),
    (("--origin-read-timeout", "nan"), "--origin-read-timeout: invalid duration 'nan'"),
    (("--connection-attempts", "4"), "--connection-attempts: must be between 1 and 3, got 4"),
    (("--connection-attempts", "two"), "--connection-attempts: must be an integer, got string"),
    (("--connection-timeout", "11"), "--connection-timeout: must be at most 10s, got 11"),
    (("--connection-timeout", "500ms"), "--connection-timeout: must be at least 1s, got 500ms"),
    (("--ip-address-type", "IPv6"), "did you mean 'ipv6'?"),
    (("--max-addresses", "0"), "--max-addresses: must be between 1 and 64, got 0"),
    (("--max-addresses", "65"), "--max-addresses: must be between 1 and 64, got 65"),
    (("--client-cert", "c.pem"), "--client-key: required with --client-cert"),
    (("--client-key", "c.key"), "--client-cert: required with --client-key"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_a_bad_option_exits_2_naming_it(args: tuple[str, ...], message: str) -> None:
    run = cli("check", f"127.0.0.1:{closed_port()}", *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr
    assert run.stdout == ""  # nothing probed


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("bad!host", "HOST: must be a host name or IP address, got 'bad!host'"),
        ("a_b!.test:443", "HOST: must be a host name or IP address, got 'a_b!.test'"),
        (f"{'a' * 64}.test", "label 'aaaa"),
        ("a.test:99999", "port must be a number from 1 to 65535"),
        ("https://a.test/", "give HOST[:PORT], not a URL"),
    ],
)
def test_a_bad_host_is_a_usage_error_not_dns_failed(target: str, message: str) -> None:
    run = cli("check", target, "--resolve", "127.0.0.1")
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr


def client_files(directory: Path) -> tuple[Path, Path, Path]:
    issued, other = issue("client", client=True, key_kind="p256"), issue("x", key_kind="p256")
    cert, key, wrong = directory / "c.pem", directory / "c.key", directory / "other.key"
    cert.write_bytes(issued.pem)
    key.write_bytes(issued.key_pem)
    wrong.write_bytes(other.key_pem)
    return cert, key, wrong


def test_client_certificate_files_are_checked_at_start(tmp_path: Path) -> None:
    cert, key, wrong = client_files(tmp_path)
    target = f"127.0.0.1:{closed_port()}"
    cases = [
        ((str(key), str(key)), "--client-cert: is not a PEM certificate"),
        ((str(cert), str(cert)), "--client-key: is not a PEM private key"),
        ((str(cert), str(wrong)), "--client-key: is not the key of"),
        ((str(tmp_path / "none.pem"), str(key)), "--client-cert: cannot read"),
    ]
    for (cert_file, key_file), message in cases:
        run = cli("check", target, "--client-cert", cert_file, "--client-key", key_file)
        assert run.returncode == 2, run.stdout + run.stderr
        assert message in run.stderr, run.stderr
    # The good pair is accepted: the origin is then merely unreachable.
    run = cli("check", target, "--client-cert", str(cert), "--client-key", str(key))
    assert run.returncode == 1, run.stderr


def test_an_unreachable_origin_exits_1() -> None:
    """A closed loopback port: CloudFront would answer 502, which is "cannot connect"."""
    port = closed_port()
    run = cli("check", f"closed.test:{port}", "--resolve", "127.0.0.1", "--timeout", "2s")
    assert run.returncode == 1, run.stderr
    assert "VERDICT: CloudFront can NOT connect" in run.stdout
    assert "connect_failed" in run.stdout


def test_every_new_option_is_accepted_with_a_good_value(tmp_path: Path) -> None:
    cert, key, _ = client_files(tmp_path)
    run = cli(
        "check",
        f"closed.test:{closed_port()}",
        "--resolve",
        "[::ffff:127.0.0.1]",
        "--timeout",
        "1s500ms",
        "--cloudfront-policy",
        "CloudFront-Upstream-2025-PQ",
        "--dns-server",
        "127.0.0.1",
        "--dns-server",
        "[::1]:5353",
        "--client-cert",
        str(cert),
        "--client-key",
        str(key),
        "--path",
        "/health?full=1",
        "--origin-read-timeout",
        "60",
        "--connection-attempts",
        "1",
        "--connection-timeout",
        "5s",
        "--ip-address-type",
        "dualstack",
        "--max-addresses",
        "2",
        "--output",
        "json",
    )
    assert run.returncode == 1, run.stderr  # unreachable, and no usage error


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:99999", "port 99999 is out of range 0-65535"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1", "expected HOST:PORT or :PORT"),
        ("bad host!:10043", "host 'bad host!' is neither an IP address nor a host name"),
        ("::1:10043", "put an IPv6 address in brackets"),
        ("[not-v6]:10043", "'[not-v6]' is not an IPv6 address"),
    ],
)
def test_listen_address_errors_say_what_is_wrong(
    address: str, message: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.yml"
    config.write_text("")
    run = cli("serve", "--config.file", str(config), "--web.listen-address", address)
    assert run.returncode == 2
    assert message in run.stderr
