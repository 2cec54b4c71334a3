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
from .engine.result import Judgment

Rejudge = Callable[[OriginConfig, Judgment], Judgment | None]


@dataclass(frozen=True)
class OriginState:
    """What the exporter knows about one configured origin right now."""

    config: OriginConfig
    latest: Judgment | None  # None until the first probe finishes


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
        self._history: deque[HistoryEntry] = deque(maxlen=history_size)
        self._failures: deque[HistoryEntry] = deque(maxlen=failure_history_size)
        self._sequence = 0

    def set_origins(
        self, origins: tuple[OriginConfig, ...], rejudge: Rejudge | None = None
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
            self._latest = kept
            return renewed

    def record(self, origin: str, result: Judgment) -> None:
        with self._lock:
            if origin not in self._origins:
                return  # removed by a reload while it was being probed
            self._latest[origin] = result
            self._sequence += 1
            entry = HistoryEntry(self._sequence, origin, result)
            self._history.append(entry)
            if not result.compatible:
                self._failures.append(entry)

    def snapshot(self) -> list[OriginState]:
        """Every configured origin with its latest result, in configuration order."""
        with self._lock:
            return [OriginState(c, self._latest.get(n)) for n, c in self._origins.items()]

    def state(self, origin: str) -> OriginState | None:
        with self._lock:
            config = self._origins.get(origin)
            return None if config is None else OriginState(config, self._latest.get(origin))

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
