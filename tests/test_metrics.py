"""The collector's cached fast path renders exactly what the client library would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import OriginConfig
from exporter.engine.probe import Engine
from exporter.metrics import OriginsCollector
from exporter.store import ResultStore
from tests.conftest import run_probe
from tests.daemon_process import parse_exposition
from tests.origins import TestOrigins


def test_render_equals_collect(engine: Engine, origins: TestOrigins) -> None:
    store = ResultStore()
    names = ("good", "missing_intermediate", "sslv3_only", "closed", "no_common_protocol")
    configs = tuple(
        OriginConfig(name=n, host=origins[n].host, port=origins[n].port, labels=(("n", n),))
        for n in names
    )
    store.set_origins((*configs, OriginConfig(name="pending", host="pending.test")))
    collector = OriginsCollector(store)
    for name in names:
        result = run_probe(engine, origins[name].target())
        store.record(name, result)
        if name != "closed":
            collector.prepare(name, result)  # "closed" is rendered lazily at scrape time
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    fast = collector.render()
    assert parse_exposition(fast.decode()) == parse_exposition(generate_latest(registry).decode())
    # Each family's samples are contiguous, with one HELP/TYPE header.
    helps = [line for line in fast.decode().splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps))
    # A new result replaces the cached rendering; dropped origins disappear.
    store.set_origins(configs[:1])
    again = parse_exposition(collector.render().decode())
    assert {dict(labels).get("origin") for _, labels in again} == {"good"}
    collector.cipher_series = False
    assert not any(
        name == "origin_tls_cipher_accepted"
        for name, _ in parse_exposition(collector.render().decode())
    )
