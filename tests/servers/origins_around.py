"""TLS origins that behave in one way *after* the handshake: the HTTP side CloudFront sees.

A handshake that works is not the whole story: CloudFront then sends its request, waits up to
OriginReadTimeout for the answer, reads it, and keeps the idle connection for
OriginKeepaliveTimeout. Each origin here completes TLS normally (asyncio + ssl, certificates
from the test PKI) and then answers in one specific way. Each runs its own event loop in a
thread, so synchronous tests and `asyncio.run` in tests can both use it, and listens on
127.0.0.1 only.

The client-certificate origins are the exception: asyncio's server side closes the socket
as soon as its handshake fails, before OpenSSL's alert is flushed, so a client would see a
bare reset instead of "certificate required". `MutualTLSOrigin` therefore uses blocking
`ssl` sockets in threads, which send the alert the way OpenSSL-based servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from exporter.demo.pki import DemoPKI, issue, write_chain
from exporter.demo.running import Running
from tests.servers.ports import HOST, ThreadedTCPServer

SERVER_NAME = "origin.test"
REQUEST_HEAD_LIMIT = 64 * 1024
HANDSHAKE_TIMEOUT = 5.0
SSH_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"


@dataclass(frozen=True)
class AroundCredentials:
    """Server chain and key, the CA a client trusts, and a client CA with one client cert."""

    ca_pem: bytes
    ca_path: Path
    chain_path: Path
    key_path: Path
    client_ca_path: Path
    client_chain_path: Path
    client_key_path: Path

    @classmethod
    def create(cls, directory: Path, server_name: str = SERVER_NAME) -> AroundCredentials:
        pki = DemoPKI.create("Around")
        leaf = pki.leaf(server_name, sans=[server_name, HOST])
        chain, key = write_chain(directory, "server", [leaf, pki.intermediate], leaf.key)
        client_ca = issue("Around Client CA", ca=True)
        client = issue("cloudfront-client", issuer=client_ca, client=True)
        client_chain, client_key = write_chain(directory, "client", [client], client.key)
        client_ca_path = directory / "client-ca.pem"
        client_ca_path.write_bytes(client_ca.pem)
        return cls(
            ca_pem=pki.root.pem,
            ca_path=pki.write_roots(directory / "ca.pem"),
            chain_path=chain,
            key_path=key,
            client_ca_path=client_ca_path,
            client_chain_path=client_chain,
            client_key_path=client_key,
        )

    def client_context(self, with_certificate: bool = False) -> ssl.SSLContext:
        """A client context trusting the test CA, optionally presenting the client cert."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        if with_certificate:
            context.load_cert_chain(self.client_chain_path, self.client_key_path)
        return context


class Behaviour(StrEnum):
    """What the origin does once it has read a request."""

    OK = "ok"  # 200, Content-Length, keep-alive
    STATUS_503 = "status_503"  # the origin's own 5xx, correctly framed
    SLOW = "slow"  # answers only after `delay` seconds
    NOT_HTTP = "not_http"  # an SSH banner right after the handshake, then nothing
    CONNECTION_CLOSE = "connection_close"  # 200 with Connection: close, then closes
    CHUNKED = "chunked"  # 200, Transfer-Encoding: chunked, in several pieces
    HTTP10 = "http10"  # HTTP/1.0 200 without Content-Length: body until close
    BAD_HEADER = "bad_header"  # a header line without a colon
    CLOSE = "close"  # reads the request and closes without a byte
    STALL_BODY = "stall_body"  # headers and half the body, then silence


@dataclass(frozen=True)
class OriginSpec:
    behaviour: Behaviour = Behaviour.OK
    idle_timeout: float = 60.0  # how long an idle keep-alive connection is held
    delay: float = 0.0  # SLOW: before answering; STALL_BODY: how long to stall
    body: bytes = b"hello from the origin\n"
    client_auth: ssl.VerifyMode = ssl.CERT_NONE  # CERT_OPTIONAL / CERT_REQUIRED: mTLS
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    # client-certificate origins: close at once after a failed handshake (the client's unread
    # request then makes the kernel send a reset, which can overtake the TLS 1.3 alert)
    # instead of half-closing and draining first
    abrupt_close: bool = False


#: the scenarios of tests/test_request.py, by letter of the brief that asked for them
SCENARIOS: dict[str, OriginSpec] = {
    "normal": OriginSpec(),
    "status_503": OriginSpec(Behaviour.STATUS_503),
    "slow": OriginSpec(Behaviour.SLOW, delay=3.0),
    "not_http": OriginSpec(Behaviour.NOT_HTTP),
    "idle_close": OriginSpec(idle_timeout=1.0),
    "connection_close": OriginSpec(Behaviour.CONNECTION_CLOSE),
    "mtls_required": OriginSpec(client_auth=ssl.CERT_REQUIRED),
    "mtls_optional": OriginSpec(client_auth=ssl.CERT_OPTIONAL),
    "chunked": OriginSpec(Behaviour.CHUNKED),
    "http10": OriginSpec(Behaviour.HTTP10),
    "bad_header": OriginSpec(Behaviour.BAD_HEADER),
    "close": OriginSpec(Behaviour.CLOSE),
    "stall_body": OriginSpec(Behaviour.STALL_BODY, delay=3.0),
    "large": OriginSpec(body=b"x" * 256 * 1024),
}


def _response(status: str, body: bytes, *headers: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{version} {status}", *headers, "Content-Type: text/plain"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _sized(status: str, body: bytes, *headers: str) -> bytes:
    return _response(status, body, f"Content-Length: {len(body)}", *headers)


Writer = asyncio.StreamWriter
Reply = Callable[["AroundOrigin", Writer], Awaitable[bool]]  # True: keep the connection


async def _ok(origin: AroundOrigin, writer: Writer) -> bool:
    response = _sized("200 OK", origin.spec.body, "Connection: keep-alive")
    if origin.requests[-1].startswith(b"HEAD "):  # the same headers, no body
        response = response[: len(response) - len(origin.spec.body)]
    writer.write(response)
    return True


async def _status_503(origin: AroundOrigin, writer: Writer) -> bool:
    writer.write(_sized("503 Service Unavailable", b"maintenance\n", "Retry-After: 30"))
    return True


async def _slow(origin: AroundOrigin, writer: Writer) -> bool:
    await asyncio.sleep(origin.spec.delay)
    return await _ok(origin, writer)


async def _connection_close(origin: AroundOrigin, writer: Writer) -> bool:
    writer.write(_sized("200 OK", origin.spec.body, "Connection: close"))
    return False


async def _chunked(origin: AroundOrigin, writer: Writer) -> bool:
    writer.write(_response("200 OK", b"", "Transfer-Encoding: chunked"))
    body = origin.spec.body
    for piece in (body[: len(body) // 2], body[len(body) // 2 :]):
        writer.write(f"{len(piece):x};piece=1\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.write(b"0\r\nX-Trailer: done\r\n\r\n")
    return True


async def _http10(origin: AroundOrigin, writer: Writer) -> bool:
    writer.write(_response("200 OK", origin.spec.body, version="HTTP/1.0"))
    return False


async def _bad_header(origin: AroundOrigin, writer: Writer) -> bool:
    writer.write(_response("200 OK", b"", "Content-Length: 0", "this line has no colon"))
    return True


async def _close(origin: AroundOrigin, writer: Writer) -> bool:
    return False


async def _stall_body(origin: AroundOrigin, writer: Writer) -> bool:
    body = origin.spec.body
    writer.write(_sized("200 OK", body)[: -len(body) // 2])
    await writer.drain()
    await asyncio.sleep(origin.spec.delay)
    return False


REPLIES: dict[Behaviour, Reply] = {
    Behaviour.OK: _ok,
    Behaviour.STATUS_503: _status_503,
    Behaviour.SLOW: _slow,
    Behaviour.CONNECTION_CLOSE: _connection_close,
    Behaviour.CHUNKED: _chunked,
    Behaviour.HTTP10: _http10,
    Behaviour.BAD_HEADER: _bad_header,
    Behaviour.CLOSE: _close,
    Behaviour.STALL_BODY: _stall_body,
}


@dataclass
class AroundOrigin(Running):
    """One origin on 127.0.0.1; `with AroundOrigin(spec, credentials) as origin:` serves it.

    `requests` holds every request head received (to check what the client sent),
    `tls_errors` every handshake the server side saw fail.
    """

    spec: OriginSpec
    credentials: AroundCredentials
    requests: list[bytes] = field(default_factory=list)
    tls_errors: list[str] = field(default_factory=list)
    _port: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopped: asyncio.Event | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("origin not started")
        return self._port

    @property
    def ca_pem(self) -> bytes:
        return self.credentials.ca_pem

    def with_spec(self, **changes: Any) -> AroundOrigin:
        return AroundOrigin(replace(self.spec, **changes), self.credentials)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.credentials.chain_path, self.credentials.key_path)
        context.maximum_version = self.spec.maximum_version
        context.verify_mode = self.spec.client_auth
        if self.spec.client_auth != ssl.CERT_NONE:
            context.load_verify_locations(self.credentials.client_ca_path)
        return context

    def start(self) -> int:
        if self._thread is not None:
            raise RuntimeError("origin already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"origin-{self.spec.behaviour}"
        )
        self._thread.start()
        ready.wait(timeout=10)
        if failure or not self._port:
            self.stop()
            raise RuntimeError(f"origin did not start: {failure}")
        return self._port

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread. Idempotent."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be gone
                loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(timeout=10)
        self._thread = self._loop = self._stopped = None

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._record_loop_error)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()
            loop.close()

    def _record_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # failed handshakes land here (asyncio logs them otherwise): they are expected
        self.tls_errors.append(str(context.get("exception") or context.get("message")))

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: Writer) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._converse(reader, writer)
            finally:
                connections.discard(task)

        server = await asyncio.start_server(
            on_connect,
            HOST,
            0,
            ssl=self.server_context(),
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        )
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _converse(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        """Serve one connection; close it cleanly (close_notify) unless it broke or we stop."""
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.transport.abort()
        else:
            await _close_gracefully(writer)

    async def _answer(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        """Answer requests until the behaviour or the idle timer ends the connection."""
        if self.spec.behaviour is Behaviour.NOT_HTTP:
            writer.write(SSH_BANNER)
            await writer.drain()
            await _drain_reader(reader, self.spec.idle_timeout)
            return
        reply = REPLIES[self.spec.behaviour]
        while (head := await _read_head(reader, self.spec.idle_timeout)) is not None:
            self.requests.append(head)
            keep = await reply(self, writer)
            await writer.drain()
            if not keep:
                return


async def _close_gracefully(writer: Writer) -> None:
    """Flush what is buffered and send close_notify; give up (abort) after a second."""
    writer.close()
    with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    writer.transport.abort()


async def _read_head(reader: asyncio.StreamReader, idle_timeout: float) -> bytes | None:
    """The next request head, or None when the client closed or stayed idle too long."""
    try:
        async with asyncio.timeout(idle_timeout):
            return await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


async def _drain_reader(reader: asyncio.StreamReader, idle_timeout: float) -> None:
    """Read and ignore whatever the client sends until it closes or the timer runs out."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(idle_timeout):
            while await reader.read(4096):
                pass


class MutualTLSOrigin(ThreadedTCPServer):
    """An OK origin asking for a client certificate (CERT_REQUIRED or CERT_OPTIONAL)."""

    conn_timeout = 10.0

    def __init__(self, spec: OriginSpec, credentials: AroundCredentials) -> None:
        super().__init__()
        if spec.behaviour is not Behaviour.OK or spec.client_auth == ssl.CERT_NONE:
            raise ValueError("MutualTLSOrigin serves OK responses to client-certificate checks")
        self.spec = spec
        self.credentials = credentials
        self.requests: list[bytes] = []
        self.tls_errors: list[str] = []
        self._context = AroundOrigin(spec, credentials).server_context()

    @property
    def ca_pem(self) -> bytes:
        return self.credentials.ca_pem

    def handle(self, conn: socket.socket) -> None:
        tls = self._context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with tls:
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                self.tls_errors.append(str(exc))
                if not self.spec.abrupt_close:
                    _linger(tls)
                return
            while head := _blocking_head(tls):
                self.requests.append(head)
                body = self.spec.body
                tls.sendall(_sized("200 OK", body, "Connection: keep-alive"))


def _linger(tls: ssl.SSLSocket) -> None:
    """Half-close after the alert and drain the client, so no reset overtakes the alert."""
    with contextlib.suppress(OSError):
        tls.shutdown(socket.SHUT_WR)  # drops the TLS layer; reads below are raw
        tls.settimeout(1.0)
        while tls.recv(4096):
            pass


def _blocking_head(tls: ssl.SSLSocket) -> bytes:
    """The next request head, or b"" when the client closed, failed or stayed idle."""
    head = b""
    try:
        while b"\r\n\r\n" not in head and len(head) < REQUEST_HEAD_LIMIT:
            chunk = tls.recv(4096)
            if not chunk:
                return b""
            head += chunk
    except (OSError, ssl.SSLError):
        return b""
    return head


def make_origin(spec: OriginSpec, credentials: AroundCredentials) -> AroundOrigin | MutualTLSOrigin:
    """The right server for `spec`: `with make_origin(spec, creds) as origin:` runs it."""
    if spec.client_auth != ssl.CERT_NONE:
        return MutualTLSOrigin(spec, credentials)
    return AroundOrigin(spec, credentials)
