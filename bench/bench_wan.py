"""One origin across a simulated WAN: `check` next to sslyze when round trips decide.

Real origins are tens of milliseconds from CloudFront's edge (and from wherever the exporter
runs), so what costs time is the number of round trips a tool waits for one after another, not
its CPU. This benchmark puts a local origin behind `wan_proxy.py` (default: 25 ms each way, a
50 ms RTT; a TCP connect costs one RTT there too) and times, alternately:

  exporter  python -m exporter check NAME:PROXYPORT --resolve 127.0.0.1 --ca-file F --output json
  sslyze    .venv-sslyze/bin/python -m sslyze --mozilla_config disable --sslv3 --tlsv1
                --tlsv1_1 --tlsv1_2 --tlsv1_3 --quiet --json_out F NAME:PROXYPORT{127.0.0.1}
  sslscan   sslscan --no-colour --sni-name=NAME 127.0.0.1:PROXYPORT  (optional peer, --peers)
  testssl   testssl --quiet -E --ip 127.0.0.1 https://NAME:PROXYPORT  (optional peer; minutes)

Origins (nginx, one worker): `good` speaks TLSv1 to TLSv1.3 with OpenSSL's DEFAULT suites (8 of
CloudFront's under TLSv1.2, 4 under TLSv1 and TLSv1.1), `modern` TLSv1.2 and TLSv1.3 with
Mozilla's intermediate suites (2 of CloudFront's). `sslv3` is a tlslite-ng origin (SSLv3 and
TLSv1, RC4-MD5, DES-CBC3-SHA, AES128-SHA).

Per run: wall time and the child's CPU (os.wait4), the scan time the tool reports itself (the
exporter's `duration_seconds`; sslyze's date_scans_completed - date_scans_started), and the
connections the proxy accepted. For the exporter also: its critical path in round trips,
(duration through the proxy - duration without it) / RTT, i.e. how many RTTs it waits for one
after another, next to what the engine's schedule predicts (`predicted_rtts` simulates it).

A second table ("engine sweep") probes the same origin in a child process through the engine's
API with other settings than `check` has flags for (`max_connections`, `confirm`), to show what
each would buy. Run from the repository root:

  python bench/bench_wan.py            # good + modern, 3 rounds, sweep; about 3 minutes
  python bench/bench_wan.py --quick    # good only, 1 round, small sweep; about 1 minute
  python bench/bench_wan.py --delay-ms 50 --origins good,modern,sslv3 --peers sslyze,sslscan
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    LocalFleet,
    LocalOrigin,
    Run,
    exporter_argv,
    machine,
    med,
    median,
    num,
    ratio,
    run_child,
    sslyze_argv,
    sslyze_completed,
    sslyze_python,
    sslyze_scan_seconds,
    table,
)
from wan_proxy import ThreadedWanProxy

ORIGIN_KINDS = {"good": "legacy_protocols", "modern": "modern", "sslv3": "sslv3_legacy"}
PEERS = ("sslyze", "sslscan", "testssl")
CLOUDFRONT = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2")


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)  # counted by the proxy
    reported: list[int] = field(default_factory=list)  # the exporter's JSON `connections`


@dataclass
class Tool:
    name: str
    argv: list[str]
    json_file: Path | None = None

    def run(self) -> tuple[Run, float | None, int | None]:
        """(run, own scan seconds, connections it reports); exits on a failed run."""
        done = run_child(self.argv, timeout=1800)
        try:
            if self.name == "exporter":
                if done.returncode not in (0, 1):
                    raise ValueError(f"exit {done.returncode}")
                answer = json.loads(done.stdout)
                return done, float(answer["duration_seconds"]), int(answer["connections"])
            if self.name == "sslyze":
                assert self.json_file is not None
                report = json.loads(self.json_file.read_text())
                if sslyze_completed(report) != 1:
                    raise ValueError("sslyze did not complete its scan")
                return done, sslyze_scan_seconds(report), None
            if done.returncode != 0:
                raise ValueError(f"exit {done.returncode}")
            return done, None, None
        except (ValueError, KeyError, OSError) as exc:
            raise done.fail(str(exc)) from None


def tools(
    origin: LocalOrigin, port: int, ca_file: Path, workdir: Path, peers: list[str]
) -> list[Tool]:
    check = exporter_argv("check", f"{origin.name}:{port}", "--resolve", "127.0.0.1")
    check += ["--ca-file", str(ca_file), "--output", "json"]
    found = [Tool("exporter", check)]
    json_file = workdir / "sslyze.json"
    if "sslyze" in peers:
        argv = sslyze_argv(sslyze_python(), json_file, [f"{origin.name}:{port}{{127.0.0.1}}"])
        found.append(Tool("sslyze", argv, json_file))
    if "sslscan" in peers:
        argv = ["sslscan", "--no-colour", f"--sni-name={origin.name}", f"127.0.0.1:{port}"]
        found.append(Tool("sslscan", argv))
    if "testssl" in peers:
        argv = ["testssl", "--quiet", "--color", "0", "-E", "--ip", "127.0.0.1"]
        found.append(Tool("testssl", [*argv, f"https://{origin.name}:{port}"]))
    return found


def predicted_rtts(answer: dict[str, Any], max_connections: int = 8) -> tuple[int, float]:
    """(connections, critical-path RTTs) that docs/performance.md predicts for this answer.

    The engine's schedule, simulated: CloudFront's hello first (connect + hello: 2 RTTs), which
    is also the first hello of TLSv1.2's chain (the policy here is all four protocols); then
    every protocol's chain of hellos at once (2 RTTs each: a fresh connection per hello; no
    broad offer after a protocol_version alert), each
    pick starting its confirmation at once (3 RTTs: connect, hello, Finished), CloudFront's own
    pick first; at most `max_connections` connections open, granted first come, first served
    (asyncio.Semaphore), a chain's next hello queued before the confirmation of its last pick.
    """
    confirm_all = True
    chains: list[tuple[int, int, bool]] = []  # (hellos, picks, confirmed)
    for p in answer["protocols"]:
        accepted = len(p["accepted"])
        tls13 = p["protocol"] not in CLOUDFRONT
        refused_version = "protocol_version" in (p.get("refusal") or "")
        broad = 1 if accepted == 0 and not tls13 and not refused_version else 0
        chains.append((accepted + 1 + broad, accepted, confirm_all and not tls13))
    negotiated = answer.get("negotiated") or {}
    head = 1 if negotiated.get("completed") is not None and negotiated.get("cipher") else 0
    confirmations = sum(picks for _, picks, confirmed in chains if confirmed)
    confirmations = max(confirmations, head)
    connections = sum(hellos for hellos, _, _ in chains) + confirmations
    reused = [c for c, p in enumerate(answer["protocols"]) if p["protocol"] == "TLSv1.2"]

    # Discrete-event simulation in RTTs, starting when CloudFront's hello has answered.
    queue: list[tuple[str, int, int]] = []  # FIFO of ("hello", chain, step) / ("confirm", ...)
    if head:
        queue.append(("confirm", -1, 0))
    for c, (hellos, _, _) in enumerate(chains):
        if c not in reused:
            queue.append(("hello", c, 0))
        elif hellos > 1:  # its first hello was CloudFront's, whose pick is already confirming
            queue.append(("hello", c, 1))
    running: list[tuple[float, int, tuple[str, int, int]]] = []
    now, order = 0.0, 0
    # CloudFront's pick is TLSv1.2's first when the origin speaks it: already confirming.
    first_pick_taken = bool(head and reused and chains[reused[0]][1])
    while queue or running:
        while queue and len(running) < max_connections:
            job = queue.pop(0)
            heapq.heappush(running, (now + (3 if job[0] == "confirm" else 2), order, job))
            order += 1
        now, _, (kind, c, step) = heapq.heappop(running)
        if kind != "hello":
            continue
        hellos, picks, confirmed = chains[c]
        if step + 1 < hellos:
            queue.append(("hello", c, step + 1))
        if step < picks and confirmed:
            # CloudFront's pick is the highest protocol's first: its confirmation is running.
            if head and not first_pick_taken and c == _highest_cloudfront(chains):
                first_pick_taken = True
            else:
                queue.append(("confirm", c, step))
    return connections, 2 + now


def _highest_cloudfront(chains: list[tuple[int, int, bool]]) -> int:
    spoken = [c for c, (_, picks, confirmed) in enumerate(chains) if confirmed and picks]
    return spoken[-1] if spoken else -1


async def _child_probe(args: argparse.Namespace) -> None:
    """`--child-probe`: one probe through the engine's API, JSON on stdout."""
    from exporter.engine.catalogue import CLOUDFRONT_PROTOCOLS
    from exporter.engine.probe import Engine
    from exporter.engine.target import ConfirmMode, ProbeOptions, ProbeTarget

    host, port = args.child_probe.rsplit(":", 1)
    target = ProbeTarget(
        host, int(port), protocols=CLOUDFRONT_PROTOCOLS, ca_file=args.ca_file, address="127.0.0.1"
    )
    options = ProbeOptions(
        timeout=10, max_connections=args.max_connections, confirm=ConfirmMode(args.confirm)
    )
    result = await Engine().probe(target, options)
    print(json.dumps({"duration": result.duration_seconds, "connections": result.connections}))


def sweep(
    name: str,
    origin: LocalOrigin,
    port: int,
    local_port: int,
    ca_file: Path,
    settings: list[tuple[int, str]],
    rounds: int,
    rtt: float,
) -> list[list[str]]:
    rows = []
    for max_connections, confirm in settings:
        wan: list[float] = []
        local: list[float] = []
        connections = 0
        for _ in range(rounds):
            for target_port, into in ((port, wan), (local_port, local)):
                argv = [sys.executable, __file__, "--child-probe", f"{origin.name}:{target_port}"]
                argv += ["--ca-file", str(ca_file), "--max-connections", str(max_connections)]
                done = run_child([*argv, "--confirm", confirm], timeout=600)
                if done.returncode != 0:
                    raise done.fail(f"exit {done.returncode}")
                answer = json.loads(done.stdout)
                into.append(answer["duration"])
                connections = answer["connections"]
        wan_s, local_s = med(wan), med(local)
        rows.append(
            [
                name,
                str(max_connections),
                confirm,
                str(connections),
                num(wan_s),
                num(local_s, 3),
                f"{(wan_s - local_s) / rtt:.1f}",
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="good only, 1 round, small sweep")
    parser.add_argument("--rounds", type=int, help="timed runs per tool and origin (3)")
    parser.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay (25)")
    parser.add_argument(
        "--origins", help=f"comma-separated, of {', '.join(ORIGIN_KINDS)} (good,modern)"
    )
    parser.add_argument(
        "--peers",
        help=f"comma-separated, of {', '.join(PEERS)} (sslyze, and sslscan if installed)",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the engine sweep")
    parser.add_argument("--child-probe", help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help=argparse.SUPPRESS)
    parser.add_argument("--max-connections", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--confirm", default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_probe:
        asyncio.run(_child_probe(args))
        return 0

    rounds = args.rounds or (1 if args.quick else 3)
    names = (args.origins or ("good" if args.quick else "good,modern")).split(",")
    default_peers = "sslyze,sslscan" if shutil.which("sslscan") else "sslyze"
    peers = [p for p in (args.peers or default_peers).split(",") if p]
    for name in names:
        if name not in ORIGIN_KINDS:
            parser.error(f"unknown origin {name!r}; use {', '.join(ORIGIN_KINDS)}")
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}; use {', '.join(PEERS)}")
        if peer != "sslyze" and shutil.which(peer) is None:
            parser.error(f"{peer} is not installed (apt-get install {peer}.sh or {peer})")
    delay = args.delay_ms / 1000
    rtt = 2 * delay
    sweep_settings = [(4, "all"), (8, "all"), (16, "all"), (8, "negotiated")]
    if args.quick:
        sweep_settings = [(4, "all"), (8, "all")]

    print(f"machine: {machine()}")
    started = time.perf_counter()
    counts = {ORIGIN_KINDS[n]: 1 for n in names}
    results: dict[tuple[str, str], Samples] = {}
    sweep_rows: list[list[str]] = []
    formula: dict[str, tuple[int, float, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-wan-") as tmp,
        LocalFleet(Path(tmp), counts) as fleet,
    ):
        workdir = Path(tmp)
        by_kind = {o.kind.name: o for o in fleet.origins}
        for name in names:
            origin = by_kind[ORIGIN_KINDS[name]]
            with ThreadedWanProxy(("127.0.0.1", origin.port), delay) as proxy:
                wan = tools(origin, proxy.port, fleet.ca_file, workdir, peers)
                local = tools(origin, origin.port, fleet.ca_file, workdir, [])[0]
                for tool in wan:  # warm-up: page cache, .pyc files
                    tool.run()
                proxy.take_stats()
                local_own: list[float] = []
                answer: dict[str, Any] = {}
                for _ in range(rounds):
                    for tool in wan:
                        done, own, reported = tool.run()
                        stats = proxy.take_stats()
                        sample = results.setdefault((name, tool.name), Samples())
                        sample.wall.append(done.wall)
                        sample.cpu.append(done.cpu)
                        sample.connections.append(stats.connections)
                        if own is not None:
                            sample.own.append(own)
                        if reported is not None:
                            sample.reported.append(reported)
                            answer = json.loads(done.stdout)
                    _, own, _ = local.run()
                    assert own is not None
                    local_own.append(own)
                ours = results[(name, "exporter")]
                wan_own, local_median = med(ours.own), med(local_own)
                conns, rtts = predicted_rtts(answer)
                formula[name] = (conns, rtts, (wan_own - local_median) / rtt)
                if not args.no_sweep:
                    print(f"engine sweep on {name} ...", flush=True)
                    rows = sweep(
                        name,
                        origin,
                        proxy.port,
                        origin.port,
                        fleet.ca_file,
                        sweep_settings,
                        rounds,
                        rtt,
                    )
                    sweep_rows += rows
    elapsed = time.perf_counter() - started

    print(
        f"one-way delay {args.delay_ms:g} ms (RTT {rtt * 1000:g} ms); {rounds} timed runs per "
        f"tool and origin, medians; whole benchmark {elapsed:.0f}s"
    )
    print()
    header = ["origin", "tool", "wall s", "CPU s", "scan s", "TCP conns", "RTTs on path"]
    rows = []
    for name in names:
        ours = results[(name, "exporter")]
        for tool in ["exporter", *peers]:
            s = results[(name, tool)]
            conns = str(int(median(s.connections) or 0))
            if s.reported:
                conns += f" ({int(median(s.reported) or 0)})"
            path = f"{formula[name][2]:.1f}" if tool == "exporter" else ""
            rows.append(
                [
                    name,
                    tool,
                    num(median(s.wall)),
                    num(median(s.cpu)),
                    num(median(s.own)),
                    conns,
                    path,
                ]
            )
        for tool in peers:
            s = results[(name, tool)]
            rows.append(
                [
                    name,
                    f"{tool}/exporter",
                    ratio(median(s.wall), median(ours.wall)),
                    ratio(median(s.cpu), median(ours.cpu)),
                    ratio(median(s.own), median(ours.own)),
                    ratio(median(s.connections), median(ours.connections)),
                    "",
                ]
            )
    print(table(header, rows, left=2))
    print()
    print("Round trips, exporter (docs/performance.md):")
    rows = [
        [name, str(c), f"{p:.0f}", f"{m:.1f}", num(median(results[(name, "exporter")].own))]
        for name, (c, p, m) in formula.items()
    ]
    print(
        table(
            ["origin", "conns (formula)", "RTTs predicted", "RTTs measured", "scan s"],
            rows,
        )
    )
    if sweep_rows:
        print()
        print("Engine sweep (child process, engine API; same origin through the same proxy):")
        header = ["origin", "max_conn", "confirm", "conns", "WAN s", "local s", "RTTs on path"]
        print(table(header, sweep_rows, left=3))
    print()
    print("wall, CPU: the whole child process, start-up included (CPU: user + sys, os.wait4).")
    print("scan: what the tool reports itself (exporter duration_seconds; sslyze's JSON dates).")
    print("TCP conns: accepted by the WAN proxy per run; in parentheses the exporter's own count.")
    print("RTTs on path: (scan time through the proxy - scan time without it) / RTT: the round")
    print("  trips the probe waits for one after another.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
