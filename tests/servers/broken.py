"""Origins that misbehave in one specific way, to pin down how each failure is classified.

All listen on 127.0.0.1 and share the `start() -> port`, `stop()`, context-manager API of
`ThreadedTCPServer`.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

from tlslite.constants import (
    AlertDescription,
    AlertLevel,
    CertificateType,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from tlslite.extensions import RenegotiationInfoExtension
from tlslite.messages import Certificate, ClientHello, ServerHello, ServerHelloDone
from tlslite.utils.codec import Parser
from tlslite.x509certchain import X509CertChain

from tests.servers.ports import ThreadedTCPServer, free_port, recv_exact

__all__ = [
    "HandshakeFailsAfterHelloServer",
    "PlainHTTPServer",
    "SilentServer",
    "SlowFlightServer",
    "closed_port",
]

#: suites the half-broken origin is willing to "choose" (RSA key exchange, no ServerKeyExchange)
FAKE_SUITES: tuple[int, ...] = (
    CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA,  # 0x002F
    CipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA,  # 0x0035
)
_MAX_RECORD = 2**14 + 2048


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens, so connecting is refused."""
    return free_port()


def _record(content_type: int, version: tuple[int, int], payload: bytes) -> bytes:
    return struct.pack("!BBBH", content_type, version[0], version[1], len(payload)) + payload


def _read_record(conn: socket.socket) -> tuple[int, bytes] | None:
    """One TLS record (type, payload), or None on EOF / something that is not TLS."""
    header = recv_exact(conn, 5)
    if len(header) < 5:
        return None
    content_type, major, _minor, length = struct.unpack("!BBBH", header)
    if major != 3 or length > _MAX_RECORD:
        return None
    payload = recv_exact(conn, length)
    if len(payload) < length:
        return None
    return content_type, payload


def _read_client_hello(conn: socket.socket) -> ClientHello | None:
    """Reassemble the first handshake message and parse it if it is a ClientHello."""
    buffer = b""
    while len(buffer) < 4 or len(buffer) < 4 + int.from_bytes(buffer[1:4], "big"):
        record = _read_record(conn)
        if record is None or record[0] != ContentType.handshake:
            return None
        buffer += record[1]
    if buffer[0] != HandshakeType.client_hello:
        return None
    # tlslite's parsers start after the handshake type byte (at the 3-byte length)
    hello: ClientHello = ClientHello().parse(Parser(bytearray(buffer[1:])))
    return hello


def _negotiate_version(hello: ClientHello) -> tuple[int, int]:
    """The client's highest version that is at most TLS 1.2."""
    versions_ext = hello.getExtension(ExtensionType.supported_versions)
    offered: list[tuple[int, int]] = []
    if versions_ext is not None:
        offered = [(major, minor) for major, minor in versions_ext.versions]
    candidates = [v for v in offered if (3, 0) <= v <= (3, 3)]
    if candidates:
        return max(candidates)
    major, minor = hello.client_version
    return min((major, minor), (3, 3))


class HandshakeFailsAfterHelloServer(ThreadedTCPServer):
    """Picks a suite and sends its certificate, then fails the handshake.

    Models an origin that gets as far as ServerHello/Certificate/ServerHelloDone but cannot
    finish (e.g. its private key does not match): the client's key exchange is answered with
    a fatal handshake_failure alert. A probe that stops at ServerHello would call it healthy.
    """

    def __init__(self, chain_pem: Path) -> None:
        super().__init__()
        self._chain = X509CertChain()
        self._chain.parsePemList(chain_pem.read_text())

    def handle(self, conn: socket.socket) -> None:
        hello = _read_client_hello(conn)
        if hello is None:
            return
        version = _negotiate_version(hello)
        suite = next((s for s in hello.cipher_suites if s in FAKE_SUITES), None)
        if suite is None or version < (3, 0):
            conn.sendall(self._alert(version if version >= (3, 0) else (3, 1)))
            return
        extensions = []
        if (
            hello.getExtension(ExtensionType.renegotiation_info) is not None
            or CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
        ):
            # OpenSSL 3 clients refuse servers without RFC 5746 support; echo it back
            extensions.append(RenegotiationInfoExtension().create(bytearray(0)))
        server_hello = ServerHello().create(
            version,
            bytearray(os.urandom(32)),
            bytearray(os.urandom(32)),
            suite,
            CertificateType.x509,
            extensions=extensions or None,
        )
        certificate = Certificate(CertificateType.x509).create(self._chain)
        flight = server_hello.write() + certificate.write() + ServerHelloDone().create().write()
        conn.sendall(_record(ContentType.handshake, version, bytes(flight)))
        # wait for the client's next flight (ClientKeyExchange, ...) or its give-up
        if _read_record(conn) is not None:
            conn.sendall(self._alert(version))

    @staticmethod
    def _alert(version: tuple[int, int]) -> bytes:
        body = bytes([AlertLevel.fatal, AlertDescription.handshake_failure])
        return _record(ContentType.alert, version, body)


class PlainHTTPServer(ThreadedTCPServer):
    """Speaks plain HTTP on the TLS port: whatever arrives gets a 400, then close."""

    BODY = b"400 Bad Request: this is a plain HTTP server, not TLS\n"

    def handle(self, conn: socket.socket) -> None:
        conn.recv(65536)  # a ClientHello, a request line, anything
        conn.sendall(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(self.BODY)}\r\n\r\n".encode()
            + self.BODY
        )


class SilentServer(ThreadedTCPServer):
    """Accepts and never answers, holding the connection until `stop` (a hung origin)."""

    conn_timeout = None

    def __init__(self) -> None:
        super().__init__()
        self._released = threading.Event()

    def start(self, port: int = 0) -> int:
        self._released.clear()
        return super().start(port)

    def stop(self) -> None:
        self._released.set()
        super().stop()

    def handle(self, conn: socket.socket) -> None:
        self._released.wait()


class SlowFlightServer(HandshakeFailsAfterHelloServer):
    """Sends its ServerHello at once and the rest of its flight (Certificate, ServerHelloDone)
    `pause` seconds later, on the first connection only; every later ClientHello gets a
    handshake_failure alert at once. Shows who waits for a whole flight and who does not."""

    def __init__(self, chain_pem: Path, pause: float) -> None:
        super().__init__(chain_pem)
        self._pause = pause
        self._first = threading.Lock()
        self.served_first = False

    def handle(self, conn: socket.socket) -> None:
        hello = _read_client_hello(conn)
        if hello is None:
            return
        with self._first:
            first, self.served_first = not self.served_first, True
        version = _negotiate_version(hello)
        suite = next((s for s in hello.cipher_suites if s in FAKE_SUITES), None)
        if not first or suite is None:
            conn.sendall(self._alert(version if version >= (3, 0) else (3, 1)))
            return
        extensions = [RenegotiationInfoExtension().create(bytearray(0))]
        server_hello = ServerHello().create(
            version,
            bytearray(os.urandom(32)),
            bytearray(0),
            suite,
            CertificateType.x509,
            extensions=extensions,
        )
        conn.sendall(_record(ContentType.handshake, version, bytes(server_hello.write())))
        self._stopping.wait(self._pause)
        certificate = Certificate(CertificateType.x509).create(self._chain)
        rest = certificate.write() + ServerHelloDone().create().write()
        conn.sendall(_record(ContentType.handshake, version, bytes(rest)))
        _read_record(conn)
