"""Coverage-guided fuzzing in CI: every atheris harness in fuzz/ replays its committed corpus, then
fuzzes a copy of it for a few seconds (all harnesses at once, about 20 s in all).

atheris is a test dependency: if it is missing, this module fails to import and the run fails;
nothing here is skipped. Long runs and crash handling: fuzz/README.md.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import atheris  # noqa: F401  (a missing fuzzer is a failure, not a skip)
import pytest

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
HARNESSES = ("flight", "certificates", "config")
#: seconds of fuzzing per harness; the harnesses run in parallel
SECONDS = int(os.environ.get("FUZZ_SECONDS", "15"))
LIBFUZZER_FLAGS = [
    f"-max_total_time={SECONDS}",
    "-rss_limit_mb=1024",
    "-timeout=10",
    "-print_final_stats=1",
]


def harness_module(name: str) -> ModuleType:
    path = FUZZ / f"fuzz_{name}.py"
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus(name: str) -> list[Path]:
    return sorted(p for p in (FUZZ / "corpus" / name).iterdir() if p.is_file())


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_replays_its_corpus(name: str) -> None:
    """Every committed input (seeds and regressions) passes through the harness cleanly."""
    test_one_input: Callable[[bytes], None] = harness_module(name).TestOneInput
    files = corpus(name)
    assert len(files) >= 10, f"fuzz/corpus/{name} is nearly empty: run fuzz/make_corpus.py"
    failures = []
    for path in files:
        try:
            test_one_input(path.read_bytes())
        except Exception as exc:
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


@dataclass
class FuzzRun:
    name: str
    returncode: int
    output: str
    artifacts: list[Path]
    seconds: float

    def stat(self, key: str) -> int | None:
        match = re.search(rf"^stat::{key}:\s*(\d+)", self.output, re.MULTILINE)
        return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FuzzRun]]:
    """Each harness fuzzing a copy of its corpus (so the committed one stays as it is)."""
    base = tmp_path_factory.mktemp("fuzz")
    started: dict[str, tuple[subprocess.Popen[str], Path, float]] = {}
    try:
        for name in HARNESSES:
            work_corpus = base / name / "corpus"
            artifacts = base / name / "artifacts"
            shutil.copytree(FUZZ / "corpus" / name, work_corpus)
            artifacts.mkdir()
            command = [
                sys.executable,
                str(FUZZ / f"fuzz_{name}.py"),
                str(work_corpus),
                *LIBFUZZER_FLAGS,
                f"-artifact_prefix={artifacts}/",
            ]
            process = subprocess.Popen(
                command,
                cwd=base / name,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started[name] = (process, artifacts, time.monotonic())
        runs = {}
        for name, (process, artifacts, start) in started.items():
            output, _ = process.communicate(timeout=SECONDS + 60)
            runs[name] = FuzzRun(
                name,
                process.returncode,
                output,
                sorted(artifacts.iterdir()),
                time.monotonic() - start,
            )
        yield runs
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("name", HARNESSES)
def test_short_fuzz_run_finds_nothing(name: str, fuzz_runs: dict[str, FuzzRun]) -> None:
    run = fuzz_runs[name]
    tail = "\n".join(
        line for line in run.output.splitlines() if not line.startswith("INFO: Instrumenting")
    )[-6000:]
    assert run.returncode == 0, f"fuzz_{name} failed (exit {run.returncode}):\n{tail}"
    assert not run.artifacts, f"fuzz_{name} left {[p.name for p in run.artifacts]}:\n{tail}"
    executed = run.stat("number_of_executed_units")
    assert executed is not None, f"fuzz_{name} printed no final stats:\n{tail}"
    # Well beyond the corpus: the fuzzer really ran, it did not just replay the seeds.
    assert executed > 10 * len(corpus(name)), tail
    print(
        f"fuzz_{name}: {executed} inputs in {run.seconds:.1f}s, "
        f"{run.stat('average_exec_per_sec')} exec/s, {run.stat('new_units_added')} new units"
    )
