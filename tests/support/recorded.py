"""Observations recorded once from the real test servers, committed under tests/observations/.

Each file holds one probe's observations and the PEM roots it was judged against, so the
judge's table tests (tests/test_judge.py) run in milliseconds without a server. Re-record with
`RECORD_OBSERVATIONS=1 python3 -m pytest tests/test_golden.py` after a deliberate engine change.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from exporter.engine.catalogue import CATALOGUE, Catalogue, Protocol
from exporter.engine.chain import TrustStore
from exporter.engine.judge import Policy, judge
from exporter.engine.observations import Observations
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeTarget

RECORDED = Path(__file__).parent.parent / "observations"


@dataclass(frozen=True)
class Recording:
    name: str
    observations: Observations
    roots_pem: bytes  # empty: Mozilla's roots (the probe had no ca_file)

    @property
    def trust(self) -> TrustStore:
        if not self.roots_pem:
            return TrustStore.mozilla()
        # Named as the probe's ca_file was, so judgments read as they did when recorded.
        source = self.observations.target.ca_file or f"recorded {self.name}"
        return TrustStore.from_pem(self.roots_pem, source)

    @property
    def probed_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.observations.started_at, dt.UTC)

    def target(self) -> ProbeTarget:
        seen = self.observations.target
        return ProbeTarget(
            host=seen.host,
            port=seen.port,
            sni=seen.sni,
            protocols=tuple(Protocol(p) for p in seen.protocols),
            ca_file=seen.ca_file,
            address=seen.address,
        )

    def judge(
        self,
        policy: Policy | None = None,
        catalogue: Catalogue = CATALOGUE,
        trust: TrustStore | None = None,
        now: dt.datetime | None = None,
    ) -> Judgment:
        return judge(
            self.observations,
            trust or self.trust,
            catalogue,
            policy or Policy.of(self.target()),
            now or self.probed_at,
        )


def save(name: str, observations: Observations, roots_pem: bytes) -> None:
    RECORDED.mkdir(exist_ok=True)
    data = {"observations": observations.to_json(), "roots_pem": roots_pem.decode("ascii")}
    (RECORDED / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def load(name: str) -> Recording:
    data = json.loads((RECORDED / f"{name}.json").read_text())
    observations = Observations.from_json(data["observations"])
    return Recording(name, observations, data["roots_pem"].encode("ascii"))


def names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in RECORDED.glob("*.json")))
