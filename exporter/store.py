"""The latest result per origin and a bounded history of recent probes.

Written only by the scheduler (on the event loop), read by scrapes and pages (possibly from other
threads). Results are immutable, so readers get a consistent snapshot by copying references
under a lock; nothing here ever blocks for long.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .config import OriginConfig
from .engine.chain import ChainAnalysis
from .engine.result import Judgment

Rejudge = Callable[[OriginConfig, Judgment], Judgment | None]


@dataclass(frozen=True)
class SeenChain:
    """The certificates an origin last sent, kept through failed probes (expiry alerts must
    not restart their `for:` on a blip)."""

    chain: ChainAnalysis
    seen_at: float  # unix time of the probe that saw them


@dataclass(frozen=True)
class OriginState:
    """What the exporter knows about one configured origin right now."""

    config: OriginConfig
    latest: Judgment | None  # None until the first probe finishes
    verdict_since: float | None = None  # unix time `compatible` took its current value
    certificates: SeenChain | None = None  # the latest chain seen, if any probe saw one


@dataclass(frozen=True)
class HistoryEntry:
    sequence: int
    origin: str
    result: Judgment


class ResultStore:
    def __init__(self, history_size: int = 100, failure_history_size: int = 100) -> None:
        self._lock = threading.Lock()
        self._origins: dict[str, OriginConfig] = {}
        self._latest: dict[str, Judgment] = {}
        self._since: dict[str, float] = {}
        self._seen: dict[str, SeenChain] = {}
        self._history: deque[HistoryEntry] = deque(maxlen=history_size)
        self._failures: deque[HistoryEntry] = deque(maxlen=failure_history_size)
        self._sequence = 0

    def set_origins(
        self,
        origins: tuple[OriginConfig, ...],
        rejudge: Rejudge | None = None,
        now: float | None = None,
    ) -> list[tuple[str, Judgment]]:
        """Adopt a new origin set: keep results whose origin is unchanged, judge again the
        latest observations of changed ones (`rejudge`; None when it cannot), drop the rest.

        Returns the judgments made anew, so views can follow them before the next probe."""
        with self._lock:
            previous = self._origins
            self._origins = {o.name: o for o in origins}
            kept: dict[str, Judgment] = {}
            renewed: list[tuple[str, Judgment]] = []
            for name, result in self._latest.items():
                config = self._origins.get(name)
                if config is None:
                    continue
                if previous.get(name) == config:
                    kept[name] = result
                    continue
                again = rejudge(config, result) if rejudge is not None else None
                if again is not None:
                    kept[name] = again
                    renewed.append((name, again))
                    if again.compatible != result.compatible and now is not None:
                        self._since[name] = now  # changed by the reload itself
            self._latest = kept
            self._since = {n: t for n, t in self._since.items() if n in kept}
            self._seen = {
                n: seen
                for n, seen in self._seen.items()
                if n in self._origins and previous.get(n) == self._origins[n]
            }
            return renewed

    def record(self, origin: str, result: Judgment) -> None:
        with self._lock:
            if origin not in self._origins:
                return  # removed by a reload while it was being probed
            previous = self._latest.get(origin)
            if previous is None or previous.compatible != result.compatible:
                self._since[origin] = result.started_at
            if result.chain is not None:
                self._seen[origin] = SeenChain(result.chain, result.started_at)
            self._latest[origin] = result
            self._sequence += 1
            entry = HistoryEntry(self._sequence, origin, result)
            self._history.append(entry)
            if not result.compatible:
                self._failures.append(entry)

    def snapshot(self) -> list[OriginState]:
        """Every configured origin with its latest result, in configuration order."""
        with self._lock:
            return [self._state(n, c) for n, c in self._origins.items()]

    def state(self, origin: str) -> OriginState | None:
        with self._lock:
            config = self._origins.get(origin)
            return None if config is None else self._state(origin, config)

    def _state(self, name: str, config: OriginConfig) -> OriginState:
        return OriginState(
            config, self._latest.get(name), self._since.get(name), self._seen.get(name)
        )

    def history(self, origin: str | None = None, failures: bool = False) -> list[HistoryEntry]:
        """Recent probes, newest first; `failures` keeps failed ones apart so they outlive noise."""
        with self._lock:
            entries = list(self._failures if failures else self._history)
        if origin is not None:
            entries = [e for e in entries if e.origin == origin]
        return entries[::-1]

    def entry(self, sequence: int) -> HistoryEntry | None:
        with self._lock:
            for entry in (*self._history, *self._failures):
                if entry.sequence == sequence:
                    return entry
        return None
