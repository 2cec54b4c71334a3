"""One ClientHello out, the server's first flight back: the unit of every enumeration step.

Messages are encoded and decoded with tlslite-ng, which knows every version from SSLv3 to TLSv1.3
and every suite code, so nothing here depends on what the local OpenSSL can do. Only the record
framing and the limits that keep a hostile server from costing more than one failed probe are
written here.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tlslite.constants import (
    TLS_1_3_HRR,
    AlertDescription,
    ContentType,
    ECPointFormat,
    ExtensionType,
    GroupName,
    HandshakeType,
)
from tlslite.extensions import (
    ClientKeyShareExtension,
    ECPointFormatsExtension,
    KeyShareEntry,
    SignatureAlgorithmsExtension,
    SNIExtension,
    SupportedGroupsExtension,
    SupportedVersionsExtension,
)
from tlslite.messages import ClientHello, ServerHello
from tlslite.utils.codec import DecodeError, Parser

from .catalogue import EMPTY_RENEGOTIATION_INFO_SCSV, Protocol
from .errors import NotTLSError, ProbeTimeout, ProtocolViolation
from .net import Endpoint, is_ip_literal

MAX_RECORD_LENGTH = 2**14 + 2048
MAX_HANDSHAKE_MESSAGE = 256 * 1024
MAX_BYTES_PER_CONNECTION = 1024 * 1024
MAX_CERTIFICATES = 16


class ReadUntil(Enum):
    """How much of the server's first flight a caller needs."""

    SERVER_HELLO = "server_hello"
    SERVER_HELLO_DONE = "server_hello_done"  # certificates and key-exchange group too


@dataclass(frozen=True)
class HelloSpec:
    """What to offer: the fields CloudFront (or a broad scanner) controls in its ClientHello."""

    protocol: Protocol
    suites: tuple[int, ...]
    server_name: str | None
    groups: tuple[int, ...]
    signature_schemes: tuple[tuple[int, int], ...]
    read_until: ReadUntil = ReadUntil.SERVER_HELLO

    def encode(self) -> bytes:
        """The ClientHello as one TLS record."""
        hello = ClientHello()
        tls13 = self.protocol is Protocol.TLSv1_3
        client_version = (3, 3) if tls13 else self.protocol.wire
        suites = list(self.suites)
        if not tls13:
            suites.append(EMPTY_RENEGOTIATION_INFO_SCSV)
        extensions = None if self.protocol is Protocol.SSLv3 else self._extensions()
        session_id = bytearray(os.urandom(32)) if tls13 else bytearray()
        hello.create(
            client_version,
            bytearray(os.urandom(32)),
            session_id,
            suites,
            extensions=extensions,
        )
        body = bytes(hello.write())
        record_version = (3, 0) if self.protocol is Protocol.SSLv3 else (3, 1)
        return _record(ContentType.handshake, record_version, body)

    def _extensions(self) -> list[object]:
        extensions: list[object] = []
        if self.server_name and not is_ip_literal(self.server_name):
            extensions.append(SNIExtension().create(bytearray(self.server_name, "ascii")))
        if self.groups:
            extensions.append(SupportedGroupsExtension().create(list(self.groups)))
            extensions.append(ECPointFormatsExtension().create([ECPointFormat.uncompressed]))
        if self.protocol in (Protocol.TLSv1_2, Protocol.TLSv1_3):
            extensions.append(SignatureAlgorithmsExtension().create(list(self.signature_schemes)))
        if self.protocol is Protocol.TLSv1_3:
            extensions.append(SupportedVersionsExtension().create([(3, 4)]))
            public = (
                X25519PrivateKey.generate()
                .public_key()
                .public_bytes(Encoding.Raw, PublicFormat.Raw)
            )
            share = KeyShareEntry().create(GroupName.x25519, bytearray(public))
            extensions.append(ClientKeyShareExtension().create([share]))
        return extensions


def _record(content_type: int, version: tuple[int, int], body: bytes) -> bytes:
    return bytes([content_type, *version]) + len(body).to_bytes(2, "big") + body


@dataclass(frozen=True)
class ServerHelloInfo:
    """The server picked a suite; with `SERVER_HELLO_DONE` also its certificates and group."""

    protocol: Protocol | None  # None: a version number no protocol has
    wire_version: tuple[int, int]
    suite: int
    group: int | None = None
    certificates: tuple[bytes, ...] = ()
    hello_retry: bool = False


@dataclass(frozen=True)
class Refusal:
    """The server declined the offer: an alert, or it just closed the connection."""

    how: str  # "alert", "closed" or "reset"
    alert: int | None = None

    def describe(self) -> str:
        if self.alert is None:
            return "connection closed" if self.how == "closed" else "connection reset"
        name = AlertDescription.toStr(self.alert)
        return f"alert {name} ({self.alert})"


HelloAnswer = ServerHelloInfo | Refusal


async def exchange_hello(endpoint: Endpoint, spec: HelloSpec) -> HelloAnswer:
    """Send `spec` on a fresh connection and read as much of the answer as it asks for."""
    async with endpoint.connect() as (reader, writer):
        try:
            async with asyncio.timeout(endpoint.timeout):
                writer.write(spec.encode())
                await writer.drain()
                return await _read_answer(reader, spec)
        except TimeoutError:
            raise ProbeTimeout(
                f"no complete answer from {endpoint.display} within {endpoint.timeout:g}s"
            ) from None
        except ConnectionResetError:
            return Refusal("reset")
        except (BrokenPipeError, ConnectionAbortedError):
            return Refusal("reset")


async def _read_answer(reader: asyncio.StreamReader, spec: HelloSpec) -> HelloAnswer:
    handshake = bytearray()
    total = 0
    hello: ServerHelloInfo | None = None
    certificates: tuple[bytes, ...] = ()
    group: int | None = None
    while True:
        try:
            header = await reader.readexactly(5)
        except asyncio.IncompleteReadError as exc:
            if hello is not None:
                raise ProtocolViolation("connection closed in the server's first flight") from None
            if exc.partial and not _looks_like_tls(exc.partial):
                raise NotTLSError(f"the answer is not TLS: {bytes(exc.partial)!r}") from None
            return Refusal("closed")
        content_type, major, length = header[0], header[1], int.from_bytes(header[3:5], "big")
        if content_type not in (20, 21, 22, 23) or major != 3:
            if total == 0:
                raise NotTLSError(f"the answer is not TLS: it starts with {header!r}")
            raise ProtocolViolation(f"invalid TLS record header {header.hex()}")
        if length > MAX_RECORD_LENGTH:
            raise ProtocolViolation(f"TLS record of {length} bytes exceeds the maximum")
        total += 5 + length
        if total > MAX_BYTES_PER_CONNECTION:
            raise ProtocolViolation(f"server sent more than {MAX_BYTES_PER_CONNECTION} bytes")
        try:
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            if hello is None:
                return Refusal("closed")
            raise ProtocolViolation("connection closed in the server's first flight") from None
        if content_type == ContentType.alert:
            if len(payload) < 2:
                raise ProtocolViolation("truncated alert record")
            return Refusal("alert", payload[1])
        if content_type != ContentType.handshake:
            raise ProtocolViolation(f"unexpected record type {content_type} before ServerHello")
        handshake += payload
        for msg_type, message in _split_messages(handshake):
            if hello is None:
                if msg_type != HandshakeType.server_hello:
                    raise ProtocolViolation(f"expected ServerHello, got handshake type {msg_type}")
                hello = _parse_server_hello(message)
                if (
                    spec.read_until is ReadUntil.SERVER_HELLO
                    or hello.hello_retry
                    or hello.protocol is Protocol.TLSv1_3
                ):
                    return hello
            elif msg_type == HandshakeType.certificate:
                certificates = _parse_certificate_list(message)
            elif msg_type == HandshakeType.server_key_exchange:
                group = _named_curve(message)
            elif msg_type == HandshakeType.server_hello_done:
                return ServerHelloInfo(
                    hello.protocol, hello.wire_version, hello.suite, group, certificates
                )


def _looks_like_tls(partial: bytes) -> bool:
    """A truncated header can still be told from a plain-text answer by its first bytes."""
    return partial[0] in (20, 21, 22, 23) and (len(partial) < 2 or partial[1] == 3)


def _split_messages(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Pop every complete handshake message (type, body-with-length) off `buffer`."""
    messages = []
    while len(buffer) >= 4:
        length = int.from_bytes(buffer[1:4], "big")
        if length > MAX_HANDSHAKE_MESSAGE:
            raise ProtocolViolation(
                f"handshake message of {length} bytes exceeds the {MAX_HANDSHAKE_MESSAGE} limit"
            )
        if len(buffer) < 4 + length:
            break
        messages.append((buffer[0], bytes(buffer[1 : 4 + length])))
        del buffer[: 4 + length]
    return messages


def _parse_server_hello(message: bytes) -> ServerHelloInfo:
    try:
        hello = ServerHello().parse(Parser(bytearray(message)))
    except (DecodeError, AssertionError, ValueError, IndexError, TypeError) as exc:
        raise ProtocolViolation(f"malformed ServerHello: {exc}") from None
    wire = tuple(hello.server_version)
    group = None
    versions = hello.getExtension(ExtensionType.supported_versions)
    if versions is not None and getattr(versions, "version", None):
        wire = tuple(versions.version)
    key_share = hello.getExtension(ExtensionType.key_share)
    if key_share is not None:
        server_share = getattr(key_share, "server_share", None)
        group = getattr(server_share, "group", None) or getattr(key_share, "selected_group", None)
    return ServerHelloInfo(
        protocol=Protocol.from_wire((wire[0], wire[1])),
        wire_version=(wire[0], wire[1]),
        suite=hello.cipher_suite,
        group=group,
        hello_retry=hello.random == TLS_1_3_HRR,
    )


def _parse_certificate_list(message: bytes) -> tuple[bytes, ...]:
    """The DER certificates of a TLS 1.0-1.2 Certificate message, in the order sent."""
    try:
        parser = Parser(bytearray(message))
        parser.startLengthCheck(3)
        certificates: list[bytes] = []
        chain = Parser(parser.getVarBytes(3))
        while chain.getRemainingLength():
            if len(certificates) == MAX_CERTIFICATES:
                raise ProtocolViolation(f"more than {MAX_CERTIFICATES} certificates in the chain")
            certificates.append(bytes(chain.getVarBytes(3)))
        parser.stopLengthCheck()
    except (DecodeError, AssertionError, IndexError) as exc:
        raise ProtocolViolation(f"malformed Certificate message: {exc}") from None
    return tuple(certificates)


def _named_curve(message: bytes) -> int | None:
    """The named group of an ECDHE ServerKeyExchange (type 3 = named_curve), else None."""
    body = message[3:]
    if len(body) >= 3 and body[0] == 3:
        return int.from_bytes(body[1:3], "big")
    return None
