"""`Runtime.apply` is the one writer of what the exporter serves: scheduler, store and web state."""

from __future__ import annotations

import asyncio

from exporter.config import ExporterConfig, OriginConfig
from exporter.runtime import Runtime
from tests.servers import closed_port


async def _no_reload() -> tuple[bool, str]:
    return True, "unused"


def _config(*names: str) -> ExporterConfig:
    port = closed_port()
    origins = tuple(
        OriginConfig(name=n, host="127.0.0.1", port=port, interval=3600.0, timeout=1.0)
        for n in names
    )
    return ExporterConfig(source="test", origins=origins)


def test_apply_swaps_origins_store_and_web_state_together() -> None:
    async def run() -> None:
        runtime = Runtime.create(_config("a", "b"), _no_reload)
        await runtime.start()
        try:
            assert [o.name for o in runtime.web.config.origins] == ["a", "b"]
            assert [s.config.name for s in runtime.store.snapshot()] == ["a", "b"]
            assert runtime.apply(_config("b", "c")) == 2
            assert [o.name for o in runtime.web.config.origins] == ["b", "c"]
            assert [s.config.name for s in runtime.store.snapshot()] == ["b", "c"]
            assert runtime.listed.origins == runtime.web.config.origins
            # A callback from discovery re-applies the file as last loaded, unchanged here.
            runtime.discovered(())
            assert [o.name for o in runtime.web.config.origins] == ["b", "c"]
            # The probes themselves ran (a closed port): one judgment each, told to the views.
            for _ in range(300):  # the first probe starts within 5 s (random phase)
                if all(s.latest for s in runtime.store.snapshot()):
                    break
                await asyncio.sleep(0.05)
            states = runtime.store.snapshot()
            assert all(s.latest is not None and not s.latest.compatible for s in states)
            assert b'origin="c"' in runtime.collector.render()
        finally:
            await runtime.stop()

    asyncio.run(run())
