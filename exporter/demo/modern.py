"""A TLS origin on Python's own `ssl` module, for the demo's mainstream set-ups.

The demo must run where there is no nginx, so the origins OpenSSL 3 can still serve (TLS 1.0 to
1.3, any OpenSSL cipher string, any chain file) run in-process on the standard library. The
chain file is sent exactly as written, which is what makes "missing intermediate" reproducible.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from exporter.demo.tcp import KEEPALIVE_SECONDS, ThreadedTCPServer, http_response, serve_http

__all__ = ["VERSIONS", "ModernConfig", "ModernTLSServer"]

#: nginx/CloudFront protocol names -> the `ssl` module's versions
VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

#: how much of an HTTP request head the origin reads before answering anyway


@dataclass(frozen=True)
class ModernConfig:
    """What the origin serves; `ciphers` is an OpenSSL cipher string for TLS 1.2 and below."""

    chain_pem: Path  # leaf first, then whatever intermediates the origin should send
    key_pem: Path
    min_version: str = "TLSv1.2"  # "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"
    max_version: str = "TLSv1.3"
    ciphers: str = "DEFAULT"
    name: str = "origin"  # the HTTP body says "origin <name>"

    def validate(self) -> None:
        """Refuse versions the `ssl` module cannot set, before anything listens."""
        for version in (self.min_version, self.max_version):
            if version not in VERSIONS:
                raise ValueError(f"unknown version {version!r}; use one of {list(VERSIONS)}")
        if VERSIONS[self.min_version] > VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} > max_version {self.max_version}")

    def context(self) -> ssl.SSLContext:
        """A server context with exactly these versions and suites.

        `@SECLEVEL=0` lets OpenSSL 3 serve TLS 1.0/1.1 and the weak suites an origin may still
        be configured with; the demo shows what CloudFront makes of them, not what OpenSSL likes.
        """
        self.validate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            # Python deprecates naming TLS 1.0/1.1 at all; serving them is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = VERSIONS[self.min_version]
            context.maximum_version = VERSIONS[self.max_version]
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE  # like nginx's prefer_server_ciphers
        context.set_ciphers(f"{self.ciphers}:@SECLEVEL=0")
        context.load_cert_chain(self.chain_pem, self.key_pem)
        return context


class ModernTLSServer(ThreadedTCPServer):
    """TLS origin on the `ssl` module; answers `200 OK` to whatever it is asked (HTTP/1.1).

    Probes abort handshakes on purpose (one ClientHello per suite), so a failed handshake is
    routine: it is counted in `handshake_failures` and the connection closed without a word.
    """

    def __init__(self, config: ModernConfig) -> None:
        super().__init__()
        self.config = config
        self._context = config.context()
        self._count_lock = threading.Lock()
        #: completed handshakes
        self.handshakes = 0
        #: handshakes that failed: no common version or suite, or a client that gave up
        self.handshake_failures = 0
        self._response = http_response(config.name)

    def handle(self, conn: socket.socket) -> None:
        # Wrap a duplicate: the base class keeps `conn` to shut it down in `stop`, and shutting
        # the shared socket down also wakes a handler blocked in the TLS layer.
        try:
            tls = self._context.wrap_socket(conn.dup(), server_side=True)
        except OSError:  # ssl.SSLError, resets and timeouts alike
            with self._count_lock:
                self.handshake_failures += 1
            return
        with self._count_lock:
            self.handshakes += 1
        with tls:
            tls.settimeout(KEEPALIVE_SECONDS)
            with contextlib.suppress(OSError):  # resets, timeouts: the connection is done
                serve_http(lambda: tls.recv(4096), tls.sendall, self._response)
