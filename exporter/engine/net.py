"""Name resolution and bounded TCP connections to one origin.

Every connection a probe makes goes through one `Endpoint`, so the per-origin connection limit,
the per-connection timeout, the connection count and the probe's byte budget are enforced in one
place. One probe makes one `Endpoint`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import idna

from .errors import BudgetExceeded, ConnectError, EngineError, ProbeTimeout, ResolveError

MAX_BYTES_PER_PROBE = 8 * 1024 * 1024
"""Bytes one probe reads from an origin over all its connections (see docs/limits.md)."""


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


MAX_NAME_LENGTH = 253


@functools.lru_cache(maxsize=4096)
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


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Lease:
    """One connection to the origin and the connection slot it holds until it is closed."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    _release: Callable[[], None] = field(repr=False)
    holds_slot: bool = True

    def release_slot(self) -> None:
        """Stop counting this connection against the limit while it stays open: an idle
        keep-alive connection being watched costs the origin nothing a handshake does."""
        if self.holds_slot:
            self.holds_slot = False
            self._release()


@dataclass
class Endpoint:
    """One origin address; hands out connections within the origin's connection limit.

    Connections can be opened ahead of need ("warm"), so that a step that needs one waits for
    its answer only, not for a TCP handshake first: `expect(n)` for n consumers known to come
    soon (CloudFront's hello's followers), `add_spares(+1)` for a chain of exchanges that will
    want one more for as long as it runs (replenished as they are taken), `add_spares(-1)` when
    it ends, which closes an unclaimed spare at once. Every warm connection holds its own slot.
    """

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
    _warm: collections.deque[asyncio.Task[Connection]] = field(init=False, repr=False)
    _spares: int = field(default=0, init=False, repr=False)  # kept warm, replenished
    _expected: int = field(default=0, init=False, repr=False)  # warm for known consumers

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_connections)
        self._warm = collections.deque()

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
    async def lease(self, warm: bool = True) -> AsyncIterator[Lease]:
        """A connection (a warm one when there is one, unless `warm` is False: work that
        informs but decides nothing leaves them to the rest), closed and its slot freed on exit."""
        reader, writer = await (self._claim() if warm else self._open_held())
        lease = Lease(reader, writer, self._slots.release)
        try:
            yield lease
        finally:
            writer.transport.abort()
            lease.release_slot()

    @contextlib.asynccontextmanager
    async def connect(self, warm: bool = True) -> AsyncIterator[Connection]:
        async with self.lease(warm) as lease:
            yield lease.reader, lease.writer

    def expect(self, consumers: int) -> None:
        """Open `consumers` connections now for steps that will ask for one soon; they are
        not replenished, and any left unclaimed are closed by `close_warm()`."""
        self._expected += max(0, consumers)
        self._top_up()

    def add_spares(self, delta: int) -> None:
        """Keep `delta` more (or fewer) connections warm; fewer closes the excess at once."""
        self._spares = max(0, self._spares + delta)
        self._top_up()
        while len(self._warm) > self._spares + self._expected:
            self._discard(self._warm.pop())  # the newest: the least likely to be ready

    def close_warm(self) -> None:
        """The phase that wanted warm connections is over: close every unclaimed one."""
        self._spares = self._expected = 0
        while self._warm:
            self._discard(self._warm.pop())

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

    async def _claim(self) -> Connection:
        """The oldest warm connection still open, or a new one; either holds a slot."""
        while self._warm:
            task = self._warm.popleft()
            if self._expected > 0:
                self._expected -= 1  # one of the consumers it was opened for
            self._top_up()
            try:
                reader, writer = await task
            except asyncio.CancelledError:
                self._discard(task)
                raise
            if writer.transport.is_closing() or reader.at_eof():
                # The origin closed the idle connection (a short accept timeout, a reset):
                # not an answer to anything. Give its slot back and take another.
                writer.transport.abort()
                self._slots.release()
                continue
            return reader, writer
        return await self._open_held()

    async def _open_held(self) -> Connection:
        await self._slots.acquire()
        self.connections_opened += 1
        try:
            return await self.open()
        except BaseException:
            self._slots.release()
            raise

    def _top_up(self) -> None:
        while len(self._warm) < self._spares + self._expected:
            self._warm.append(asyncio.ensure_future(self._open_held()))

    def _discard(self, task: asyncio.Task[Connection]) -> None:
        """Close a warm connection nobody will use, or stop its opening."""
        if not task.done():
            task.cancel()
        task.add_done_callback(self._drop)

    def _drop(self, task: asyncio.Task[Connection]) -> None:
        if task.cancelled() or task.exception() is not None:
            return  # never opened: its slot was given back (or never taken)
        _, writer = task.result()
        writer.transport.abort()
        self._slots.release()


def describe_os_error(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return f"{exc.strerror or errno.errorcode[exc.errno]} ({errno.errorcode[exc.errno]})"
    return str(exc) or type(exc).__name__
