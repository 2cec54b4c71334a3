"""--shard.index/--shard.count: replicas split one configuration with no overlap and no gap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.sharding import Shard
from tests.daemon_process import REPO, ExporterProcess, matching
from tests.servers import closed_port


def test_shards_partition_the_fleet_stably() -> None:
    names = [f"origin-{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(n)] for n in names]
    assert all(len(o) == 1 for o in owners)  # no overlap, no gap
    sizes = [sum(1 for o in owners if o == [i]) for i in range(3)]
    assert all(900 < size < 1100 for size in sizes), sizes
    # Stable: the same name always lands in the same shard (a fixed expectation).
    assert [Shard(i, 3).owns("shop") for i in range(3)].count(True) == 1
    assert Shard(0, 1).owns("anything")


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0)])
def test_bad_shard_flags(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="--shard"):
        Shard(index, count)
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--config.file", "x.yml",
         "--shard.index", str(index), "--shard.count", str(count)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--shard" in run.stderr


def test_two_replicas_split_the_origins(tmp_path: Path) -> None:
    port = closed_port()  # connect_failed at once: cheap origins
    names = [f"o{i}" for i in range(12)]
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"interval": "2s", "timeout": "1s"},
                "origins": [{"name": n, "host": "127.0.0.1", "port": port} for n in names],
            }
        )
    )
    seen: list[set[str]] = []
    for index in range(2):
        with ExporterProcess(
            ["serve", "--config.file", str(config), "--shard.index", str(index),
             "--shard.count", "2"],
            tmp_path / f"shard{index}.log",
        ) as replica:  # fmt: skip
            expected = {n for n in names if Shard(index, 2).owns(n)}

            def probed(replica: ExporterProcess = replica) -> set[str]:
                found = matching(replica.metrics(), "origin_tls_probe_success")
                return {dict(labels)["origin"] for labels in found}

            replica.wait_for(lambda e=expected: probed() == e, 30, f"shard {index} probed")
            seen.append(probed())
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(names)
