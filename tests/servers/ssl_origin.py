"""A Python `ssl` (OpenSSL) origin serving any certificate chain, in any order, as given.

OpenSSL's security level is 0 so that SHA-1 and MD5 signed certificates and 1024-bit keys can
be served (the point is to see what the *client* accepts). Optionally requests a client
certificate.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.servers.ports import ThreadedTCPServer

__all__ = ["SSLOrigin"]

_RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class SSLOrigin(ThreadedTCPServer):
    """Serves `chain_pems` (leaf first, then the rest exactly in the given order)."""

    def __init__(
        self,
        chain_pems: Sequence[bytes],
        key_pem: bytes,
        *,
        minimum: ssl.TLSVersion | None = None,
        maximum: ssl.TLSVersion | None = None,
        client_ca_pem: bytes | None = None,
        client_verify: ssl.VerifyMode = ssl.CERT_NONE,
    ) -> None:
        super().__init__()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with tempfile.TemporaryDirectory() as directory:
            chain = Path(directory) / "chain.pem"
            key = Path(directory) / "key.pem"
            chain.write_bytes(b"".join(chain_pems))
            key.write_bytes(key_pem)
            context.load_cert_chain(chain, key)
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
        if client_ca_pem is not None:
            context.load_verify_locations(cadata=client_ca_pem.decode())
        context.verify_mode = client_verify
        self.context = context
        #: the DER client certificate of each completed handshake (None: none sent)
        self.client_certificates: list[bytes | None] = []

    def handle(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.client_certificates.append(tls.getpeercert(binary_form=True))
        try:
            tls.recv(4096)
            tls.sendall(_RESPONSE)
        except (ssl.SSLError, OSError):
            pass
        finally:
            tls.close()
