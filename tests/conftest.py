from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.engine.probe import Engine
from tests.origins import TestOrigins


@pytest.fixture(scope="session")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestOrigins]:
    """Every scenario origin, started once for the whole session."""
    with TestOrigins(Path(tmp_path_factory.mktemp("origins"))) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine()
