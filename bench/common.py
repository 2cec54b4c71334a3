"""Helpers shared by the benchmark scripts: running and measuring tools, local origins, tables.

Nothing here is a test. Every script in `bench/` runs from the repository root as
`python bench/<name>.py`; they import this module as `common` (their own directory is first on
`sys.path`) and the repository's `tests` helpers (nginx, the test PKI, the exporter process).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.pki import DAY, NOW, TestPKI, issue, new_key, write_chain  # noqa: E402
from tests.servers import NginxServer, NginxSite, closed_port  # noqa: E402

# Installed packages (sslyze's, and the exporter's in a real install or image) import from
# .pyc files compiled at install time. The exporter runs from this source tree, so let its
# children write their byte-code caches (git-ignored) instead of compiling every module on
# every start, which this environment's PYTHONDONTWRITEBYTECODE=1 would make them do.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

SSLYZE_PROTOCOL_FLAGS = ("--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the machine and the peers ---------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = f", load average {Path('/proc/loadavg').read_text().split()[0]} at the start"
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}{load}"


def sslyze_python() -> str:
    """The interpreter of sslyze's own virtualenv (`SSLYZE_PYTHON` overrides it)."""
    sslyze = os.environ.get("SSLYZE_PYTHON") or str(REPO / ".venv-sslyze" / "bin" / "python")
    if not os.access(sslyze, os.X_OK):
        raise SystemExit(
            f"no sslyze interpreter at {sslyze} (set SSLYZE_PYTHON, or: python3 -m venv "
            ".venv-sslyze && .venv-sslyze/bin/pip install sslyze)"
        )
    return sslyze


def sslyze_argv(sslyze: str, json_file: Path, targets: Sequence[str] = ()) -> list[str]:
    """sslyze for the exporter's question: which suites per protocol, SSLv3 to TLSv1.3.

    `--mozilla_config disable`: otherwise it also queues its Mozilla-compliance scans.
    Targets are `HOST:PORT{IP}`; none here means the caller adds `--targets_in FILE`.
    """
    argv = [sslyze, "-m", "sslyze", "--mozilla_config", "disable", *SSLYZE_PROTOCOL_FLAGS]
    return [*argv, "--quiet", "--json_out", str(json_file), *targets]


def sslyze_scan_seconds(report: dict[str, Any]) -> float:
    """date_scans_completed - date_scans_started from sslyze's JSON."""
    started, completed = (
        dt.datetime.fromisoformat(report[k].replace("Z", "+00:00"))
        for k in ("date_scans_started", "date_scans_completed")
    )
    return (completed - started).total_seconds()


def sslyze_completed(report: dict[str, Any]) -> int:
    """How many of sslyze's server scans completed (it exits 0 whatever happened)."""
    return sum(1 for s in report["server_scan_results"] if s["scan_status"] == "COMPLETED")


def exporter_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


# --- running a child and measuring it ---------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished child: wall time, its own CPU (user + sys) and peak RSS, its output."""

    argv: tuple[str, ...]
    returncode: int
    wall: float
    cpu: float
    max_rss_mb: float
    stdout: str
    stderr: str

    def fail(self, problem: str) -> SystemExit:
        output = f"{self.stderr[-3000:]}{self.stdout[-3000:]}"
        return SystemExit(f"{' '.join(self.argv)}: {problem}\n{output}")


def run_child(
    argv: Sequence[str], timeout: float = 900.0, env: dict[str, str] | None = None
) -> Run:
    """Run `argv` to completion; CPU and peak RSS are the child's own (`wait4`), exactly.

    (`getrusage(RUSAGE_CHILDREN)` deltas would do for CPU, but its ru_maxrss is the largest of
    *all* children so far, so it cannot tell one run's memory.)
    """
    with (
        _spool() as out,
        _spool() as err,
        subprocess.Popen(
            list(argv), cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        ) as proc,
    ):
        start = time.perf_counter()
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        out.seek(0)
        err.seek(0)
        return Run(
            tuple(argv),
            proc.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


@contextlib.contextmanager
def _spool() -> Iterator[Any]:
    import tempfile

    with tempfile.TemporaryFile() as handle:
        yield handle


class ProcessWatch:
    """CPU time and memory of a running process, from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_mb(self, key: str) -> float:
        """`VmHWM` (peak resident set) or `VmRSS`, in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- counting connections ---------------------------------------------------------------------


class CountingProxy:
    """Forwards every TCP connection on 127.0.0.1:port to 127.0.0.1:upstream, counting them."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        back = threading.Thread(target=_pump, args=(server, client), daemon=True)
        back.start()
        _pump(client, server)
        back.join(15)
        client.close()
        server.close()

    def close(self) -> None:
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until EOF or error, then half-close the other side so that it sees the EOF too."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


# --- statistics and tables --------------------------------------------------------------------


def median(values: Iterable[float]) -> float | None:
    data = list(values)
    return statistics.median(data) if data else None


def med(values: Iterable[float]) -> float:
    """The median of a non-empty sample."""
    return statistics.median(list(values))


def ratio(theirs: float | None, ours: float | None) -> str:
    """`theirs / ours` as `12.3x`; `-` when either is missing."""
    if theirs is None or not ours:
        return "-"
    return f"{theirs / ours:.1f}x"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, align: str = ""
) -> str:
    """The first `left` columns left-aligned, the others right-aligned (or `align`, one `l` or
    `r` per column); a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    align = align or "l" * left + "r" * (len(header) - left)

    def line(cells: Sequence[str]) -> str:
        out = [
            f"{c:<{w}}" if a == "l" else f"{c:>{w}}"
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(out).rstrip()

    out = [line(header), "-" * len(line(header))]
    out += [line([str(c) for c in row]) for row in rows]
    return "\n".join(out)


# --- profiles ---------------------------------------------------------------------------------


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def _frame_key(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame `func (path/file.py:123)`; line numbers dropped."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    with contextlib.suppress(ValueError):
        path = str(Path(path).relative_to(REPO))
    return match["func"], path


def _package(path: str) -> str:
    """A coarse owner of a file: `exporter/engine/hello.py` -> `exporter.engine.hello`,
    `tlslite/...` -> `tlslite`, `asyncio/...` -> `asyncio`, ..."""
    if path.startswith("exporter/"):
        return path.removesuffix(".py").replace("/", ".")
    if path.startswith("<frozen"):
        return "import machinery"
    head = path.split("/", 1)[0].removesuffix(".py")
    return head or "?"


@dataclass
class Profile:
    """Aggregated py-spy samples (raw/collapsed format: `frame;frame;... count`)."""

    total: int = 0
    self_time: Counter[tuple[str, str]] = field(default_factory=Counter)
    inclusive: Counter[tuple[str, str]] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)  # self time by owner
    package_inclusive: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_collapsed(cls, text: str, skip_imports: bool = False) -> Profile:
        profile = cls()
        for line in text.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame_key(f) for f in stack.split(";") if f]
            if not frames:
                continue
            if skip_imports and any(f[0] == "_find_and_load" for f in frames):
                continue
            profile.total += count
            profile.self_time[frames[-1]] += count
            profile.packages[_package(frames[-1][1])] += count
            for key in set(frames):
                profile.inclusive[key] += count
            for package in {_package(f[1]) for f in frames}:
                profile.package_inclusive[package] += count
        return profile

    def report(self, top: int = 25) -> str:
        if not self.total:
            return "(no samples)"

        def pct(n: int) -> str:
            return f"{100 * n / self.total:.1f}%"

        lines = [f"{self.total} samples (CPU only: idle waits are not sampled)", ""]
        lines.append("By owner (self time: where the CPU actually was; inclusive: on the stack):")
        rows = [
            [name, pct(n), pct(self.package_inclusive[name])]
            for name, n in self.packages.most_common(top)
        ]
        lines.append(table(["owner", "self", "inclusive"], rows))
        lines.append("")
        lines.append("Hottest functions by self time:")
        rows = [
            [f"{func} ({path})", pct(n), pct(self.inclusive[(func, path)])]
            for (func, path), n in self.self_time.most_common(top)
        ]
        lines.append(table(["function (file)", "self", "inclusive"], rows))
        lines.append("")
        lines.append("Hottest exporter functions by inclusive time:")
        ours = [(k, n) for k, n in self.inclusive.most_common() if k[1].startswith("exporter/")]
        rows = [[f"{func} ({path})", pct(n)] for (func, path), n in ours[:top]]
        lines.append(table(["function (file)", "inclusive"], rows))
        return "\n".join(lines)


def py_spy() -> str | None:
    return shutil.which("py-spy")


@contextlib.contextmanager
def py_spy_attached(pid: int, output: Path, rate: int = 250) -> Iterator[None]:
    """Sample `pid` with py-spy (collapsed stacks to `output`) for the duration of the block."""
    binary = py_spy()
    if binary is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    argv += ["--nonblocking", "--output", str(output)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as spy:
        time.sleep(0.3)  # let it attach
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


# --- local origins ----------------------------------------------------------------------------

# Mozilla's "intermediate" nginx configuration (2024): with an RSA certificate it leaves
# CloudFront two suites, ECDHE-RSA-AES128-GCM-SHA256 and ECDHE-RSA-AES256-GCM-SHA384.
MOZILLA_INTERMEDIATE = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
MODERN = ("TLSv1.2", "TLSv1.3")
CLOUDFRONT_DEFAULT_POLICY = ("TLSv1", "TLSv1.1", "TLSv1.2")


@dataclass(frozen=True)
class Kind:
    """One kind of origin in a benchmark fleet, and its share of the fleet."""

    name: str
    share: float
    description: str
    server: str = "nginx"  # nginx | tlslite | closed
    protocols: tuple[str, ...] = MODERN  # what the server speaks
    ciphers: str = MOZILLA_INTERMEDIATE
    key: str = "rsa"  # rsa | ecdsa
    cert: str = "good"  # good | missing_intermediate | expired | mismatch
    policy: tuple[str, ...] = CLOUDFRONT_DEFAULT_POLICY  # CloudFront's OriginSslProtocols
    compatible: bool = True  # what the exporter should conclude


# Most origins: modern TLSv1.2 servers that CloudFront reaches; some keep legacy protocols;
# a few are broken in the ways the exporter exists to catch.
FLEET_MIX: tuple[Kind, ...] = (
    Kind("modern", 0.55, "TLSv1.2+1.3, Mozilla intermediate suites (2 of CloudFront's), RSA"),
    Kind(
        "tls12",
        0.15,
        "TLSv1.2+1.3, OpenSSL DEFAULT suites (8 of CloudFront's), RSA",
        ciphers="DEFAULT",
    ),
    Kind(
        "legacy_protocols",
        0.08,
        "TLSv1 to TLSv1.3, DEFAULT suites (8 under TLSv1.2, 4 under TLSv1/1.1), RSA",
        protocols=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
        ciphers="DEFAULT",
    ),
    Kind("ecdsa", 0.05, "TLSv1.2+1.3, DEFAULT suites, ECDSA P-256", ciphers="DEFAULT", key="ecdsa"),
    Kind(
        "missing_intermediate",
        0.04,
        "modern, sends only its leaf",
        cert="missing_intermediate",
        compatible=False,
    ),
    Kind("expired", 0.03, "modern, expired leaf", cert="expired", compatible=False),
    Kind(
        "name_mismatch",
        0.03,
        "modern, certificate for another name",
        cert="mismatch",
        compatible=False,
    ),
    Kind(
        "no_common_cipher",
        0.02,
        "TLSv1.2+1.3, CHACHA20 only",
        ciphers="ECDHE-RSA-CHACHA20-POLY1305",
        compatible=False,
    ),
    Kind("tls13_only", 0.02, "TLSv1.3 only", protocols=("TLSv1.3",), compatible=False),
    Kind(
        "sslv3_legacy",
        0.02,
        "tlslite-ng, SSLv3 and TLSv1, RC4-MD5/DES-CBC3-SHA/AES128-SHA",
        server="tlslite",
        protocols=("SSLv3", "TLSv1"),
        policy=("SSLv3", "TLSv1"),
    ),
    Kind("closed", 0.01, "nothing listens (connection refused)", server="closed", compatible=False),
)
KINDS = {k.name: k for k in FLEET_MIX}
TLSLITE_SUITES = ("RC4-MD5", "DES-CBC3-SHA", "AES128-SHA")


def apportion(total: int, mix: Sequence[Kind]) -> dict[str, int]:
    """Split `total` origins over `mix` by share (largest remainder); each kind gets at least
    one when `total` allows."""
    shares = sum(k.share for k in mix)
    exact = {k.name: total * k.share / shares for k in mix}
    counts = {name: math.floor(x) for name, x in exact.items()}
    if total >= len(mix):
        for name in counts:
            counts[name] = max(counts[name], 1)
    left = total - sum(counts.values())
    by_remainder = sorted(exact, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True)
    i = 0
    while left != 0:
        name = by_remainder[i % len(by_remainder)]
        if left > 0:
            counts[name] += 1
            left -= 1
        elif counts[name] > 1:
            counts[name] -= 1
            left += 1
        i += 1
    return counts


@dataclass(frozen=True)
class LocalOrigin:
    name: str  # also the host name and the SNI
    port: int
    kind: Kind

    @property
    def target(self) -> str:
        return f"{self.name}:{self.port}"


class _BenchNginx(NginxServer):
    """The test suite's nginx, with room for a thousand virtual hosts and connections."""

    def render_config(self, sites: Sequence[NginxSite]) -> str:
        text = super().render_config(sites)
        text = text.replace(
            "events { worker_connections 1024; }",
            "worker_rlimit_nofile 16384;\nevents { worker_connections 8192; }",
        )
        return text.replace("http {\n", "http {\n    server_names_hash_bucket_size 128;\n", 1)


class LocalFleet:
    """Starts `counts[kind]` origins of each kind on 127.0.0.1; `origins` once entered.

    One nginx (one worker process, as the test suite runs it) serves every nginx origin:
    `names_per_port` origins of one kind share a port and are told apart by SNI, so a thousand
    origins need about fifty listening ports. The tlslite-ng origins share one pure-Python
    server (a child process, so its CPU is not this process's); `closed` origins point at a
    port where nothing listens. Each origin has its own certificate for its own name (one key
    per key type, shared, so that a thousand origins start in seconds).
    """

    def __init__(
        self,
        workdir: Path,
        counts: dict[str, int],
        names_per_port: int = 25,
        domain: str = "fleet.test",
    ) -> None:
        self.workdir = Path(workdir)
        self.counts = {name: n for name, n in counts.items() if n > 0}
        self.names_per_port = names_per_port
        self.domain = domain
        self.origins: list[LocalOrigin] = []
        self.nginx: NginxServer | None = None
        self.tlslite: subprocess.Popen[str] | None = None
        self.pki = TestPKI.create()

    @property
    def ca_file(self) -> Path:
        return self.workdir / "root.pem"

    def server_pids(self) -> dict[str, int]:
        pids = {}
        if self.nginx is not None:
            with contextlib.suppress(OSError, ValueError):
                pids["nginx"] = int((self.nginx.workdir / "nginx.pid").read_text())
        if self.tlslite is not None:
            pids["tlslite"] = self.tlslite.pid
        return pids

    def __enter__(self) -> LocalFleet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki.write_roots(self.ca_file)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        if self.tlslite is not None:
            self.tlslite.terminate()
            try:
                self.tlslite.wait(10)
            except subprocess.TimeoutExpired:
                self.tlslite.kill()
                self.tlslite.wait()
            self.tlslite = None

    def _start(self) -> None:
        pki = self.pki
        keys = {"rsa": new_key("rsa2048"), "ecdsa": new_key("p256")}
        certs = self.workdir / "certs"
        sites: list[NginxSite] = []
        names: dict[str, tuple[Kind, str]] = {}  # host -> kind, port group ("" = own port)
        tlslite_names: list[str] = []
        closed: list[str] = []
        for kind_name, count in self.counts.items():
            kind = KINDS[kind_name]
            for i in range(count):
                host = f"o{i:04d}.{kind.name.replace('_', '-')}.{self.domain}"
                if kind.server == "tlslite":
                    tlslite_names.append(host)
                    continue
                if kind.server == "closed":
                    closed.append(host)
                    continue
                key = keys[kind.key]
                leaf = self._leaf(host, kind, key)
                chain = [leaf] if kind.cert == "missing_intermediate" else [leaf, pki.intermediate]
                stem = host.split(".", 1)[0] + "-" + kind.name
                chain_pem, key_pem = write_chain(certs, stem, chain, key)
                group = f"{kind.name}-{i // self.names_per_port}"
                sites.append(
                    NginxSite(
                        name=stem,
                        chain_pem=chain_pem,
                        key_pem=key_pem,
                        protocols=kind.protocols,
                        ciphers=kind.ciphers,
                        server_names=(host,),
                        port_group=group,
                    )
                )
                names[stem] = (kind, host)
        if sites:
            self.nginx = _BenchNginx(self.workdir / "nginx", log_level="crit")
            ports = self.nginx.start(sites)
            for stem, port in ports.items():
                kind, host = names[stem]
                self.origins.append(LocalOrigin(host, port, kind))
        if tlslite_names:
            port = self._start_tlslite(tlslite_names, keys["rsa"])
            self.origins += [LocalOrigin(h, port, KINDS["sslv3_legacy"]) for h in tlslite_names]
        if closed:
            port = closed_port()
            self.origins += [LocalOrigin(h, port, KINDS["closed"]) for h in closed]
        order = {k.name: i for i, k in enumerate(FLEET_MIX)}
        self.origins.sort(key=lambda o: (order[o.kind.name], o.name))

    def _leaf(self, host: str, kind: Kind, key: Any) -> Any:
        if kind.cert == "expired":
            return self.pki.leaf(host, key=key, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
        if kind.cert == "mismatch":
            return self.pki.leaf(f"other-{host}", key=key)
        return self.pki.leaf(host, key=key)

    def _start_tlslite(self, hosts: list[str], key: Any) -> int:
        leaf = issue(
            hosts[0],
            issuer=self.pki.intermediate,
            sans=hosts,
            key=key,
            aia_ca_issuers="http://127.0.0.1:9/test-intermediate.der",
        )
        chain, key_pem = write_chain(
            self.workdir / "certs", "tlslite", [leaf, self.pki.intermediate], key
        )
        argv = [sys.executable, "-m", "exporter.demo.legacy", "--chain", str(chain)]
        argv += ["--key", str(key_pem), "--min", "SSLv3", "--max", "TLSv1"]
        argv += ["--suites", ",".join(TLSLITE_SUITES), "--name", "fleet-legacy"]
        self.tlslite = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.tlslite.stdout is not None
        line = self.tlslite.stdout.readline().strip()
        if not line.isdigit():
            raise SystemExit(f"the tlslite-ng origin did not start: {line!r}")
        return int(line)
