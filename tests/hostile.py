"""Hostile origins: servers that misbehave on purpose, each on its own port of 127.0.0.1.

An exporter talks all day to servers it does not control. Each behaviour here is one way a server
can waste a client's time, memory or patience (never answer, trickle, announce megabytes, answer
garbage); the tests check that each costs exactly one failed probe with the right reason.

All servers run on one asyncio event loop in a background thread, so synchronous tests (and the
exporter running as a subprocess) can use them; `stop` closes every listener and connection and
joins the thread. The flight builders are plain functions, also used to seed the fuzz corpus.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tlslite.constants import AlertDescription, AlertLevel, ContentType, HandshakeType
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

from exporter.demo.running import Running
from exporter.demo.tcp import HOST, free_port

__all__ = [
    "EXPECTED",
    "FAST",
    "HostileOrigins",
    "alert_record",
    "certificate_message",
    "flight",
    "handshake",
    "odd_certificate",
    "record",
    "server_hello",
]

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Behaviour = Callable[[Reader, Writer], Awaitable[None]]
_T = TypeVar("_T")

TLS12 = (3, 3)
SERVER_HELLO_DONE = bytes([HandshakeType.server_hello_done, 0, 0, 0])
#: suites the hostile servers "choose" when they play along: RSA key exchange, CBC
PLAYED_SUITES = (0x002F, 0x0035)
RENEGOTIATION_INFO = b"\xff\x01\x00\x01\x00"  # renegotiation_info, empty

#: behaviour name -> the failure reason a probe must report (one reason, nothing else)
EXPECTED: dict[str, str] = {
    "tarpit": "timeout",
    "random_bytes": "not_tls",
    "reset": "connect_failed",
    "silent_close": "connect_failed",
    "alert": "no_common_protocol",
    "trickle": "timeout",
    "huge_certificate": "handshake_failed",
    "plain_http": "not_tls",
    "bad_record_type": "not_tls",
    "bad_record_version": "not_tls",
    "unoffered_suite": "handshake_failed",
    "garbage_extensions": "handshake_failed",
    "duplicate_extensions": "handshake_failed",
    "hundred_certificates": "handshake_failed",
    "oversized_record": "handshake_failed",
    "tiny_records": "handshake_failed",
    "empty_records": "handshake_failed",
    # no server: a port nothing listens on, and a name no resolver knows
    "refused": "connect_failed",
    "unresolvable": "dns_failed",
}

#: behaviours that end a probe quickly (no waiting for a timeout)
FAST = frozenset(EXPECTED) - {"tarpit", "trickle"}


# --- TLS bytes --------------------------------------------------------------------------------


def record(content_type: int, payload: bytes, version: tuple[int, int] = TLS12) -> bytes:
    """One TLS record; `payload` is not split, whatever its size."""
    return struct.pack("!BBBH", content_type, *version, len(payload)) + payload


def records(
    content_type: int, data: bytes, size: int = 2**14, version: tuple[int, int] = TLS12
) -> bytes:
    """`data` split into records of at most `size` bytes."""
    return b"".join(
        record(content_type, data[i : i + size], version) for i in range(0, len(data), size)
    )


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def server_hello(
    suite: int,
    version: tuple[int, int] = TLS12,
    extensions: bytes | None = RENEGOTIATION_INFO,
    extensions_length: int | None = None,
) -> bytes:
    """A ServerHello handshake message; `extensions` raw, its length field overridable."""
    body = bytes(version) + os.urandom(32) + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    if extensions is not None:
        length = len(extensions) if extensions_length is None else extensions_length
        body += length.to_bytes(2, "big") + extensions
    return handshake(HandshakeType.server_hello, body)


def certificate_message(ders: Sequence[bytes]) -> bytes:
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in ders)
    return handshake(HandshakeType.certificate, len(entries).to_bytes(3, "big") + entries)


def flight(suite: int, ders: Sequence[bytes], version: tuple[int, int] = TLS12) -> bytes:
    """ServerHello, Certificate, ServerHelloDone in as few records as the size allows."""
    messages = server_hello(suite, version) + certificate_message(ders) + SERVER_HELLO_DONE
    return records(ContentType.handshake, messages, version=version)


def alert_record(
    description: int = AlertDescription.handshake_failure, level: int = AlertLevel.fatal
) -> bytes:
    return record(ContentType.alert, bytes([level, description]), (3, 1))


def odd_certificate(key: ed25519.Ed25519PrivateKey, now: dt.datetime, serial: int) -> bytes:
    """A certificate no CA would sign: empty subject, Ed25519 key, an unknown critical
    extension, an issuer CN that is no host name; valid for a day either side of `now`."""
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a host name!")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
        .sign(key, None)
    )
    return cert.public_bytes(Encoding.DER)


# --- reading the client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """What a hostile server needs from the ClientHello it got."""

    version: tuple[int, int]
    suites: tuple[int, ...]

    def pick(self, preferred: Iterable[int] = PLAYED_SUITES) -> int:
        return next((s for s in preferred if s in self.suites), self.suites[0])


async def read_hello(reader: Reader) -> Hello | None:
    """The client's ClientHello (one record), or None for anything else."""
    try:
        header = await reader.readexactly(5)
        payload = await reader.readexactly(int.from_bytes(header[3:5], "big"))
        if header[0] != ContentType.handshake or payload[:1] != b"\x01":
            return None
        hello = ClientHello().parse(Parser(bytearray(payload[1:])))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except Exception:  # not a ClientHello tlslite can read: not our client
        return None
    version = min(tuple(hello.client_version), TLS12)
    return Hello((version[0], version[1]), tuple(hello.cipher_suites))


async def drain_until_eof(reader: Reader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


# --- the servers -------------------------------------------------------------------------------


class HostileOrigins(Running):
    """Every hostile behaviour on its own port, served by one event loop in a thread.

    `chain` is the DER chain the servers that play along send (leaf first). `trickle_interval`
    is the pause between two bytes of the trickled flight.
    """

    def __init__(self, chain: Sequence[bytes], trickle_interval: float = 1.0) -> None:
        self.chain = tuple(chain)
        self.trickle_interval = trickle_interval
        self.ports: dict[str, int] = {}
        #: accepted connections per behaviour
        self.connections: Counter[str] = Counter()
        #: connections the client wrote to (a hello), for the behaviours that never answer in
        #: time (tarpit, trickle): one per probe shows it got no second round after the timeout
        self.written: Counter[str] = Counter()
        #: unexpected exceptions in a behaviour (a bug in this file, not in the client)
        self.errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._behaviours: dict[str, Behaviour] = {
            name: getattr(self, name) for name in EXPECTED if hasattr(self, name)
        }

    def __getitem__(self, name: str) -> int:
        return self.ports[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(EXPECTED)

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hostile", daemon=True)
        self._thread.start()
        try:
            for name, behaviour in self._behaviours.items():
                self.ports[name] = self._call(self._listen(name, behaviour))
        except BaseException:
            self.stop()
            raise
        self.ports["refused"] = free_port()  # nothing listens there
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._call(self._shutdown(), timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def _call(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 10) -> _T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    async def _listen(self, name: str, behaviour: Behaviour) -> int:
        async def serve(reader: Reader, writer: Writer) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self.connections[name] += 1
            try:
                await behaviour(reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass  # the client gave up: routine
            except Exception as exc:
                self.errors.append(exc)
            finally:
                writer.transport.abort()
                self._tasks.discard(task)

        server = await asyncio.start_server(serve, HOST, 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # --- behaviours: one coroutine per connection ---------------------------------------------

    async def tarpit(self, reader: Reader, writer: Writer) -> None:
        """Accept, read whatever comes, never answer: until the client gives up."""
        with contextlib.suppress(ConnectionError):
            if await reader.read(65536):
                self.written["tarpit"] += 1
        await drain_until_eof(reader)

    async def random_bytes(self, reader: Reader, writer: Writer) -> None:
        """Answer with 4 KiB of noise (seeded; never a TLS record header) and close."""
        await read_hello(reader)
        noise = bytearray(random.Random(8).randbytes(4096))
        noise[0] = 0xA7  # a TLS record starts with 20-23: make sure this one does not
        writer.write(bytes(noise))
        await writer.drain()

    async def reset(self, reader: Reader, writer: Writer) -> None:
        """Reset the connection at once (SO_LINGER 0), before reading a byte."""
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def silent_close(self, reader: Reader, writer: Writer) -> None:
        """Read the ClientHello and close without a byte (FIN): a forwarder with no backend."""
        await read_hello(reader)

    async def alert(self, reader: Reader, writer: Writer) -> None:
        """A fatal handshake_failure alert for every ClientHello, however broad."""
        await read_hello(reader)
        writer.write(alert_record())
        await writer.drain()

    async def trickle(self, reader: Reader, writer: Writer) -> None:
        """A complete, valid flight, one byte every `trickle_interval` seconds."""
        hello = await read_hello(reader)
        if hello is None:
            return
        self.written["trickle"] += 1
        for byte in flight(hello.pick(), self.chain[:1], hello.version):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(self.trickle_interval)
        await drain_until_eof(reader)

    async def huge_certificate(self, reader: Reader, writer: Writer) -> None:
        """ServerHello, then a Certificate message that announces 16 MiB and drips it."""
        hello = await read_hello(reader)
        if hello is None:
            return
        announced = 16_000_000  # near the 2^24 - 1 a handshake length can say
        start = server_hello(hello.pick(), hello.version)
        start += bytes([HandshakeType.certificate]) + announced.to_bytes(3, "big")
        writer.write(record(ContentType.handshake, start, hello.version))
        chunk = record(ContentType.handshake, b"\x00" * 2**14, hello.version)
        for _ in range(announced // 2**14):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)

    async def plain_http(self, reader: Reader, writer: Writer) -> None:
        await reader.read(65536)
        body = b"400 Bad Request: plain HTTP on the TLS port\n"
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def bad_record_type(self, reader: Reader, writer: Writer) -> None:
        """A record header with content type 0x99, which no TLS version defines."""
        await read_hello(reader)
        writer.write(record(0x99, b"\x00" * 16))
        await writer.drain()

    async def bad_record_version(self, reader: Reader, writer: Writer) -> None:
        """A handshake record header with version 9.9."""
        await read_hello(reader)
        writer.write(record(ContentType.handshake, b"\x02\x00\x00\x00", (9, 9)))
        await writer.drain()

    async def unoffered_suite(self, reader: Reader, writer: Writer) -> None:
        """A complete flight choosing TLS_RSA_WITH_NULL_MD5 (0x0001), which nobody offers."""
        hello = await read_hello(reader)
        if hello is None:
            return
        writer.write(flight(0x0001, self.chain, hello.version))
        await writer.drain()
        await drain_until_eof(reader)

    async def garbage_extensions(self, reader: Reader, writer: Writer) -> None:
        """A ServerHello whose extension block does not parse (lengths that lie)."""
        hello = await read_hello(reader)
        if hello is None:
            return
        garbage = b"\xff\xff\x00\x40" + bytes(range(7))
        message = server_hello(hello.pick(), hello.version, garbage, extensions_length=200)
        writer.write(record(ContentType.handshake, message, hello.version))
        await writer.drain()
        await drain_until_eof(reader)

    async def duplicate_extensions(self, reader: Reader, writer: Writer) -> None:
        """A complete flight whose ServerHello has supported_versions twice (RFC 8446 forbids
        duplicates; tlslite-ng's getExtension raises TLSInternalError on them)."""
        hello = await read_hello(reader)
        if hello is None:
            return
        versions = b"\x00\x2b\x00\x02" + bytes(hello.version)
        message = server_hello(hello.pick(), hello.version, RENEGOTIATION_INFO + versions * 2)
        message += certificate_message(self.chain) + SERVER_HELLO_DONE
        writer.write(record(ContentType.handshake, message, hello.version))
        await writer.drain()
        await drain_until_eof(reader)

    async def hundred_certificates(self, reader: Reader, writer: Writer) -> None:
        """A complete flight whose chain has 100 certificates."""
        hello = await read_hello(reader)
        if hello is None:
            return
        writer.write(flight(hello.pick(), self.chain[:1] * 100, hello.version))
        await writer.drain()
        await drain_until_eof(reader)

    async def oversized_record(self, reader: Reader, writer: Writer) -> None:
        """A handshake record of 2^14 + 2049 bytes, one more than any TLS version allows."""
        hello = await read_hello(reader)
        if hello is None:
            return
        message = server_hello(hello.pick(), hello.version)
        payload = message + b"\x00" * (2**14 + 2049 - len(message))
        writer.write(record(ContentType.handshake, payload, hello.version))
        await writer.drain()
        await drain_until_eof(reader)

    async def tiny_records(self, reader: Reader, writer: Writer) -> None:
        """A ServerHello, then a 250 KiB Certificate in one-byte records: 1.5 MB on the wire."""
        hello = await read_hello(reader)
        if hello is None:
            return
        writer.write(record(ContentType.handshake, server_hello(hello.pick()), hello.version))
        certificate = certificate_message([b"\x30" * (250 * 1024)])
        for start in range(0, len(certificate), 4096):
            writer.write(records(ContentType.handshake, certificate[start : start + 4096], 1))
            await writer.drain()
        await drain_until_eof(reader)

    async def empty_records(self, reader: Reader, writer: Writer) -> None:
        """Empty handshake records, forever (TLS forbids them; OpenSSL stops after 32)."""
        await read_hello(reader)
        empty = record(ContentType.handshake, b"") * 1024
        while True:
            writer.write(empty)
            await writer.drain()
            await asyncio.sleep(0.01)
