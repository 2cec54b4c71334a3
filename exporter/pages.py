"""The landing page: the fleet at a glance, server-rendered, escaped, no external assets."""

from __future__ import annotations

import datetime as dt
from html import escape

from .store import OriginState

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.ok{color:#146c2e}.fail{color:#b00020;font-weight:bold}.pending{color:#666}
"""


def render_index(states: list[OriginState]) -> str:
    now = dt.datetime.now(dt.UTC)
    rows = []
    for state in states:
        config, result = state.config, state.latest
        if result is None:
            verdict, reasons, expiry, negotiated, last = (
                '<span class="pending">pending</span>',
                "",
                "",
                "",
                "",
            )
        else:
            verdict = (
                '<span class="ok">compatible</span>'
                if result.compatible
                else '<span class="fail">CloudFront cannot connect</span>'
            )
            reasons = escape(", ".join(result.reasons) or (result.error or ""))
            chain = result.chain
            expiry = ""
            if chain is not None and chain.earliest_expiry is not None:
                days = (chain.earliest_expiry - now).total_seconds() / 86400
                expiry = f"{chain.earliest_expiry:%Y-%m-%d} ({days:.0f} d)"
            n = result.negotiation
            negotiated = (
                escape(f"{n.protocol} {n.suite.name}")
                if n and n.completed and n.protocol and n.suite
                else ""
            )
            started = dt.datetime.fromtimestamp(result.started_at, dt.UTC)
            last = f"{started:%H:%M:%S}Z, {result.duration_seconds:.2f}s"
        rows.append(
            f"<tr><td>{escape(config.name)}</td><td>{escape(config.target().display)}</td>"
            f"<td>{verdict}</td><td>{reasons}</td><td>{expiry}</td><td>{negotiated}</td>"
            f"<td>{last}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="7">No origins configured.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>origin-tls-exporter</title>
<style>{_STYLE}</style></head><body>
<h1>origin-tls-exporter</h1>
<p>Can CloudFront reach these origins over HTTPS?
<a href="/metrics">Metrics</a> · <a href="/api/v1/origins">JSON</a></p>
<table><thead><tr><th>Origin</th><th>Address</th><th>Verdict</th><th>Reasons</th>
<th>Soonest expiry</th><th>CloudFront negotiates</th><th>Last probe</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""
