"""Real nginx origins: one nginx process serving every test site, each on its own port.

The exporter's verdicts must hold against a production TLS stack, not only against our own
Python servers, so the mainstream scenarios (chains, protocol ranges, cipher lists, curves) run
on the system nginx. Everything nginx writes (config, pid, logs, temp dirs) lives in `workdir`,
it runs in the foreground as a single process (`master_process off`: nothing to orphan, no
privilege drop that could make key files unreadable), and only listens on loopback: 127.0.0.1
unless a site names another loopback address (127.0.0.2 and 127.0.0.3 work on Linux without any
configuration), so one name resolving to several origin addresses can be served by one nginx.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.servers.ports import HOST, free_port

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")  # OpenSSL 3 has no SSLv3 at all
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class NginxError(RuntimeError):
    """nginx refused the config or did not come up; the message carries its error log."""


@dataclass(frozen=True)
class NginxSite:
    """One TLS origin. Each site gets its own port unless several share a `port_group`."""

    name: str
    chain_pem: Path  # the certificate chain exactly as it should be sent (leaf first)
    key_pem: Path
    protocols: tuple[str, ...] = ("TLSv1.2",)  # nginx ssl_protocols names, TLSv1..TLSv1.3
    # OpenSSL cipher string; ":@SECLEVEL=0" is appended (unless a level is given) so that
    # TLSv1/TLSv1.1, SHA-1 and small keys still work on OpenSSL 3. It does not limit TLS 1.3
    # suites (nginx 1.22 would need ssl_conf_command Ciphersuites, see extra_directives).
    ciphers: str = "DEFAULT"
    prefer_server_ciphers: bool = True
    ecdh_curve: str | None = None  # ssl_ecdh_curve, e.g. "prime256v1:secp384r1"
    server_names: tuple[str, ...] = ("_",)  # for SNI-based selection on a shared port
    # sites with the same group share one port; the first such site is the default_server
    # (it also decides the protocol versions, which are fixed before SNI is looked at)
    port_group: str | None = None
    extra_directives: tuple[str, ...] = ()  # raw nginx lines for the server block, e.g. "x y;"
    # the loopback address to listen on; sites on different addresses may share a port_group,
    # each address then being its own origin with its own certificate (a multi-address name)
    address: str = HOST

    @property
    def cipher_string(self) -> str:
        if "@SECLEVEL" in self.ciphers:
            return self.ciphers
        return f"{self.ciphers}:@SECLEVEL=0"

    def validate(self) -> None:
        """Catch mistakes that nginx would report less clearly (or not at all)."""
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"site name {self.name!r} must match {_NAME.pattern}")
        if not self.protocols:
            raise ValueError(f"site {self.name}: no protocols")
        if "SSLv3" in self.protocols:
            raise ValueError(f"site {self.name}: OpenSSL 3 cannot serve SSLv3; use LegacyTLSServer")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"site {self.name}: unknown protocols {unknown}; use {PROTOCOLS}")
        try:
            loopback = ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"site {self.name}: {self.address!r} is not a loopback address")

    @property
    def listen_host(self) -> str:
        """The address as nginx's `listen` and a socket connect want it ([::1] for IPv6)."""
        return f"[{self.address}]" if ":" in self.address else self.address


def _is_nginx_https(port: int, host: str = HOST) -> bool:
    """Whether nginx itself answers on `port`, not just anything that accepts connections.

    A port from `free_port` can be grabbed by someone else before nginx binds it; a plain
    HTTP request to an nginx TLS port gets nginx's distinctive 400 page, whatever the site's
    TLS settings are.
    """
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            response = b""
            while chunk := sock.recv(4096):
                response += chunk
    except OSError:
        return False
    return b"plain HTTP request was sent to HTTPS port" in response


def _quote(value: str | Path) -> str:
    """An nginx double-quoted string."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class NginxServer:
    """Starts one foreground nginx for a set of sites; `stop` terminates and reaps it."""

    def __init__(
        self, workdir: Path, nginx_bin: str | None = None, log_level: str = "info"
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.nginx_bin = nginx_bin or shutil.which("nginx") or "/usr/sbin/nginx"
        self.log_level = log_level  # "info" logs every failed handshake, handy when debugging
        self.ports: dict[str, int] = {}
        self.addresses: dict[str, str] = {}  # site name -> the address it listens on
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def read_error_log(self) -> str:
        """nginx's error log, plus whatever it printed to stdout/stderr that is not in it."""
        texts = []
        for path in (self.error_log, self.workdir / "nginx.out"):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(errors="replace").strip())
        log, output = [*texts, "", ""][:2]
        extra = [line for line in output.splitlines() if line.split("] ", 1)[-1] not in log]
        return "\n".join([log, *extra]).strip()

    def start(self, sites: Sequence[NginxSite]) -> dict[str, int]:
        """Serve `sites`; return site name -> port (on the site's address, 127.0.0.1 unless it
        names another) once every port accepts."""
        if self._proc is not None:
            raise RuntimeError("nginx already started")
        if not sites:
            raise ValueError("no sites")
        for site in sites:
            site.validate()
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate site names in {names}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.addresses = {s.name: s.address for s in sites}
        for attempt in range(2):  # free_port races; retry once on "Address already in use"
            self.ports = self._assign_ports(sites)
            try:
                self._launch(sites)
            except NginxError as err:
                if attempt == 0 and "Address already in use" in str(err):
                    continue
                raise
            break
        return dict(self.ports)

    def stop(self) -> None:
        """Terminate nginx (SIGTERM, then SIGKILL) and wait for it. Idempotent."""
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _assign_ports(sites: Sequence[NginxSite]) -> dict[str, int]:
        group_ports: dict[str, int] = {}
        ports: dict[str, int] = {}
        taken: set[int] = set()

        def distinct_port() -> int:
            # The kernel may hand the same free port out twice in a row: two sites on one
            # port would silently become SNI-selected virtual hosts.
            while (port := free_port()) in taken:
                pass
            taken.add(port)
            return port

        for site in sites:
            if site.port_group is None:
                ports[site.name] = distinct_port()
            elif site.port_group in group_ports:
                ports[site.name] = group_ports[site.port_group]
            else:
                ports[site.name] = group_ports[site.port_group] = distinct_port()
        return ports

    def _launch(self, sites: Sequence[NginxSite]) -> None:
        self.error_log.unlink(missing_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)  # nginx creates only the last level
        self.config_path.write_text(self.render_config(sites))
        self._output = (self.workdir / "nginx.out").open("wb")
        self._proc = subprocess.Popen(
            [
                self.nginx_bin,
                "-p",
                f"{self.workdir}/",
                "-c",
                str(self.config_path),
                "-e",
                str(self.error_log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C in the terminal is ours to handle, not nginx's
        )
        try:
            self._wait_ready(self._listeners(sites))
        except BaseException:
            self.stop()
            raise

    def _listeners(self, sites: Sequence[NginxSite]) -> set[tuple[str, int]]:
        return {(s.address, self.ports[s.name]) for s in sites}

    def _wait_ready(self, listeners: set[tuple[str, int]]) -> None:
        assert self._proc is not None
        pending = set(listeners)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self._proc.poll()
            if code is not None:
                raise NginxError(self._failure(f"nginx exited with status {code} on startup"))
            for address, port in sorted(pending):
                if _is_nginx_https(port, address):
                    pending.discard((address, port))
            if not pending:
                return
            if time.monotonic() > deadline:
                raise NginxError(
                    self._failure(f"ports {sorted(pending)} not accepting after {START_TIMEOUT}s")
                )
            time.sleep(0.02)

    def _failure(self, headline: str) -> str:
        log = self.read_error_log() or "(error log is empty)"
        return f"{headline}\nconfig: {self.config_path}\n--- nginx error log ---\n{log}"

    def render_config(self, sites: Sequence[NginxSite]) -> str:
        """The complete nginx.conf for `sites` (ports must already be assigned)."""
        w = self.workdir
        tmp = w / "tmp"
        lines = [
            "# generated by tests/servers/nginx.py",
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            f"pid {_quote(w / 'nginx.pid')};",
            f"lock_file {_quote(w / 'nginx.lock')};",
            f"error_log {_quote(self.error_log)} {self.log_level};",
            "events { worker_connections 1024; }",
            "http {",
            f"    access_log {_quote(w / 'access.log')};",
            f"    client_body_temp_path {_quote(tmp / 'client_body')};",
            f"    proxy_temp_path {_quote(tmp / 'proxy')};",
            f"    fastcgi_temp_path {_quote(tmp / 'fastcgi')};",
            f"    uwsgi_temp_path {_quote(tmp / 'uwsgi')};",
            f"    scgi_temp_path {_quote(tmp / 'scgi')};",
            "    default_type text/plain;",
            "    keepalive_timeout 5s;",
            "    server_tokens off;",
        ]
        seen: set[tuple[str, int]] = set()
        for site in sites:
            port = self.ports[site.name]
            default = "" if (site.address, port) in seen else " default_server"
            prefer = "on" if site.prefer_server_ciphers else "off"
            seen.add((site.address, port))
            lines += [
                "    server {",
                f"        listen {site.listen_host}:{port} ssl{default};",
                f"        server_name {' '.join(site.server_names)};",
                f"        ssl_certificate {_quote(Path(site.chain_pem).resolve())};",
                f"        ssl_certificate_key {_quote(Path(site.key_pem).resolve())};",
                f"        ssl_protocols {' '.join(site.protocols)};",
                f"        ssl_ciphers {_quote(site.cipher_string)};",
                f"        ssl_prefer_server_ciphers {prefer};",
            ]
            if site.ecdh_curve:
                lines.append(f"        ssl_ecdh_curve {site.ecdh_curve};")
            lines += [f"        {d}" for d in site.extra_directives]
            lines += [
                # names are validated against _NAME, so they need no escaping here
                f'        location / {{ return 200 "origin {site.name}\\n"; }}',
                "    }",
            ]
        lines.append("}")
        return "\n".join(lines) + "\n"
