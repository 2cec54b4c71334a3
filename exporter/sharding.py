"""Split a fleet over N exporter replicas by a stable hash of the origin name.

Every replica loads the same configuration and probes only the origins whose hash falls in its
shard, so adding a replica needs no per-replica config. The hash (SHA-256) does not depend on
the Python process (unlike `hash()`), so shards stay put across restarts and versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"--shard.count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"--shard.index must be from 0 to {self.count - 1} (--shard.count - 1), "
                f"got {self.index}"
            )

    def owns(self, name: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(name.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def select(self, items: Iterable[T]) -> tuple[T, ...]:
        return tuple(item for item in items if self.owns(item.name))
