"""Handlers for the pages for people: `/` and `/origin/<name>` (rendering is in `pages`).

Pages are rendered off the event loop (a large fleet's table takes milliseconds), and sent with
a Content-Security-Policy that allows no script, no external resource and no framing: the
templates escape everything, and the policy makes any slip harmless.
"""

from __future__ import annotations

import asyncio
import functools
from importlib import resources

from aiohttp import web

from ..pages import render_index, render_not_found, render_origin, render_runbooks
from .state import STATE

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


async def index_page(request: web.Request) -> web.Response:
    """`/?q=&verdict=all|failing|compatible|pending&sort=name|verdict|expiry|last&desc=1`."""
    state = request.app[STATE]
    states = state.store.snapshot()
    render = functools.partial(
        render_index,
        states,
        dict(request.query),
        shard=state.shard,
        configured=len(state.config.origins),
    )
    return _html(await asyncio.get_running_loop().run_in_executor(None, render))


async def origin_page(request: web.Request) -> web.Response:
    """`/origin/<name>`; the name is percent-decoded and may contain `/`."""
    store = request.app[STATE].store
    name = request.match_info["name"]
    state = store.state(name)
    loop = asyncio.get_running_loop()
    if state is None:
        body = await loop.run_in_executor(None, render_not_found, name)
        return _html(body, status=404)
    render = functools.partial(
        render_origin, state, store.history(name), store.history(name, failures=True)
    )
    return _html(await loop.run_in_executor(None, render))


async def runbooks_page(request: web.Request) -> web.Response:
    """`/docs/alerts`: every alert, what it means and what to do (the alerts link here)."""
    text = await asyncio.get_running_loop().run_in_executor(None, _runbooks)
    return _html(text)


def _runbooks() -> str:
    markdown = resources.files("exporter").joinpath("runbooks/alerts.md").read_text("utf-8")
    return render_runbooks(markdown)
