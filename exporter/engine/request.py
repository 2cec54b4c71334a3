"""The HTTP request CloudFront forwards once its TLS handshake with the origin is done.

A handshake that succeeds is not yet a page that loads: CloudFront then sends an HTTP/1.1
request on that connection and waits for the answer, and many "502/504 from CloudFront"
reports are about this second half. `send_request` does that half on an already established
stream (typically the one the handshake check just opened), so the probe sees what CloudFront
sees, with CloudFront's timers, and never reads more than a byte cap.

CloudFront's documented connection settings (API reference, botocore 1.43 service model
`cloudfront/2020-05-31`, and the Developer Guide pages below), which the engine applies:

* ConnectionTimeout: 1-10 s, default 10 s: how long one TCP connection attempt may take.
* ConnectionAttempts: 1-3, default 3: how many times CloudFront tries to connect, so by
  default up to 30 s before it fails over (origin group) or answers the viewer with an error.
  For custom origins the same number also bounds how often CloudFront retries a GET/HEAD whose
  response timed out. The documentation does not say whether a retry picks another of the
  origin's addresses; the engine therefore probes every address, not "the next one".
* OriginReadTimeout ("response timeout"): 1-120 s (API reference; older references say 1-60,
  larger values by quota request), default 30 s. It applies to the wait for the first byte
  after the request *and* to every wait between two packets of the response. On timeout of a
  GET/HEAD CloudFront drops the connection and retries up to ConnectionAttempts times; the
  viewer finally gets 504. For other methods it does not retry.
* ResponseCompletionTimeout: optional, >= OriginReadTimeout, no limit when unset: a cap on
  the whole response. Not applied here (`send_request` takes it as the caller's concern).
* OriginKeepaliveTimeout: 1-120 s (API reference; 1-60 in older ones), default 5 s: how long
  CloudFront keeps an idle origin connection for reuse. An origin that closes idle connections
  sooner races with CloudFront reusing them: intermittent 502s. `keepalive_wait` measures it.

The request itself, as CloudFront builds it for a custom origin (Developer Guide, "Request
and response behavior for custom origins",
https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html):

* HTTP/1.1, `Host` set to the origin's domain name (the caller passes it), no body.
* `User-Agent: Amazon CloudFront`: CloudFront replaces the viewer's User-Agent unless the
  cache policy forwards it.
* `Connection: Keep-Alive`: CloudFront replaces the viewer's Connection header with it.
* `Via`: CloudFront adds itself ("1.1 <id>.cloudfront.net (CloudFront)"); some origins or
  WAF rules key on it, so we send the same shape with our own pseudonym, `VIA` below.
* `X-Amz-Cf-Id` (an encrypted per-request id) and `X-Forwarded-For` (the viewer's address)
  are not sent: a made-up value would not be CloudFront's, and there is no viewer. A spec can
  add them (or custom origin headers) through `RequestSpec.headers`.

Client certificates: the Developer Guide (same page, "Client-side SSL authentication") long
said CloudFront does not support them and drops the request if an origin asks for one; the
current API adds CustomOriginConfig.OriginMtlsConfig (ClientCertificateArn, an ACM client
certificate). A required certificate fails a TLS 1.2 handshake ("sslv3 alert handshake
failure") but, in TLS 1.3, only the first read after it ("tlsv13 alert certificate
required"), which is why `Outcome.TLS_ERROR` exists.

Response parsing is a small strict HTTP/1.x parser of our own: h11 is not installed here, and
what is needed is the *framing* (status line, header block, Content-Length / chunked / until
close) with byte and time bounds on every read, which a dozen short functions give without a
dependency. Bodies are counted and discarded, never kept.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from .errors import ConnectError, ProbeTimeout
from .net import Endpoint
from .target import OriginRequest


class ByteReader(Protocol):
    """What the request reads from: an asyncio reader, or s2n-tls's connection."""

    async def read(self, n: int = -1, /) -> bytes: ...


class ByteWriter(Protocol):
    """What the request writes to: an asyncio writer, or s2n-tls's connection."""

    @property
    def transport(self) -> asyncio.BaseTransport: ...

    def write(self, data: bytes, /) -> None: ...

    async def drain(self) -> None: ...


USER_AGENT = "Amazon CloudFront"
VIA = "1.1 origin-tls-exporter (CloudFront)"
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # our bound on a status line plus header block
MAX_INTERIM_RESPONSES = 8  # 1xx answers skipped before the final one
READ_SIZE = 64 * 1024

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
# headers that frame the message or the connection: ours to set, never the spec's
_RESERVED = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "te", "upgrade",
     "keep-alive", "proxy-connection", "trailer"}
)  # fmt: skip

Charge = Callable[[int], None]


class Outcome(StrEnum):
    """How the exchange ended, in terms of what CloudFront would make of it."""

    OK = "ok"  # a complete response, whatever its status (an origin 503 is "ok" here)
    RESPONSE_TIMEOUT = "response_timeout"  # no (complete) status/header block in time: 504
    INVALID_RESPONSE = "invalid_response"  # not HTTP/1.x, or a malformed header block: 502
    CLOSED = "closed"  # the origin closed the connection before sending a byte: 502
    TRUNCATED = "truncated"  # more than max_bytes: we stopped reading (not a failure)
    INCOMPLETE = "incomplete"  # headers fine, body cut short or stalled: a partial object
    TLS_ERROR = "tls_error"  # a TLS alert after the handshake (TLS 1.3 client-cert checks)


@dataclass(frozen=True)
class RequestSpec:
    """The request to forward; validated so it cannot smuggle a second request or header."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.method):
            raise ValueError(f"RequestSpec.method {self.method!r} is not an HTTP token")
        if not self.path.startswith("/"):
            raise ValueError(f"RequestSpec.path {self.path!r} must start with '/'")
        if any(c <= " " or c == "\x7f" for c in self.path):
            raise ValueError(f"RequestSpec.path {self.path!r} contains a space or control char")
        for name, value in self.headers:
            _check_header(name, value)
            if name.lower() in _RESERVED:
                raise ValueError(f"RequestSpec.headers: {name} frames the message; not settable")

    def render(self, host_header: str) -> bytes:
        """The request bytes: CloudFront's own headers first, then the spec's."""
        _check_header("Host", host_header)
        own = {
            "Host": host_header,
            "User-Agent": USER_AGENT,
            "Via": VIA,
            "Connection": "Keep-Alive",
        }
        overridden = {name.lower() for name, _ in self.headers}
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in own.items() if k.lower() not in overridden]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"RequestSpec.headers: name {name!r} is not an HTTP token")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"RequestSpec.headers: value of {name} contains CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"RequestSpec.headers: value of {name} is not latin-1") from None


@dataclass(frozen=True)
class HttpExchange:
    """What happened to one forwarded request; plain fields, `as_dict()` is JSON-ready."""

    outcome: Outcome
    status_code: int | None = None
    reason: str | None = None
    http_version: str | None = None  # "HTTP/1.1" or "HTTP/1.0"
    first_byte_seconds: float | None = None  # request sent -> first response byte
    response_seconds: float | None = None  # request sent -> response complete
    bytes_read: int = 0  # everything read on the connection, idle wait included
    body_bytes: int = 0
    framing: str | None = None  # "content-length", "chunked", "until-close" or "none"
    connection_close: bool = False  # the origin will not reuse this connection
    idle_watched_seconds: float | None = None  # how long the idle connection was watched
    idle_close_seconds: float | None = None  # the origin closed the idle connection after
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


class _Malformed(Exception):
    """The bytes are not an HTTP/1.x response CloudFront would accept."""


class _Ended(Exception):
    """The origin closed (or reset) the connection where more was expected."""


class _CapReached(Exception):
    """`max_bytes` are read and the response is not over."""


@dataclass
class _Wire:
    """Reads from the origin: OriginReadTimeout per read, `max_bytes` in total, all charged."""

    reader: ByteReader
    read_timeout: float
    max_bytes: int
    charge: Charge | None
    sent_at: float
    buffer: bytearray = field(default_factory=bytearray)
    bytes_read: int = 0
    first_byte_at: float | None = None

    async def fill(self, patience: float | None = None) -> bool:
        """Read once more into the buffer; False at end of stream. TimeoutError if silent."""
        room = self.max_bytes - self.bytes_read
        if room <= 0:
            raise _CapReached
        async with asyncio.timeout(self.read_timeout if patience is None else patience):
            data = await self.reader.read(min(READ_SIZE, room))
        if not data:
            return False
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self.bytes_read += len(data)
        if self.charge is not None:
            self.charge(len(data))
        self.buffer += data
        return True

    async def line(self, limit: int) -> bytes:
        """One line without its CRLF (a bare LF is accepted, as RFC 9112 allows)."""
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > limit:
                raise _Malformed(f"a line longer than {limit} bytes")
            if not await self.fill():
                raise _Ended("inside the header block")
        line = bytes(self.buffer[:end]).removesuffix(b"\r")
        del self.buffer[: end + 1]
        return line

    async def skip(self, size: int) -> int:
        """Consume `size` body bytes (they are not kept); fewer only when the stream ended."""
        remaining = size
        while remaining > 0:
            if not self.buffer and not await self.fill():
                break
            taken = min(remaining, len(self.buffer))
            del self.buffer[:taken]
            remaining -= taken
        return size - remaining


@dataclass
class _Partial:
    """What is known of the response so far, for the result of an exchange that fails."""

    phase: str = "head"  # "head", then "body"
    status_code: int | None = None
    reason: str | None = None
    http_version: str | None = None
    framing: str | None = None
    content_length: int | None = None
    connection_close: bool = False
    body_bytes: int = 0


async def send_request(
    reader: ByteReader,
    writer: ByteWriter,
    spec: RequestSpec,
    host_header: str,
    read_timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keepalive_wait: float = 0.0,
    charge: Charge | None = None,
    until: asyncio.Event | None = None,
    responded: Callable[[], None] | None = None,
) -> HttpExchange:
    """Forward `spec` as CloudFront would and read the answer within its timers.

    `read_timeout` is OriginReadTimeout (first byte, then between reads); `max_bytes` caps
    what is read; `keepalive_wait` > 0 then waits that long on the idle connection to see
    whether the origin closes it first. `charge` is told every byte count read (the engine's
    `Endpoint.charge`, whose BudgetExceeded propagates); `responded` is called once the
    response is in, before the idle wait. The stream is left open.
    """
    failed = await _write_request(writer, spec.render(host_header), read_timeout)
    if failed is not None:
        return failed
    wire = _Wire(reader, read_timeout, max_bytes, charge, sent_at=time.monotonic())
    exchange = await _read_response(wire, spec.method)
    if responded is not None:
        responded()
    if keepalive_wait > 0 and exchange.outcome is Outcome.OK and not exchange.connection_close:
        started = time.monotonic()
        idle = await _wait_for_idle_close(wire, keepalive_wait, until)
        exchange = replace(
            exchange,
            idle_close_seconds=idle,
            idle_watched_seconds=idle if idle is not None else time.monotonic() - started,
            bytes_read=wire.bytes_read,
        )
    return exchange


async def _write_request(
    writer: ByteWriter, request: bytes, read_timeout: float
) -> HttpExchange | None:
    try:
        writer.write(request)
        async with asyncio.timeout(read_timeout):
            await writer.drain()
    except TimeoutError:
        return HttpExchange(Outcome.RESPONSE_TIMEOUT, detail="the origin did not take the request")
    except ssl.SSLError as exc:
        return HttpExchange(Outcome.TLS_ERROR, detail=ssl_error_text(exc))
    except OSError as exc:
        return HttpExchange(Outcome.CLOSED, detail=f"sending the request failed: {exc}")
    except RuntimeError as exc:  # uvloop: the transport a reset already closed
        if not writer.transport.is_closing():
            raise
        return HttpExchange(Outcome.CLOSED, detail=f"sending the request failed: {exc}")
    return None


async def _read_response(wire: _Wire, method: str) -> HttpExchange:
    partial = _Partial()
    try:
        await _read_head(wire, partial, method)
        partial.phase = "body"
        await _read_body(wire, partial)
    except TimeoutError:
        return _result(wire, partial, *_timeout_outcome(wire, partial))
    except _CapReached:
        return _result(wire, partial, Outcome.TRUNCATED, f"stopped at {wire.max_bytes} bytes")
    except _Malformed as exc:
        return _result(wire, partial, Outcome.INVALID_RESPONSE, str(exc))
    except _Ended as exc:
        return _result(
            wire, partial, *_ended_outcome(wire, partial, f"connection closed {exc}".strip())
        )
    except ssl.SSLEOFError as exc:  # EOF without close_notify: an ordinary close to CloudFront
        return _result(wire, partial, *_ended_outcome(wire, partial, ssl_error_text(exc)))
    except ssl.SSLError as exc:
        return _result(wire, partial, Outcome.TLS_ERROR, ssl_error_text(exc))
    except OSError as exc:  # a reset
        return _result(wire, partial, *_ended_outcome(wire, partial, f"connection lost: {exc}"))
    leftover = f"{len(wire.buffer)} bytes beyond the response" if wire.buffer else None
    return _result(wire, partial, Outcome.OK, leftover, complete=True)


def _result(
    wire: _Wire, partial: _Partial, outcome: Outcome, detail: str | None, complete: bool = False
) -> HttpExchange:
    first = wire.first_byte_at
    return HttpExchange(
        outcome=outcome,
        status_code=partial.status_code,
        reason=partial.reason,
        http_version=partial.http_version,
        first_byte_seconds=None if first is None else first - wire.sent_at,
        response_seconds=time.monotonic() - wire.sent_at if complete else None,
        bytes_read=wire.bytes_read,
        body_bytes=partial.body_bytes,
        framing=partial.framing,
        connection_close=partial.connection_close or outcome is not Outcome.OK,
        detail=detail,
    )


def _timeout_outcome(wire: _Wire, partial: _Partial) -> tuple[Outcome, str]:
    seconds = f"{wire.read_timeout:g}s"
    if wire.bytes_read == 0:
        return Outcome.RESPONSE_TIMEOUT, f"no response byte within {seconds}"
    if partial.phase == "head":
        return (
            Outcome.RESPONSE_TIMEOUT,
            f"header block stalled {seconds} after {wire.bytes_read} bytes",
        )
    return Outcome.INCOMPLETE, f"body stalled {seconds} after {partial.body_bytes} body bytes"


def _ended_outcome(wire: _Wire, partial: _Partial, why: str) -> tuple[Outcome, str]:
    if wire.bytes_read == 0:
        return Outcome.CLOSED, f"{why} before any response byte"
    if partial.phase == "head":
        return Outcome.INVALID_RESPONSE, why
    return Outcome.INCOMPLETE, f"{why} after {partial.body_bytes} body bytes"


async def _read_head(wire: _Wire, partial: _Partial, method: str) -> None:
    """Status line and headers of the final response (1xx interim answers are skipped)."""
    for _ in range(MAX_INTERIM_RESPONSES + 1):
        version, status, reason = _parse_status_line(await _status_line(wire))
        headers = await _header_block(wire)
        if status == 101 or not 100 <= status < 200:
            break
    else:
        raise _Malformed(f"more than {MAX_INTERIM_RESPONSES} interim 1xx responses")
    if status == 101:
        raise _Malformed("101 Switching Protocols, but no upgrade was asked for")
    partial.status_code, partial.reason, partial.http_version = status, reason, version
    partial.framing, partial.content_length = _framing(headers, method, status)
    partial.connection_close = _closes(headers, version, partial.framing)


async def _status_line(wire: _Wire) -> bytes:
    """The status line; bytes that cannot start one fail at once, not after a timeout."""
    while b"\n" not in wire.buffer:
        _check_http_prefix(wire.buffer)
        if len(wire.buffer) > MAX_HEADER_BYTES:
            raise _Malformed("a status line longer than the header limit")
        if not await wire.fill():
            raise _Ended("inside the status line" if wire.buffer else "")
    _check_http_prefix(wire.buffer)
    return await wire.line(MAX_HEADER_BYTES)


def _check_http_prefix(data: bytearray) -> None:
    start = bytes(data[:5])
    if not b"HTTP/".startswith(start):
        raise _Malformed(f"not an HTTP response: starts with {bytes(data[:40])!r}")


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise _Malformed(f"not an HTTP/1.0 or HTTP/1.1 status line: {line[:80]!r}")
    minor, code, reason = match.groups()
    return f"HTTP/1.{minor.decode()}", int(code), (reason or b"").decode("latin-1")


async def _header_block(wire: _Wire) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    size = 0
    while line := await wire.line(MAX_HEADER_BYTES):
        size += len(line) + 2
        if size > MAX_HEADER_BYTES:
            raise _Malformed(f"header block larger than {MAX_HEADER_BYTES} bytes")
        headers.append(_parse_header_line(line))
    return headers


def _parse_header_line(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise _Malformed(f"obsolete line folding: {line[:80]!r}")
    match = _HEADER_LINE.fullmatch(line)
    if match is None or b"\r" in line or b"\x00" in line:
        raise _Malformed(f"malformed header line: {line[:80]!r}")
    name, value = match.groups()
    return name.decode("ascii").lower(), value.decode("latin-1")


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    """Every comma-separated element of every `name` field, lower-cased."""
    return [
        item.strip().lower()
        for key, value in headers
        if key == name
        for item in value.split(",")
        if item.strip()
    ]


def _framing(headers: list[tuple[str, str]], method: str, status: int) -> tuple[str, int | None]:
    """How the body ends (RFC 9112 section 6.3), and its length when Content-Length says.

    Transfer-Encoding wins over Content-Length; conflicting lengths are malformed.
    """
    if method == "HEAD" or status in (204, 304):
        return "none", 0
    codings = _values(headers, "transfer-encoding")
    if codings:
        return ("chunked" if codings[-1] == "chunked" else "until-close"), None
    lengths = set(_values(headers, "content-length"))
    if not lengths:
        return "until-close", None
    if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
        raise _Malformed(f"invalid Content-Length {sorted(lengths)}")
    return "content-length", int(lengths.pop())


def _closes(headers: list[tuple[str, str]], version: str, framing: str) -> bool:
    tokens = _values(headers, "connection")
    if "close" in tokens or framing == "until-close":
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens


async def _read_body(wire: _Wire, partial: _Partial) -> None:
    framing, length = partial.framing, partial.content_length
    if framing == "content-length" and length is not None:
        partial.body_bytes = await wire.skip(length)
        if partial.body_bytes < length:
            raise _Ended(f"with {length - partial.body_bytes} of {length} body bytes missing")
    elif framing == "chunked":
        await _read_chunks(wire, partial)
    elif framing == "until-close":
        partial.body_bytes = len(wire.buffer)
        wire.buffer.clear()
        while await wire.fill():
            partial.body_bytes += len(wire.buffer)
            wire.buffer.clear()


async def _read_chunks(wire: _Wire, partial: _Partial) -> None:
    while size := _chunk_size(await wire.line(4096)):
        got = await wire.skip(size)
        partial.body_bytes += got
        if got < size:
            raise _Ended("inside a chunk")
        if await wire.line(4096) != b"":
            raise _Malformed("chunk data not followed by CRLF")
    while trailer := await wire.line(MAX_HEADER_BYTES):  # trailer fields, then the empty line
        _parse_header_line(trailer)


def _chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise _Malformed(f"malformed chunk size line: {line[:40]!r}")
    return int(match.group(1), 16)


async def _wait_for_idle_close(
    wire: _Wire, wait: float, until: asyncio.Event | None = None
) -> float | None:
    """Seconds until the origin closed the idle connection, or None if it kept it open for
    `wait` s (or until `until` is set: the rest of the probe is done, stop watching)."""
    started = time.monotonic()
    watch = asyncio.ensure_future(_until_closed(wire, wait))
    stop = asyncio.ensure_future(until.wait()) if until is not None else None
    try:
        await asyncio.wait(
            [t for t in (watch, stop) if t is not None], return_when="FIRST_COMPLETED"
        )
    finally:
        for task in (watch, stop):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (watch, stop) if t is not None), return_exceptions=True)
    closed = watch.done() and not watch.cancelled() and watch.result()
    return time.monotonic() - started if closed else None


async def _until_closed(wire: _Wire, wait: float) -> bool:
    """True when the origin closes the connection within `wait` s."""
    try:
        async with asyncio.timeout(wait):
            while await wire.fill(patience=wait):
                wire.buffer.clear()  # unsolicited bytes: counted and charged, not kept
    except (TimeoutError, _CapReached):
        return False
    except OSError:  # a reset (or TLS alert) closes it as surely as a FIN does
        pass
    return True


def ssl_error_text(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words, e.g. "tlsv13 alert certificate required"."""
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


async def forward_request(
    endpoint: Endpoint,
    request: OriginRequest,
    host_header: str,
    server_name: str | None,
    context: ssl.SSLContext,
    read_timeout: float,
    keepalive_wait: float = 0.0,
    until: asyncio.Event | None = None,
) -> HttpExchange:
    """CloudFront's request on a TLS connection of the engine's own (OpenSSL, offering
    CloudFront's suites) within the origin's connection limit: when s2n-tls, which carries
    the request on CloudFront's own handshake, is not there or could not complete it."""
    try:
        async with endpoint.lease() as lease:
            try:
                async with asyncio.timeout(endpoint.timeout):
                    await lease.writer.start_tls(context, server_hostname=server_name or None)
            except ssl.SSLError as exc:
                return HttpExchange(
                    Outcome.TLS_ERROR, detail=f"TLS handshake: {ssl_error_text(exc)}"
                )
            except TimeoutError:
                return HttpExchange(Outcome.TLS_ERROR, detail="TLS handshake timed out")
            except OSError as exc:
                return HttpExchange(Outcome.CLOSED, detail=str(exc))
            return await request_over(
                lease.reader,
                lease.writer,
                endpoint,
                request,
                host_header,
                read_timeout,
                keepalive_wait,
                until,
                lease.release_slot,
            )
    except (ConnectError, ProbeTimeout) as exc:
        return HttpExchange(Outcome.CLOSED, detail=str(exc))


async def request_over(
    reader: ByteReader,
    writer: ByteWriter,
    endpoint: Endpoint,
    request: OriginRequest,
    host_header: str,
    read_timeout: float,
    keepalive_wait: float = 0.0,
    until: asyncio.Event | None = None,
    responded: Callable[[], None] | None = None,
) -> HttpExchange:
    """CloudFront's request on a connection whose handshake is done: s2n-tls's, as CloudFront
    sends it, or the engine's own."""
    spec = RequestSpec(request.method, request.path, request.headers)
    return await send_request(
        reader,
        writer,
        spec,
        host_header,
        read_timeout,
        keepalive_wait=keepalive_wait,
        charge=endpoint.charge,
        until=until,
        responded=responded,
    )
