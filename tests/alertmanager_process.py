"""A real Alertmanager (Debian's package) on 127.0.0.1, and a webhook receiver for what it sends.

Alertmanager runs without clustering (no gossip port) and with its own data directory, so tests
can run side by side.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from exporter.demo.running import Running
from tests.daemon_process import http
from tests.servers import free_port


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise RuntimeError("alertmanager is not installed: apt-get install prometheus-alertmanager")


@dataclass
class AlertmanagerProcess(Running):
    workdir: Path
    config: dict[str, Any]  # a complete alertmanager.yml, as data
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._log = (self.workdir / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                alertmanager_binary(),
                f"--config.file={config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: a single instance
                "--log.level=debug",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited:\n{self.log()}")
            try:
                if http(self.url + "/-/ready", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"alertmanager not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / "alertmanager.log").read_text(errors="replace")

    def alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's current alerts (API v2), with `status.state` and `status.inhibitedBy`."""
        answer = http(self.url + "/api/v2/alerts")
        assert answer.status == 200, answer
        return list(json.loads(answer.body))

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


@dataclass(frozen=True)
class Notification:
    """One alert as a webhook notification carried it."""

    path: str  # the webhook URL path, e.g. "/origin-tls-pager": which receiver sent it
    status: str  # "firing" or "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    received: float = 0.0  # when the receiver got it (time.time()): orders notifications

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 collecting Alertmanager's webhook notifications."""

    def __init__(self) -> None:
        self.payloads: list[tuple[str, dict[str, Any], float]] = []  # path, body, received
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.payloads.append((self.path, body, time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def notifications(self) -> list[Notification]:
        with self._lock:
            payloads = list(self.payloads)
        return [
            Notification(
                path=path,
                status=str(alert.get("status", "")),
                labels=dict(alert.get("labels", {})),
                annotations=dict(alert.get("annotations", {})),
                received=received,
            )
            for path, body, received in payloads
            for alert in body.get("alerts", [])
        ]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
