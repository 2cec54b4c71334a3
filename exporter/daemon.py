"""The long-running exporter: config, scheduler, store and HTTP server wired together.

Reloads (SIGHUP or POST /-/reload) load the new file completely before swapping it in; a bad file
keeps the old configuration running and sets the reload metric to 0. SIGTERM stops probing, lets
in-flight requests finish, and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .address import DEFAULT_LISTEN_ADDRESS, parse_listen_address
from .config import ConfigError, load_config
from .http.routes import build_app
from .runtime import Runtime
from .sharding import Shard
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
    external_url: str = "/"  # --web.external-url, ending in "/"

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Serve until SIGTERM/SIGINT (or `stop` is set). Exit code for the process."""
        try:
            config = load_config(self.config_path)
            web_config = self._load_web_config()
        except (ConfigError, WebConfigError) as exc:
            log.error("cannot load configuration", extra={"err": str(exc)})
            return 2
        host, port = parse_listen_address(self.listen_address)
        reload_lock = asyncio.Lock()

        async def reload() -> tuple[bool, str]:
            async with reload_lock:
                return await self._reload(runtime, tls)

        runtime = Runtime.create(config, reload, self.shard, web_config, self.external_url)
        tls = web_config.tls.context() if web_config and web_config.tls else None
        await runtime.start()
        runner = web.AppRunner(
            build_app(runtime.web), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen", extra={"address": self.listen_address, "err": str(exc)})
            await runner.cleanup()
            await runtime.stop()
            return 1
        probed = len(runtime.store.snapshot())
        self._listening(runner, host, port, tls is not None, probed)
        runtime.web.ready = True

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
            await runtime.stop()
            await runner.cleanup()
        return 0

    async def _reload(self, runtime: Runtime, tls: ssl.SSLContext | None) -> tuple[bool, str]:
        """Load both files completely before anything changes; a bad one changes nothing."""
        try:
            new = load_config(self.config_path)
            new_web_config = self._load_web_config()
        except (ConfigError, WebConfigError) as exc:
            runtime.self_metrics.reloaded(False)
            log.error("reload failed, keeping the running configuration", extra={"err": str(exc)})
            return False, f"reload failed, keeping the running configuration: {exc}"
        probed = await runtime.reloaded(new, new_web_config)
        if new_web_config is not None and new_web_config.tls is not None and tls:
            # New connections get the renewed certificate; the socket stays open.
            tls.load_cert_chain(new_web_config.tls.cert_file, new_web_config.tls.key_file)
        # `origins` is the file's; `probed` this replica's share of them (its shard).
        log.info("configuration reloaded", extra={"origins": len(new.origins), "probed": probed})
        return True, f"configuration reloaded: {len(new.origins)} origins"

    def _listening(
        self, runner: web.AppRunner, host: str | None, port: int, tls: bool, origins: int
    ) -> None:
        bound = _bound_port(runner, port)
        scheme = "https" if tls else "http"
        url = f"{scheme}://{'localhost' if host in (None, '0.0.0.0', '::') else host}:{bound}/"
        log.info(
            "listening",
            extra={
                "address": f"{host or ''}:{bound}",
                "url": url,
                "probed": origins,
                "shard": f"{self.shard.index}/{self.shard.count}",
            },
        )
        if self.on_listening is not None:
            self.on_listening(url)

    def _load_web_config(self) -> WebConfig | None:
        return None if self.web_config_path is None else load_web_config(self.web_config_path)


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            return int(sock.getsockname()[1])
    return fallback
