"""The judge's rules, table-tested on observations recorded from the real test servers.

No server runs here: `tests/observations/*.json` were recorded once (see
`tests/support/recorded.py`), so a rule change is tested in milliseconds. The real-server tests
(test_engine, test_golden, test_daemon) keep covering the engine and the daemon.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from exporter.engine.catalogue import CATALOGUE, Catalogue, Protocol
from exporter.engine.chain import TrustStore
from exporter.engine.judge import Policy
from exporter.engine.observations import Observations
from exporter.engine.verdict import Category, FailureReason
from exporter.view import CellState, checklist, matrix
from tests.support import recorded

R = FailureReason

#: recording -> (reasons, legacy_only, chain status or None)
EXPECTED: dict[str, tuple[tuple[FailureReason, ...], bool, str | None]] = {
    "good": ((), False, "ok"),
    "undocumented_only": ((), False, "ok"),
    "modern": ((), False, "ok"),
    "ecdsa": ((), False, "ok"),
    "wildcard": ((), False, "ok"),
    "ip_address": ((), False, "ok"),
    "sslv3_only": ((), True, "ok"),
    "legacy_tls": ((), True, "ok"),
    "name_mismatch": ((R.NAME_MISMATCH,), False, "ok"),
    "missing_intermediate": ((R.MISSING_INTERMEDIATE,), False, "missing_intermediate"),
    "wrong_order": ((R.WRONG_ORDER,), False, "wrong_order"),
    "expired": ((R.EXPIRED,), False, "expired"),
    "not_yet_valid": ((R.NOT_YET_VALID,), False, "not_yet_valid"),
    "self_signed": ((R.UNTRUSTED,), False, "untrusted"),
    "untrusted_root": ((R.UNTRUSTED,), False, "untrusted"),
    "no_common_cipher": ((R.NO_COMMON_CIPHER,), False, "ok"),
    # Recorded after the first offer of each protocol began carrying every other suite (the
    # others before it: both kinds of enumeration are judged alike).
    "outside_first": ((), False, "ok"),
    "outside_only": ((R.NO_COMMON_CIPHER,), False, "ok"),
    "no_common_protocol": ((R.NO_COMMON_PROTOCOL,), False, None),
    "handshake_failed": ((R.HANDSHAKE_FAILED,), False, "ok"),
    "not_tls": ((R.NOT_TLS,), False, None),
    "silent": ((R.TIMEOUT,), False, None),
    "closed": ((R.CONNECT_FAILED,), False, None),
    "hostile_alert": ((R.NO_COMMON_PROTOCOL,), False, None),
    "hostile_bad_record_type": ((R.NOT_TLS,), False, None),
    "hostile_bad_record_version": ((R.NOT_TLS,), False, None),
    "hostile_plain_http": ((R.NOT_TLS,), False, None),
    "hostile_random_bytes": ((R.NOT_TLS,), False, None),
    "hostile_refused": ((R.CONNECT_FAILED,), False, None),
    "hostile_silent_close": ((R.CONNECT_FAILED,), False, None),
    "hostile_duplicate_extensions": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_empty_records": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_garbage_extensions": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_huge_certificate": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_hundred_certificates": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_oversized_record": ((R.HANDSHAKE_FAILED,), False, None),
    "hostile_tiny_records": ((R.HANDSHAKE_FAILED,), False, None),
    # The hostile servers' chain is the test CA's, judged here against Mozilla's roots.
    "hostile_unoffered_suite": ((R.HANDSHAKE_FAILED, R.UNTRUSTED), False, "untrusted"),
}


def test_every_recording_has_an_expectation() -> None:
    assert set(recorded.names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdict(name: str) -> None:
    reasons, legacy_only, chain = EXPECTED[name]
    judgment = recorded.load(name).judge()
    assert judgment.reasons == reasons
    assert judgment.compatible == (not reasons)
    assert judgment.legacy_only == legacy_only
    assert (str(judgment.chain.status) if judgment.chain else None) == chain
    connection = any(r.category is Category.CONNECTION for r in reasons)
    assert judgment.success == (not connection and judgment.observations.stopped is None)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_observations_round_trip_through_json(name: str) -> None:
    observations = recorded.load(name).observations
    text = json.dumps(observations.to_json())
    assert Observations.from_json(json.loads(text)) == observations


def test_judging_is_pure_the_same_input_gives_the_same_judgment() -> None:
    recording = recorded.load("good")
    assert recording.judge() == recording.judge()


def test_another_trust_store_changes_only_the_chain_verdict() -> None:
    good = recorded.load("good")
    judgment = good.judge(trust=TrustStore.mozilla())
    assert judgment.reasons == (R.UNTRUSTED,)
    assert judgment.negotiation == good.judge().negotiation


def test_time_alone_expires_a_chain() -> None:
    good = recorded.load("good")
    later = good.probed_at + dt.timedelta(days=3650)
    assert R.EXPIRED in good.judge(now=later).reasons


def test_a_narrower_policy_is_judged_from_the_same_answers() -> None:
    """SSLv3-only origin, policy TLSv1.2: CloudFront's hello was answered with SSLv3."""
    judgment = recorded.load("sslv3_only").judge(policy=Policy((Protocol.TLSv1_2,)))
    assert judgment.reasons == (R.NO_COMMON_PROTOCOL,)
    assert judgment.negotiation is not None
    assert judgment.negotiation.error is not None
    assert "does not enable" in judgment.negotiation.error


def test_the_injected_catalogue_is_the_one_the_views_show() -> None:
    small = Catalogue(suites=CATALOGUE.suites[:4])
    judgment = recorded.load("good").judge(catalogue=small)
    table = matrix(judgment)
    assert table is not None
    assert table.rows == small.suites
    assert {cell.suite for cell in table.cells.values() if cell.protocol.cloudfront} <= set(
        small.suites
    )
    accepted = [c for c in table.cells.values() if c.state is CellState.ACCEPTED]
    assert accepted, "good accepts some of the first four suites"


def test_alert_71_means_the_protocol_is_spoken() -> None:
    """insufficient_security (71) refuses CloudFront's suites *in* the protocol: spoken, so
    the reason is no_common_cipher, never no_common_protocol."""
    from exporter.engine.observations import (
        EnumerationRecord,
        HelloAnswerRecord,
        HelloExchange,
        TargetRecord,
    )

    refused = HelloAnswerRecord("alert", alert=71)
    offered = tuple(s.code for s in CATALOGUE.suites_for(Protocol.TLSv1_2))
    observations = Observations(
        target=TargetRecord("weak.test", 443, None, ("TLSv1.2",), None, None),
        started_at=0.0,
        duration_seconds=0.1,
        cloudfront_hello=HelloExchange("TLSv1.2", offered, refused, cloudfront_hello=True),
        enumerations=(
            EnumerationRecord(
                "TLSv1.2",
                (
                    HelloExchange("TLSv1.2", offered, refused, cloudfront_hello=True),
                    HelloExchange("TLSv1.2", CATALOGUE.broad_codes, refused, broad=True),
                ),
            ),
        ),
    )
    judgment = recorded.Recording("weak", observations, b"").judge(
        policy=Policy((Protocol.TLSv1_2,)), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    assert judgment.reasons == (R.NO_COMMON_CIPHER,)
    tls12 = judgment.protocol(Protocol.TLSv1_2)
    assert tls12 is not None
    assert tls12.spoken is True


def test_the_checklist_follows_the_judgment_where_s2n_tls_passes_a_name() -> None:
    """CloudFront's library decides: when its handshake completes on a certificate whose names
    the exporter's own match does not cover, no check may FAIL, and the disagreement shows."""
    mismatch, good = recorded.load("name_mismatch"), recorded.load("good")
    passed = replace(
        mismatch,
        observations=replace(
            mismatch.observations,
            cloudfront_handshakes=good.observations.cloudfront_handshakes,
        ),
    )
    judgment = passed.judge()
    assert judgment.compatible
    assert not judgment.reasons
    assert judgment.name_match is not None
    assert not judgment.name_match.ok
    assert judgment.disagreements
    checks = {check.title: check for check in checklist(judgment, passed.probed_at)}
    assert [c.mark for c in checks.values() if c.mark == "FAIL"] == []
    name = checks["Certificate name"]
    assert name.mark == "PASS"
    assert "s2n-tls" in name.finding
    # The recording as it was still fails the name, with the same check.
    original = checklist(mismatch.judge(), mismatch.probed_at)
    assert {c.title: c.mark for c in original}["Certificate name"] == "FAIL"
