"""Keeps the discovered origins fresh: refreshes every `refresh_interval`, in the background.

The daemon creates one `DiscoveryRunner` (its metrics join the daemon's registry), hands it every
configuration it adopts with `await runner.apply(config)`, and gets the discovered origins
through `on_change` whenever they change; it merges them with the configured ones (`merge`).

A failed refresh (credentials, network, throttling, AccessDenied) changes nothing: the last good
set stays, the error is counted and logged, and the next attempt comes after
`min(refresh_interval, 30s)`. Only removing the `discovery` section empties the set. A policy that
cannot be read does not fail the refresh: it is counted and logged, and only the origins whose
behaviours use it are affected (probed both ways). Every failed call is counted in
`origin_tls_discovery_errors_total{operation, error}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..config import (
    CloudFrontDiscoveryConfig,
    DnsConfig,
    ExporterConfig,
    OriginConfig,
    OriginDefaults,
)
from ..metrics import PREFIX
from .cloudfront import (
    DEFAULT_PAGE_SIZE,
    PROVIDER,
    CallFailure,
    CloudFrontClient,
    Discovery,
    DiscoveryCallError,
    SkipReason,
    discover,
    fetch,
    make_client,
    origin_configs,
)

log = logging.getLogger("origin_tls_exporter.discovery")

FIRST_REFRESH_TIMEOUT = 20.0
"""How long `apply()` waits for the first refresh of new settings before letting it finish in
the background (so the exporter starts with its discovered origins, but never hangs on AWS)."""
RETRY_SECONDS = 30.0

OnChange = Callable[[tuple[OriginConfig, ...]], None]
ClientFactory = Callable[[CloudFrontDiscoveryConfig], CloudFrontClient]


class DiscoveryMetrics:
    """`origin_tls_exporter_discovery_*`, labelled by `provider`; present only while enabled."""

    def __init__(self, registry: CollectorRegistry) -> None:
        name = f"{PREFIX}_exporter_discovery"
        self.last_success = Gauge(
            f"{name}_last_success_timestamp_seconds",
            "When origins were last discovered successfully.",
            ["provider"],
            registry=registry,
        )
        self.last_successful = Gauge(
            f"{name}_last_refresh_successful",
            "1 if the last discovery refresh succeeded; 0 if it failed (the last good set stays).",
            ["provider"],
            registry=registry,
        )
        self.errors = Counter(
            f"{name}_refresh_errors",
            "Failed discovery refreshes.",
            ["provider"],
            registry=registry,
        )
        self.duration = Gauge(
            f"{name}_refresh_duration_seconds",
            "How long the last discovery refresh took.",
            ["provider"],
            registry=registry,
        )
        self.distributions = Gauge(
            f"{name}_distributions",
            "Distributions selected by the discovery filters at the last successful refresh.",
            ["provider"],
            registry=registry,
        )
        self.origins = Gauge(
            f"{name}_origins",
            "Discovered origins probed (one per name CloudFront sends as SNI).",
            ["provider"],
            registry=registry,
        )
        self.skipped = Gauge(
            f"{name}_origins_skipped",
            "Origins of the selected distributions that are not probed, by reason.",
            ["provider", "reason"],
            registry=registry,
        )
        self.call_errors = Counter(
            f"{PREFIX}_discovery_errors",
            "Failed CloudFront API calls, by operation and AWS error code (or HTTP status).",
            ["operation", "error"],
            registry=registry,
        )
        self._all = (
            self.last_success,
            self.last_successful,
            self.errors,
            self.duration,
            self.distributions,
            self.origins,
            self.skipped,
            self.call_errors,
        )

    def enable(self, provider: str) -> None:
        """Create the series (0) so alerts and dashboards see them before the first refresh."""
        self.last_successful.labels(provider)
        self.errors.labels(provider)
        self.distributions.labels(provider)
        self.origins.labels(provider)
        for reason in SkipReason:
            self.skipped.labels(provider, str(reason))

    def disable(self) -> None:
        for metric in self._all:
            metric.clear()

    def succeeded(self, provider: str, found: Discovery, seconds: float) -> None:
        self.last_success.labels(provider).set(time.time())
        self.last_successful.labels(provider).set(1)
        self.duration.labels(provider).set(seconds)
        self.distributions.labels(provider).set(found.distributions)
        for reason in SkipReason:
            self.skipped.labels(provider, str(reason)).set(found.skipped_count(reason))

    def call_failed(self, failure: CallFailure) -> None:
        self.call_errors.labels(failure.operation, failure.error).inc()

    def failed(self, provider: str, seconds: float) -> None:
        self.last_successful.labels(provider).set(0)
        self.errors.labels(provider).inc()
        self.duration.labels(provider).set(seconds)


class DiscoveryRunner:
    """Discovers origins from CloudFront in the background; create one per daemon.

    - `await apply(config)` on start and on every reload: starts, reconfigures or stops
      discovery after `config.discovery`; when the settings are new it waits (at most
      `first_refresh_timeout`) for their first refresh. New `defaults` or `resolve` re-derive
      the discovered origins without asking AWS again.
    - `on_change(origins)` is called (on the event loop) whenever `origins` changes.
    - `await stop()` on shutdown.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        on_change: OnChange | None = None,
        *,
        client_factory: ClientFactory = make_client,
        page_size: int = DEFAULT_PAGE_SIZE,
        first_refresh_timeout: float = FIRST_REFRESH_TIMEOUT,
    ) -> None:
        self.on_change = on_change
        self.metrics = DiscoveryMetrics(registry)
        self.client_factory = client_factory
        self.page_size = page_size
        self.first_refresh_timeout = first_refresh_timeout
        self._settings: CloudFrontDiscoveryConfig | None = None
        self._defaults = OriginDefaults()
        self._address_for: Callable[[str], str | None] = lambda host: None
        self._dns = DnsConfig()
        self._client: CloudFrontClient | None = None
        self._found: Discovery | None = None  # the last good refresh
        self._origins: tuple[OriginConfig, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Event = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def origins(self) -> tuple[OriginConfig, ...]:
        """The discovered origins now, sorted by name (empty when discovery is off)."""
        return self._origins

    @property
    def settings(self) -> CloudFrontDiscoveryConfig | None:
        return self._settings

    @property
    def last_discovery(self) -> Discovery | None:
        """The last successful refresh, before defaults (for status pages and tests)."""
        return self._found

    async def apply(self, config: ExporterConfig) -> None:
        """Adopt a configuration (see the class docstring)."""
        new = config.discovery.cloudfront if config.discovery is not None else None
        old = self._settings
        self._defaults, self._address_for = config.defaults, config.address_for
        self._dns = config.dns
        if new is None:
            await self._stop_loop()
            self._settings, self._client, self._found = None, None, None
            self.metrics.disable()
            self._publish()
            if old is not None:
                log.info("discovery stopped", extra={"provider": PROVIDER})
            return
        self._settings = new
        if old is not None and old.same_source(new) and self._task is not None:
            self._publish()  # only the interval, defaults or resolve changed
            return
        # New settings: the last good set stays until their first refresh succeeds.
        await self._stop_loop()
        self._client = None
        if old is None:
            self.metrics.enable(PROVIDER)
        self._publish()
        self._first = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="discovery cloudfront")
        try:
            await asyncio.wait_for(self._first.wait(), self.first_refresh_timeout)
        except TimeoutError:
            log.warning(
                "first discovery refresh is still running; continuing in the background",
                extra={"provider": PROVIDER, "waited_seconds": self.first_refresh_timeout},
            )

    async def refresh(self) -> bool:
        """Refresh now; True if it succeeded. The background loop calls this too."""
        settings = self._settings
        if settings is None:
            return False
        async with self._lock:
            start = time.monotonic()
            try:
                if self._client is None:
                    self._client = await asyncio.to_thread(self.client_factory, settings)
                inventory = await asyncio.to_thread(fetch, self._client, settings, self.page_size)
                found = discover(inventory)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, DiscoveryCallError):
                    self.metrics.call_failed(exc.failure)
                self.metrics.failed(PROVIDER, time.monotonic() - start)
                log.warning(
                    "discovery refresh failed; keeping the last discovered origins",
                    extra={
                        "provider": PROVIDER,
                        "err": f"{type(exc).__name__}: {exc}",
                        "origins": len(self._origins),
                    },
                )
                return False
            if self._settings is None or not self._settings.same_source(settings):
                return False  # reconfigured meanwhile: this answer is for other settings
            elapsed = time.monotonic() - start
            for failure in inventory.unread_policies.values():
                self.metrics.call_failed(failure)
            self._found = found
            self.metrics.succeeded(PROVIDER, found, elapsed)
            if inventory.missing_distributions:
                log.warning(
                    "configured distributions not found",
                    extra={
                        "provider": PROVIDER,
                        "distribution_ids": ",".join(inventory.missing_distributions),
                    },
                )
            if inventory.missing_policies:
                log.warning(
                    "cache or origin request policies not found; assuming they do not "
                    "forward the Host header",
                    extra={"provider": PROVIDER, "policies": ",".join(inventory.missing_policies)},
                )
            if inventory.unread_policies:
                log.warning(
                    "cache or origin request policies could not be read; probing the origins "
                    "that use them both with and without the viewer's Host header",
                    extra={
                        "provider": PROVIDER,
                        "policies": ", ".join(map(str, inventory.unread_policies.values())),
                        "origins": sum(1 for o in found.origins if o.unread_policies),
                    },
                )
            changed = self._publish()
            log.log(
                logging.INFO if changed else logging.DEBUG,
                "origins discovered",
                extra={
                    "provider": PROVIDER,
                    "distributions": found.distributions,
                    "origins": len(self._origins),
                    "skipped": sum(found.skipped.values()),
                    "pages": inventory.pages,
                    "duration_seconds": round(elapsed, 3),
                },
            )
            return True

    async def stop(self) -> None:
        """Stop refreshing (the discovered origins stay as they are)."""
        await self._stop_loop()

    async def _loop(self) -> None:
        first = True
        while self._settings is not None:
            try:
                ok = await self.refresh()
            except Exception:  # a bug: keep discovering, keep the last good set
                log.exception("discovery refresh crashed", extra={"provider": PROVIDER})
                ok = False
            finally:
                if first:
                    self._first.set()
                    first = False
            interval = self._settings.refresh_interval if self._settings else RETRY_SECONDS
            await asyncio.sleep(interval if ok else min(interval, RETRY_SECONDS))

    async def _stop_loop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _publish(self) -> bool:
        """Re-derive the origins (defaults and resolve may have changed); notify on change."""
        found = self._found.origins if self._found is not None and self._settings else ()
        origins = origin_configs(
            found, self._defaults, self._address_for, settings=self._settings, dns=self._dns
        )
        if self._settings is not None:
            self.metrics.origins.labels(PROVIDER).set(len(origins))
        if origins == self._origins:
            return False
        self._origins = origins
        if self.on_change is not None:
            try:
                self.on_change(origins)
            except Exception:
                log.exception("applying the discovered origins failed")
        return True
