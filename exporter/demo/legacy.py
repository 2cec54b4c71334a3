"""A tlslite-ng origin for what the system OpenSSL 3.0 can no longer serve.

nginx on OpenSSL 3 has no SSLv3, RC4 or (by default) 3DES, yet those are exactly the origins
CloudFront refuses or barely reaches. tlslite-ng still implements them in pure Python, so this
server speaks SSLv3 .. TLS 1.2 with RSA key exchange and *exactly* the suites it is given.
The demo uses it for its SSLv3/RC4 origin; the tests for every legacy scenario.

Run standalone for manual testing or benchmarks:

    python -m exporter.demo.legacy --chain X --key Y --min SSLv3 --max SSLv3 \
        --suites RC4-MD5,DES-CBC3-SHA --port 0
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tlslite.errors import BaseTLSException
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509certchain import X509CertChain

from exporter.demo.tcp import KEEPALIVE_SECONDS, ThreadedTCPServer, http_response, serve_http

__all__ = ["SUITES", "VERSIONS", "LegacyConfig", "LegacyTLSServer", "Suite", "main"]

VERSIONS: dict[str, tuple[int, int]] = {
    "SSLv3": (3, 0),
    "TLSv1": (3, 1),
    "TLSv1.1": (3, 2),
    "TLSv1.2": (3, 3),
}


class Suite(NamedTuple):
    """An RSA-key-exchange suite as tlslite names its parts."""

    code: int
    cipher: str  # tlslite cipherNames entry
    mac: str  # tlslite macNames entry
    min_version: tuple[int, int]


#: OpenSSL name -> suite. All use RSA key exchange (the only kind old origins reliably offer).
SUITES: dict[str, Suite] = {
    "RC4-MD5": Suite(0x0004, "rc4", "md5", (3, 0)),
    "RC4-SHA": Suite(0x0005, "rc4", "sha", (3, 0)),
    "DES-CBC3-SHA": Suite(0x000A, "3des", "sha", (3, 0)),
    "AES128-SHA": Suite(0x002F, "aes128", "sha", (3, 0)),
    "AES256-SHA": Suite(0x0035, "aes256", "sha", (3, 0)),
    "AES128-SHA256": Suite(0x003C, "aes128", "sha256", (3, 3)),
    "AES256-SHA256": Suite(0x003D, "aes256", "sha256", (3, 3)),
    "AES128-GCM-SHA256": Suite(0x009C, "aes128gcm", "aead", (3, 3)),
    "AES256-GCM-SHA384": Suite(0x009D, "aes256gcm", "aead", (3, 3)),
}


@dataclass(frozen=True)
class LegacyConfig:
    """What the origin accepts; `suites` are OpenSSL names, in server preference order."""

    chain_pem: Path
    key_pem: Path  # RSA key
    min_version: str = "SSLv3"  # "SSLv3" | "TLSv1" | "TLSv1.1" | "TLSv1.2"
    max_version: str = "SSLv3"
    suites: tuple[str, ...] = ("RC4-MD5", "DES-CBC3-SHA")
    name: str = "legacy"  # the HTTP body says "origin <name>"

    def validate(self) -> None:
        """Refuse configurations that would silently serve nothing."""
        for version in (self.min_version, self.max_version):
            if version not in VERSIONS:
                raise ValueError(f"unknown version {version!r}; use one of {list(VERSIONS)}")
        if VERSIONS[self.min_version] > VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} > max_version {self.max_version}")
        if not self.suites:
            raise ValueError("no cipher suites given")
        unknown = [s for s in self.suites if s not in SUITES]
        if unknown:
            raise ValueError(f"unsupported suites {unknown}; supported: {list(SUITES)}")
        if all(SUITES[s].min_version > VERSIONS[self.max_version] for s in self.suites):
            raise ValueError(f"none of {self.suites} exists at or below {self.max_version}")

    def settings(self) -> HandshakeSettings:
        """tlslite settings enabling the requested suites (and possibly their cross products).

        tlslite selects suites by cipher x MAC x key-exchange names, so {RC4-MD5, DES-CBC3-SHA}
        also enables RC4-SHA; `_ExactSuitesConnection` removes such extras afterwards.
        """
        low, high = VERSIONS[self.min_version], VERSIONS[self.max_version]
        chosen = [SUITES[s] for s in self.suites]
        settings = HandshakeSettings()
        settings.minVersion = low
        settings.maxVersion = high
        # `versions` is what tlslite matches against a supported_versions extension
        settings.versions = sorted((v for v in VERSIONS.values() if low <= v <= high), reverse=True)
        settings.cipherNames = list(dict.fromkeys(s.cipher for s in chosen))
        settings.macNames = list(dict.fromkeys(s.mac for s in chosen))
        settings.keyExchangeNames = ["rsa"]
        settings.cipherImplementations = ["python"]
        if low == VERSIONS["SSLv3"]:
            # SSLv3 has no extended master secret (RFC 7627 is TLS only), and SSLv3-era
            # servers never negotiate it; tlslite-ng would, then fail its own key derivation.
            settings.useExtendedMasterSecret = False
        validated: HandshakeSettings = settings.validate()  # raises ValueError on nonsense
        return validated


class _ExactSuitesConnection(TLSConnection):  # type: ignore[misc]
    """A server connection that negotiates only `allowed`, preferring its order.

    Hooks tlslite's (private) `_server_select_certificate`, which receives the server's
    candidate suites; an empty candidate list makes tlslite send a handshake_failure alert.
    """

    def __init__(self, sock: socket.socket, allowed: Sequence[int]) -> None:
        super().__init__(sock)
        self._allowed = tuple(allowed)

    def _server_select_certificate(
        self,
        settings: HandshakeSettings,
        client_hello: Any,
        cipher_suites: list[int],
        cert_chain: X509CertChain,
        private_key: Any,
        version: tuple[int, int],
    ) -> Any:
        exact = [code for code in self._allowed if code in cipher_suites]
        return super()._server_select_certificate(
            settings, client_hello, exact, cert_chain, private_key, version
        )


class LegacyTLSServer(ThreadedTCPServer):
    """SSLv3..TLS 1.2 origin with exactly the configured RSA suites; HTTP/1.0 200 on success."""

    def __init__(self, config: LegacyConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self._settings = config.settings()
        self._allowed = [SUITES[s].code for s in config.suites]
        self._chain = X509CertChain()
        self._chain.parsePemList(config.chain_pem.read_text())
        self._key = parsePEMKey(config.key_pem.read_text(), private=True)
        if getattr(self._key, "key_type", None) != "rsa":
            raise ValueError(f"{config.key_pem}: RSA key exchange needs an RSA key")
        self._response = http_response(config.name)

    def handle(self, conn: socket.socket) -> None:
        tls = _ExactSuitesConnection(conn, self._allowed)
        try:
            tls.handshakeServer(
                certChain=self._chain, privateKey=self._key, settings=self._settings
            )
            conn.settimeout(KEEPALIVE_SECONDS)
            serve_http(lambda: bytes(tls.read(max=4096)), tls.write, self._response)
            tls.close()
        except (BaseTLSException, OSError):
            pass  # failed handshake, rude or idle client: tlslite already sent any alert


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; print the port on its own line first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chain", type=Path, required=True, help="PEM chain, leaf first")
    parser.add_argument("--key", type=Path, required=True, help="PEM RSA private key")
    parser.add_argument("--min", default="SSLv3", choices=list(VERSIONS))
    parser.add_argument("--max", default="SSLv3", choices=list(VERSIONS))
    parser.add_argument("--suites", default="RC4-MD5,DES-CBC3-SHA", help="comma-separated")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="legacy")
    args = parser.parse_args(argv)
    config = LegacyConfig(
        chain_pem=args.chain,
        key_pem=args.key,
        min_version=args.min,
        max_version=args.max,
        suites=tuple(s.strip() for s in args.suites.split(",") if s.strip()),
        name=args.name,
    )
    try:
        server = LegacyTLSServer(config)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        print(server.start(args.port), flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
