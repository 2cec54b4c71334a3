"""How long `origin-tls-exporter check` takes next to sslyze for the same question.

The question: which cipher suites does this origin accept under SSLv3, TLSv1, TLSv1.1, TLSv1.2
(and TLSv1.3)? Both tools answer it from the command line, as a user would run them, and both
write JSON:

  exporter  python -m exporter check HOST:PORT --resolve 127.0.0.1 --ca-file F --output json
  sslyze    .venv-sslyze/bin/python -m sslyze --mozilla_config disable
                --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --quiet --json_out F
                HOST:PORT{127.0.0.1}

(`--mozilla_config disable`: otherwise sslyze also queues its Mozilla-compliance checks, which
are not the question. `--json_out`: sslyze exits 0 even when it cannot connect, so its JSON is
checked for a completed scan.) They do not do identical work: the exporter lets the server pick
among CloudFront's 16 suites and confirms each pick with one complete handshake; sslyze tries
every suite its OpenSSL builds know (80 per protocol, 156 for TLSv1.2), one connection each.

The origins are the test fleet's (`tests.origins.TestOrigins`, started whole in a temporary
directory; two of them are used): `good` (nginx, TLSv1 to TLSv1.2, eight CloudFront suites)
and `sslv3_only` (tlslite-ng, SSLv3 only, three suites; a pure-Python server, so every
handshake costs more).

For each origin the two commands alternate `--rounds` times (default 5), each as a subprocess,
after one untimed warm-up run each. Per run: wall time (time.perf_counter) and the child's CPU
time (user + sys, the child's own, from os.wait4), both including interpreter
start-up; and the scan time each tool reports itself (the exporter's `duration_seconds`, sslyze's
date_scans_completed - date_scans_started), which leaves start-up out. Start-up alone is timed
too (`python -m exporter --version`, `python -m sslyze --help`): against a local origin it is
most of a run. Reported: medians, and the ratios sslyze/exporter. Absolute figures depend on the
machine and on whatever else it is doing; the ratios, from interleaved runs on the same machine,
are what carries over, which is why they are the headline.

TCP connections: the warm-up runs go through a small counting TCP proxy started here; the
exporter's JSON `connections` is shown next to the proxy's count as a cross-check. The origins
run in this process (tlslite-ng servers) or are still running (nginx), so their CPU is not in
the children's figures.

Run from the repository root: `python bench/bench_check.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    SSLYZE_PROTOCOL_FLAGS,
    CountingProxy,
    machine,
    run_child,
    sslyze_python,
    sslyze_scan_seconds,
)

from tests.origins import TestOrigins

ORIGINS = ("good", "sslv3_only")
STARTUP = "start-up"
TOOLS = ("exporter", "sslyze")
SSLYZE_FLAGS = SSLYZE_PROTOCOL_FLAGS


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)  # scan time the tool reports itself
    connections: int | None = None  # counted by the proxy
    reported: int | None = None  # connections the tool says it made (the exporter's JSON)


@dataclass(frozen=True)
class Outcome:
    wall: float
    cpu: float
    own: float | None = None
    connections: int | None = None


@dataclass(frozen=True)
class Command:
    argv: list[str]
    json_file: Path | None = None  # where sslyze writes its JSON; the exporter uses stdout

    def run(self) -> Outcome:
        """One timed run; exits the benchmark if it did not produce a real answer."""
        done = run_child(self.argv, timeout=120)
        wall, cpu = done.wall, done.cpu
        # check exits 0 (compatible) or 1 (incompatible); 2 is unreachable. sslyze exits 0 even
        # when it could not connect, so its JSON must show a completed scan.
        try:
            if done.returncode not in (0, 1):
                raise ValueError(f"exit {done.returncode}")
            if self.json_file is not None:
                return _sslyze_outcome(json.loads(self.json_file.read_text()), wall, cpu)
            if "check" in self.argv:
                answer = json.loads(done.stdout)
                own = float(answer["duration_seconds"])
                return Outcome(wall, cpu, own, int(answer["connections"]))
            return Outcome(wall, cpu)
        except (ValueError, KeyError, OSError) as exc:
            raise done.fail(str(exc)) from None


def _sslyze_outcome(report: dict[str, Any], wall: float, cpu: float) -> Outcome:
    (scan,) = report["server_scan_results"]
    if scan["scan_status"] != "COMPLETED":
        raise ValueError(f"sslyze scan {scan['scan_status']}")
    return Outcome(wall, cpu, sslyze_scan_seconds(report))


def commands(
    fleet: TestOrigins, sslyze: str, workdir: Path, row: str, port: int | None = None
) -> dict[str, Command]:
    """tool -> command for one row of the table (an origin, or start-up only)."""
    if row == STARTUP:
        return {
            "exporter": Command([sys.executable, "-m", "exporter", "--version"]),
            "sslyze": Command([sslyze, "-m", "sslyze", "--help"]),
        }
    origin = fleet[row]
    port = port or origin.port
    check = [sys.executable, "-m", "exporter", "check", f"{origin.host}:{port}"]
    check += ["--resolve", "127.0.0.1", "--ca-file", fleet.ca_file, "--output", "json"]
    json_file = workdir / "sslyze.json"
    scan = [sslyze, "-m", "sslyze", "--mozilla_config", "disable", *SSLYZE_FLAGS]
    scan += ["--quiet", "--json_out", str(json_file), f"{origin.host}:{port}{{127.0.0.1}}"]
    return {"exporter": Command(check), "sslyze": Command(scan, json_file)}


def measure(
    fleet: TestOrigins, sslyze: str, workdir: Path, rounds: int
) -> dict[tuple[str, str], Samples]:
    samples = {(row, tool): Samples() for row in (*ORIGINS, STARTUP) for tool in TOOLS}
    # Warm-up (page cache, .pyc files), untimed, through the counting proxy.
    for row in ORIGINS:
        for tool in TOOLS:
            proxy = CountingProxy(fleet[row].port)
            outcome = commands(fleet, sslyze, workdir, row, proxy.port)[tool].run()
            time.sleep(0.2)  # let the last accepts land
            proxy.close()
            samples[(row, tool)].connections = proxy.accepted
            samples[(row, tool)].reported = outcome.connections
    # Timed: the tools alternate, so drift in the machine's load hits both alike.
    for _ in range(rounds):
        for row in (*ORIGINS, STARTUP):
            for tool, command in commands(fleet, sslyze, workdir, row).items():
                outcome = command.run()
                sample = samples[(row, tool)]
                sample.wall.append(outcome.wall)
                sample.cpu.append(outcome.cpu)
                if outcome.own is not None:
                    sample.own.append(outcome.own)
    return samples


def table(samples: dict[tuple[str, str], Samples]) -> str:
    def med(row: str, tool: str, what: str) -> float | None:
        values: list[float] = getattr(samples[(row, tool)], what)
        return statistics.median(values) if values else None

    def cell(value: float | None) -> str:
        return f"{value:>7.2f}" if value is not None else f"{'':>7}"

    def ratio(row: str, what: str) -> str:
        theirs, ours = med(row, "sslyze", what), med(row, "exporter", what)
        return f"{theirs / ours:>6.1f}x" if theirs is not None and ours else f"{'-':>7}"

    header = (
        f"{'origin':<11} {'tool':<25} {'wall s':>7} {'CPU s':>7} {'scan s':>7} {'TCP conns':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in (*ORIGINS, STARTUP):
        for tool in TOOLS:
            counted = samples[(row, tool)]
            conns = "" if counted.connections is None else str(counted.connections)
            if counted.reported is not None:
                conns += f" ({counted.reported})"
            label = tool if row != STARTUP else f"{tool} (start-up only)"
            figures = " ".join(cell(med(row, tool, w)) for w in ("wall", "cpu", "own"))
            lines.append(f"{row:<11} {label:<25} {figures} {conns:>10}".rstrip())
        if row != STARTUP:
            ours, theirs = (samples[(row, t)].connections for t in TOOLS)
            conns = f"{theirs / ours:.1f}x" if ours and theirs is not None else "-"
            figures = " ".join(ratio(row, w) for w in ("wall", "cpu", "own"))
            lines.append(f"{row:<11} {'sslyze/exporter':<25} {figures} {conns:>10}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command (5)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sslyze = sslyze_python()

    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-check-") as workdir,
        TestOrigins(Path(workdir)) as fleet,
    ):
        samples = measure(fleet, sslyze, Path(workdir), args.rounds)
    elapsed = time.perf_counter() - started

    print(f"machine: {machine()}")
    print(f"{args.rounds} timed runs per command, medians; whole benchmark {elapsed:.0f}s")
    print()
    print(table(samples))
    print()
    print("wall, CPU: the whole subprocess, interpreter start-up included (CPU: user + sys).")
    print("scan: the time the tool reports itself, without start-up: the exporter's JSON")
    print("  `duration_seconds`; sslyze's JSON date_scans_completed - date_scans_started.")
    print("TCP conns: connections accepted by a counting proxy during one extra, untimed run;")
    print("  in parentheses, the exporter's own `connections` from its JSON.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
