"""Every view of every test origin equals the golden files (see `tests/golden_outputs.py`)."""

from __future__ import annotations

import asyncio
import difflib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config import OriginConfig
from exporter.engine.observations import Observations
from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget
from tests.golden_outputs import GOLDEN, mask, views
from tests.hostile import FAST, HOST, HostileOrigins
from tests.origins import TestOrigins
from tests.support import recorded

UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"


@pytest.fixture(scope="module")
def hostile(origins: TestOrigins) -> Iterator[HostileOrigins]:
    leaf = origins.pki.leaf(HOST)
    with HostileOrigins([leaf.der, origins.pki.intermediate.der]) as servers:
        yield servers


@pytest.fixture(scope="module")
def probed(
    origins: TestOrigins, hostile: HostileOrigins
) -> dict[str, tuple[ProbeTarget, Judgment, tuple[int, ...]]]:
    targets: dict[str, tuple[ProbeTarget, tuple[int, ...]]] = {}
    for name, origin in origins.origins.items():
        targets[name] = (origin.target(), (origin.port,))
    # `reset` races (the reset lands during connect or after the hello): same reason, other log.
    for name in sorted(FAST - {"unresolvable", "reset"}):
        target = ProbeTarget(host=HOST, port=hostile[name], address="127.0.0.1")
        targets[f"hostile_{name}"] = (target, (hostile[name],))
    engine = Engine()

    # Far above what any origin needs, so a loaded machine does not change the views; the
    # silent origin is the one whose view is its timeout.
    roomy, silent = ProbeOptions(timeout=30.0), ProbeOptions(timeout=3.0)

    async def run_all() -> list[Observations]:
        return list(
            await asyncio.gather(
                *(
                    engine.observe(t, silent if name == "silent" else roomy)
                    for name, (t, _) in targets.items()
                )
            )
        )

    observed = asyncio.run(run_all())
    roots = Path(origins.ca_file).read_bytes()
    results = []
    for (name, (target, _)), observations in zip(targets.items(), observed, strict=True):
        trusted = roots if target.ca_file else b""
        if os.environ.get("RECORD_OBSERVATIONS") == "1":
            recorded.save(name, observations, trusted)
        results.append(recorded.Recording(name, observations, trusted).judge())
    return {
        name: (target, result, ports)
        for (name, (target, ports)), result in zip(targets.items(), results, strict=True)
    }


def _config(name: str, target: ProbeTarget) -> OriginConfig:
    return OriginConfig(
        name=name,
        host=target.host,
        port=target.port,
        sni=target.sni,
        protocols=target.protocols,
        ca_file=target.ca_file,
        address=target.address,
    )


def test_every_view_matches_the_golden_files(
    probed: dict[str, tuple[ProbeTarget, Judgment, tuple[int, ...]]],
    origins: TestOrigins,
) -> None:
    differences = []
    for name, (target, result, ports) in sorted(probed.items()):
        for suffix, text in views(name, _config(name, target), result).items():
            masked = mask(text.replace(origins.workdir.as_posix(), "<workdir>"), ports)
            path = GOLDEN / f"{name}.{suffix}"
            if UPDATE:
                path.write_text(masked)
                continue
            expected = path.read_text()
            if masked != expected:
                diff = difflib.unified_diff(
                    expected.splitlines(), masked.splitlines(), str(path), "now", lineterm=""
                )
                differences.append("\n".join(list(diff)[:40]))
    assert not differences, "\n\n".join(differences)
