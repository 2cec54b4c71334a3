"""Hostile origins: each misbehaving server costs one failed probe with the right reason, within
the timeout and the byte limits, never the process, the other origins or the scrape.

The servers are `tests.hostile.HostileOrigins` (one asyncio loop in a thread). The engine-level
checks probe every behaviour at once in one event loop (a module fixture), then assert on the
collected outcomes one behaviour at a time; the daemon-level check runs the real exporter with
all of them next to a good origin; the crash check drives the scheduler in-process with an
engine that has a bug.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import shutil
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tlslite.constants import AlertDescription, AlertLevel, ContentType

from exporter.config import ExporterConfig, parse_config
from exporter.engine.errors import ProtocolViolation
from exporter.engine.hello import (
    MAX_BYTES_PER_CONNECTION,
    MAX_CERTIFICATES,
    MAX_EMPTY_RECORDS,
    MAX_HANDSHAKE_MESSAGE,
    MAX_RECORD_LENGTH,
    MAX_WARNING_ALERTS,
    READ_CHUNK,
    ServerHelloInfo,
    parse_answer,
)
from exporter.engine.net import MAX_BYTES_PER_PROBE, Endpoint
from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget
from exporter.engine.verdict import FailureReason
from exporter.metrics import new_registry
from exporter.scheduler import Scheduler
from exporter.store import ResultStore
from tests.daemon_process import ExporterProcess, matching, parse_exposition, value
from tests.hostile import (
    EXPECTED,
    FAST,
    SERVER_HELLO_DONE,
    HostileOrigins,
    alert_record,
    certificate_message,
    flight,
    record,
    server_hello,
)
from tests.origins import TestOrigins

#: per-connection timeout of the engine-level probes of the slow behaviours: they cost this
TIMEOUT = 4.0
#: per-connection timeout of the fast behaviours' probes: far above what they take (at most a
#: few seconds of CPU on a loaded machine), so finishing well under it shows that no connection
#: waited for it, by a margin that load cannot eat
FAST_TIMEOUT = 60.0
#: the trickled flight is ~1 KiB, so at one byte a second it cannot finish within TIMEOUT
TRICKLE_INTERVAL = 1.0
HOST = "hostile.test"  # the name every hostile server's certificate covers
UNRESOLVABLE = "nowhere.invalid"  # RFC 6761: never resolves; the lookup is bounded by TIMEOUT
SLOW = frozenset(EXPECTED) - FAST
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(origins: TestOrigins) -> Iterator[HostileOrigins]:
    """Every hostile server; those that play along send a chain the fleet's CA file trusts."""
    leaf = origins.pki.leaf(HOST)
    chain = [leaf.der, origins.pki.intermediate.der]
    with HostileOrigins(chain, TRICKLE_INTERVAL) as servers:
        yield servers


def target(name: str, hostile: HostileOrigins, ca_file: str) -> ProbeTarget:
    if name == "unresolvable":
        return ProbeTarget(host=UNRESOLVABLE, port=443, ca_file=ca_file)
    return ProbeTarget(host=HOST, port=hostile[name], address="127.0.0.1", ca_file=ca_file)


# --- engine level: every behaviour probed at once, asserted one by one --------------------------


def timeout_of(name: str) -> float:
    return TIMEOUT if name in SLOW else FAST_TIMEOUT


@dataclass(frozen=True)
class Outcome:
    result: Judgment
    elapsed: float  # wall clock around `Engine.probe`
    bytes_read: int  # what the probe's Endpoint was charged: bytes read from the origin
    written: int  # slow behaviours: connections the probe wrote a hello to (server's count)


STOPPED = re.compile(r"^\s*(\d+\.\d+)s stopped: ")


def stopped_at(result: Judgment) -> float:
    """When the probe's log says it stopped (seconds since its start)."""
    times = [float(m.group(1)) for line in result.log if (m := STOPPED.match(line))]
    assert len(times) == 1, result.log
    return times[0]


@pytest.fixture(scope="module")
def outcomes(hostile: HostileOrigins, origins: TestOrigins) -> dict[str, Outcome]:
    """One probe of every behaviour, all in one event loop, concurrently."""
    engine = Engine()
    charged: dict[int, int] = {}  # port -> bytes charged (one probe per port here)
    charge = Endpoint.charge

    def counting_charge(self: Endpoint, size: int) -> None:
        charged[self.port] = self.bytes_read + size
        charge(self, size)

    async def one(name: str) -> tuple[str, Judgment, float]:
        start = time.monotonic()
        result = await engine.probe(
            target(name, hostile, origins.ca_file), ProbeOptions(timeout=timeout_of(name))
        )
        return name, result, time.monotonic() - start

    async def every() -> list[tuple[str, Judgment, float]]:
        return await asyncio.gather(*(one(name) for name in EXPECTED))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endpoint, "charge", counting_charge)
        collected = asyncio.run(every())
    written = dict(hostile.written)  # before any other test probes the same servers
    return {
        name: Outcome(result, elapsed, charged.get(result.target.port, 0), written.get(name, 0))
        for name, result, elapsed in collected
    }


@pytest.mark.parametrize("behaviour", list(EXPECTED))
def test_each_behaviour_costs_one_failed_probe_with_its_reason(
    behaviour: str, outcomes: dict[str, Outcome], hostile: HostileOrigins
) -> None:
    outcome = outcomes[behaviour]
    result = outcome.result
    detail = "\n".join(result.log)
    assert result.reasons == (FailureReason(EXPECTED[behaviour]),), detail
    assert not result.compatible
    assert not (result.error or "").startswith("internal error"), detail
    # Each connection is bounded by the timeout: generous, not a speed test.
    assert outcome.elapsed <= timeout_of(behaviour) * (result.connections + 1), detail
    assert outcome.bytes_read <= MAX_BYTES_PER_PROBE
    if behaviour in FAST:
        # Nothing waited for the 60 s timeout: all 17 at once take seconds even on a loaded
        # machine, and their reasons (none is a timeout) say what ended them.
        assert outcome.elapsed < FAST_TIMEOUT / 3, f"{behaviour} waited for a timeout:\n{detail}"
    else:
        # Really held until the per-connection timeout, which is what stopped the probe ...
        stopped = result.observations.stopped
        assert stopped is not None, detail
        assert (stopped.kind, f"within {TIMEOUT:g}s" in stopped.detail) == ("timeout", True)
        assert outcome.elapsed >= TIMEOUT * 0.9, detail
        assert stopped_at(result) >= TIMEOUT * 0.9, detail
        # ... and right after it: nothing the probe did after its recorded stop took a second
        # timeout (measured from the probe's own log, so lag before the timer fired is not
        # counted), and the server got one hello, no second round. The other connections are
        # the spares opened for its followers while it was in flight (never written to; closed
        # with the error), within the connection limit.
        assert result.duration_seconds - stopped_at(result) < TIMEOUT / 2, detail
        assert outcome.written == 1, (outcome.written, detail)
        assert result.connections <= ProbeOptions().max_connections, detail
    assert hostile.errors == []  # a bug in a hostile server would make the test meaningless


def test_the_slow_behaviours_really_were_slow(hostile: HostileOrigins) -> None:
    """The tarpit and the trickle must have been served (not refused), or the timeout they
    produce would prove nothing."""
    assert {"tarpit", "trickle"} == SLOW
    for name in SLOW:
        assert hostile.connections[name] >= 1


@pytest.mark.parametrize(
    ("behaviour", "limit", "message"),
    [
        ("huge_certificate", 2 * READ_CHUNK, f"exceeds the {MAX_HANDSHAKE_MESSAGE} limit"),
        (
            "tiny_records",
            # its ServerHello comes first, so the probe's other connections start at once and
            # read the same trickle of records until CloudFront's hello fails and stops them
            2 * MAX_BYTES_PER_CONNECTION,
            f"more than {MAX_BYTES_PER_CONNECTION} bytes on one connection",
        ),
        ("oversized_record", 2 * READ_CHUNK, f"exceeds the {MAX_RECORD_LENGTH}-byte maximum"),
        ("hundred_certificates", MAX_HANDSHAKE_MESSAGE, f"more than {MAX_CERTIFICATES} certif"),
        ("empty_records", MAX_BYTES_PER_CONNECTION, f"{MAX_EMPTY_RECORDS + 1} empty TLS records"),
    ],
)
def test_limits_stop_reading_early(
    behaviour: str, limit: int, message: str, outcomes: dict[str, Outcome]
) -> None:
    """A 16 MB certificate is refused from its 4-byte header; 1.5 MB of one-byte records stop at
    the per-connection limit: the probe reads at most the limit plus one read (READ_CHUNK), or
    two reads when the header that breaks a limit is in the first (for the one-byte records,
    what the connections started at their ServerHello read meanwhile too)."""
    outcome = outcomes[behaviour]
    assert 0 < outcome.bytes_read <= limit
    assert message in (outcome.result.error or ""), outcome.result.log


@pytest.mark.parametrize("behaviour", ["huge_certificate", "tiny_records"])
def test_memory_per_hostile_probe_is_bounded(
    behaviour: str, hostile: HostileOrigins, origins: TestOrigins
) -> None:
    """Peak Python allocations during the probe (the server thread's included) stay far below
    what buffering the announced 16 MB certificate, or keeping the ~175,000 one-byte records
    of the per-connection limit as objects, would take (measured: ~0.3 and ~1.1 MiB).

    Tracing every allocation makes the one-byte records CPU-bound (~14 s of CPU for the probe):
    the timeout is far above that, so only the byte limit (the asserted reason) stops it."""
    options = ProbeOptions(timeout=FAST_TIMEOUT * 2)
    probe = Engine().probe(target(behaviour, hostile, origins.ca_file), options)
    tracemalloc.start()
    try:
        result = asyncio.run(probe)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reasons == (FailureReason.HANDSHAKE_FAILED,), result.log
    assert peak < 8 * MiB, f"{behaviour}: peak {peak / MiB:.1f} MiB"


# --- each limit is exact: at the limit accepted, one past it refused ---------------------------

HANDSHAKE = ContentType.handshake
WARNING, UNRECOGNIZED_NAME = AlertLevel.warning, AlertDescription.unrecognized_name
RSA_AES128_SHA = 0x002F


def first_flight(ders: list[bytes], before: bytes = b"") -> bytes:
    """`before`, then ServerHello, Certificate (with `ders`), ServerHelloDone."""
    return before + flight(RSA_AES128_SHA, ders)


def record_of_length(length: int) -> bytes:
    """One handshake record of exactly `length` bytes holding a whole first flight."""
    fixed = len(server_hello(RSA_AES128_SHA) + certificate_message([b""]) + SERVER_HELLO_DONE)
    messages = (
        server_hello(RSA_AES128_SHA)
        + certificate_message([b"\x30" * (length - fixed)])
        + SERVER_HELLO_DONE
    )
    assert len(messages) == length
    return record(HANDSHAKE, messages)


def certificate_of_length(length: int) -> bytes:
    """A first flight whose Certificate message body is exactly `length` bytes."""
    der = b"\x30" * (length - 3 - 3)  # the list's length, then the one entry's length
    assert len(certificate_message([der])) == 4 + length
    return first_flight([der])


@pytest.mark.parametrize(
    ("message", "at_limit", "past_limit"),
    [
        (
            f"{MAX_EMPTY_RECORDS + 1} empty TLS records in a row",  # as OpenSSL
            first_flight([b"\x30"], record(HANDSHAKE, b"") * MAX_EMPTY_RECORDS),
            first_flight([b"\x30"], record(HANDSHAKE, b"") * (MAX_EMPTY_RECORDS + 1)),
        ),
        (
            f"{MAX_WARNING_ALERTS} warning alerts in a row",  # as OpenSSL
            first_flight(
                [b"\x30"], alert_record(UNRECOGNIZED_NAME, WARNING) * (MAX_WARNING_ALERTS - 1)
            ),
            first_flight([b"\x30"], alert_record(UNRECOGNIZED_NAME, WARNING) * MAX_WARNING_ALERTS),
        ),
        (
            f"exceeds the {MAX_RECORD_LENGTH}-byte maximum",
            record_of_length(MAX_RECORD_LENGTH),
            record_of_length(MAX_RECORD_LENGTH + 1),
        ),
        (
            f"exceeds the {MAX_HANDSHAKE_MESSAGE} limit",
            certificate_of_length(MAX_HANDSHAKE_MESSAGE),
            certificate_of_length(MAX_HANDSHAKE_MESSAGE + 1),
        ),
        (
            f"more than {MAX_CERTIFICATES} certificates",
            first_flight([b"\x30"] * MAX_CERTIFICATES),
            first_flight([b"\x30"] * (MAX_CERTIFICATES + 1)),
        ),
    ],
    ids=["empty_records", "warning_alerts", "record_length", "message_size", "certificates"],
)
def test_each_limit_is_exact(message: str, at_limit: bytes, past_limit: bytes) -> None:
    """Through `FlightParser`, the code every probe runs: a flight exactly at a limit parses,
    one unit past it is refused for that limit (and no other)."""
    accepted = parse_answer(at_limit)
    assert isinstance(accepted, ServerHelloInfo), accepted
    assert accepted.suite == RSA_AES128_SHA
    with pytest.raises(ProtocolViolation, match=message):
        parse_answer(past_limit)


# --- daemon level: the real exporter, every hostile origin next to a good one ---------------


#: the daemon's per-connection timeout for tarpit and trickle: how long each of their probes
#: holds a connection. A scrape that waited for one would take up to this long.
HOLD = 20.0


def hostile_config(hostile: HostileOrigins, origins: TestOrigins) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for name in EXPECTED:
        if name == "unresolvable":
            entries.append({"name": name, "host": UNRESOLVABLE})
        else:
            entries.append({"name": name, "host": HOST, "port": hostile[name]})
        if name in SLOW:
            entries[-1].update({"interval": f"{2 * HOLD:g}s", "timeout": f"{HOLD:g}s"})
    good = origins["good"]
    entries.append({"name": "good", "host": good.host, "port": good.port})
    return {
        # The fast behaviours get a timeout (and a whole-probe deadline, the interval) far above
        # what they take, so that a loaded machine cannot turn them into timeouts.
        "defaults": {"interval": "60s", "timeout": "30s", "ca_file": origins.ca_file},
        "resolve": {HOST: "127.0.0.1", good.host: "127.0.0.1"},
        "origins": entries,
    }


def test_daemon_reports_every_hostile_origin_and_keeps_answering(
    hostile: HostileOrigins, origins: TestOrigins, tmp_path: Path
) -> None:
    """Every origin gets its reason, and /metrics keeps answering while tarpit and trickle hold
    their connections: for each of the two, some scrape starts and ends inside one of its
    probes (which a probe blocking the event loop would make impossible, however slow the
    machine), and no scrape takes half a hold."""
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(hostile_config(hostile, origins), sort_keys=False))
    names = [*EXPECTED, "good"]
    process = ExporterProcess(["serve", "--config.file", str(config)], tmp_path / "exporter.log")
    scrapes: list[tuple[float, float]] = []  # (start, end), wall clock
    slow_probes: dict[str, set[tuple[float, float]]] = {n: set() for n in SLOW}  # (start, end)

    def inside(name: str) -> list[tuple[float, float]]:
        """The scrapes that ran entirely while a probe of `name` held its connection."""
        spans = slow_probes[name]
        return [(a, b) for a, b in scrapes if any(start < a and b < end for start, end in spans)]

    with process:
        deadline = time.monotonic() + 120
        series: dict[Any, float] = {}
        while time.monotonic() < deadline:
            begin, clock = time.monotonic(), time.time()
            answer = process.get("/metrics")
            took = time.monotonic() - begin
            assert answer.status == 200, answer
            assert took < HOLD / 2, f"/metrics took {took:.2f}s while hostile probes ran"
            scrapes.append((clock, clock + took))
            series = parse_exposition(answer.body)
            for name in SLOW:
                when = matching(series, "origin_tls_last_probe_timestamp_seconds", origin=name)
                length = matching(series, "origin_tls_probe_duration_seconds", origin=name)
                if when and length:
                    start = next(iter(when.values()))
                    slow_probes[name].add((start, start + next(iter(length.values()))))
            probed = all(
                matching(series, "origin_tls_last_probe_timestamp_seconds", origin=n) for n in names
            )
            if probed and all(inside(name) for name in SLOW):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(
                f"within 120s, not every origin was probed, or no scrape ran inside a probe of"
                f" each slow origin ({slow_probes}, {len(scrapes)} scrapes):\n{process.log()}"
            )
        log = process.log()

    for name, reason in EXPECTED.items():
        for each in FailureReason:
            expected = 1 if each == reason else 0
            got = value(series, "origin_tls_cloudfront_failure_reason", origin=name, reason=each)
            assert got == expected, f"{name}: {each} is {got}, expected {expected}"
        assert value(series, "origin_tls_cloudfront_compatible", origin=name) == 0
    for name in SLOW:  # held for the whole hold: the scrapes inside really overlapped one
        assert all(end - start >= HOLD * 0.9 for start, end in slow_probes[name]), slow_probes
    assert value(series, "origin_tls_cloudfront_compatible", origin="good") == 1
    assert value(series, "origin_tls_probe_success", origin="good") == 1
    assert value(series, "origin_tls_exporter_probe_errors_total", reason="internal_error") == 0
    assert "probe crashed" not in log, log
    assert "Traceback" not in log, log
    assert hostile.errors == []


# --- a probe that crashes (a bug): contained, logged once, counted, reported failed ----------


BUGGY_HOST = "buggy.test"


class BuggyEngine(Engine):
    """An engine with a bug for one host: nothing an origin does can provoke one on purpose."""

    async def probe(self, target: ProbeTarget, options: ProbeOptions | None = None) -> Judgment:
        if target.host == BUGGY_HOST:
            raise RuntimeError("a bug in the engine")
        return await super().probe(target, options)


class FirstPhase(random.Random):
    """No random start phase, no jitter: `uniform` returns its lower bound."""

    def uniform(self, a: float, b: float) -> float:
        return a


def crash_config(origins: TestOrigins, vanishing_ca: Path) -> ExporterConfig:
    good = origins["good"]
    text = yaml.safe_dump(
        {
            "defaults": {"interval": "1s", "timeout": "1s", "ca_file": origins.ca_file},
            "resolve": {good.host: "127.0.0.1", BUGGY_HOST: "127.0.0.1"},
            "origins": [
                {"name": "good", "host": good.host, "port": good.port, "interval": "5s"},
                {"name": "buggy", "host": BUGGY_HOST, "port": good.port},
                # A CA file deleted after the configuration was loaded: a real crash path.
                {
                    "name": "orphan",
                    "host": good.host,
                    "port": good.port,
                    "ca_file": str(vanishing_ca),
                },
            ],
        }
    )
    return parse_config(text, "crash.yml")


def test_a_probe_crash_is_contained_logged_once_counted_and_reported(
    origins: TestOrigins, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vanishing_ca = tmp_path / "vanishing.pem"
    shutil.copy(origins.ca_file, vanishing_ca)
    config = crash_config(origins, vanishing_ca)
    vanishing_ca.unlink()

    store = ResultStore()
    registry, collector, self_metrics = new_registry(store)
    crashing = ("buggy", "orphan")
    enough = asyncio.Event()  # binds to a loop when first awaited (Python >= 3.10)

    class Enough:
        def judged(self, origin: str, judgment: Judgment, probed: bool) -> None:
            if all(len(store.history(n)) >= 3 for n in crashing) and store.history("good"):
                enough.set()

    observers = (self_metrics, collector, Enough())
    scheduler = Scheduler(BuggyEngine(), store, observers, rng=FirstPhase())

    async def run() -> None:
        scheduler.apply(config)
        try:
            await asyncio.wait_for(enough.wait(), 30)
        finally:
            await scheduler.stop()

    with caplog.at_level(logging.DEBUG, logger="origin_tls_exporter.scheduler"):
        asyncio.run(run())

    crashes = {n: len(store.history(n)) for n in crashing}
    logged = [r for r in caplog.records if r.getMessage() == "probe crashed"]
    assert sorted(str(getattr(r, "origin", "")) for r in logged) == sorted(crashing)  # once each
    assert all(r.levelno == logging.ERROR and r.exc_info for r in logged)
    errors = registry.get_sample_value(
        "origin_tls_exporter_probe_errors_total", {"reason": "internal_error"}
    )
    assert errors == sum(crashes.values())  # every crash counted, logged or not
    for name in crashing:
        latest = store.history(name)[0].result
        assert not latest.success
        assert not latest.compatible
        assert (latest.error or "").startswith("internal error: ")
    assert "RuntimeError: a bug in the engine" in (store.history("buggy")[0].result.error or "")
    assert "vanishing.pem" in (store.history("orphan")[0].result.error or "")

    series = parse_exposition(collector.render().decode())
    for name in crashing:
        assert value(series, "origin_tls_probe_success", origin=name) == 0
        assert value(series, "origin_tls_cloudfront_compatible", origin=name) == 0
    good = store.history("good")[0].result
    assert good.compatible, good.log
    assert value(series, "origin_tls_cloudfront_compatible", origin="good") == 1
