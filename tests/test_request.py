"""The request CloudFront forwards after its handshake, against real TLS origins on 127.0.0.1.

Timing assertions are bounds only, never speeds, and hold on a loaded machine: what ended an
exchange is asserted from what it recorded (its outcome and detail); "did not wait for X" is an
upper bound far below X, with X (the origin's hold, or our timer) a minute; lower bounds ("took
at least the read timeout") are exact.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from exporter.engine.errors import BudgetExceeded
from exporter.engine.request import (
    USER_AGENT,
    VIA,
    HttpExchange,
    Outcome,
    RequestSpec,
    send_request,
)
from tests.servers.origins_around import (
    SCENARIOS,
    SERVER_NAME,
    AroundCredentials,
    AroundOrigin,
    MutualTLSOrigin,
    OriginSpec,
    make_origin,
)

#: how long the slow origins hold back (the first byte, the rest of the body), and the timers
#: the exchanges that must not wait for something get: a minute, so that "far below it" is
#: a bound no load reaches
HOLD = 60.0
#: what "far below" means: an exchange that waited for a HOLD took at least three times this
FAR_BELOW = HOLD / 3
#: the scenarios, with the slow origins holding back for HOLD
SPECS = {
    **SCENARIOS,
    "slow": replace(SCENARIOS["slow"], delay=HOLD),
    "stall_body": replace(SCENARIOS["stall_body"], delay=HOLD),
}


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> AroundCredentials:
    return AroundCredentials.create(Path(tmp_path_factory.mktemp("around")))


@pytest.fixture
def origin(
    request: pytest.FixtureRequest, credentials: AroundCredentials
) -> Iterator[AroundOrigin | MutualTLSOrigin]:
    """The origin of the scenario named by the test's `scenario` parameter."""
    with make_origin(SPECS[request.param], credentials) as server:
        yield server


def scenario(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("origin", [name], indirect=True)


@dataclass(frozen=True)
class Timed:
    exchange: HttpExchange
    elapsed: float


async def _exchange(
    port: int, context: ssl.SSLContext, spec: RequestSpec, **options: object
) -> Timed:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=SERVER_NAME
    )
    try:
        started = time.monotonic()
        result = await send_request(reader, writer, spec, SERVER_NAME, **options)  # type: ignore[arg-type]
        return Timed(result, time.monotonic() - started)
    finally:
        writer.transport.abort()


def run(
    origin: AroundOrigin | MutualTLSOrigin,
    spec: RequestSpec | None = None,
    context: ssl.SSLContext | None = None,
    **options: object,
) -> Timed:
    options.setdefault("read_timeout", 5.0)
    context = context or origin.credentials.client_context()
    return asyncio.run(_exchange(origin.port, context, spec or RequestSpec(), **options))


@scenario("normal")
def test_a_normal_origin_answers_and_keeps_the_connection(origin: AroundOrigin) -> None:
    timed = run(origin, keepalive_wait=1.0)
    exchange = timed.exchange
    assert exchange.outcome is Outcome.OK
    assert (exchange.status_code, exchange.reason, exchange.http_version) == (
        200,
        "OK",
        "HTTP/1.1",
    )
    assert exchange.framing == "content-length"
    assert exchange.body_bytes == len(origin.spec.body)
    assert not exchange.connection_close
    assert exchange.idle_close_seconds is None  # held for 60 s, we waited 1 s
    assert exchange.first_byte_seconds is not None
    assert exchange.response_seconds is not None
    assert exchange.first_byte_seconds <= exchange.response_seconds <= 5.0  # the read timeout
    # waited the 1 s keep-alive wait, and not for the origin's 60 s hold of idle connections
    assert origin.spec.idle_timeout == HOLD
    assert 1.0 <= timed.elapsed < FAR_BELOW
    json.dumps(exchange.as_dict())  # plain fields only


@scenario("normal")
def test_the_request_carries_cloudfronts_headers(origin: AroundOrigin) -> None:
    spec = RequestSpec("GET", "/health?x=1", (("X-Origin-Secret", "s3cr3t"),))
    assert run(origin, spec).exchange.outcome is Outcome.OK
    head = origin.requests[-1].decode("latin-1")
    assert head.startswith("GET /health?x=1 HTTP/1.1\r\n")
    for line in (
        f"Host: {SERVER_NAME}",
        f"User-Agent: {USER_AGENT}",
        f"Via: {VIA}",
        "Connection: Keep-Alive",
        "X-Origin-Secret: s3cr3t",
    ):
        assert f"\r\n{line}\r\n" in head


@scenario("normal")
def test_a_spec_header_replaces_cloudfronts_own(origin: AroundOrigin) -> None:
    run(origin, RequestSpec(headers=(("user-agent", "Viewer/1.0"),)))
    head = origin.requests[-1].decode("latin-1")
    assert "\r\nuser-agent: Viewer/1.0\r\n" in head
    assert USER_AGENT not in head


@scenario("normal")
def test_head_has_no_body(origin: AroundOrigin) -> None:
    exchange = run(origin, RequestSpec(method="HEAD")).exchange
    assert (exchange.outcome, exchange.framing, exchange.body_bytes) == (Outcome.OK, "none", 0)
    assert exchange.detail is None  # nothing left over after the headers


@scenario("status_503")
def test_the_origins_own_5xx_is_a_complete_response(origin: AroundOrigin) -> None:
    exchange = run(origin).exchange
    assert (exchange.outcome, exchange.status_code) == (Outcome.OK, 503)
    assert exchange.reason == "Service Unavailable"


@scenario("slow")
def test_no_first_byte_within_the_read_timeout(origin: AroundOrigin) -> None:
    timed = run(origin, read_timeout=0.5)
    exchange = timed.exchange
    assert exchange.outcome is Outcome.RESPONSE_TIMEOUT
    assert (exchange.status_code, exchange.first_byte_seconds, exchange.bytes_read) == (
        None,
        None,
        0,
    )
    assert exchange.detail == "no response byte within 0.5s"  # the read timeout ended it
    assert 0.5 <= timed.elapsed < FAR_BELOW  # and not the origin's answer, a minute later


@scenario("not_http")
def test_bytes_that_are_not_http_fail_without_waiting(origin: AroundOrigin) -> None:
    timed = run(origin, read_timeout=HOLD)
    exchange = timed.exchange
    assert exchange.outcome is Outcome.INVALID_RESPONSE
    assert exchange.detail is not None
    assert "SSH-2.0-OpenSSH_9.6" in exchange.detail
    assert timed.elapsed < FAR_BELOW  # decided on the first bytes, not by the read timeout


@scenario("idle_close")
def test_an_origin_closing_idle_connections_early_is_timed(origin: AroundOrigin) -> None:
    exchange = run(origin, keepalive_wait=HOLD).exchange
    assert exchange.outcome is Outcome.OK
    assert not exchange.connection_close
    assert exchange.idle_close_seconds is not None
    # the origin's 1 s idle timer (at least nearly 1 s), not the end of our minute's wait
    assert 0.5 <= exchange.idle_close_seconds < FAR_BELOW


@scenario("connection_close")
def test_connection_close_is_reported_and_not_waited_for(origin: AroundOrigin) -> None:
    timed = run(origin, keepalive_wait=HOLD)
    assert timed.exchange.outcome is Outcome.OK
    assert timed.exchange.connection_close
    assert timed.exchange.idle_close_seconds is None
    assert timed.elapsed < FAR_BELOW  # no keep-alive wait on a connection that will not be reused


@scenario("chunked")
def test_a_chunked_response_is_read_to_its_end(origin: AroundOrigin) -> None:
    exchange = run(origin, keepalive_wait=0.5).exchange
    assert (exchange.outcome, exchange.framing) == (Outcome.OK, "chunked")
    assert exchange.body_bytes == len(origin.spec.body)
    assert exchange.idle_close_seconds is None
    assert exchange.detail is None  # the trailer and final CRLF were consumed


@scenario("http10")
def test_http10_without_keep_alive_is_read_until_close(origin: AroundOrigin) -> None:
    exchange = run(origin).exchange
    assert (exchange.outcome, exchange.http_version) == (Outcome.OK, "HTTP/1.0")
    assert (exchange.framing, exchange.connection_close) == ("until-close", True)
    assert exchange.body_bytes == len(origin.spec.body)


@scenario("bad_header")
def test_a_malformed_header_block_is_invalid(origin: AroundOrigin) -> None:
    exchange = run(origin).exchange
    assert exchange.outcome is Outcome.INVALID_RESPONSE
    assert exchange.detail is not None
    assert "malformed header line" in exchange.detail


@scenario("close")
def test_a_close_before_any_byte(origin: AroundOrigin) -> None:
    exchange = run(origin).exchange
    assert (exchange.outcome, exchange.bytes_read) == (Outcome.CLOSED, 0)


@scenario("stall_body")
def test_a_body_that_stalls_is_incomplete(origin: AroundOrigin) -> None:
    timed = run(origin, read_timeout=0.5)
    exchange = timed.exchange
    assert (exchange.outcome, exchange.status_code) == (Outcome.INCOMPLETE, 200)
    assert exchange.body_bytes < len(origin.spec.body)
    # the read timeout ended it (the origin would close a minute later)
    assert (exchange.detail or "").startswith("body stalled 0.5s after "), exchange.detail
    assert 0.5 <= timed.elapsed < FAR_BELOW


@scenario("large")
def test_reading_stops_at_max_bytes_and_every_byte_is_charged(origin: AroundOrigin) -> None:
    charged: list[int] = []
    exchange = run(origin, max_bytes=64 * 1024, charge=charged.append).exchange
    assert (exchange.outcome, exchange.status_code) == (Outcome.TRUNCATED, 200)
    assert exchange.bytes_read == 64 * 1024
    assert sum(charged) == exchange.bytes_read


@scenario("large")
def test_the_probe_budget_stops_the_exchange(origin: AroundOrigin) -> None:
    def charge(size: int) -> None:
        raise BudgetExceeded("budget")

    with pytest.raises(BudgetExceeded):
        run(origin, charge=charge)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (ssl.TLSVersion.TLSv1_2, "sslv3 alert handshake failure"),
        (ssl.TLSVersion.TLSv1_3, "tlsv13 alert certificate required"),
    ],
)
def test_a_required_client_certificate(
    credentials: AroundCredentials, version: ssl.TLSVersion, expected: str
) -> None:
    """TLS 1.2 fails the handshake itself; TLS 1.3 completes it on the client side and the
    alert arrives with the first read, so send_request reports it as a TLS error."""
    spec = replace(SCENARIOS["mtls_required"], maximum_version=version)
    with make_origin(spec, credentials) as origin:
        if version is ssl.TLSVersion.TLSv1_2:
            with pytest.raises(ssl.SSLError) as caught:
                run(origin)
            assert caught.value.reason == expected.upper().replace(" ", "_")
        else:
            exchange = run(origin).exchange
            assert (exchange.outcome, exchange.detail) == (Outcome.TLS_ERROR, expected)
        with_cert = run(origin, context=credentials.client_context(with_certificate=True))
        assert (with_cert.exchange.outcome, with_cert.exchange.status_code) == (Outcome.OK, 200)
    assert len(origin.tls_errors) == 1
    assert "peer did not return a certificate" in origin.tls_errors[0]


def test_an_abrupt_tls13_refusal_may_look_like_a_reset(credentials: AroundCredentials) -> None:
    """A server closing at once after the failed check makes the kernel reset the
    connection (our request is unread), and the reset can overtake the alert."""
    spec = OriginSpec(client_auth=ssl.CERT_REQUIRED, abrupt_close=True)
    with make_origin(spec, credentials) as origin:
        exchange = run(origin).exchange
    assert exchange.outcome in (Outcome.TLS_ERROR, Outcome.CLOSED)
    if exchange.outcome is Outcome.CLOSED:
        assert exchange.detail is not None
        assert "reset" in exchange.detail.lower()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_requested_but_optional_client_certificate(
    credentials: AroundCredentials, version: ssl.TLSVersion
) -> None:
    spec = replace(SCENARIOS["mtls_optional"], maximum_version=version)
    with make_origin(spec, credentials) as origin:
        exchange = run(origin).exchange
    assert (exchange.outcome, exchange.status_code) == (Outcome.OK, 200)
    assert origin.tls_errors == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "GE T"}, "method"),
        ({"method": ""}, "method"),
        ({"path": "health"}, "path"),
        ({"path": "/a\r\nX-Injected: 1"}, "path"),
        ({"path": "/a b"}, "path"),
        ({"headers": (("Bad Name", "x"),)}, "headers"),
        ({"headers": (("X-Ok", "a\r\nX-Injected: 1"),)}, "headers"),
        ({"headers": (("X-Ok", "a\nb"),)}, "headers"),
        ({"headers": (("Content-Length", "5"),)}, "headers"),
        ({"headers": (("Host", "other.example"),)}, "headers"),
        ({"headers": (("Transfer-Encoding", "chunked"),)}, "headers"),
    ],
)
def test_request_spec_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"RequestSpec.{field}"):
        RequestSpec(**kwargs)  # type: ignore[arg-type]


def test_the_host_header_is_checked_too() -> None:
    with pytest.raises(ValueError, match="Host"):
        RequestSpec().render("origin.test\r\nX-Injected: 1")
