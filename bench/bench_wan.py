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

    The engine's schedule, simulated (`Schedule`) from what the origin answered: which suites
    each protocol accepted, how it refused, what s2n-tls negotiated under each generation.
    """
    from exporter.engine.catalogue import CATALOGUE, Protocol
    from exporter.engine.enumeration import SPLIT_AFTER_PICKS, SPLIT_REMAINING

    tls13_suites = len(CATALOGUE.suites_for(Protocol.TLSv1_3))
    kinds = {s.name: s.key_exchange for s in CATALOGUE.suites}
    chains: list[Chain] = []
    for p in answer["protocols"]:
        accepted = len(p["accepted"])
        if p["protocol"] not in CLOUDFRONT:  # TLSv1.3: its first offer, then the others alone
            # (the two CCM suites together: one hello, and one more if it accepts one)
            ccm = sum(1 for name in p["accepted"] if "CCM" in str(name))
            singles = tls13_suites - 2 + ccm if accepted else 0
            chains.append(Chain(p["protocol"], hellos=1, picks=0, singles=singles))
            continue
        # A broad offer only after CloudFront's own hello (TLSv1.2's first offer here, with
        # CloudFront's suites alone) got no pick; every other first offer carries all suites.
        refused_version = "protocol_version" in (p.get("refusal") or "")
        broad = 1 if accepted == 0 and p["protocol"] == "TLSv1.2" and not refused_version else 0
        chain = Chain(p["protocol"], hellos=accepted + 1 + broad, picks=accepted)
        offered = len(CATALOGUE.suites_for(Protocol(p["protocol"])))
        if accepted >= SPLIT_AFTER_PICKS and offered - SPLIT_AFTER_PICKS >= SPLIT_REMAINING:
            # split by key exchange after its third pick (enumeration.py): the other
            # family's picks go down a second chain (accepted lists them after this one's)
            family = kinds[p["accepted"][SPLIT_AFTER_PICKS - 1]]
            later = p["accepted"][SPLIT_AFTER_PICKS:]
            other = sum(1 for name in later if kinds[name] != family)
            chain.side = Chain(p["protocol"], hellos=other + 1, picks=other)
            chain.hellos -= other
            chain.picks -= other
            chain.split_after = SPLIT_AFTER_PICKS
        chains.append(chain)
    s2n = [
        (1 if g.get("protocol") == "TLSv1.3" else 2)
        for g in answer.get("generations") or []
        if g.get("library") == "s2n-tls"
    ]
    schedule = Schedule(max_connections, chains, s2n, request=answer.get("http") is not None)
    schedule.run(reused="TLSv1.2")
    return schedule.connections, schedule.end


@dataclass
class Chain:
    """One protocol's enumeration: `hellos` one after another (TLSv1.3: its first offer, then
    `singles` at once), `picks` of them picked a suite and are confirmed."""

    protocol: str
    hellos: int
    picks: int
    singles: int = 0
    step: int = 0
    side: Chain | None = None  # the other key exchange's chain, started after `split_after`
    split_after: int = 0  # picks (CloudFront's own included)
    picked: int = 0


@dataclass
class Warm:
    """A connection opened ahead of need: ready one RTT after it gets its slot."""

    ready: float | None = None
    dropped: bool = False  # shed while still waiting for a slot: it never opens
    waiters: list[Any] = field(default_factory=list)

    def opened(self, now: float) -> None:
        self.ready = now + 1
        for start in self.waiters:
            start(self.ready)

    def then(self, start: Any) -> None:
        if self.ready is not None:
            start(self.ready)
        else:
            self.waiters.append(start)


class Schedule:
    """The engine's connection schedule in RTTs, as the WAN proxy models a link: a connection
    can carry bytes one RTT after it is opened; a hello is answered one RTT later, a TLS 1.2
    handshake completes two later (TLS 1.3: one), the request one more. `max_connections`
    slots, granted first come, first served; a connection opened ahead of need (CloudFront's
    hello's followers, one spare per running chain) holds its slot from the moment it opens,
    and is taken, oldest first, by the next step that needs one (net.Endpoint)."""

    def __init__(
        self, max_connections: int, chains: list[Chain], s2n: list[int], request: bool
    ) -> None:
        self.free = max_connections
        self.max_connections = max_connections
        self.chains = chains
        self.s2n = s2n
        self.request = request
        self.now = 0.0
        self.end = 0.0
        self.connections = 0
        self.events: list[tuple[float, int, Any]] = []
        self.order = 0
        self.waiting: list[tuple[Warm | None, Any]] = []  # (warm or None, granted), in order
        self.warm: list[Warm] = []  # opened ahead, not yet taken, oldest first
        self.spares = 0
        self.expected = 0

    # --- slots and warm connections --------------------------------------------------------

    def at(self, time: float, callback: Any) -> None:
        heapq.heappush(self.events, (time, self.order, callback))
        self.order += 1

    def slot(self, granted: Any, warm: Warm | None = None) -> None:
        if self.free > 0:
            self.free -= 1
            self.connections += 1
            granted(self.now)
        else:
            self.waiting.append((warm, granted))

    def release(self, time: float) -> None:
        def give() -> None:
            while self.waiting and (owner := self.waiting[0][0]) is not None and owner.dropped:
                self.waiting.pop(0)  # a spare shed while still queued: never opened
            if self.waiting:
                self.connections += 1
                self.waiting.pop(0)[1](self.now)
            else:
                self.free += 1

        self.at(time, give)

    def top_up(self) -> None:
        while len(self.warm) < self.spares + self.expected:
            entry = Warm()
            self.warm.append(entry)
            self.slot(entry.opened, entry)

    def claim(self, work: float, done: Any, hold: float | None = None, warm: bool = True) -> None:
        """Run `work` RTTs on a connection (one opened ahead when `warm` and there is one);
        `done(end)`; the slot is freed after `hold`."""

        def start(ready: float) -> None:
            begin = max(self.now, ready)
            end = begin + work
            self.release(begin + (hold if hold is not None else work))
            self.at(end, lambda: done(end))

        if warm and self.warm:
            entry = self.warm.pop(0)
            if self.expected > 0:
                self.expected -= 1
            self.top_up()
            entry.then(start)  # now, or once it has a slot and has opened
            return
        self.slot(lambda now: start(now + 1))

    # --- the probe -------------------------------------------------------------------------

    def run(self, reused: str) -> None:
        followers = len(self.chains) + 1 + len(self.s2n)
        self.connections = 1  # CloudFront's hello: connect (1) and answer (1)
        self.free -= 1
        self.expected = min(followers, self.max_connections - 1)
        self.top_up()
        self.release(2.0)
        self.at(2.0, lambda: self.after_hello(reused))
        while self.events:
            self.now, _, callback = heapq.heappop(self.events)
            callback()

    def after_hello(self, reused: str) -> None:
        for index, work in enumerate(self.s2n):
            # the origin's generation (first) carries the request; the others, information
            # only, open connections of their own
            carrier = index == 0 and self.request
            hold = work if carrier else None
            self.claim(work + (1 if carrier else 0), self.finished, hold, warm=index == 0)
        for chain in self.chains:
            if chain.protocol == reused:
                chain.hellos -= 1  # its first hello was CloudFront's,
                chain.picks = max(0, chain.picks - 1)  # whose pick s2n-tls's handshake confirms
                chain.picked = 1
            if chain.protocol in CLOUDFRONT:  # TLS 1.3 keeps no spare
                self.spares += 1
            self.next_step(chain)

    def next_step(self, chain: Chain) -> None:
        if chain.step >= chain.hellos:
            if chain.protocol in CLOUDFRONT:
                self.spares -= 1
            while len(self.warm) > self.spares + self.expected:
                entry = self.warm.pop()
                if entry.ready is not None:
                    self.release(self.now)
                else:
                    entry.dropped = True
            return
        step = chain.step
        chain.step += 1

        def answered(end: float) -> None:
            self.finished(end)
            if chain.singles and step == 0:
                for _ in range(chain.singles):
                    self.claim(1, self.finished, warm=False)
            if step < chain.picks:
                self.claim(2, self.finished)  # the pick's confirmation, before the next hello
            self.next_step(chain)
            if step < chain.picks:
                chain.picked += 1
                if chain.side is not None and chain.picked == chain.split_after:
                    self.spares += 1
                    self.next_step(chain.side)

        self.claim(1, answered)

    def finished(self, end: float) -> None:
        self.end = max(self.end, end)


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
