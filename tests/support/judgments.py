"""Hand-made judgments for view tests that need a state no test server produces.

The observations behind them are minimal (target and times); what the views read is the
judgment's own fields, so these test formatting, never the judge.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from exporter.engine.catalogue import CATALOGUE
from exporter.engine.observations import Observations, TargetRecord
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeTarget
from exporter.engine.verdict import Category, FailureReason


def judgment(
    target: ProbeTarget,
    started_at: float = 0.0,
    duration_seconds: float = 0.0,
    reasons: tuple[FailureReason, ...] = (),
    address: str | None = None,
    connections: int = 0,
    **fields: Any,
) -> Judgment:
    observations = Observations(
        target=TargetRecord.of(target),
        started_at=started_at,
        duration_seconds=duration_seconds,
        address=address,
        connections=connections,
    )
    error = fields.get("error")
    made = Judgment(
        target=target,
        observations=observations,
        catalogue=CATALOGUE,
        reasons=reasons,
        compatible=not reasons and error is None,
        success=error is None and not any(r.category is Category.CONNECTION for r in reasons),
        legacy_only=False,
    )
    return replace(made, **fields)
