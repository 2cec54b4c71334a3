"""Connections opened ahead of need (`Endpoint.expect`, `add_spares`), against a real listener
on 127.0.0.1 that counts what it sees: the limit holds with the warm ones included, unclaimed
spares are closed at once when their chain ends, and an idle connection the origin closed is
never handed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from exporter.engine.net import Endpoint


@dataclass
class CountingListener:
    """Accepts and holds connections; `open` now, `peak` at once, `accepted` in all."""

    close_idle_after: float | None = None  # close a connection that sent nothing this long
    open: int = 0
    peak: int = 0
    accepted: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            if self.close_idle_after is not None:
                try:
                    async with asyncio.timeout(self.close_idle_after):
                        data = await reader.read(1)
                except TimeoutError:
                    return  # idle: close it, as a short accept timeout does
                if data:
                    writer.write(b"answer")
            while await reader.read(4096):
                pass
        finally:
            self.open -= 1
            self.closed.set()
            writer.close()


@asynccontextmanager
async def listening(listener: CountingListener) -> AsyncIterator[int]:
    server = await asyncio.start_server(listener.handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def endpoint(port: int, max_connections: int) -> Endpoint:
    return Endpoint("127.0.0.1", port, 5.0, max_connections, 1 << 20)


async def settle(listener: CountingListener, open_: int) -> None:
    async with asyncio.timeout(5):
        while listener.open != open_:
            listener.closed.clear()
            await asyncio.sleep(0.01)


def test_expected_connections_open_at_once_within_the_limit() -> None:
    async def run() -> tuple[int, int, int]:
        listener = CountingListener()
        async with listening(listener) as port:
            origin = endpoint(port, max_connections=4)
            origin.expect(10)  # more than the limit: the rest wait for a slot
            await settle(listener, 4)
            async with origin.connect(), origin.connect():
                await asyncio.sleep(0.05)  # two claimed: their slots stay taken
                peak = listener.peak
            origin.close_warm()
            await settle(listener, 0)
            return peak, listener.accepted, origin.connections_opened

    peak, accepted, counted = asyncio.run(run())
    assert peak == 4  # never more than max_connections, the warm ones included
    assert accepted == counted
    assert 4 <= accepted <= 6  # the two claimed were replaced from the expected ten, no more


def test_a_chain_keeps_one_spare_and_drops_it_when_it_ends() -> None:
    async def run() -> list[int]:
        listener = CountingListener()
        seen = []
        async with listening(listener) as port:
            origin = endpoint(port, max_connections=8)
            origin.add_spares(1)
            for _ in range(3):
                async with origin.connect():
                    await settle(listener, 2)  # this step's connection and the next one's
                    seen.append(listener.open)
            origin.add_spares(-1)
            await settle(listener, 0)  # the spare nobody will use is closed at once
            seen.append(listener.accepted)
        return seen

    assert asyncio.run(run()) == [2, 2, 2, 4]  # three steps and one spare left over


def test_a_spare_the_origin_closed_is_replaced_not_handed_out() -> None:
    async def run() -> bytes:
        listener = CountingListener(close_idle_after=0.05)
        async with listening(listener) as port:
            origin = endpoint(port, max_connections=2)
            origin.add_spares(1)
            await asyncio.sleep(0.3)  # the origin drops the idle spare
            async with origin.connect() as (reader, writer):
                writer.write(b"x")
                answer = await reader.read(100)
            origin.close_warm()
            return answer

    assert asyncio.run(run()) == b"answer"


def test_released_slot_lets_others_connect_while_a_connection_stays_open() -> None:
    async def run() -> int:
        listener = CountingListener()
        async with listening(listener) as port:
            origin = endpoint(port, max_connections=1)
            async with origin.lease() as idle:
                idle.release_slot()  # e.g. a keep-alive connection being watched
                async with asyncio.timeout(2), origin.connect():
                    await settle(listener, 2)
                    return listener.open

    assert asyncio.run(run()) == 2
