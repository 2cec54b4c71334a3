"""A real DNS server for tests: Debian's dnsmasq on 127.0.0.1, serving only the records given.

Resolution has to be tested against a real resolver's answers (several A records, AAAA,
CNAME chains, NXDOMAIN) rather than a mocked one, and dnsmasq is a single small foreground
process that needs no configuration file. It never forwards: `--no-resolv` with no upstream,
and every zone named in `local_domains` answers NXDOMAIN for what it does not hold.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import dns.exception
import dns.message
import dns.query

from exporter.demo.running import Running
from tests.servers.ports import HOST

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
DNSMASQ = "/usr/sbin/dnsmasq"


class DnsmasqError(RuntimeError):
    """dnsmasq refused its arguments or did not come up; the message carries its output."""


@dataclass(frozen=True)
class DnsRecords:
    """What dnsmasq serves. Several entries for one name give several records."""

    # (name, address): one A or AAAA record per entry (--host-record)
    hosts: tuple[tuple[str, str], ...] = ()
    # (alias, target): target must be a name dnsmasq holds itself (--cname)
    cnames: tuple[tuple[str, str], ...] = ()
    # (domain, address): the domain and every name under it (--address=/domain/address)
    wildcards: tuple[tuple[str, str], ...] = ()
    # zones answered locally only: names in them that are not held are NXDOMAIN (--local)
    local_domains: tuple[str, ...] = ("test",)

    def arguments(self) -> list[str]:
        args = [f"--host-record={name},{address}" for name, address in self.hosts]
        args += [f"--cname={alias},{target}" for alias, target in self.cnames]
        args += [f"--address=/{domain}/{address}" for domain, address in self.wildcards]
        args += [f"--local=/{domain}/" for domain in self.local_domains]
        return args


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 a moment ago (dnsmasq binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def answers(port: int, timeout: float = 0.2) -> bool:
    """Whether a DNS server on 127.0.0.1:`port` answers at all (any rcode counts)."""
    query = dns.message.make_query("ready.invalid.", "A")
    try:
        dns.query.udp(query, HOST, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return True


class DnsmasqServer(Running):
    """One foreground dnsmasq; `with DnsmasqServer(records) as server:` gives `server.port`."""

    def __init__(self, records: DnsRecords, dnsmasq_bin: str | None = None) -> None:
        self.records = records
        self.dnsmasq_bin = dnsmasq_bin or shutil.which("dnsmasq") or DNSMASQ
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def server(self) -> tuple[str, int]:
        return HOST, self.port

    def command(self, port: int) -> list[str]:
        return [
            self.dnsmasq_bin,
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            f"--listen-address={HOST}",
            f"--port={port}",
            "--pid-file=",  # empty: no pid file (nothing to clean up, no /run write)
            "--user=",  # empty: keep running as the caller, do not switch to nobody
            "--log-facility=-",
            "--log-queries",
            *self.records.arguments(),
        ]

    def start(self) -> int:
        if self._proc is not None:
            raise RuntimeError("dnsmasq already started")
        for attempt in range(3):  # the free port can be taken before dnsmasq binds it
            try:
                return self._launch(free_udp_tcp_port())
            except DnsmasqError as err:
                if attempt == 2 or "Address already in use" not in str(err):
                    raise
        raise AssertionError("unreachable")

    def _launch(self, port: int) -> int:
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._proc = subprocess.Popen(
            self.command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(port)
        except BaseException:
            output = self.output()
            self.stop()
            raise DnsmasqError(f"dnsmasq did not start on {HOST}:{port}\n{output}") from None
        self.port = port
        return port

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise DnsmasqError("not ready")
            time.sleep(0.02)

    def output(self) -> str:
        """Everything dnsmasq logged so far (it logs each query with --log-queries)."""
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def stop(self) -> None:
        """Terminate dnsmasq (SIGTERM, then SIGKILL) and reap it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._output is not None:
            self._output.close()
            self._output = None


@contextlib.contextmanager
def silent_dns_server() -> Iterator[tuple[str, int]]:
    """A UDP port on 127.0.0.1 that receives queries and never answers (a dead resolver).

    The bound socket lets the kernel accept and queue every datagram; nothing reads it, so no
    answer and no ICMP "port unreachable" ever comes back: the client can only time out.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield HOST, sock.getsockname()[1]


def host_records(name: str, addresses: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`hosts` entries giving `name` every address in `addresses`."""
    return tuple((name, address) for address in addresses)
