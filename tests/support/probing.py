"""Probe one target from synchronous test code."""

from __future__ import annotations

import asyncio

from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget


def run_probe(engine: Engine, target: ProbeTarget, **options: object) -> Judgment:
    options.setdefault("timeout", 5.0)
    return asyncio.run(engine.probe(target, ProbeOptions(**options)))  # type: ignore[arg-type]
