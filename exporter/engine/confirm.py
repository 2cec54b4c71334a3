"""Complete handshakes: proof that a suite the server picks can actually be used.

A ServerHello only says the server *chose* a suite. CloudFront still has to receive a certificate
of the right type, verify the key-exchange signature and both Finished messages. Each
confirmation runs one full handshake with exactly one suite offered: through the `ssl` module when
the local OpenSSL can do that suite (fast, C), and through tlslite-ng's pure-Python client when it
cannot (SSLv3, RC4-MD5, DES-CBC3-SHA on OpenSSL 3).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from tlslite import HandshakeSettings, TLSConnection
from tlslite.errors import TLSError

from .catalogue import CipherSuite, Protocol
from .errors import BudgetExceeded, ConnectError, ProbeTimeout, ProtocolViolation
from .hello import check_connection_bytes
from .net import Endpoint, describe_os_error, sni_name


@dataclass(frozen=True)
class Confirmation:
    """The outcome of one complete handshake with one suite under one protocol."""

    protocol: Protocol
    suite: CipherSuite
    completed: bool
    backend: str  # "openssl" or "tlslite"
    error: str | None = None


_SSL_VERSIONS = {
    Protocol.TLSv1: ssl.TLSVersion.TLSv1,
    Protocol.TLSv1_1: ssl.TLSVersion.TLSv1_1,
    Protocol.TLSv1_2: ssl.TLSVersion.TLSv1_2,
}


def _tlslite_names(suite: CipherSuite) -> tuple[str, str, str]:
    """(cipher, mac, key exchange) in tlslite-ng's vocabulary for one catalogue suite."""
    name = suite.name
    if "AES256-GCM" in name:
        cipher = "aes256gcm"
    elif "AES128-GCM" in name:
        cipher = "aes128gcm"
    elif "AES256" in name:
        cipher = "aes256"
    elif "AES128" in name:
        cipher = "aes128"
    elif "DES-CBC3" in name:
        cipher = "3des"
    elif "RC4" in name:
        cipher = "rc4"
    else:
        raise ValueError(f"no tlslite-ng cipher for {name}")
    if "GCM" in name:
        mac = "aead"
    elif name.endswith("SHA384"):
        mac = "sha384"
    elif name.endswith("SHA256"):
        mac = "sha256"
    elif name.endswith("MD5"):
        mac = "md5"
    else:
        mac = "sha"
    if name.startswith("ECDHE-ECDSA-"):
        key_exchange = "ecdhe_ecdsa"
    elif name.startswith("ECDHE-RSA-"):
        key_exchange = "ecdhe_rsa"
    else:
        key_exchange = "rsa"
    return cipher, mac, key_exchange


@dataclass
class HandshakeConfirmer:
    """Makes complete handshakes; caches one `SSLContext` per (protocol, suite) for reuse."""

    _contexts: dict[tuple[Protocol, str], ssl.SSLContext | None] = field(default_factory=dict)

    def ssl_context(self, protocol: Protocol, suite: CipherSuite) -> ssl.SSLContext | None:
        """A context offering exactly `suite` under `protocol`, or None if OpenSSL cannot."""
        key = (protocol, suite.name)
        if key not in self._contexts:
            self._contexts[key] = _build_context(protocol, suite)
        return self._contexts[key]

    def backend_for(self, protocol: Protocol, suite: CipherSuite) -> str:
        return "openssl" if self.ssl_context(protocol, suite) is not None else "tlslite"

    async def confirm(
        self, endpoint: Endpoint, server_name: str | None, protocol: Protocol, suite: CipherSuite
    ) -> Confirmation:
        context = self.ssl_context(protocol, suite)
        if context is not None:
            return await _confirm_with_ssl(endpoint, server_name, protocol, suite, context)
        return await _confirm_with_tlslite(endpoint, server_name, protocol, suite)


def _build_context(protocol: Protocol, suite: CipherSuite) -> ssl.SSLContext | None:
    version = _SSL_VERSIONS.get(protocol)
    if version is None or suite.tls13:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            # Python deprecates TLSv1/1.1; CloudFront still uses them, so must we.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
        # Level 0: TLSv1/1.1 and SHA-1 signatures are what CloudFront still accepts.
        context.set_ciphers(f"{suite.name}:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    offered = [c["name"] for c in context.get_ciphers() if c.get("protocol") != "TLSv1.3"]
    if offered != [suite.name]:
        return None
    return context


async def _confirm_with_ssl(
    endpoint: Endpoint,
    server_name: str | None,
    protocol: Protocol,
    suite: CipherSuite,
    context: ssl.SSLContext,
) -> Confirmation:
    # OpenSSL bounds what it reads in a handshake itself (at most 100 KiB of certificates, 16 KiB
    # records), and the timeout bounds how long: its bytes are not charged to the budget.
    hostname = sni_name(server_name)
    try:
        async with endpoint.lease() as lease:  # a warm connection when there is one
            try:
                async with asyncio.timeout(endpoint.timeout):
                    await lease.writer.start_tls(context, server_hostname=hostname)
            except TimeoutError:
                raise ProbeTimeout(
                    f"{protocol} handshake with {suite.name} to {endpoint.display} timed out"
                ) from None
            except ssl.SSLError as exc:
                return Confirmation(protocol, suite, False, "openssl", _ssl_reason(exc))
            except OSError as exc:
                return Confirmation(protocol, suite, False, "openssl", describe_os_error(exc))
            ssl_object = lease.writer.get_extra_info("ssl_object")
            negotiated = (ssl_object.version(), ssl_object.cipher()[0])
    except ConnectError as exc:
        return Confirmation(protocol, suite, False, "openssl", str(exc))
    expected = (_openssl_version_name(protocol), suite.name)
    if negotiated != expected:
        return Confirmation(
            protocol, suite, False, "openssl", f"negotiated {negotiated} instead of {expected}"
        )
    return Confirmation(protocol, suite, True, "openssl")


def _openssl_version_name(protocol: Protocol) -> str:
    return {Protocol.TLSv1: "TLSv1"}.get(protocol, protocol.value)


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


async def _confirm_with_tlslite(
    endpoint: Endpoint, server_name: str | None, protocol: Protocol, suite: CipherSuite
) -> Confirmation:
    cipher, mac, key_exchange = _tlslite_names(suite)
    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = protocol.wire
    settings.versions = [protocol.wire]
    settings.cipherNames = [cipher]
    settings.macNames = [mac]
    settings.keyExchangeNames = [key_exchange]
    settings.eccCurves = ["x25519", "secp256r1", "secp384r1"]
    # tlslite-ng adds ML-KEM key shares when kyber-py is installed; they must stay within
    # `eccCurves`, and no protocol confirmed here sends key shares anyway.
    settings.keyShares = ["x25519"]
    settings.rsaSchemes = ["pkcs1"]
    settings.minKeySize = 512
    settings.useEncryptThenMAC = False
    settings.useExtendedMasterSecret = protocol is not Protocol.SSLv3
    sni = sni_name(server_name)
    loop = asyncio.get_running_loop()
    async with endpoint.slot():
        family = socket.AF_INET6 if ":" in endpoint.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(endpoint.timeout):
                await loop.sock_connect(sock, (endpoint.address, endpoint.port))
                connection = TLSConnection(_MeteredSocket(sock, endpoint))
                handshake = connection.handshakeClientCert(
                    settings=settings, serverName=sni, async_=True
                )
                await _drive(loop, sock, handshake)
            negotiated = (tuple(connection.version), connection.session.cipherSuite)
        except TimeoutError:
            raise ProbeTimeout(
                f"{protocol} handshake with {suite.name} to {endpoint.display} timed out"
            ) from None
        except BudgetExceeded:
            raise
        except ProtocolViolation as exc:
            return Confirmation(protocol, suite, False, "tlslite", str(exc))
        except TLSError as exc:
            return Confirmation(protocol, suite, False, "tlslite", _tlslite_reason(exc))
        except OSError as exc:
            return Confirmation(protocol, suite, False, "tlslite", describe_os_error(exc))
        except (ValueError, AssertionError, IndexError, TypeError, SyntaxError) as exc:
            # tlslite-ng reports some malformed server messages this way.
            return Confirmation(protocol, suite, False, "tlslite", f"malformed handshake: {exc}")
        finally:
            sock.close()
    if negotiated != (protocol.wire, suite.code):
        return Confirmation(
            protocol, suite, False, "tlslite", f"negotiated {negotiated} instead of {suite.name}"
        )
    return Confirmation(protocol, suite, True, "tlslite")


class _MeteredSocket:
    """The socket tlslite-ng reads from, with every byte charged to the probe's budget.

    tlslite-ng reassembles a handshake message of any announced size (up to 16 MiB); this caps
    what one connection may send, as the raw hello reader does, so its memory stays bounded.
    """

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self._sock = sock
        self._endpoint = endpoint
        self._received = 0

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self._received += len(data)
        self._endpoint.charge(len(data))
        check_connection_bytes(self._received)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def _drive(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, steps: Generator[int, Any, Any]
) -> None:
    """Run tlslite-ng's non-blocking handshake generator on the event loop."""
    for wants in steps:
        ready: asyncio.Future[None] = loop.create_future()

        def wake(future: asyncio.Future[None] = ready) -> None:
            if not future.done():
                future.set_result(None)

        if wants == 0:
            loop.add_reader(sock.fileno(), wake)
            try:
                await ready
            finally:
                loop.remove_reader(sock.fileno())
        else:
            loop.add_writer(sock.fileno(), wake)
            try:
                await ready
            finally:
                loop.remove_writer(sock.fileno())


def _tlslite_reason(exc: TLSError) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
