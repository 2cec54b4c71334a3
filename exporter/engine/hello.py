"""One ClientHello out, the server's first flight back: the unit of every enumeration step.

Messages are encoded and decoded with tlslite-ng, which knows every version from SSLv3 to TLSv1.3
and every suite code, so nothing here depends on what the local OpenSSL can do. Only the record
framing and the limits that keep a hostile server from costing more than one failed probe are
written here.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tlslite.constants import (
    TLS_1_3_HRR,
    AlertDescription,
    AlertLevel,
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
from .errors import ConnectError, NotTLSError, ProbeTimeout, ProtocolViolation
from .net import Endpoint, describe_os_error, sni_name

MAX_RECORD_LENGTH = 2**14 + 2048
MAX_HANDSHAKE_MESSAGE = 256 * 1024
MAX_BYTES_PER_CONNECTION = 1024 * 1024
MAX_CERTIFICATES = 16
MAX_WARNING_ALERTS = 5  # OpenSSL's limit on warning alerts in a row
MAX_EMPTY_RECORDS = 32  # OpenSSL tolerates this many empty records in a row, not one more


def check_connection_bytes(received: int) -> None:
    """Every reader of a connection calls this with its running total of bytes received."""
    if received > MAX_BYTES_PER_CONNECTION:
        raise ProtocolViolation(
            f"the server sent more than {MAX_BYTES_PER_CONNECTION} bytes on one connection"
        )


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
        """The ClientHello as one TLS record, with fresh random bytes."""
        template, fresh = _template(replace(self, server_name=None))
        hello = bytearray(template)
        for start in fresh:
            hello[start : start + 32] = os.urandom(32)
        name = None if self.protocol is Protocol.SSLv3 else sni_name(self.server_name)
        if name is not None:
            _insert_server_name(hello, name.encode("ascii"))
        return bytes(hello)

    def build(self, random: bytes, session_id: bytes, key_share: bytes) -> bytes:
        """The ClientHello as one TLS record, with these 32-byte values (the last two are
        sent only under TLS 1.3)."""
        hello = ClientHello()
        tls13 = self.protocol is Protocol.TLSv1_3
        client_version = (3, 3) if tls13 else self.protocol.wire
        suites = list(self.suites)
        if not tls13:
            suites.append(EMPTY_RENEGOTIATION_INFO_SCSV)
        extensions = None if self.protocol is Protocol.SSLv3 else self._extensions(key_share)
        hello.create(
            client_version,
            bytearray(random),
            bytearray(session_id) if tls13 else bytearray(),
            suites,
            extensions=extensions,
        )
        body = bytes(hello.write())
        record_version = (3, 0) if self.protocol is Protocol.SSLv3 else (3, 1)
        return _record(ContentType.handshake, record_version, body)

    def _extensions(self, key_share: bytes) -> list[object]:
        extensions: list[object] = []
        name = sni_name(self.server_name)
        if name is not None:
            extensions.append(SNIExtension().create(bytearray(name, "ascii")))
        if self.groups:
            extensions.append(SupportedGroupsExtension().create(list(self.groups)))
            extensions.append(ECPointFormatsExtension().create([ECPointFormat.uncompressed]))
        if self.protocol in (Protocol.TLSv1_2, Protocol.TLSv1_3):
            extensions.append(SignatureAlgorithmsExtension().create(list(self.signature_schemes)))
        if self.protocol is Protocol.TLSv1_3:
            extensions.append(SupportedVersionsExtension().create([(3, 4)]))
            share = KeyShareEntry().create(GroupName.x25519, bytearray(key_share))
            extensions.append(ClientKeyShareExtension().create([share]))
        return extensions


@functools.lru_cache(maxsize=4096)
def _template(spec: HelloSpec) -> tuple[bytes, tuple[int, ...]]:
    """`spec`'s ClientHello once, and where its per-connection random values sit.

    Building a hello through tlslite-ng's message classes is most of its cost and the bytes
    differ only in the client random (and, under TLS 1.3, the session id and the X25519 key
    share, which are never used: no raw hello is taken past the ServerHello) and the server
    name, added by `encode`. A memo of a pure function of the frozen spec (without its server
    name): every origin's hellos are the same few dozen offers."""
    markers = [os.urandom(32) for _ in range(3)]
    public = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    markers[2] = public
    template = spec.build(*markers)
    fresh = tuple(template.find(m) for m in markers if template.find(m) >= 0)
    return template, fresh


def _insert_server_name(record: bytearray, name: bytes) -> None:
    """Add the server_name extension (RFC 6066) first, as `HelloSpec.build` places it, to a
    ClientHello record built without it, and fix the three lengths around it."""
    entry = b"\x00" + len(name).to_bytes(2, "big") + name  # host_name
    listing = len(entry).to_bytes(2, "big") + entry
    extension = b"\x00\x00" + len(listing).to_bytes(2, "big") + listing
    offset = 5 + 4 + 2 + 32  # record and handshake headers, client_version, random
    offset += 1 + record[offset]  # session_id
    offset += 2 + int.from_bytes(record[offset : offset + 2], "big")  # cipher_suites
    offset += 1 + record[offset]  # compression_methods
    if offset == len(record):  # no extensions block yet
        record[offset:offset] = len(extension).to_bytes(2, "big") + extension
    else:
        block = int.from_bytes(record[offset : offset + 2], "big") + len(extension)
        record[offset : offset + 2] = block.to_bytes(2, "big")
        record[offset + 2 : offset + 2] = extension
    record[6:9] = (len(record) - 9).to_bytes(3, "big")
    record[3:5] = (len(record) - 5).to_bytes(2, "big")


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


async def exchange_hello(
    endpoint: Endpoint,
    spec: HelloSpec,
    connected: Callable[[], None] | None = None,
    server_hello: Callable[[HelloAnswer], None] | None = None,
    warm: bool = True,
) -> HelloAnswer:
    """Send `spec` on a fresh connection and read as much of the answer as it asks for.

    The connection's `endpoint.timeout` bounds the whole exchange (write, then every byte of the
    answer), not each read: a server trickling its flight a byte at a time costs one timeout.
    Every byte read is charged to the probe's byte budget on `endpoint`. `connected` is called
    once the TCP connection is up, `server_hello` as soon as the answer shows its ServerHello
    (or refusal), before the rest of a flight read up to ServerHelloDone. `warm`: see
    `Endpoint.lease`.
    """
    hello = spec.encode()
    async with endpoint.connect(warm) as (reader, writer):
        if connected is not None:
            connected()
        flight = FlightParser(spec.read_until)
        try:
            async with asyncio.timeout(endpoint.timeout):
                writer.write(hello)
                await writer.drain()
                return await read_answer(reader, flight, endpoint.charge, server_hello)
        except TimeoutError:
            raise ProbeTimeout(
                f"no complete answer from {endpoint.display} within {endpoint.timeout:g}s"
            ) from None
        except ConnectionError:  # reset, aborted, broken pipe: the server dropped us
            return Refusal("reset")
        except RuntimeError:
            # uvloop's word for writing to a transport the peer's reset already closed.
            if writer.transport.is_closing():
                return Refusal("reset")
            raise
        except OSError as exc:
            raise ConnectError(
                f"connection to {endpoint.display} failed: {describe_os_error(exc)}"
            ) from None
        finally:
            if flight.tls_seen:
                endpoint.tls_seen = True


READ_CHUNK = 16 * 1024


async def read_answer(
    reader: asyncio.StreamReader,
    flight: FlightParser,
    charge: Callable[[int], None] | None = None,
    server_hello: Callable[[HelloAnswer], None] | None = None,
) -> HelloAnswer:
    """Feed `flight` from `reader` until it has an answer; `charge` is told every byte count,
    `server_hello` the ServerHello (or the refusal) as soon as it is known."""
    while True:
        data = await reader.read(READ_CHUNK)
        answer: HelloAnswer | None
        if not data:
            answer = flight.feed_eof()
        else:
            if charge is not None:
                charge(len(data))
            answer = flight.feed(data)
        early = answer if answer is not None else flight.server_hello
        if server_hello is not None and early is not None:
            server_hello(early)
            server_hello = None
        if answer is not None:
            return answer


def parse_answer(data: bytes, read_until: ReadUntil = ReadUntil.SERVER_HELLO_DONE) -> HelloAnswer:
    """The answer `data` makes when the server sends it and then closes (tests and fuzzing)."""
    flight = FlightParser(read_until)
    return flight.feed(data) or flight.feed_eof()


class FlightParser:
    """The server's first flight, parsed as its bytes arrive; no I/O, so it can be fuzzed.

    `feed` returns the answer once it is complete (None while more is needed); `feed_eof` says
    what a close at this point means. Both raise only `NotTLSError` (the first bytes are not a
    TLS record) or `ProtocolViolation` (TLS, but malformed or beyond a limit). Memory is bounded:
    at most one record beyond the limits below is ever buffered.
    """

    def __init__(self, read_until: ReadUntil = ReadUntil.SERVER_HELLO_DONE) -> None:
        self.read_until = read_until
        self.received = 0  # bytes fed so far
        self.tls_seen = False  # a valid TLS record header arrived
        self._records = bytearray()  # bytes not yet split into records
        self._handshake = bytearray()  # handshake bytes not yet split into messages
        self._hello: ServerHelloInfo | None = None
        self._certificates: tuple[bytes, ...] = ()
        self._group: int | None = None
        self._warnings = 0
        self._empty = 0

    def feed(self, data: bytes) -> HelloAnswer | None:
        self.received += len(data)
        check_connection_bytes(self.received)
        self._records += data
        while len(self._records) >= 5:
            header = bytes(self._records[:5])
            content_type, major, length = header[0], header[1], int.from_bytes(header[3:5], "big")
            if content_type not in _RECORD_TYPES or major != 3:
                if not self.tls_seen:
                    raise NotTLSError(f"the answer is not TLS: it starts with {header!r}")
                raise ProtocolViolation(f"invalid TLS record header {header.hex()}")
            if length > MAX_RECORD_LENGTH:
                raise ProtocolViolation(
                    f"TLS record of {length} bytes exceeds the {MAX_RECORD_LENGTH}-byte maximum"
                )
            self.tls_seen = True
            if len(self._records) < 5 + length:
                return None
            payload = bytes(self._records[5 : 5 + length])
            del self._records[: 5 + length]
            self._empty = self._empty + 1 if not payload else 0
            if self._empty > MAX_EMPTY_RECORDS:
                raise ProtocolViolation(f"{self._empty} empty TLS records in a row")
            answer = self._record(content_type, payload)
            if answer is not None:
                return answer
        return None

    @property
    def server_hello(self) -> ServerHelloInfo | None:
        """The ServerHello once it has arrived, before the rest of the flight."""
        return self._hello

    def feed_eof(self) -> HelloAnswer:
        if self._hello is not None:
            raise ProtocolViolation("connection closed in the server's first flight")
        if self._records and not self.tls_seen and not _looks_like_tls(self._records):
            raise NotTLSError(f"the answer is not TLS: {bytes(self._records[:16])!r}")
        return Refusal("closed")

    def _record(self, content_type: int, payload: bytes) -> HelloAnswer | None:
        if content_type == ContentType.alert:
            if len(payload) < 2:
                raise ProtocolViolation("truncated alert record")
            level, description = payload[0], payload[1]
            if level == AlertLevel.warning and description != AlertDescription.close_notify:
                # TLS 1.2 clients (OpenSSL, so CloudFront) go on after a warning such as
                # unrecognized_name, and give up after a few in a row.
                self._warnings += 1
                if self._warnings >= MAX_WARNING_ALERTS:
                    raise ProtocolViolation(f"{self._warnings} warning alerts in a row")
                return None
            return Refusal("alert", description)
        if content_type != ContentType.handshake:
            raise ProtocolViolation(f"unexpected record type {content_type} before ServerHello")
        self._warnings = 0
        self._handshake += payload
        for msg_type, message in _split_messages(self._handshake):
            answer = self._message(msg_type, message)
            if answer is not None:
                return answer
        return None

    def _message(self, msg_type: int, message: bytes) -> HelloAnswer | None:
        hello = self._hello
        if hello is None:
            if msg_type != HandshakeType.server_hello:
                raise ProtocolViolation(f"expected ServerHello, got handshake type {msg_type}")
            hello = self._hello = _parse_server_hello(message)
            if (
                self.read_until is ReadUntil.SERVER_HELLO
                or hello.hello_retry
                or hello.protocol is Protocol.TLSv1_3
            ):
                return hello
        elif msg_type == HandshakeType.certificate:
            self._certificates = _parse_certificate_list(message)
        elif msg_type == HandshakeType.server_key_exchange:
            self._group = _named_curve(message)
        elif msg_type == HandshakeType.server_hello_done:
            return replace(hello, group=self._group, certificates=self._certificates)
        return None


_RECORD_TYPES = (
    ContentType.change_cipher_spec,
    ContentType.alert,
    ContentType.handshake,
    ContentType.application_data,
)


def _looks_like_tls(partial: bytes | bytearray) -> bool:
    """A truncated header can still be told from a plain-text answer by its first bytes."""
    return partial[0] in _RECORD_TYPES and (len(partial) < 2 or partial[1] == 3)


def _split_messages(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Pop every complete handshake message (type, body-with-length) off `buffer`.

    The announced length is checked as soon as the 4-byte header is there, so a message that
    claims megabytes fails at once instead of being buffered.
    """
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
    # tlslite-ng reports malformed input with many exception types (DecodeError, SyntaxError,
    # TLSInternalError for duplicate extensions, ValueError, ...); for bytes a server sent, every
    # one of them means the same thing.
    try:
        hello = ServerHello().parse(Parser(bytearray(message)))
        types = [extension.extType for extension in hello.extensions or ()]
        if len(types) != len(set(types)):
            # RFC 5246 7.4.1.4 and RFC 8446 4.2: OpenSSL refuses such a ServerHello too.
            raise ProtocolViolation("malformed ServerHello: an extension appears twice")
        wire = tuple(hello.server_version)
        group = None
        versions = hello.getExtension(ExtensionType.supported_versions)
        if versions is not None and getattr(versions, "version", None):
            wire = tuple(versions.version)
        key_share = hello.getExtension(ExtensionType.key_share)
        if key_share is not None:
            server_share = getattr(key_share, "server_share", None)
            group = getattr(server_share, "group", None) or getattr(
                key_share, "selected_group", None
            )
        major, minor = int(wire[0]), int(wire[1])
        suite = int(hello.cipher_suite)
        retry = hello.random == TLS_1_3_HRR
    except ProtocolViolation:
        raise
    except Exception as exc:
        raise ProtocolViolation(f"malformed ServerHello: {type(exc).__name__}: {exc}") from None
    return ServerHelloInfo(
        protocol=Protocol.from_wire((major, minor)),
        wire_version=(major, minor),
        suite=suite,
        group=group if isinstance(group, int) else None,
        hello_retry=retry,
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
