"""The running exporter's parts, and the one method that changes what they serve.

`Runtime.apply` is the only writer of the origin list (scheduler and store) and of the web
state's configuration: a reload (the file), discovery (its origins) and start-up all go
through it, so they cannot disagree. It opens no socket: the daemon serves it, tests drive it
in-process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry

from .config import ExporterConfig, OriginConfig
from .discovery import DiscoveryRunner, merge
from .engine.probe import Engine
from .http.state import Reload, WebState
from .metrics import OriginsCollector, SelfMetrics, new_registry
from .scheduler import Scheduler
from .sharding import Shard
from .store import ResultStore
from .webconfig import WebConfig

log = logging.getLogger("origin_tls_exporter")


@dataclass
class Runtime:
    engine: Engine
    store: ResultStore
    registry: CollectorRegistry
    collector: OriginsCollector
    self_metrics: SelfMetrics
    scheduler: Scheduler
    discovery: DiscoveryRunner
    web: WebState
    listed: ExporterConfig  # the configuration file as last loaded: its listed origins only

    @classmethod
    def create(
        cls,
        config: ExporterConfig,
        reload: Reload,
        shard: Shard | None = None,
        web_config: WebConfig | None = None,
        external_url: str = "/",
    ) -> Runtime:
        engine = Engine()
        store = ResultStore()
        registry, collector, self_metrics = new_registry(store, config.cipher_series)
        shard = shard or Shard()
        self_metrics.identify(shard.index, shard.count, external_url)
        scheduler = Scheduler(engine, store, (self_metrics, collector), shard=shard)
        discovery = DiscoveryRunner(registry)  # its metrics join /metrics through `registry`
        web = WebState(
            config,
            store,
            registry,
            engine,
            collector,
            reload,
            web_config=web_config,
            external_url=external_url,
            shard=shard,
        )
        runtime = cls(
            engine, store, registry, collector, self_metrics, scheduler, discovery, web, config
        )
        discovery.on_change = runtime.discovered
        return runtime

    def apply(self, listed: ExporterConfig | None = None) -> int:
        """Serve `listed` (a newly loaded file; None: the current one) plus the discovered
        origins (listed ones win on a name clash). Returns how many origins this replica
        probes."""
        if listed is not None:
            self.listed = listed
        effective = replace(self.listed, origins=merge(self.listed.origins, self.discovery.origins))
        self.web.config = effective
        self.collector.cipher_series = effective.cipher_series
        probed = self.scheduler.apply(effective)
        self.self_metrics.serving(probed, len(effective.origins))
        return probed

    def discovered(self, _: tuple[OriginConfig, ...]) -> None:
        """Discovery's callback: its origin set changed (not a reload)."""
        self.apply()

    async def start(self) -> None:
        """Start probing, then wait for discovery's first refresh (at most 20 s)."""
        self.apply()
        self.self_metrics.reloaded(True)
        await self.discovery.apply(self.listed)

    async def reloaded(self, listed: ExporterConfig, web_config: WebConfig | None) -> int:
        """Adopt a reloaded file; returns how many origins this replica now probes."""
        probed = self.apply(listed)
        self.self_metrics.reloaded(True)
        await self.discovery.apply(listed)
        self.web.web_config = web_config
        return probed

    async def stop(self) -> None:
        self.web.ready = False
        await self.discovery.stop()
        await self.scheduler.stop()
