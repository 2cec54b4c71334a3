"""The collector's cached fast path renders exactly what the client library would."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import OriginConfig, default_config
from exporter.engine.probe import Engine
from exporter.http.routes import build_app
from exporter.http.state import WebState
from exporter.metrics import OriginsCollector, new_registry
from exporter.store import ResultStore
from tests.daemon_process import parse_exposition, value
from tests.origins import TestOrigins
from tests.support.judgments import judgment
from tests.support.probing import run_probe


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
            collector.prepare(name)  # "closed" is rendered lazily at scrape time
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


def test_a_result_that_cannot_be_rendered_fails_the_scrape_loudly() -> None:
    asyncio.run(_scrape_a_broken_result())


async def _scrape_a_broken_result() -> None:
    """Never an empty 200: the scrape fails (so `up` drops) and the error is counted."""
    store = ResultStore()
    config = OriginConfig(name="broken", host="broken.test")
    store.set_origins((config,))
    # A bug's stand-in: a judgment whose start time is no number cannot be exposed.
    store.record("broken", judgment(config.target(), started_at="not a number"))  # type: ignore[arg-type]
    registry, collector, _ = new_registry(store)
    state = WebState(default_config(), store, registry, Engine(), collector, _no_reload)
    async with TestClient(TestServer(build_app(state))) as client:
        answer = await client.get("/metrics")
        assert answer.status == 500
        assert "rendering the origins' metrics failed" in await answer.text()
    exposition = parse_exposition(generate_latest(registry).decode())
    assert value(exposition, "origin_tls_exporter_metrics_render_errors_total") >= 1


async def _no_reload() -> tuple[bool, str]:
    return True, "unused"
