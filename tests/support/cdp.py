"""Headless Chromium driven over the DevTools protocol, for what `--dump-dom` cannot tell:
the layout (does a page fit a 420 px screen?). Loopback only; one browser per context."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class DevToolsBrowser:
    def __init__(self, executable: str, profile: Path) -> None:
        self.executable, self.profile = executable, profile
        self._process: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def _port(self, timeout: float = 30) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def layout(self, url: str, width: int, height: int = 900) -> dict[str, Any]:
        """The page's scroll width and the widest element sticking out, at `width` px."""
        return asyncio.run(self._layout(url, width, height))

    async def _layout(self, url: str, width: int, height: int) -> dict[str, Any]:
        port = self._port()
        async with aiohttp.ClientSession() as session:
            async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as answer:
                target = json.loads(await answer.text())
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await self._call(
                    ws,
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=True,
                )
                await self._call(ws, "Page.enable")
                await self._call(ws, "Page.navigate", url=url)
                await self._until(ws, "Page.loadEventFired")
                result = await self._call(
                    ws,
                    "Runtime.evaluate",
                    expression=_MEASURE,
                    returnByValue=True,
                )
                return dict(result["result"]["value"])

    async def _call(self, ws: aiohttp.ClientWebSocketResponse, method: str, **params: Any) -> Any:
        ident = next(self._ids)
        await ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def _until(self, ws: aiohttp.ClientWebSocketResponse, event: str) -> None:
        while True:
            message = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if message.get("method") == event:
                return


_MEASURE = """(() => {
  const width = document.documentElement.clientWidth;
  let widest = null, right = 0;
  for (const el of document.querySelectorAll('body *')) {
    let clipped = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
    }
    const r = el.getBoundingClientRect();
    if (!clipped && r.right > right) { right = r.right; widest = el.tagName + '.' + el.className; }
  }
  return {clientWidth: width, scrollWidth: document.documentElement.scrollWidth,
          widestRight: right, widest: widest};
})()"""
