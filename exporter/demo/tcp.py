"""Ports and a tiny threaded TCP server base shared by the Python-implemented origins.

The demo and the tests both run real origins in-process; this base gives them one accept loop
and a `stop` that really joins every thread. Every origin listens on 127.0.0.1 only.
`free_port` races with other processes (the port is released before the caller binds it);
that is acceptable for tests, and nginx retries once.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable

from .running import Running

__all__ = ["HOST", "ThreadedTCPServer", "free_port", "recv_exact"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def recv_exact(conn: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes; short only if the peer closed first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = conn.recv(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class ThreadedTCPServer(Running):
    """Accept loop in one thread, one daemon thread per connection; `stop` joins them all.

    Subclasses implement `handle(conn)`. Each connection gets a socket timeout so a stuck
    client cannot pin a thread; `stop` shuts every open connection down so handlers return.
    """

    #: per-connection socket timeout in seconds (None: blocking)
    conn_timeout: float | None = 5.0

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._port: int | None = None
        #: unexpected exceptions from `handle` (a bug, not a misbehaving peer), newest last
        self.errors: list[BaseException] = []

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:`port` (0 = any free port) and return the port."""
        if self._listener is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, port))
            listener.listen(512)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True
        )
        self._accept_thread.start()
        return self._port

    def stop(self) -> None:
        """Stop accepting, cut every open connection, and join all threads. Idempotent."""
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not selector.select(timeout=0.05):
                    continue
                while not self._stopping.is_set():
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        return
                    self._spawn(conn)

    def _spawn(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(self.conn_timeout)
        thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
        with self._lock:
            self._conns.add(conn)
            self._threads.add(thread)
        thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except (OSError, EOFError):
            pass  # peers that vanish or time out are routine for scanners
        except Exception as exc:
            self.errors = [*self.errors[-99:], exc]
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._conns.discard(conn)
                self._threads.discard(threading.current_thread())


KEEPALIVE_SECONDS = 60.0
"""How long a demo origin keeps an idle connection (more than CloudFront's 5 s default)."""
MAX_REQUEST = 65536


def http_response(name: str) -> bytes:
    body = f"origin {name}\n".encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + f"Keep-Alive: timeout={KEEPALIVE_SECONDS:.0f}\r\n\r\n".encode()
        + body
    )


def serve_http(
    read: Callable[[], bytes], write: Callable[[bytes], object], response: bytes
) -> None:
    """Answer every request on one connection, HTTP/1.1 keep-alive style, until the client
    closes, asks to close, speaks HTTP/1.0, or stays idle past the socket's timeout."""
    buffer = bytearray()
    while True:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_REQUEST:
                return
            chunk = read()
            if not chunk:
                return
            buffer += chunk
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        buffer = bytearray(rest)
        write(response)
        lowered = head.lower()
        keep = lowered.split(b"\r\n", 1)[0].endswith(b"http/1.1")
        if not keep or b"connection: close" in lowered:
            return
