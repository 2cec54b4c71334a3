"""What the store remembers across probes, as /metrics and the pages show it: since when the
verdict holds, and the last certificates seen (kept through a failed probe)."""

from __future__ import annotations

import datetime as dt

from exporter.config import OriginConfig
from exporter.metrics import OriginsCollector
from exporter.pages import render_index, render_origin
from exporter.sharding import Shard
from exporter.store import OriginState, ResultStore
from tests.daemon_process import matching, parse_exposition, value
from tests.support import recorded


def _store() -> tuple[ResultStore, OriginsCollector]:
    store = ResultStore()
    store.set_origins((OriginConfig(name="o", host="good.test"),))
    return store, OriginsCollector(store)


def test_certificates_stay_through_a_failed_probe_marked_with_when_they_were_seen() -> None:
    store, collector = _store()
    good = recorded.load("good").judge()
    down = recorded.load("closed").judge()
    store.record("o", good)
    store.record("o", down)
    series = parse_exposition(collector.render().decode())
    assert value(series, "origin_tls_cloudfront_compatible", origin="o") == 0
    assert value(series, "origin_tls_chain_last_seen_timestamp_seconds", origin="o") == (
        good.started_at
    )
    assert matching(series, "origin_tls_cert_not_after_timestamp_seconds", origin="o")
    assert value(series, "origin_tls_chain_earliest_expiry_timestamp_seconds", origin="o") > 0
    # Claims about the chain itself are not carried over: that probe did not see one.
    assert not matching(series, "origin_tls_chain_status", origin="o")
    # Nor a claim about the suites when none was measured.
    assert not matching(series, "origin_tls_legacy_only", origin="o")


def test_the_verdict_changed_timestamp_follows_changes_only() -> None:
    store, collector = _store()
    good, down = recorded.load("good").judge(), recorded.load("closed").judge()
    store.record("o", good)
    first = store.state("o")
    assert first is not None
    assert first.verdict_since == good.started_at
    store.record("o", good)
    again = store.state("o")
    assert again is not None
    assert again.verdict_since == good.started_at  # unchanged verdict: unchanged time
    store.record("o", down)
    series = parse_exposition(collector.render().decode())
    changed = "origin_tls_cloudfront_verdict_changed_timestamp_seconds"
    assert value(series, changed, origin="o") == down.started_at
    state = store.state("o")
    assert state is not None
    now = dt.datetime.fromtimestamp(down.started_at + 120, dt.UTC)
    assert "Failing since" in render_origin(state, now=now)


def test_the_status_page_names_the_shard() -> None:
    store, _ = _store()
    html = render_index(store.snapshot(), shard=Shard(1, 3), configured=7)
    assert "shard 1 of 3" in html
    assert "1 of 7 configured origins" in html
    assert "shard" not in render_index(store.snapshot(), shard=Shard(0, 1)).split("<h1>")[1][:200]


def test_the_page_says_when_the_exporter_cannot_present_cloudfronts_certificate() -> None:
    config = OriginConfig(name="m", host="m.test", client_certificate_missing=True)
    html = render_origin(OriginState(config, recorded.load("good").judge()))
    assert 'id="mtls-missing"' in html
    assert "OriginMtlsConfig" in html
    plain = OriginConfig(name="m", host="m.test")
    assert 'id="mtls-missing"' not in render_origin(OriginState(plain, None))
