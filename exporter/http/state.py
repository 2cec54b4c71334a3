"""What every handler reads: the web state, swapped field by field by the runtime only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..config import ExporterConfig
from ..engine.probe import Engine
from ..metrics import OriginsCollector
from ..sharding import Shard
from ..store import ResultStore
from ..webconfig import WebConfig

Reload = Callable[[], Awaitable[tuple[bool, str]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebState:
    """What the handlers need; `config` is swapped whole on reload."""

    config: ExporterConfig
    store: ResultStore
    registry: CollectorRegistry
    engine: Engine
    origins: OriginsCollector  # rendered apart from `registry`: see OriginsCollector.render
    reload: Reload
    ready: bool = False
    web_config: WebConfig | None = None  # swapped whole on reload, like `config`
    external_url: str = "/"  # --web.external-url, ending in "/": links in pages and alerts
    shard: Shard = field(default_factory=Shard)  # this replica's share of the configuration


STATE = web.AppKey("state", WebState)
