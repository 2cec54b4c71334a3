"""Name resolution and bounded TCP connections to one origin.

Every connection a probe makes goes through one `Endpoint`, so the per-origin connection limit,
the per-connection timeout, the connection count and the probe's byte budget are enforced in one
place. One probe makes one `Endpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import idna

from .errors import BudgetExceeded, ConnectError, EngineError, ProbeTimeout, ResolveError

MAX_BYTES_PER_PROBE = 8 * 1024 * 1024
"""Bytes one probe reads from an origin over all its connections (see docs/limits.md)."""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


MAX_NAME_LENGTH = 253


def sni_name(name: str | None) -> str | None:
    """The server name CloudFront sends for `name`: None for an IP literal (RFC 6066), an
    internationalised name as A-labels. Raises ResolveError for a name no DNS could hold."""
    if not name or is_ip_literal(name):
        return None
    ascii_name = name
    if not name.isascii():
        try:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise ResolveError(f"{name!r} is not a valid DNS name: {exc}") from None
    if len(ascii_name.removesuffix(".")) > MAX_NAME_LENGTH:
        raise ResolveError(f"{name[:40]!r}... is longer than {MAX_NAME_LENGTH} characters")
    return ascii_name


@dataclass
class Endpoint:
    """One origin address; hands out connections within the origin's connection limit."""

    address: str
    port: int
    timeout: float
    max_connections: int
    max_bytes: int
    connections_opened: int = 0
    bytes_read: int = 0  # charged by every reader, over all connections
    tls_seen: bool = False  # some connection got a valid TLS record header back
    connect_attempts: int = 1  # CloudFront's ConnectionAttempts, until one connect succeeds
    connect_timeout: float | None = None  # CloudFront's ConnectionTimeout; None: `timeout`
    reached: bool = False  # a TCP connect has succeeded: later ones get one attempt
    _slots: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_connections)

    @property
    def display(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def charge(self, size: int) -> None:
        """Count `size` bytes read from the origin; past the budget the whole probe stops."""
        self.bytes_read += size
        if self.bytes_read > self.max_bytes:
            raise BudgetExceeded(
                f"{self.display} sent more than {self.max_bytes} bytes in one probe"
            )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the origin's connection slots (for clients that connect themselves)."""
        async with self._slots:
            self.connections_opened += 1
            yield

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        async with self.slot():
            reader, writer = await self.open()
            try:
                yield reader, writer
            finally:
                writer.transport.abort()

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection as CloudFront makes one: up to `connect_attempts` tries of
        `connect_timeout` each until the origin has been reached once, then one."""
        attempts = 1 if self.reached else max(1, self.connect_attempts)
        wait = min(self.connect_timeout or self.timeout, self.timeout)
        failure: EngineError = ConnectError(f"TCP connect to {self.display} failed")
        for attempt in range(1, attempts + 1):
            tried = f" (attempt {attempt} of {attempts})" if attempts > 1 else ""
            try:
                async with asyncio.timeout(wait):
                    connection = await asyncio.open_connection(self.address, self.port)
            except TimeoutError:
                failure = ProbeTimeout(
                    f"TCP connect to {self.display} timed out after {wait:g}s{tried}"
                )
            except OSError as exc:
                failure = ConnectError(
                    f"TCP connect to {self.display} failed{tried}: {describe_os_error(exc)}"
                )
            else:
                self.reached = True
                return connection
        raise failure


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Preconnected:
    """Connections for a chain of exchanges on one endpoint: while one is in use, the next
    one is already being opened (holding its own slot), so each later step of the chain
    waits for its answer only, not for a TCP handshake first. `close()` when the chain ends
    drops the spare at once."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._spare: asyncio.Task[Connection] | None = None

    async def _open(self) -> Connection:
        endpoint = self.endpoint
        await endpoint._slots.acquire()
        endpoint.connections_opened += 1
        try:
            return await endpoint.open()
        except BaseException:
            endpoint._slots.release()
            raise

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        spare, self._spare = self._spare, None
        reader, writer = await (spare if spare is not None else self._open())
        if writer.transport.is_closing() or reader.at_eof():
            # The origin closed the idle spare (a short accept timeout, a reset): not an
            # answer to anything. Give its slot back and connect afresh.
            writer.transport.abort()
            self.endpoint._slots.release()
            reader, writer = await self._open()
        self._spare = asyncio.ensure_future(self._open())
        try:
            yield reader, writer
        finally:
            writer.transport.abort()
            self.endpoint._slots.release()

    async def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is None:
            return
        spare.cancel()
        try:
            _, writer = await spare
        except (asyncio.CancelledError, EngineError):
            return  # never opened (a cancelled open released its slot)
        writer.transport.abort()
        self.endpoint._slots.release()


def describe_os_error(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return f"{exc.strerror or errno.errorcode[exc.errno]} ({errno.errorcode[exc.errno]})"
    return str(exc) or type(exc).__name__
