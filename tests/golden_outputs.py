"""Golden outputs: every view of every test origin's probe, with what varies run to run masked.

The views (`/metrics` families, `check` text and JSON, the origin page) were recorded from the
implementation before observations and judgment were split, so a refactor that changes what any
view says fails `tests/test_golden.py`. Set `GOLDEN_UPDATE=1` to re-record after a deliberate
change, and review the diff.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from pathlib import Path

from exporter.config import OriginConfig
from exporter.engine.result import Judgment
from exporter.metrics import Labelled, render_families, result_families
from exporter.pages import render_origin
from exporter.report import render_text, result_dict
from exporter.store import OriginState

GOLDEN = Path(__file__).parent / "golden"

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|\+00:00| UTC)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{16,}\b"), "<hex>"),
    (re.compile(r"\b\d+(\.\d+)?e[+-]?\d+\b"), "<num>"),
    (re.compile(r"(?<![\w.])\d+(\.\d+)? ?(s|ms)\b"), "<seconds>"),
    (re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b"), "<unix>"),
    # Pre-connected spares race the end of their chain: one more or less (docs/performance.md).
    (re.compile(r"\b\d+ connections\b"), "<n> connections"),
    (re.compile(r'"connections": \d+'), '"connections": <n>'),
)


def mask(text: str, ports: Iterable[int]) -> str:
    for port in sorted(set(ports), reverse=True):
        text = re.sub(rf"(?<![\d.]){port}(?!\d)", "<port>", text)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _json_report(result: Judgment) -> str:
    report = result_dict(result)
    report.pop("duration_seconds", None)
    report.pop("started_at", None)
    for part, keys in (
        ("resolution", ("duration_seconds",)),
        ("http", ("first_byte_seconds", "response_seconds", "idle_watched_seconds")),
    ):
        if report.get(part):
            report[part].update({key: "<seconds>" for key in keys if key in report[part]})
    report["log"] = sorted(re.sub(r"^\s*[\d.]+s ", "", line) for line in report.get("log", []))
    return json.dumps(report, indent=1, sort_keys=True)


def _metrics(name: str, result: Judgment) -> str:
    text = render_families(result_families([Labelled({"origin": name}, result)], ["origin"]))
    volatile = (
        "probe_duration_seconds",
        "timestamp_seconds",
        "http_first_byte_seconds",
        "http_response_seconds",
    )
    lines = []
    for line in text.decode().splitlines():
        if not line.startswith("#") and any(v in line.split("{")[0] for v in volatile):
            line = line.rsplit(" ", 1)[0] + " <value>"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _page(name: str, config: OriginConfig, result: Judgment) -> str:
    now = dt.datetime.fromtimestamp(result.started_at + 30, dt.UTC)
    html = render_origin(OriginState(config, result), (), (), now)
    html = re.sub(r"<style>.*?</style>", "<style>(the stylesheet)</style>", html, flags=re.S)
    return re.sub(r"\d+ (s|min|h|d) ago", "<ago>", html)


def views(name: str, config: OriginConfig, result: Judgment) -> dict[str, str]:
    """Each view of one result, unmasked; keys are golden file suffixes."""
    return {
        "metrics.txt": _metrics(name, result),
        "check.json": _json_report(result),
        "check.txt": render_text(result, dt.datetime.now(dt.UTC)),
        "page.html": _page(name, config, result),
    }
