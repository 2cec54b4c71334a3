"""tlslite-ng origins for what OpenSSL 3.0 cannot serve: SSLv3 without EMS, ML-KEM hybrids.

`LegacyNoEMSServer` is the legacy origin (exporter.demo.legacy) without the extended master
secret extension: tlslite-ng 0.8 negotiates EMS under SSLv3 when a client offers it (s2n-tls
does) and then fails its own key derivation, whereas real SSLv3 servers ignore the extension.

`ModernTlsliteServer` speaks TLS 1.2/1.3 with the groups it is given, in its preference order;
tlslite-ng implements the ML-KEM hybrids (X25519MLKEM768, ...) when `kyber-py` is installed.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from tlslite.errors import BaseTLSException
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509certchain import X509CertChain

from exporter.demo.legacy import LegacyConfig, LegacyTLSServer
from tests.servers.ports import ThreadedTCPServer

__all__ = ["LegacyNoEMSServer", "ModernTlsliteServer"]

_RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class LegacyNoEMSServer(LegacyTLSServer):
    """The legacy origin, never negotiating the extended master secret."""

    def __init__(self, config: LegacyConfig) -> None:
        super().__init__(config)
        self._settings.useExtendedMasterSecret = False
        self._settings.requireExtendedMasterSecret = False


class ModernTlsliteServer(ThreadedTCPServer):
    """A TLS 1.2/1.3 origin; `groups` are tlslite names, most preferred first."""

    def __init__(
        self,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        versions: Sequence[tuple[int, int]] = ((3, 4),),
        groups: Sequence[str] = ("x25519mlkem768", "x25519", "secp256r1"),
        ciphers: Sequence[str] | None = None,  # tlslite cipherNames; None: its defaults
    ) -> None:
        super().__init__()
        self._chain = X509CertChain()
        self._chain.parsePemList(chain_pem.decode())
        self._key = parsePEMKey(key_pem.decode(), private=True)
        settings = HandshakeSettings()
        settings.versions = sorted(versions, reverse=True)
        settings.minVersion = min(versions)
        settings.maxVersion = max(versions)
        settings.eccCurves = list(groups)
        settings.keyShares = []
        settings.cipherImplementations = ["python"]
        if ciphers is not None:
            settings.cipherNames = list(ciphers)
        self._settings = settings.validate()

    def handle(self, conn: socket.socket) -> None:
        tls = TLSConnection(conn)
        try:
            tls.handshakeServer(
                certChain=self._chain, privateKey=self._key, settings=self._settings
            )
            tls.write(_RESPONSE)
            tls.close()
        except BaseTLSException:
            pass
