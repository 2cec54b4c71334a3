"""A loopback TCP proxy that makes a local origin look tens of milliseconds away.

`tc netem` needs CAP_NET_ADMIN, which the benchmark machines do not have, so the wide-area
network is modelled in user space: the proxy listens on 127.0.0.1, forwards every connection to
one target, and delays what it relays.

The model, with `d` the one-way delay (RTT = 2d):

- **Data:** every chunk read from one side is written to the other side `d` later. Each direction
  has its own FIFO, so order is preserved and the delay applies per chunk, not per connection:
  a server flight that arrives in three reads is delivered as three chunks, each `d` after it
  was read. Bandwidth is not limited (a flight of a few KiB takes microseconds on loopback and
  a fraction of a millisecond on a real path).
- **Connection set-up (the SYN, SYN-ACK exchange):** on loopback the client's `connect()`
  returns at once, while on a WAN it returns one RTT later, when the SYN-ACK arrives. The proxy
  accepts at once but models the exchange: it connects to the target `d` after the accept (the
  SYN reaching the server), and treats the client's data as sent no earlier than `2d` after the
  accept (when the client would have had its SYN-ACK). So the first byte reaches the server at
  `3d` and the server's first answer reaches the client at `4d`: connect plus one request and
  answer cost two RTTs, as on a WAN. A refused connection is reported to the client (as a
  reset) `2d` after the accept, one RTT, like an RST answering a SYN.
- **Close and reset:** an EOF is delivered `d` after it was read, in order behind the data; a
  reset aborts the other side `d` later.

What it does not model: loss, retransmission, slow start and the bandwidth-delay product (a TLS
handshake's flights fit in the initial congestion window), and the kernel-level timing of the
client's connect (the client sees the connection established at once; only when its data moves
is delayed). Timers run on the asyncio event loop (about 1 ms granularity); on a busy machine a
chunk can be late by the loop's lag, never early.

Use it from Python (`WanProxy`, or `ThreadedWanProxy` to run it beside blocking code), or from
the command line:

    python bench/wan_proxy.py --target 127.0.0.1:8443 --delay-ms 25 [--listen 127.0.0.1:0]

which prints the listening port on its first line and, on SIGINT or SIGTERM, a JSON line of
statistics (connections accepted, bytes each way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import struct
import sys
import threading
from dataclasses import asdict, dataclass

READ_SIZE = 64 * 1024


@dataclass
class ProxyStats:
    connections: int = 0  # accepted from clients
    refused: int = 0  # the target refused the upstream connection
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    peak_open: int = 0  # most connections open at once
    open: int = 0


class _Reset:
    """Queued instead of data: the sending side was reset, so abort the receiving side."""


_EOF = b""
_RESET = _Reset()


class WanProxy:
    """Forwards connections on `listen` to `target`, delaying every chunk by `delay` seconds."""

    def __init__(
        self,
        target: tuple[str, int],
        delay: float,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        model_connect: bool = True,
    ) -> None:
        if delay < 0:
            raise ValueError("delay must not be negative")
        self.target = target
        self.delay = delay
        self.listen = listen
        self.model_connect = model_connect
        self.stats = ProxyStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._handle, self.listen[0], self.listen[1], backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Cancelling a client_connected_cb task makes asyncio (3.11) log a spurious error, so
        # reset every open connection instead and let the handlers run out.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=self.delay * 4 + 1)

    def reset_stats(self) -> ProxyStats:
        """Return the statistics so far and start counting afresh (open connections stay)."""
        old, self.stats = self.stats, ProxyStats(open=self.stats.open, peak_open=self.stats.open)
        return old

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        stats = self.stats
        stats.connections += 1
        stats.open += 1
        stats.peak_open = max(stats.peak_open, stats.open)
        server_w: asyncio.StreamWriter | None = None
        self._writers.add(client_w)
        try:
            # The SYN reaches the server one one-way delay after the client sent it.
            if self.model_connect:
                await asyncio.sleep(self.delay)
            try:
                server_r, server_w = await asyncio.open_connection(*self.target)
            except OSError:
                stats.refused += 1
                # The RST travels back: the client learns one RTT after its SYN.
                if self.model_connect:
                    await asyncio.sleep(self.delay)
                _reset(client_w)
                return
            self._writers.add(server_w)
            # The client may send only once it has the SYN-ACK, one RTT after its SYN.
            client_ready = accepted + (2 * self.delay if self.model_connect else 0.0)
            up = _Direction(client_r, server_w, self.delay, client_ready, stats, True)
            down = _Direction(server_r, client_w, self.delay, 0.0, stats, False)
            await asyncio.gather(up.run(), down.run())
        finally:
            stats.open -= 1
            client_w.transport.abort()
            self._writers.discard(client_w)
            if server_w is not None:
                server_w.transport.abort()
                self._writers.discard(server_w)
            self._handlers.discard(task)


class _Direction:
    """One direction of one connection: read, stamp with a due time, deliver in order."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: float,
        not_before: float,
        stats: ProxyStats,
        upstream: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.delay = delay
        self.not_before = not_before
        self.stats = stats
        self.upstream = upstream
        self.queue: asyncio.Queue[tuple[float, bytes | _Reset]] = asyncio.Queue()

    async def run(self) -> None:
        deliver = asyncio.ensure_future(self._deliver())
        try:
            await self._read()
            await deliver
        finally:
            deliver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliver

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except OSError:  # reset by the peer
                self.queue.put_nowait((max(loop.time(), self.not_before) + self.delay, _RESET))
                return
            due = max(loop.time(), self.not_before) + self.delay
            self.queue.put_nowait((due, data))
            if not data:
                return

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await self.queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if isinstance(data, _Reset):
                _reset(self.writer)
                return
            if data == _EOF:
                with contextlib.suppress(OSError, RuntimeError):
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    else:
                        self.writer.close()
                return
            if self.upstream:
                self.stats.bytes_to_server += len(data)
            else:
                self.stats.bytes_to_client += len(data)
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (OSError, RuntimeError):  # the receiver went away: nothing left to deliver
                return


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as the origin or the network did."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ThreadedWanProxy:
    """A `WanProxy` on its own event loop in a daemon thread, for code that blocks.

    `with ThreadedWanProxy(("127.0.0.1", port), 0.025) as proxy: ... proxy.port ...`
    """

    def __init__(self, target: tuple[str, int], delay: float, model_connect: bool = True) -> None:
        self.proxy = WanProxy(target, delay, model_connect=model_connect)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.proxy.port

    def start(self) -> ThreadedWanProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self

    def take_stats(self) -> ProxyStats:
        """The statistics since the last call (or the start), then reset them."""
        future = asyncio.run_coroutine_threadsafe(self._take_stats(), self._loop)
        return future.result(10)

    async def _take_stats(self) -> ProxyStats:
        return self.proxy.reset_stats()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ThreadedWanProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def _serve(args: argparse.Namespace) -> None:
    proxy = WanProxy(args.target, args.delay_ms / 1000, args.listen, not args.no_connect_delay)
    print(await proxy.start(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()
    stats = asdict(proxy.stats)
    del stats["open"]
    print(json.dumps(stats), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--target", type=_address, required=True, help="HOST:PORT to forward to")
    parser.add_argument(
        "--delay-ms", type=float, default=25.0, help="one-way delay in ms (25: a 50 ms RTT)"
    )
    parser.add_argument(
        "--listen", type=_address, default=("127.0.0.1", 0), help="HOST:PORT (127.0.0.1:0)"
    )
    parser.add_argument(
        "--no-connect-delay",
        action="store_true",
        help="do not model the TCP handshake (a connect then costs nothing)",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
