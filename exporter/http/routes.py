"""The application: every route, and basic auth in front of all of them."""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import api, page_handlers
from .state import STATE, Handler, WebState


def build_app(state: WebState) -> web.Application:
    app = web.Application(middlewares=[basic_auth])
    app[STATE] = state
    app.router.add_get("/", page_handlers.index_page)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/probe", api.probe)
    app.router.add_get("/-/healthy", api.healthy)
    app.router.add_get("/-/ready", api.ready)
    app.router.add_route("*", "/-/reload", api.reload)
    app.router.add_get("/api/v1/origins", api.origins_json)
    app.router.add_get("/api/v1/origins/{name}", api.origin_json)
    app.router.add_get("/origin/{name:.+}", page_handlers.origin_page)
    app.router.add_get("/config", api.config_view)
    app.router.add_get("/docs/alerts", page_handlers.runbooks_page)
    return app


@web.middleware
async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every endpoint behind `basic_auth_users` when the web config has any (exporter-toolkit)."""
    web_config = request.app[STATE].web_config
    if web_config is not None and web_config.auth_required:
        header = request.headers.get("Authorization")
        loop = asyncio.get_running_loop()
        # bcrypt takes tens of milliseconds on a cache miss: not on the event loop.
        allowed = await loop.run_in_executor(None, web_config.check_authorization, header)
        if not allowed:
            raise web.HTTPUnauthorized(
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="origin-tls-exporter"'},
            )
    return await handler(request)
