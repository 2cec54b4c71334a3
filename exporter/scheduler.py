"""Probes every configured origin on its own interval, never inside a scrape.

One asyncio task per origin gives "never two probes of one origin at once" for free; a global
semaphore bounds how many origins are probed at once; each probe has a deadline inside its
interval. Origins start at a random phase of their interval so a large fleet is spread out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .config import ExporterConfig, OriginConfig
from .engine.judge import internal_error
from .engine.probe import Engine
from .engine.result import Judgment
from .sharding import Shard
from .store import ResultStore

log = logging.getLogger("origin_tls_exporter.scheduler")

FIRST_PROBE_SPREAD_SECONDS = 5.0
JITTER = 0.02


class ProbeObserver(Protocol):
    """Told of every new judgment, so the scheduler knows nothing of who listens."""

    def judged(self, origin: str, judgment: Judgment, probed: bool) -> None:
        """A new judgment of `origin`: a probe's (`probed`), or the last one re-judged."""


@dataclass
class Scheduler:
    engine: Engine
    store: ResultStore
    observers: Sequence[ProbeObserver] = ()  # e.g. self-metrics, pre-rendered /metrics
    max_concurrent_probes: int = 32
    shard: Shard = field(default_factory=Shard)  # probe only this replica's share of the fleet
    rng: random.Random = field(default_factory=random.Random)
    _tasks: dict[str, tuple[OriginConfig, asyncio.Task[None]]] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None
    _crash_logged: set[str] = field(default_factory=set)

    def apply(self, config: ExporterConfig) -> int:
        """Adopt a configuration: keep unchanged origins' tasks, restart changed, stop removed.

        Returns how many origins this replica probes (its shard of the configuration).
        """
        if self._slots is None or config.max_concurrent_probes != self.max_concurrent_probes:
            self.max_concurrent_probes = config.max_concurrent_probes
            self._slots = asyncio.Semaphore(self.max_concurrent_probes)
        origins = self.shard.select(config.origins)
        for name, result in self.store.set_origins(origins, self._rejudge, time.time()):
            log.info("judged again after reload", extra={"origin": name})
            self._tell(name, result, probed=False)
        wanted = {o.name: o for o in origins}
        for name, (origin, task) in list(self._tasks.items()):
            if wanted.get(name) != origin:
                task.cancel()
                del self._tasks[name]
        for name, origin in wanted.items():
            if name not in self._tasks:
                task = asyncio.create_task(self._loop(origin), name=f"probe {name}")
                self._tasks[name] = (origin, task)
        return len(origins)

    def _rejudge(self, origin: OriginConfig, latest: Judgment) -> Judgment | None:
        """The latest observations under the new settings (a new `ca_file` or policy)."""
        now = dt.datetime.now(dt.UTC)
        try:
            return self.engine.rejudge(latest.observations, origin.target(), now, origin.options())
        except ValueError as exc:  # an unreadable ca_file: wait for the probe to say so
            log.warning("cannot judge again", extra={"origin": origin.name, "error": str(exc)})
            return None

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, origin: OriginConfig) -> None:
        spread = min(origin.interval, FIRST_PROBE_SPREAD_SECONDS)
        await asyncio.sleep(self.rng.uniform(0, spread))
        while True:
            started = time.monotonic()
            await self.probe_once(origin)
            elapsed = time.monotonic() - started
            delay = origin.interval * self.rng.uniform(1 - JITTER, 1 + JITTER) - elapsed
            await asyncio.sleep(max(delay, 0.0))

    async def probe_once(self, origin: OriginConfig) -> Judgment:
        assert self._slots is not None, "apply() a configuration first"
        async with self._slots:
            result = await self._probe(origin)
        self.store.record(origin.name, result)
        self._tell(origin.name, result, probed=True)
        return result

    def _tell(self, origin: str, judgment: Judgment, probed: bool) -> None:
        for observer in self.observers:
            observer.judged(origin, judgment, probed)

    async def _probe(self, origin: OriginConfig) -> Judgment:
        started_at = time.time()
        start = time.monotonic()
        try:
            result = await self.engine.probe(origin.target(), origin.options())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or a ca_file that vanished: one failed probe
            if origin.name not in self._crash_logged:
                self._crash_logged.add(origin.name)
                log.exception("probe crashed", extra={"origin": origin.name})
            return internal_error(
                origin.target(),
                started_at,
                time.monotonic() - start,
                f"internal error: {type(exc).__name__}: {exc}",
                self.engine.catalogue,
            )
        self._crash_logged.discard(origin.name)
        log.debug(
            "probe finished",
            extra={
                "origin": origin.name,
                "compatible": result.compatible,
                "reasons": ",".join(result.reasons),
                "duration_seconds": round(result.duration_seconds, 3),
            },
        )
        return result
