"""The long-running exporter: config, scheduler, store and HTTP server wired together.

Reloads (SIGHUP or POST /-/reload) load the new file completely before swapping it in; a bad file
keeps the old configuration running and sets the reload metric to 0. SIGTERM stops probing, lets
in-flight requests finish, and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web

from .address import DEFAULT_LISTEN_ADDRESS, parse_listen_address
from .config import ConfigError, ExporterConfig, OriginConfig, load_config
from .discovery import DiscoveryRunner, merge
from .engine.probe import Engine
from .metrics import OriginsCollector, SelfMetrics, new_registry
from .scheduler import Scheduler
from .sharding import Shard
from .store import ResultStore
from .web import WebState, build_app
from .webconfig import WebConfig, WebConfigError, load_web_config

log = logging.getLogger("origin_tls_exporter")

SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass
class Daemon:
    config_path: Path
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    web_config_path: Path | None = None  # exporter-toolkit web config: TLS, basic auth
    shard: Shard = field(default_factory=Shard)
    on_listening: Callable[[str], None] | None = None  # told the URL once listening (demo)

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Serve until SIGTERM/SIGINT (or `stop` is set). Exit code for the process."""
        try:
            config = load_config(self.config_path)
            web_config = self._load_web_config()
        except (ConfigError, WebConfigError) as exc:
            log.error("cannot load configuration", extra={"err": str(exc)})
            return 2
        host, port = parse_listen_address(self.listen_address)
        engine = Engine()
        store = ResultStore()
        registry, collector, self_metrics = new_registry(store, config.cipher_series)
        scheduler = Scheduler(
            engine, store, self_metrics, on_result=collector.prepare, shard=self.shard
        )
        discovery = DiscoveryRunner(registry)  # its metrics join /metrics through `registry`
        loaded = [config]  # the file as last loaded: the listed origins only

        def effective() -> ExporterConfig:
            """The listed origins plus the discovered ones (listed win on a name clash)."""
            return replace(loaded[0], origins=merge(loaded[0].origins, discovery.origins))

        def on_discovered(_: tuple[OriginConfig, ...]) -> None:
            current = effective()
            state.config = current
            # Not a reload: only the origins gauge changes.
            self_metrics.origins.set(scheduler.apply(current))

        discovery.on_change = on_discovered
        reload_lock = asyncio.Lock()

        async def reload() -> tuple[bool, str]:
            async with reload_lock:
                try:
                    new = load_config(self.config_path)
                    new_web_config = self._load_web_config()
                except (ConfigError, WebConfigError) as exc:
                    self_metrics.reloaded(False)
                    log.error(
                        "reload failed, keeping the running configuration", extra={"err": str(exc)}
                    )
                    return False, f"reload failed, keeping the running configuration: {exc}"
                loaded[0] = new
                self._adopt(effective(), state, scheduler, collector, self_metrics)
                await discovery.apply(new)
                state.web_config = new_web_config
                if new_web_config is not None and new_web_config.tls is not None and tls:
                    # New connections get the renewed certificate; the socket stays open.
                    tls.load_cert_chain(new_web_config.tls.cert_file, new_web_config.tls.key_file)
                log.info("configuration reloaded", extra={"origins": len(new.origins)})
                return True, f"configuration reloaded: {len(new.origins)} origins"

        state = WebState(config, store, registry, engine, collector, reload, web_config=web_config)
        tls = web_config.tls.context() if web_config and web_config.tls else None
        self._adopt(config, state, scheduler, collector, self_metrics)
        await discovery.apply(config)  # waits for the first refresh (at most 20 s)

        runner = web.AppRunner(
            build_app(state), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen", extra={"address": self.listen_address, "err": str(exc)})
            await runner.cleanup()
            await discovery.stop()
            await scheduler.stop()
            return 1
        bound = _bound_port(runner, port)
        scheme = "https" if tls else "http"
        url = f"{scheme}://{'localhost' if host in (None, '0.0.0.0', '::') else host}:{bound}/"
        log.info(
            "listening",
            extra={
                "address": f"{host or ''}:{bound}",
                "url": url,
                "origins": len(state.config.origins),
            },
        )
        if self.on_listening is not None:
            self.on_listening(url)
        state.ready = True

        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("shutting down")
            state.ready = False
            await discovery.stop()
            await scheduler.stop()
            await runner.cleanup()
        return 0

    def _load_web_config(self) -> WebConfig | None:
        return None if self.web_config_path is None else load_web_config(self.web_config_path)

    @staticmethod
    def _adopt(
        config: ExporterConfig,
        state: WebState,
        scheduler: Scheduler,
        collector: OriginsCollector,
        self_metrics: SelfMetrics,
    ) -> None:
        state.config = config
        probed = scheduler.apply(config)
        collector.cipher_series = config.cipher_series
        self_metrics.reloaded(True, probed)


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            return int(sock.getsockname()[1])
    return fallback
