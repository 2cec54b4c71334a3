"""A real Prometheus (Debian's package) on 127.0.0.1, for tests that need a scraper."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from exporter.demo.running import Running
from tests.daemon_process import http
from tests.servers import free_port


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus")
    return found


@dataclass
class PrometheusProcess(Running):
    workdir: Path
    scrape_targets: list[str]  # HOST:PORT of exporters
    rule_files: list[Path] = field(default_factory=list)
    alertmanagers: list[str] = field(default_factory=list)
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "origin-tls-exporter",
                    "static_configs": [{"targets": self.scrape_targets}],
                }
            ],
        }
        if self.rule_files:
            config["rule_files"] = [str(p) for p in self.rule_files]
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]
            }
        return config

    def start(self, timeout: float = 30.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config()))
        self._log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()}")
            try:
                if http(self.url + "/-/ready", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, now or `at` a past moment (unix time): what Prometheus knew then,
        however late the test asks."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        answer = http(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        body = json.loads(answer.body)
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for_query(self, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise TimeoutError(f"query {expr!r} stayed empty for {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()
