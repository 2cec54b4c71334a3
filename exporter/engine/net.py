"""Name resolution and bounded TCP connections to one origin.

Every connection a probe makes goes through one `Endpoint`, so the per-origin connection limit,
the per-connection timeout and the connection count are enforced in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .errors import ConnectError, ProbeTimeout, ResolveError


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int, override: str | None = None) -> str:
    """The address CloudFront would connect to; `override` plays the role of curl's --resolve."""
    if override:
        return override
    if is_ip_literal(host):
        return host.strip("[]")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"cannot resolve {host!r}: {exc}") from None
    if not infos:
        raise ResolveError(f"cannot resolve {host!r}: no addresses")
    # Prefer IPv4 like most CloudFront edge locations do towards origins.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


@dataclass
class Endpoint:
    """One origin address; hands out connections within the origin's connection limit."""

    address: str
    port: int
    timeout: float
    max_connections: int = 4
    connections_opened: int = 0
    _slots: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_connections)

    @property
    def display(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the origin's connection slots (for clients that connect themselves)."""
        async with self._slots:
            self.connections_opened += 1
            yield

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        async with self.slot():
            try:
                async with asyncio.timeout(self.timeout):
                    reader, writer = await asyncio.open_connection(self.address, self.port)
            except TimeoutError:
                raise ProbeTimeout(f"TCP connect to {self.display} timed out") from None
            except OSError as exc:
                raise ConnectError(
                    f"TCP connect to {self.display} failed: {describe_os_error(exc)}"
                ) from None
            try:
                yield reader, writer
            finally:
                writer.transport.abort()


def describe_os_error(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return f"{exc.strerror or errno.errorcode[exc.errno]} ({errno.errorcode[exc.errno]})"
    return str(exc) or type(exc).__name__
