from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget
from tests.origins import TestOrigins


@pytest.fixture(scope="session")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestOrigins]:
    """Every scenario origin, started once for the whole session."""
    with TestOrigins(Path(tmp_path_factory.mktemp("origins"))) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine()


def run_probe(engine: Engine, target: ProbeTarget, **options: object) -> Judgment:
    options.setdefault("timeout", 5.0)
    return asyncio.run(engine.probe(target, ProbeOptions(**options)))  # type: ignore[arg-type]
