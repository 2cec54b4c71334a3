"""Differential test: the engine's cipher-suite matrix against sslyze's, origin by origin.

sslyze runs once, in its own virtualenv (it pins an older `cryptography`), over every
TLS-speaking origin of the fleet in one process; then each scenario compares, per protocol, the
suites sslyze accepted (by OpenSSL name, restricted to CloudFront's sixteen; for TLSv1.3 all the
1.3 suites) with the engine's `accepted_suites`. Both count a suite as accepted only after a
complete handshake, so they must agree exactly.

`handshake_failed` answers every hello with ServerHello/Certificate/ServerHelloDone and then fails
the handshake. sslyze never gets past its connectivity test there ("could not find a TLS version
and cipher suite supported by the server") and scans nothing: it accepts no suite under any
protocol. The engine sees the suites picked in the ServerHello but its confirming handshakes all
fail, so it accepts none either. This is the scenario where a probe that stopped at the
ServerHello would disagree with sslyze, so it is compared like the others (empty everywhere),
after checking that sslyze gave up for exactly that reason and not for another.

`ip_address` is probed by address: the engine sends no SNI (RFC 6066), sslyze sends "127.0.0.1";
every nginx site has a port of its own, so the server cannot answer differently.

sslyze is found through `SSLYZE_PYTHON` (default: `<repo>/.venv-sslyze/bin/python`). Missing, the
tests skip locally but fail when `CI` is set: CI installs it, and a differential test skipped in
silence would hide a regression.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from exporter.engine.catalogue import ALL_PROTOCOLS, CATALOGUE, Protocol
from exporter.engine.probe import Engine
from exporter.engine.target import ConfirmMode
from tests.origins import TestOrigins as Fleet  # renamed: pytest would try to collect a Test*
from tests.support.probing import run_probe

pytestmark = pytest.mark.sslyze

REPO = Path(__file__).resolve().parent.parent

#: every fleet origin that speaks TLS, so that sslyze has something to enumerate
SCENARIOS = (
    "good",
    "modern",
    "wildcard",
    "name_mismatch",
    "missing_intermediate",
    "wrong_order",
    "expired",
    "not_yet_valid",
    "self_signed",
    "untrusted_root",
    "no_common_cipher",
    "no_common_protocol",
    "ecdsa",
    "ip_address",
    "sslv3_only",
    "legacy_tls",
    "handshake_failed",
    "outside_first",
    "outside_only",
    "undocumented_only",
)
#: fleet origins with no TLS to compare: sslyze and the engine only agree they are unreachable
NOT_TLS = ("not_tls", "silent", "closed")
#: sslyze finds no version and suite that completes a handshake, so it scans nothing
NO_CONNECTIVITY = {"handshake_failed"}
NO_CONNECTIVITY_ERROR = "could not find a TLS version and cipher suite supported by the server"

SSLYZE_COMMANDS: dict[Protocol, tuple[str, str]] = {
    # protocol: (command line flag, key in the JSON output's scan_result)
    Protocol.SSLv3: ("--sslv3", "ssl_3_0_cipher_suites"),
    Protocol.TLSv1: ("--tlsv1", "tls_1_0_cipher_suites"),
    Protocol.TLSv1_1: ("--tlsv1_1", "tls_1_1_cipher_suites"),
    Protocol.TLSv1_2: ("--tlsv1_2", "tls_1_2_cipher_suites"),
    Protocol.TLSv1_3: ("--tlsv1_3", "tls_1_3_cipher_suites"),
}
CLOUDFRONT_NAMES = frozenset(s.name for s in CATALOGUE.suites)

Matrix = dict[Protocol, frozenset[str]]


def _sslyze_python() -> str:
    """The sslyze virtualenv's interpreter; skip (fail under CI) when it cannot import sslyze."""
    python = os.environ.get("SSLYZE_PYTHON") or str(REPO / ".venv-sslyze" / "bin" / "python")
    problem = None
    if not os.access(python, os.X_OK):
        problem = f"{python} is not an executable"
    else:
        check = subprocess.run(
            [python, "-c", "import sslyze"], capture_output=True, text=True, timeout=60
        )
        if check.returncode != 0:
            problem = f"{python} cannot import sslyze: {check.stderr.strip()[-500:]}"
    if problem is not None:
        message = f"sslyze unavailable (set SSLYZE_PYTHON): {problem}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def _matrix(name: str, scan: dict[str, Any]) -> Matrix:
    """sslyze's accepted suites per protocol for one server, checked for completeness."""
    location = scan["server_location"]
    assert location["ip_address"] == "127.0.0.1", f"{name}: sslyze connected to {location}"
    if name in NO_CONNECTIVITY:
        trace = scan.get("connectivity_error_trace") or ""
        assert scan["scan_status"] == "ERROR_NO_CONNECTIVITY", f"{name}: {scan['scan_status']}"
        assert NO_CONNECTIVITY_ERROR in trace, f"{name}: sslyze failed otherwise: {trace}"
        return {protocol: frozenset() for protocol in ALL_PROTOCOLS}
    assert scan["scan_status"] == "COMPLETED", (
        f"{name}: sslyze {scan['scan_status']}: {scan.get('connectivity_error_trace')}"
    )
    matrix: Matrix = {}
    for protocol, (_, key) in SSLYZE_COMMANDS.items():
        attempt = scan["scan_result"][key]
        assert attempt["status"] == "COMPLETED", (
            f"{name} {protocol}: sslyze {attempt['status']}: {attempt.get('error_trace')}"
        )
        result = attempt["result"]
        accepted = {c["cipher_suite"]["openssl_name"] for c in result["accepted_cipher_suites"]}
        rejected = {c["cipher_suite"]["openssl_name"] for c in result["rejected_cipher_suites"]}
        # The intersection below only means something if sslyze tried every suite of ours
        # under the same OpenSSL name.
        ours = {s.name for s in CATALOGUE.suites_for(protocol)}
        untested = ours - accepted - rejected
        assert not untested, f"{name} {protocol}: sslyze did not test {sorted(untested)}"
        if protocol is not Protocol.TLSv1_3:
            accepted &= CLOUDFRONT_NAMES
        matrix[protocol] = frozenset(accepted)
    return matrix


@pytest.fixture(scope="module")
def sslyze_matrices(origins: Fleet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Matrix]:
    """One sslyze process over every scenario: scenario -> protocol -> accepted suites."""
    python = _sslyze_python()
    out = tmp_path_factory.mktemp("sslyze") / "scan.json"
    # HOST:PORT{IP}: connect to IP, send HOST as SNI (sslyze's own target syntax).
    targets = [f"{origins[n].host}:{origins[n].port}{{127.0.0.1}}" for n in SCENARIOS]
    flags = [flag for flag, _ in SSLYZE_COMMANDS.values()]
    command = [python, "-m", "sslyze", "--quiet", "--mozilla_config", "disable"]
    command += ["--json_out", str(out), *flags, *targets]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert run.returncode == 0, f"sslyze exited {run.returncode}: {run.stderr[-2000:]}"
    report = json.loads(out.read_text())
    assert not report["invalid_server_strings"], report["invalid_server_strings"]
    by_port = {s["server_location"]["port"]: s for s in report["server_scan_results"]}
    return {n: _matrix(n, by_port[origins[n].port]) for n in SCENARIOS}


def test_every_fleet_origin_is_compared_or_deliberately_left_out(origins: Fleet) -> None:
    """A scenario added to the fleet must be added here too, or listed as not speaking TLS."""
    assert set(origins.origins) == set(SCENARIOS) | set(NOT_TLS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_engine_accepts_the_suites_sslyze_accepts(
    scenario: str,
    origins: Fleet,
    engine: Engine,
    sslyze_matrices: dict[str, Matrix],
) -> None:
    result = run_probe(engine, origins[scenario].target(), confirm=ConfirmMode.ALL, tls13=True)
    expected = sslyze_matrices[scenario]
    mismatches = []
    for protocol in ALL_PROTOCOLS:
        found = result.protocol(protocol)
        ours = None if found is None else frozenset(s.name for s in found.accepted_suites)
        theirs = expected[protocol]
        if ours is None:
            mismatches.append(f"  {protocol}: engine has no result; sslyze {sorted(theirs)}")
        elif ours != theirs:
            mismatches.append(
                f"  {protocol}: engine {sorted(ours)} != sslyze {sorted(theirs)}"
                f" (engine only {sorted(ours - theirs)}, sslyze only {sorted(theirs - ours)})"
            )
    assert not mismatches, f"{scenario}: accepted suites differ\n" + "\n".join(mismatches)
    if scenario in NO_CONNECTIVITY:
        # Not vacuous: the engine did see suites picked in ServerHellos, and agrees with sslyze
        # only because its complete handshakes with them failed.
        assert any(p.picked for p in result.protocols), f"{scenario}: engine saw no ServerHello"
