"""A real headless Chromium (Debian's `chromium`) driven over its DevTools protocol, for
the classroom tests and docs/make_classroom_screenshot.py.

Chromium starts with --remote-debugging-port=0 in a temp profile and writes the port it
chose to DevToolsActivePort there; the page target's websocket then takes commands
(aiohttp's client: it comes with textual-serve). The dashboard is drawn on a canvas, so
what it shows is read from the websocket frames the page receives (Network events): the
same bytes xterm.js draws. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # needed as root (CI containers)
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class Chromium:
    """`async with Chromium(width, height) as page:` a blank page ready for commands."""

    def __init__(self, width: int = 1280, height: int = 800, start_seconds: float = 30.0) -> None:
        self.size = (width, height)
        self.start_seconds = start_seconds
        self.received = bytearray()  # every websocket frame the page received, in order
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._events: dict[str, list[asyncio.Queue]] = {}

    async def __aenter__(self) -> Chromium:
        if not os.path.exists(CHROMIUM):
            raise RuntimeError("these tests need Debian's chromium (apt-get install chromium; .ci/run installs it)")
        self._profile = tempfile.mkdtemp(prefix="stackscope-chromium-")
        width, height = self.size
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = await self._devtools_port()
            self._http = aiohttp.ClientSession()
            async with self._http.get(f"http://127.0.0.1:{port}/json/list") as listing:
                targets = await listing.json()
            page = next(t for t in targets if t.get("type") == "page")
            self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
            self._reader = asyncio.create_task(self._read())
            await self.send("Page.enable")
            await self.send("Network.enable")
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.cancel()
        if getattr(self, "_ws", None) is not None:
            await self._ws.close()
        if getattr(self, "_http", None) is not None:
            await self._http.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

    async def _devtools_port(self) -> int:
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode} before it listened")
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            await asyncio.sleep(0.05)
        raise RuntimeError(f"chromium wrote no DevToolsActivePort within {self.start_seconds} s")

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Network.webSocketFrameReceived":
                response = params["response"]
                payload = response["payloadData"]
                self.received += base64.b64decode(payload) if response["opcode"] == 2 else payload.encode()
            for queue in self._events.get(method, []):
                queue.put_nowait(params)

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict:
        self._next_id += 1
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send_str(json.dumps({"id": self._next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str, timeout: float = 30.0) -> None:
        loaded: asyncio.Queue = asyncio.Queue()
        self._events.setdefault("Page.loadEventFired", []).append(loaded)
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded.get(), timeout)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def shown(self) -> str:
        """What the app sent the page so far (escape sequences included)."""
        return self.received.decode("utf-8", "replace")

    async def wait_for_text(self, text: str, timeout: float = 30.0, since: int = 0) -> None:
        """Until `text` arrived in the frames after byte `since`."""
        deadline = time.monotonic() + timeout
        while text not in self.received[since:].decode("utf-8", "replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not receive {text!r} within {timeout} s")
            await asyncio.sleep(0.05)

    async def press(self, key: str) -> None:
        """A printable key, typed into the focused terminal as a keyboard would."""
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {"type": kind, "key": key}
            if kind == "keyDown":
                params["text"] = key
            await self.send("Input.dispatchKeyEvent", **params)

    async def screenshot(self, path: Path) -> None:
        result = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
