"""The event loop the exporter runs on: uvloop when it is installed (cheaper per connection,
which is most of a probe's CPU), the standard loop otherwise or when asked
(`ORIGIN_TLS_EXPORTER_LOOP=asyncio`). Measured in docs/performance.md."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

ENVIRONMENT = "ORIGIN_TLS_EXPORTER_LOOP"


def loop_name() -> str:
    """ "uvloop" or "asyncio": what `run` will use."""
    if os.environ.get(ENVIRONMENT, "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, _T]) -> _T:
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
