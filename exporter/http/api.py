"""Handlers for programs: /metrics, /probe, health, reload, the JSON API and /config.

They only read the store, or call the engine for /probe: scrapes never probe the configured
origins.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from dataclasses import dataclass, replace

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics import exposition as openmetrics

from ..config import ExporterConfig, config_dict, origin_config
from ..engine.catalogue import Protocol, parse_policy
from ..engine.target import ProbeOptions, ProbeTarget
from ..metrics import Labelled, RenderError, render_families, result_families
from ..report import render_text, result_dict
from .state import STATE, WebState


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    loop = asyncio.get_running_loop()
    # Rendering a large fleet takes milliseconds: off the event loop so probes keep their pace.
    exposition = Exposition.negotiate(request)
    try:
        body = await loop.run_in_executor(None, _render_metrics, state, exposition)
    except RenderError as exc:
        return web.Response(status=500, text=f"{exc}\n")
    return exposition.response(body)


def _render_metrics(state: WebState, exposition: Exposition) -> bytes:
    # The origins' families are gauges, written alike in both formats; the registry's
    # counters and histograms differ, and OpenMetrics ends with "# EOF".
    return state.origins.render() + exposition.render_registry(state.registry)


@dataclass(frozen=True)
class Exposition:
    """The format and encoding a scraper asked for: OpenMetrics or text, gzip or not."""

    openmetrics: bool
    gzip: bool

    @classmethod
    def negotiate(cls, request: web.Request) -> Exposition:
        accept = request.headers.get("Accept", "")
        encodings = request.headers.get("Accept-Encoding", "")
        return cls(
            openmetrics="application/openmetrics-text" in accept,
            gzip=any(e.split(";")[0].strip() == "gzip" for e in encodings.split(",")),
        )

    def render_registry(self, registry: CollectorRegistry) -> bytes:
        if self.openmetrics:
            return bytes(openmetrics.generate_latest(registry))  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def response(self, body: bytes) -> web.Response:
        content_type = openmetrics.CONTENT_TYPE_LATEST if self.openmetrics else CONTENT_TYPE_LATEST
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if self.gzip:
            # Level 1: /metrics for 1,000 origins is 9 MB of very repetitive text.
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[STATE].ready:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready.\n")


async def reload(request: web.Request) -> web.Response:
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"], text="Only POST reloads.\n")
    ok, message = await request.app[STATE].reload()
    return web.Response(status=200 if ok else 500, text=message + "\n")


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n")


def probe_request(
    config: ExporterConfig, query: dict[str, str]
) -> tuple[ProbeTarget, ProbeOptions]:
    """The target and options for /probe; raises HTTP errors naming the bad parameter."""
    text = query.get("target", "").strip()
    if not text:
        raise _bad_request("parameter 'target' is required (HOST:PORT or an origin name)")
    configured = config.origin(text)
    if configured is not None:
        target, options = configured.target(), configured.options()
    else:
        try:
            target = ProbeTarget.parse(text)
        except ValueError as exc:
            raise _bad_request(f"parameter 'target': {exc}") from None
        if not config.allows_probe(target.host, target.port):
            raise web.HTTPForbidden(
                text=f"target {target.display} is neither a configured origin nor allowed by "
                "probe_allow in the configuration\n"
            )
        # Built like a configured origin, so every default (request, policy, certificate,
        # the top-level dns section) applies to it as to them.
        adhoc = origin_config(
            config.defaults,
            {"port": target.port},
            name=target.display,
            host=target.host,
            address=config.address_for(target.host),
            dns=config.dns,
        )
        target, options = adhoc.target(), adhoc.options()
    if "sni" in query:
        target = replace(target, sni=query["sni"] or None)
    if "protocols" in query:
        try:
            protocols: tuple[Protocol, ...] = parse_policy(query["protocols"])
        except ValueError as exc:
            raise _bad_request(f"parameter 'protocols': {exc}") from None
        target = replace(target, protocols=protocols)
    return target, options


async def probe(request: web.Request) -> web.Response:
    state = request.app[STATE]
    target, options = probe_request(state.config, dict(request.query))
    scrape_timeout = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    if scrape_timeout:
        try:
            budget = float(scrape_timeout) - 0.5
        except ValueError:
            budget = 0
        if budget > 0:
            options = replace(options, deadline=min(options.deadline or budget, budget))
    result = await state.engine.probe(target, options)
    if request.query.get("debug", "").lower() in ("1", "true", "yes"):
        text = (
            render_text(result, dt.datetime.now(dt.UTC))
            + "\nProbe log:\n"
            + "\n".join(result.log)
            + "\n"
        )
        return web.Response(text=text)
    if request.query.get("format") == "json":
        return web.Response(
            text=json.dumps(result_dict(result), indent=2), content_type="application/json"
        )
    families = result_families([Labelled({}, result)], (), state.config.cipher_series)
    exposition = Exposition.negotiate(request)
    body = render_families(families)
    if exposition.openmetrics:
        body += b"# EOF\n"
    return exposition.response(body)


async def config_view(request: web.Request) -> web.Response:
    """The running configuration as loaded (defaults applied); it holds no secrets."""
    text = yaml.safe_dump(config_dict(request.app[STATE].config), sort_keys=False)
    return web.Response(text=text, content_type="text/plain")


async def origins_json(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    body = [
        {"origin": s.config.name, "result": result_dict(s.latest) if s.latest else None}
        for s in store.snapshot()
    ]
    return web.json_response(body)


async def origin_json(request: web.Request) -> web.Response:
    found = request.app[STATE].store.state(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such origin\n")
    return web.json_response(
        {"origin": found.config.name, "result": result_dict(found.latest) if found.latest else None}
    )
