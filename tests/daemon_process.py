"""Run the real exporter as a subprocess and read its endpoints, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.running import Running
from tests.servers import free_port

REPO = Path(__file__).resolve().parent.parent

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    if key not in series:
        close = sorted(str(dict(k[1])) for k in series if k[0] == name)[:10]
        raise KeyError(f"no series {name}{labels}; {name} has: {close}")
    return series[key]


def matching(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    wanted = set(labels.items())
    return {k[1]: v for k, v in series.items() if k[0] == name and wanted <= k[1]}


@dataclass
class HTTPAnswer:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def http(url: str, method: str = "GET", timeout: float = 10.0) -> HTTPAnswer:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HTTPAnswer(
                response.status, response.read().decode(), dict(response.headers.items())
            )
    except urllib.error.HTTPError as exc:
        return HTTPAnswer(exc.code, exc.read().decode(), dict(exc.headers.items()))


@dataclass
class ExporterProcess(Running):
    """`origin-tls-exporter ARGS... --web.listen-address 127.0.0.1:PORT` until stopped."""

    args: list[str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    tree: Path = REPO  # the checkout whose `exporter` package runs (benchmarks: another commit)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_with(self, ready: Callable[[], bool], ready_timeout: float = 20.0) -> Self:
        """Start, judging readiness with `ready` (e.g. over TLS with credentials)."""
        return self.start(ready_timeout, ready)

    def start(self, ready_timeout: float = 20.0, ready: Callable[[], bool] | None = None) -> Self:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                *self.args,
                "--web.listen-address",
                f"127.0.0.1:{self.port}",
                "--log.level",
                "debug",
            ],
            cwd=self.tree,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(self.tree)},
        )
        check = ready or (lambda: self._ready(""))
        self.wait_for(lambda: self._alive() and check(), ready_timeout, "/-/ready")
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"exporter exited with {self.process.returncode}:\n{self.log()}")
        return True

    def _ready(self, _: str) -> bool:
        try:
            return http(self.url + "/-/ready", timeout=1).status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> HTTPAnswer:
        return http(self.url + path)

    def metrics(self) -> Series:
        answer = self.get("/metrics")
        assert answer.status == 200, answer
        return parse_exposition(answer.body)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout}s for {what}; exporter log:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
