"""A fleet of local origins swept by the daemon, next to sslyze scanning the same targets.

The question: can one small exporter pod probe every origin of a large platform within an
interval? This starts N origins on 127.0.0.1 (default 1,000; the mix is `common.FLEET_MIX`:
mostly modern TLSv1.2 origins CloudFront reaches, some with legacy protocols, a few broken in
each way the exporter reports), then, alternately:

  exporter  python -m exporter serve --config.file F   (a generated config: every origin, its
            `resolve` entry to 127.0.0.1, the test root as ca_file, interval 1h so each origin
            is probed once); measured: from spawn (and from /-/ready) to the moment every
            origin has a result (its "probe finished" log line); the daemon's CPU time and peak
            RSS (/proc/PID/status VmHWM); then /metrics: render time (median of several GETs,
            after the first), size and series per origin, with the full matrix and again after
            a reload with `metrics.cipher_series: false`.
  sslyze    one process: sslyze --targets_in FILE --mozilla_config disable --sslv3 --tlsv1
            --tlsv1_1 --tlsv1_2 --tlsv1_3 --quiet --json_out F; wall time, CPU and peak RSS
            (os.wait4).

Both sides' origin servers run on the same two cores (one nginx worker, one tlslite-ng
process); their CPU during each sweep is reported too, since on a real platform it is the
origins' cost, not the exporter's. Run from the repository root:

  python bench/bench_fleet.py                 # 1,000 origins; about 8 minutes (sslyze: ~5)
  python bench/bench_fleet.py --quick         # 120 origins (the issue's sslyze figure); ~1.5 min
  python bench/bench_fleet.py --origins 2000 --peers none --profile   # exporter only, py-spy
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from common import (
    FLEET_MIX,
    REPO,
    LocalFleet,
    LocalOrigin,
    ProcessWatch,
    Profile,
    apportion,
    machine,
    num,
    py_spy_attached,
    ratio,
    run_child,
    sslyze_argv,
    sslyze_completed,
    sslyze_python,
    table,
)

from tests.daemon_process import ExporterProcess

FINISHED = re.compile(r'msg="probe finished".*?origin=(\S+).*?duration_seconds=([0-9.]+)')
RENDERS = 7


@dataclass
class Sweep:
    """One exporter run."""

    origins: int
    startup: float = 0.0  # spawn to /-/ready
    sweep: float = 0.0  # spawn to the last result
    sweep_from_ready: float = 0.0
    cpu: float = 0.0  # the daemon's, spawn to the last result
    peak_rss_mb: float = 0.0  # VmHWM when the last result arrived
    peak_rss_end_mb: float = 0.0  # VmHWM after the /metrics renders
    server_cpu: dict[str, float] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # origin -> probe seconds
    connections: dict[str, int] = field(default_factory=dict)
    verdicts_ok: int = 0
    render: dict[str, list[float]] = field(default_factory=dict)  # mode -> seconds per GET
    size: dict[str, int] = field(default_factory=dict)
    series: dict[str, dict[str, int]] = field(default_factory=dict)  # mode -> origin -> count
    series_total: dict[str, int] = field(default_factory=dict)


@dataclass
class Scan:
    """One sslyze run."""

    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_mb: float = 0.0
    completed: int = 0
    server_cpu: dict[str, float] = field(default_factory=dict)


def write_config(
    path: Path, fleet: LocalFleet, args: argparse.Namespace, cipher_series: bool = True
) -> None:
    defaults: dict[str, Any] = {"interval": "1h", "timeout": "10s", "ca_file": str(fleet.ca_file)}
    if args.confirm:
        defaults["confirm"] = args.confirm
    if args.max_connections:
        defaults["max_connections"] = args.max_connections
    document: dict[str, Any] = {
        "defaults": defaults,
        "resolve": {o.name: "127.0.0.1" for o in fleet.origins},
        "metrics": {"cipher_series": cipher_series},
        "origins": [
            {"name": o.name, "host": o.name, "port": o.port, "protocols": list(o.kind.policy)}
            for o in fleet.origins
        ],
    }
    if args.concurrency:
        document["scheduler"] = {"max_concurrent_probes": args.concurrency}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def get(
    url: str, method: str = "GET", timeout: float = 60, headers: dict[str, str] | None = None
) -> tuple[float, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return time.perf_counter() - start, body


def series_per_origin(body: bytes) -> tuple[dict[str, int], int]:
    """Series carrying an `origin` label, per origin; and all series in the exposition."""
    per_origin: Counter[str] = Counter()
    total = 0
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        total += 1
        match = re.search(r'[{,]origin="((?:[^"\\]|\\.)*)"', line)
        if match:
            per_origin[match[1]] += 1
    return dict(per_origin), total


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    found = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            found[name] = ProcessWatch(pid).cpu()
    return found


def run_exporter(
    fleet: LocalFleet,
    args: argparse.Namespace,
    workdir: Path,
    round_no: int,
    tree: Path = REPO,
) -> tuple[Sweep, Profile | None]:
    n = len(fleet.origins)
    config = workdir / "fleet.yml"
    write_config(config, fleet, args)
    log_path = workdir / f"exporter-{tree.name}-{round_no}.log"
    log_path.unlink(missing_ok=True)
    result = Sweep(origins=n)
    servers_before = cpu_of(fleet.server_pids())
    spawned = time.perf_counter()
    daemon = ExporterProcess(["serve", "--config.file", str(config)], log_path, tree=tree)
    profile: Profile | None = None
    with contextlib.ExitStack() as stack:
        daemon.start(ready_timeout=120)
        stack.callback(daemon.stop)
        assert daemon.process is not None
        ready = time.perf_counter()
        result.startup = ready - spawned
        watch = ProcessWatch(daemon.process.pid)
        spy_file = workdir / f"py-spy-{round_no}.txt"
        spy = stack.enter_context(contextlib.ExitStack())
        if args.profile:
            spy.enter_context(py_spy_attached(daemon.process.pid, spy_file))
        deadline = ready + args.sweep_timeout
        seen: dict[str, float] = {}
        offset = 0
        with log_path.open("rb") as log:
            while len(seen) < n:
                if time.perf_counter() > deadline:
                    raise SystemExit(
                        f"only {len(seen)} of {n} origins had a result after "
                        f"{args.sweep_timeout:g}s; log: {log_path}"
                    )
                log.seek(offset)
                chunk = log.read()
                complete = chunk.rfind(b"\n") + 1
                offset += complete
                for line in chunk[:complete].decode(errors="replace").splitlines():
                    match = FINISHED.search(line)
                    if match:
                        seen[match[1].strip('"')] = float(match[2])
                time.sleep(0.05)
        done = time.perf_counter()
        result.cpu = watch.cpu()
        result.peak_rss_mb = watch.status_mb("VmHWM")
        after = cpu_of(fleet.server_pids())
        result.server_cpu = {k: after[k] - servers_before.get(k, 0.0) for k in after}
        spy.close()  # stop py-spy (if any) before the renders
        if args.profile:
            profile = Profile.from_collapsed(spy_file.read_text())
        result.sweep = done - spawned
        result.sweep_from_ready = done - ready
        result.durations = seen

        _, body = get(daemon.url + "/api/v1/origins", timeout=120)
        expected = {o.name: o.kind.compatible for o in fleet.origins}
        for entry in json.loads(body):
            answer = entry["result"]
            if answer is None:
                continue
            result.connections[entry["origin"]] = int(answer.get("connections", 0))
            if bool(answer.get("compatible")) == expected.get(entry["origin"]):
                result.verdicts_ok += 1

        for mode, cipher_series in (("full", True), ("cipher_series: false", False)):
            if not cipher_series:
                write_config(config, fleet, args, cipher_series=False)
                _, message = get(daemon.url + "/-/reload", method="POST")
                if b"reloaded" not in message:
                    raise SystemExit(f"reload failed: {message!r}")
            times = []
            for _ in range(RENDERS):
                seconds, body = get(daemon.url + "/metrics")
                times.append(seconds)
            result.render[mode] = times
            result.size[mode] = len(body)
            result.series[mode], result.series_total[mode] = series_per_origin(body)
            # What Prometheus asks for: gzip (the time includes compressing; size compressed).
            zipped = []
            for _ in range(RENDERS):
                seconds, packed = get(daemon.url + "/metrics", headers={"Accept-Encoding": "gzip"})
                zipped.append(seconds)
            result.render[f"{mode}, gzip"] = zipped
            result.size[f"{mode}, gzip"] = len(packed)
            result.series[f"{mode}, gzip"] = result.series[mode]
            result.series_total[f"{mode}, gzip"] = result.series_total[mode]
        result.peak_rss_end_mb = watch.status_mb("VmHWM")
    return result, profile


def run_sslyze(fleet: LocalFleet, workdir: Path, limit: int | None) -> Scan:
    origins = fleet.origins if limit is None else sample(fleet.origins, limit)
    targets = workdir / "targets.txt"
    targets.write_text("".join(f"{o.name}:{o.port}{{127.0.0.1}}\n" for o in origins))
    json_file = workdir / "sslyze.json"
    json_file.unlink(missing_ok=True)
    argv = [*sslyze_argv(sslyze_python(), json_file), "--targets_in", str(targets)]
    before = cpu_of(fleet.server_pids())
    done = run_child(argv, timeout=3600)
    after = cpu_of(fleet.server_pids())
    try:
        report = json.loads(json_file.read_text())
    except (OSError, ValueError) as exc:
        raise done.fail(f"no sslyze JSON: {exc}") from None
    return Scan(
        wall=done.wall,
        cpu=done.cpu,
        peak_rss_mb=done.max_rss_mb,
        completed=sslyze_completed(report),
        server_cpu={k: after[k] - before.get(k, 0.0) for k in after},
    )


def sample(origins: list[LocalOrigin], limit: int) -> list[LocalOrigin]:
    """Every k-th origin, so a smaller sslyze run keeps the fleet's mix."""
    if limit >= len(origins):
        return origins
    step = len(origins) / limit
    return [origins[int(i * step)] for i in range(limit)]


def report(
    args: argparse.Namespace,
    fleet: LocalFleet,
    counts: dict[str, int],
    sweeps: list[Sweep],
    scans: list[Scan],
    profiles: list[Profile],
    elapsed: float,
) -> None:
    n = len(fleet.origins)
    reachable = sum(1 for o in fleet.origins if o.kind.server != "closed")
    print()
    print(
        f"{n} origins ({', '.join(f'{k} {v}' for k, v in counts.items() if v)}); "
        f"{len(sweeps)} exporter run(s), {len(scans)} sslyze run(s), medians; "
        f"whole benchmark {elapsed:.0f}s"
    )
    print()

    def m(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def servers(runs: list[dict[str, float]]) -> str:
        keys = sorted({k for r in runs for k in r})
        return " + ".join(f"{num(m([r.get(k, 0.0) for r in runs]), 1)} {k}" for k in keys)

    header = ["tool", "origins", "wall s", "CPU s", "peak RSS MB", "done", "origin servers' CPU s"]
    rows = []
    sweep_wall = m([s.sweep for s in sweeps])
    sweep_cpu = m([s.cpu for s in sweeps])
    sweep_rss = m([s.peak_rss_mb for s in sweeps])
    if sweeps:
        rows.append(
            [
                "exporter (spawn to last result)",
                str(n),
                num(sweep_wall, 1),
                num(sweep_cpu, 1),
                num(sweep_rss, 0),
                f"{m([float(len(s.durations)) for s in sweeps]):.0f}/{n}",
                servers([s.server_cpu for s in sweeps]),
            ]
        )
        rows.append(
            [
                "  of which start-up (to /-/ready)",
                "",
                num(m([s.startup for s in sweeps]), 1),
                "",
                "",
                "",
                "",
            ]
        )
    scan_n = min(args.sslyze_origins or n, n)
    if scans:
        rows.append(
            [
                "sslyze (one process)",
                str(scan_n),
                num(m([s.wall for s in scans]), 1),
                num(m([s.cpu for s in scans]), 1),
                num(m([s.peak_rss_mb for s in scans]), 0),
                f"{m([float(s.completed) for s in scans]):.0f}/{scan_n}",
                servers([s.server_cpu for s in scans]),
            ]
        )
        scale = n / scan_n  # compare per origin if sslyze scanned a sample
        scan_wall = m([s.wall for s in scans])
        scan_cpu = m([s.cpu for s in scans])
        rows.append(
            [
                "sslyze/exporter" + (" (per origin)" if scale != 1 else ""),
                "",
                ratio(scan_wall * scale if scan_wall else None, sweep_wall),
                ratio(scan_cpu * scale if scan_cpu else None, sweep_cpu),
                ratio(m([s.peak_rss_mb for s in scans]), sweep_rss),
                "",
                "",
            ]
        )
    print(table(header, rows))
    if not sweeps:
        return
    print()
    if scans:
        print(f"sslyze 'done': completed scans ({reachable} of the {n} accept connections).")
    s0 = sweeps[-1]
    print(
        f"exporter: {s0.verdicts_ok}/{n} verdicts as the fleet expects; first probes spread over "
        "up to 5 s by the scheduler; "
        f"{num(m([s.cpu * 1000 / n for s in sweeps]), 1)} ms exporter CPU per origin, "
        f"{num(m([s.sweep_from_ready for s in sweeps]), 1)} s from ready to the last result, "
        f"peak RSS {num(m([s.peak_rss_end_mb for s in sweeps]), 0)} MB after the renders"
    )
    print()
    rows = []
    by_kind: dict[str, list[str]] = defaultdict(list)
    for o in fleet.origins:
        by_kind[o.kind.name].append(o.name)
    for kind in FLEET_MIX:
        names = by_kind.get(kind.name)
        if not names:
            continue
        durations = [s0.durations[x] for x in names if x in s0.durations]
        connections = [s0.connections[x] for x in names if x in s0.connections]
        series = ["/".join(str(s0.series[mode].get(x, 0)) for mode in s0.series) for x in names[:1]]
        rows.append(
            [
                kind.name,
                str(len(names)),
                num(m(durations), 3),
                num(max(durations) if durations else None, 3),
                num(m([float(c) for c in connections]), 0),
                series[0],
                kind.description,
            ]
        )
    print("Per kind of origin (last exporter run):")
    header = ["kind", "origins", "probe s", "max s", "conns", "series", "what it is"]
    print(table(header, rows, align="lrrrrrl"))
    print("series: of one origin of the kind, full matrix / metrics.cipher_series: false")
    print()
    rows = []
    for mode in s0.render:
        times = [t for s in sweeps for t in s.render[mode][1:]]
        firsts = [s.render[mode][0] for s in sweeps]
        per_origin = sorted(s0.series[mode].values())
        rows.append(
            [
                mode,
                num(m(firsts) * 1000 if firsts else None, 0),
                num(m(times) * 1000 if times else None, 0),
                num(s0.size[mode] / 1e6, 2),
                str(s0.series_total[mode]),
                num(m([float(x) for x in per_origin]), 0),
                f"{min(per_origin)}-{max(per_origin)}" if per_origin else "-",
            ]
        )
    print(f"/metrics with {n} origins (client-side time of a GET; {RENDERS} GETs each):")
    header = ["mode", "first ms", "median ms", "MB", "series", "per origin", "range"]
    print(table(header, rows))
    for profile in profiles:
        print()
        print("py-spy profile of the daemon during the sweep:")
        print(profile.report(top=20))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--origins", type=int, help="origins in the fleet (1000; --quick: 120)")
    parser.add_argument("--quick", action="store_true", help="120 origins")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tool, alternating (1)")
    parser.add_argument("--peers", default="sslyze", choices=["sslyze", "none"])
    parser.add_argument(
        "--sslyze-origins", type=int, help="let sslyze scan an even sample of this many origins"
    )
    parser.add_argument("--names-per-port", type=int, default=25, help="SNI names per port (25)")
    parser.add_argument("--concurrency", type=int, help="scheduler.max_concurrent_probes")
    parser.add_argument("--max-connections", type=int, help="defaults.max_connections")
    parser.add_argument("--confirm", choices=["all", "negotiated"], help="defaults.confirm")
    parser.add_argument("--sweep-timeout", type=float, default=900.0, help="give up after (900 s)")
    parser.add_argument("--profile", action="store_true", help="py-spy the daemon's sweep")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also sweep with the exporter at this git commit (e.g. HEAD~1), alternating, and "
        "print CPU per origin against it",
    )
    args = parser.parse_args()
    n = args.origins or (120 if args.quick else 1000)
    if n < 1:
        parser.error("--origins must be at least 1")

    print(f"machine: {machine()}")
    started = time.perf_counter()
    counts = apportion(n, FLEET_MIX)
    sweeps: list[Sweep] = []
    base_sweeps: list[Sweep] = []
    scans: list[Scan] = []
    profiles: list[Profile] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        workdir = Path(tmp)
        print(f"starting {n} local origins ...", flush=True)
        with (
            LocalFleet(workdir / "fleet", counts, args.names_per_port) as fleet,
            contextlib.ExitStack() as stack,
        ):
            print(f"origins up in {time.perf_counter() - started:.0f}s", flush=True)
            baseline = stack.enter_context(checkout(args.baseline, workdir))
            for round_no in range(args.rounds):
                if baseline is not None:
                    print(f"round {round_no + 1}: exporter at {args.baseline} ...", flush=True)
                    base_sweep, _ = run_exporter(fleet, args, workdir, round_no, baseline)
                    base_sweeps.append(base_sweep)
                    print(f"  every origin probed {base_sweep.sweep:.1f}s after spawn", flush=True)
                print(f"round {round_no + 1}: exporter ...", flush=True)
                sweep, profile = run_exporter(fleet, args, workdir, round_no)
                sweeps.append(sweep)
                if profile is not None:
                    profiles.append(profile)
                print(f"  every origin probed {sweep.sweep:.1f}s after spawn", flush=True)
                if args.peers == "sslyze":
                    print(f"round {round_no + 1}: sslyze ...", flush=True)
                    scan = run_sslyze(fleet, workdir, args.sslyze_origins)
                    scans.append(scan)
                    print(f"  sslyze done in {scan.wall:.1f}s", flush=True)
            report(args, fleet, counts, sweeps, scans, profiles, time.perf_counter() - started)
            if base_sweeps:
                report_baseline(args.baseline, base_sweeps, sweeps)
    return 0


@contextlib.contextmanager
def checkout(ref: str | None, workdir: Path) -> Iterator[Path | None]:
    """A detached `git worktree` of `ref` (None: no baseline), removed afterwards."""
    if ref is None:
        yield None
        return
    tree = workdir / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref],
        check=True,
        capture_output=True,
    )
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )


def report_baseline(ref: str, base: list[Sweep], now: list[Sweep]) -> None:
    """Exporter CPU per origin, this tree against `ref`, from rounds run alternately."""
    base_ms = statistics.median(s.cpu / s.origins for s in base) * 1000
    now_ms = statistics.median(s.cpu / s.origins for s in now) * 1000
    print()
    print(f"CPU per origin, median of {len(now)} alternating rounds:")
    rows = [
        [
            "exporter at " + ref,
            num(base_ms, 1),
            num(statistics.median(s.peak_rss_mb for s in base), 0),
        ],
        [
            "exporter (this tree)",
            num(now_ms, 1),
            num(statistics.median(s.peak_rss_mb for s in now), 0),
        ],
        [f"{ref} / this tree", f"{base_ms / now_ms:.2f}x", ""],
    ]
    print(table(["tool", "CPU ms per origin", "peak RSS MB"], rows))


if __name__ == "__main__":
    sys.exit(main())
