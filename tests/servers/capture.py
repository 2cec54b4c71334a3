"""An origin that only listens: it reads the ClientHello, keeps it, and hangs up.

Used to see exactly what a client (s2n-tls under a CloudFront policy) offers. The hello is
parsed with tlslite-ng's own `ClientHello` parser, not with the engine's code.
"""

from __future__ import annotations

import socket
import struct
import threading

from tlslite.constants import ContentType, HandshakeType
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

from tests.servers.ports import ThreadedTCPServer, recv_exact

__all__ = ["HelloCaptureServer", "read_client_hello"]

_MAX_RECORD = 2**14 + 2048


def read_client_hello(conn: socket.socket) -> tuple[bytes, ClientHello] | None:
    """(the raw handshake message, the parsed hello), or None if the client sent no hello."""
    buffer = b""
    while len(buffer) < 4 or len(buffer) < 4 + int.from_bytes(buffer[1:4], "big"):
        header = recv_exact(conn, 5)
        if len(header) < 5:
            return None
        content_type, major, _minor, length = struct.unpack("!BBBH", header)
        if content_type != ContentType.handshake or major != 3 or length > _MAX_RECORD:
            return None
        payload = recv_exact(conn, length)
        if len(payload) < length:
            return None
        buffer += payload
    if buffer[0] != HandshakeType.client_hello:
        return None
    message = buffer[: 4 + int.from_bytes(buffer[1:4], "big")]
    # tlslite's parsers start after the handshake type byte (at the 3-byte length)
    hello: ClientHello = ClientHello().parse(Parser(bytearray(message[1:])))
    return message, hello


class HelloCaptureServer(ThreadedTCPServer):
    """Keeps every ClientHello it receives (raw and parsed), then closes the connection."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.hellos: list[tuple[bytes, ClientHello]] = []

    def handle(self, conn: socket.socket) -> None:
        captured = read_client_hello(conn)
        if captured is not None:
            with self._lock:
                self.hellos.append(captured)

    def take(self) -> tuple[bytes, ClientHello]:
        """The oldest hello not yet taken."""
        with self._lock:
            return self.hellos.pop(0)
