"""Where a probe's CPU goes: py-spy over N probes in one process, start-up imports, micro-costs.

Three reports, each on by default:

1. **Probes:** starts local origins (the fleet mix of `common.FLEET_MIX`, or one kind), then a
   child process runs N probes through the engine's API (`Engine.probe`, as the daemon does, at
   most C at once), sampled by py-spy (CPU only: idle waits are not sampled). Prints wall time,
   CPU per probe and per connection, and the hottest owners and functions. With
   `--profiler pyinstrument` the child profiles itself with pyinstrument instead (wall-clock
   samples of the main thread; useful when py-spy cannot attach).
2. **Start-up:** `python -X importtime -m exporter check ...` against a local origin: what each
   package costs to import, next to the interpreter's own floor; against a local origin,
   start-up is most of a `check`.
3. **Micro-costs:** the engine's building blocks timed alone, in-process, without the network:
   encoding a ClientHello, parsing a server flight (up to ServerHello, and up to
   ServerHelloDone with the certificates), analysing a chain.

Run from the repository root:

  python bench/profile_probe.py                  # 300 probes, 32 at once; about 1 minute
  python bench/profile_probe.py --quick          # 80 probes
  python bench/profile_probe.py --kind legacy_protocols --probes 200 --concurrency 8
  python bench/profile_probe.py --only imports   # probes | imports | micro
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    FLEET_MIX,
    KINDS,
    LocalFleet,
    Profile,
    apportion,
    exporter_argv,
    machine,
    num,
    py_spy,
    run_child,
    table,
)

# --- 1. probes under a profiler ---------------------------------------------------------------


async def _child(args: argparse.Namespace, targets: list[dict[str, Any]]) -> None:
    """`--child`: run the probes; print a JSON summary on stdout."""
    from exporter.engine.catalogue import Protocol
    from exporter.engine.probe import Engine
    from exporter.engine.target import ConfirmMode, ProbeOptions, ProbeTarget

    engine = Engine()
    slots = asyncio.Semaphore(args.concurrency)
    options = ProbeOptions(
        timeout=10, max_connections=args.max_connections, confirm=ConfirmMode(args.confirm)
    )
    connections = 0
    reasons: Counter[str] = Counter()

    async def one(i: int) -> None:
        nonlocal connections
        t = targets[i % len(targets)]
        target = ProbeTarget(
            t["host"],
            t["port"],
            protocols=tuple(Protocol(p) for p in t["policy"]),
            ca_file=args.ca_file,
            address="127.0.0.1",
        )
        async with slots:
            result = await engine.probe(target, options)
        connections += result.connections
        reasons.update([str(r) for r in result.reasons] or ["ok"])

    profiler: Any = None
    if args.profiler == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(args.probes)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    text = ""
    if profiler is not None:
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = {"wall": wall, "cpu": cpu, "connections": connections, "reasons": dict(reasons)}
    print(json.dumps({**summary, "pyinstrument": text}))


def profile_probes(args: argparse.Namespace, workdir: Path) -> None:
    if args.kind:
        counts = {args.kind: min(args.probes, 20)}
    else:
        counts = apportion(min(args.probes, 100), FLEET_MIX)
    with LocalFleet(workdir / "fleet", counts) as fleet:
        targets = workdir / "targets.json"
        targets.write_text(
            json.dumps(
                [
                    {"host": o.name, "port": o.port, "policy": list(o.kind.policy)}
                    for o in fleet.origins
                ]
            )
        )
        child = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--targets",
            str(targets),
        ]
        child += ["--ca-file", str(fleet.ca_file), "--probes", str(args.probes)]
        child += ["--concurrency", str(args.concurrency), "--confirm", args.confirm]
        child += ["--max-connections", str(args.max_connections), "--profiler", args.profiler]
        spy_file = workdir / "py-spy.txt"
        use_spy = args.profiler == "py-spy"
        if use_spy and py_spy() is None:
            raise SystemExit("py-spy is not installed (pip install py-spy), or use --profiler")
        argv = child
        if use_spy:
            argv = [py_spy() or "py-spy", "record", "--rate", "500", "--format", "raw"]
            argv += ["--output", str(spy_file), "--", *child]
        servers_before = _cpu(fleet.server_pids())
        done = run_child(argv, timeout=1800)
        servers = {k: v - servers_before.get(k, 0.0) for k, v in _cpu(fleet.server_pids()).items()}
        if done.returncode != 0:
            raise done.fail(f"exit {done.returncode}")
        lines = [x for x in done.stdout.splitlines() if x.startswith("{")]  # not py-spy's
        if not lines:
            raise done.fail("no summary from the child")
        summary = json.loads(lines[-1])
    n = args.probes
    conns = summary["connections"]
    what = args.kind or f"the fleet mix over {len(fleet.origins)} origins"
    print(
        f"== {n} probes of {what}, {args.concurrency} at once, confirm {args.confirm}, "
        f"max_connections {args.max_connections}"
    )
    rows = [
        ["wall s", num(summary["wall"])],
        ["probes per second", num(n / summary["wall"], 1)],
        ["exporter CPU s (in the probe loop)", num(summary["cpu"])],
        ["CPU ms per probe", num(summary["cpu"] * 1000 / n, 1)],
        ["connections per probe", num(conns / n, 1)],
        ["CPU ms per connection", num(summary["cpu"] * 1000 / conns if conns else None, 2)],
        [
            "origin servers' CPU ms per probe",
            " + ".join(f"{v * 1000 / n:.1f} {k}" for k, v in sorted(servers.items())),
        ],
        ["verdicts", ", ".join(f"{k} {v}" for k, v in sorted(summary["reasons"].items()))],
    ]
    print(table(["measure", "value"], rows, align="ll"))
    print()
    if use_spy:
        print(Profile.from_collapsed(spy_file.read_text(), skip_imports=True).report(args.top))
    else:
        print(summary["pyinstrument"])


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    from common import ProcessWatch

    found = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            found[name] = ProcessWatch(pid).cpu()
    return found


# --- 2. start-up imports ----------------------------------------------------------------------

_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def profile_imports(args: argparse.Namespace, workdir: Path) -> None:
    with LocalFleet(workdir / "imports", {"legacy_protocols": 1}) as fleet:
        origin = fleet.origins[0]
        check = exporter_argv("check", origin.target, "--resolve", "127.0.0.1")
        check += ["--ca-file", str(fleet.ca_file), "--output", "json"]
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -S -c pass (no site)": [sys.executable, "-S", "-c", "pass"],
            "python -c 'import asyncio, ssl, json'": [
                sys.executable,
                "-c",
                "import asyncio, ssl, json",
            ],
            "python -c 'import cryptography.x509'": [
                sys.executable,
                "-c",
                "import cryptography.x509",
            ],
            "python -c 'import tlslite'": [sys.executable, "-c", "import tlslite"],
            "python -m exporter --version": exporter_argv("--version"),
            "python -m exporter check (whole run)": check,
        }
        rows = []
        for label, argv in floors.items():
            runs = [run_child(argv) for _ in range(args.import_rounds + 1)][1:]
            walls = sorted(r.wall for r in runs)
            cpus = sorted(r.cpu for r in runs)
            rows.append([label, num(walls[len(walls) // 2], 3), num(cpus[len(cpus) // 2], 3)])
            if label.endswith("(whole run)"):
                scan = json.loads(runs[-1].stdout)["duration_seconds"]
                rows.append(["  of which the probe (duration_seconds)", num(scan, 3), ""])
        traced = run_child([sys.executable, "-X", "importtime", *check[1:]])
    print("== start-up: medians of", args.import_rounds, "runs each")
    print(table(["command", "wall s", "CPU s"], rows))
    print()
    modules: list[tuple[str, int, int, int]] = []  # name, self us, cumulative us, depth
    for line in traced.stderr.splitlines():
        match = _IMPORT.match(line)
        if match:
            modules.append((match[4], int(match[1]), int(match[2]), len(match[3]) // 2))
    total = sum(m[1] for m in modules)
    by_package: Counter[str] = Counter()
    for name, own, _, _ in modules:
        by_package[name.split(".")[0]] += own
    print(f"-X importtime of `check`: {total / 1e6:.3f} s of imports in all (self times summed)")
    rows = [
        [p, num(us / 1e3, 1), f"{100 * us / total:.0f}%"]
        for p, us in by_package.most_common(args.top)
    ]
    print(table(["top-level package (self time)", "ms", "share"], rows))
    print()
    ours = [m for m in modules if m[0].startswith("exporter")]
    ours.sort(key=lambda m: m[2], reverse=True)
    rows = [[m[0], num(m[2] / 1e3, 1), num(m[1] / 1e3, 1)] for m in ours[: args.top]]
    print(table(["exporter module", "cumulative ms", "self ms"], rows))
    print()
    print("Imported during `check` that a probe could do without (cumulative ms):")
    suspects = (
        "aiohttp",
        "prometheus_client",
        "yaml",
        "http.client",
        "email",
        "tlslite.api",
        "tlslite.integration",
        "ecdsa",
        "certifi",
        "logging",
        "concurrent.futures",
        "tempfile",
        "urllib",
        "xmlrpc",
    )
    rows = []
    for name, _, cumulative, _ in modules:
        if name in suspects or any(name == s for s in suspects):
            rows.append([name, num(cumulative / 1e3, 1)])
    print(table(["module", "cumulative ms"], rows) if rows else "(none)")


# --- 3. micro-costs ---------------------------------------------------------------------------


def _time(fn: Callable[[], object], budget: float = 0.3) -> float:
    """Seconds per call (the best of 3 batches)."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        spent = time.perf_counter() - start
        if spent > budget / 3:
            break
        n *= 2
    best = spent / n
    for _ in range(2):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _flight(port: int, hello: bytes, parser_factory: Callable[[], Any]) -> bytes:
    """Send one hello, return the server's raw answer up to where the parser stops."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(hello)
        data = b""
        parser = parser_factory()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if parser.feed(chunk) is not None:
                return data


def micro_costs(args: argparse.Namespace, workdir: Path) -> None:
    import datetime as dt
    from dataclasses import replace

    from exporter.engine.catalogue import CATALOGUE, Protocol
    from exporter.engine.chain import TrustStore, analyse_chain
    from exporter.engine.enumeration import cloudfront_spec
    from exporter.engine.hello import FlightParser, ReadUntil

    rows = []
    with LocalFleet(workdir / "micro", {"legacy_protocols": 1, "ecdsa": 1}) as fleet:
        origin = next(o for o in fleet.origins if o.kind.name == "legacy_protocols")
        offer = tuple(s.code for s in CATALOGUE.suites)
        tls12 = cloudfront_spec(CATALOGUE, Protocol.TLSv1_2, origin.name, offer)
        rows.append(["encode a TLSv1.2 ClientHello (16 suites)", _us(_time(tls12.encode))])
        tls13_suites = tuple(s.code for s in CATALOGUE.suites_for(Protocol.TLSv1_3))
        tls13 = cloudfront_spec(CATALOGUE, Protocol.TLSv1_3, origin.name, tls13_suites)
        rows.append(["encode a TLSv1.3 ClientHello (X25519 key share)", _us(_time(tls13.encode))])
        spec = replace(tls12, read_until=ReadUntil.SERVER_HELLO_DONE)
        flight = _flight(
            origin.port, spec.encode(), lambda: FlightParser(ReadUntil.SERVER_HELLO_DONE)
        )
        rows.append([f"server flight to ServerHelloDone: {len(flight)} bytes", ""])

        def parse(until: ReadUntil) -> Callable[[], object]:
            return lambda: FlightParser(until).feed(flight)

        rows.append(["parse it up to ServerHello", _us(_time(parse(ReadUntil.SERVER_HELLO)))])
        rows.append(
            [
                "parse it up to ServerHelloDone (certificates)",
                _us(_time(parse(ReadUntil.SERVER_HELLO_DONE))),
            ]
        )
        answer = FlightParser(ReadUntil.SERVER_HELLO_DONE).feed(flight)
        trust = TrustStore.from_file(str(fleet.ca_file))
        now = dt.datetime.now(dt.UTC)
        certificates = answer.certificates
        rows.append(
            [
                f"analyse_chain ({len(certificates)} certificates, private root)",
                _us(_time(lambda: analyse_chain(certificates, trust, now))),
            ]
        )
        started = time.perf_counter()
        mozilla = TrustStore.mozilla()
        rows.append(["TrustStore.mozilla() (first call)", _us(time.perf_counter() - started)])
        rows.append(
            [
                "analyse_chain against Mozilla's roots",
                _us(_time(lambda: analyse_chain(certificates, mozilla, now))),
            ]
        )
    print("== micro-costs (in-process, best of 3 batches; CPU-bound, no network)")
    print(table(["operation", "per call"], rows, align="lr"))


def _us(seconds: float) -> str:
    if seconds >= 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="80 probes, 3 start-up runs")
    parser.add_argument("--probes", type=int, help="probes to profile (300; --quick: 80)")
    parser.add_argument("--concurrency", type=int, default=32, help="probes at once (32)")
    parser.add_argument("--kind", choices=sorted(KINDS), help="one kind of origin, not the mix")
    parser.add_argument("--confirm", default="all", choices=["all", "negotiated"])
    parser.add_argument("--max-connections", type=int, default=4, help="per origin (4)")
    parser.add_argument("--profiler", default="py-spy", choices=["py-spy", "pyinstrument"])
    parser.add_argument("--only", choices=["probes", "imports", "micro"])
    parser.add_argument("--top", type=int, default=20, help="rows per ranking (20)")
    parser.add_argument("--import-rounds", type=int, help="runs per start-up command (5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.probes = args.probes or (80 if args.quick else 300)
    args.import_rounds = args.import_rounds or (3 if args.quick else 5)
    if args.child:
        asyncio.run(_child(args, json.loads(Path(args.targets).read_text())))
        return 0
    if args.kind == "closed":
        parser.error("nothing to profile on a closed port")

    print(f"machine: {machine()}")
    print()
    with tempfile.TemporaryDirectory(prefix="profile-probe-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "probes"):
            profile_probes(args, workdir)
            print()
        if args.only in (None, "imports"):
            profile_imports(args, workdir)
            print()
        if args.only in (None, "micro"):
            micro_costs(args, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
