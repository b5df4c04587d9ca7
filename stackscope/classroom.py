"""A classroom in the browser: `demo --serve` and `replay --serve` through textual-serve.

textual-serve runs one app process per websocket, so every trainee gets a dashboard (and,
for the demo, an embedded stack) of their own. It has no authentication, no cap on the
processes it starts and lists /static, so this wraps it: the aiohttp application is built
here from the Server's public handlers (the page, the websocket, the static files without
a directory listing, no download route), a cap refuses sessions beyond `max_sessions`,
the Host and Origin of every request are checked (a web page the trainee visits must not
open a session through their browser, nor a DNS-rebinding name reach a loopback
classroom), and the terminal size a browser asks for is bounded. The listen address obeys
the loopback rule of `export` (listen.py).

The command a session runs is an argv list joined with shlex.join: textual-serve hands it
to a shell, and a recording's file name is user text.

Only `--serve` imports this module: textual-serve and aiohttp are an optional extra.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shlex
import signal
from collections.abc import Sequence

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server
from yarl import URL

from stackscope.launch import python_command

DEFAULT_MAX_SESSIONS = 20
# A terminal size a browser may ask for: a bigger one costs the session's app memory and time
COLUMNS, ROWS = (20, 500), (5, 200)
FULL_CODE = 1013  # websocket close code "try again later"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def session_command(argv: Sequence[str]) -> str:
    """The shell command a session runs: this Python running this stackscope with `argv`
    (launch.py: never a `stackscope/` of the server's current directory), each word
    quoted (textual-serve runs the command through `sh -c`)."""
    return shlex.join(python_command("stackscope", *argv))


def _clamp(text: str | None, bounds: tuple[int, int], default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        value = default
    return max(bounds[0], min(bounds[1], value))


def _authority(url: URL) -> tuple[str, int | None]:
    return (url.host or "").lower().strip("[]"), url.port


class Classroom(Server):
    """textual-serve's Server with a session cap, request checks and no directory listing."""

    def __init__(
        self, argv: Sequence[str], *, host: str, port: int, title: str, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(session_command(argv), host=host, port=port, title=title, public_url=f"http://{shown}:{port}")
        self.max_sessions = max_sessions
        self.loopback = ipaddress.ip_address(host).is_loopback
        self.sessions: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ the rules

    def refusal(self, request: web.Request) -> str | None:
        """Why this request may not see the page or start a session (None: it may)."""
        host = _authority(URL(f"http://{request.host}"))
        if self.loopback and host[0] not in LOOPBACK_NAMES:
            return f"this classroom answers only on loopback names, not {host[0]!r}"
        origin = request.headers.get("Origin")
        if origin is not None and _authority(URL(origin)) != host:
            return "a page from another site may not open a session"
        return None

    def full(self) -> str | None:
        if len(self.sessions) >= self.max_sessions:
            # short: it is also a websocket close reason (at most 123 bytes)
            return (
                f"classroom full: {self.max_sessions} sessions in use; try later or ask the trainer for --max-sessions"
            )
        return None

    # ------------------------------------------------------------------ the handlers

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        problem = self.refusal(request)
        if problem:
            return web.Response(status=403, text=f"stackscope classroom: {problem}\n")
        problem = self.full()
        if problem:
            return web.Response(status=503, text=f"stackscope classroom: {problem}\n", headers={"Retry-After": "30"})
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        problem = self.refusal(request)
        if problem:
            raise web.HTTPForbidden(text=f"stackscope classroom: {problem}\n")
        problem = self.full()
        if problem:
            # a websocket closed with the reason: a browser's page shows "Session ended"
            # (the page itself already says "full" when it is loaded at the cap)
            websocket = web.WebSocketResponse()
            await websocket.prepare(request)
            await websocket.close(code=FULL_CODE, message=problem.encode()[:123])
            return websocket
        query = request.rel_url.query
        sized = request.rel_url.update_query(
            width=_clamp(query.get("width"), COLUMNS, 80), height=_clamp(query.get("height"), ROWS, 24)
        )
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        try:
            return await super().handle_websocket(request.clone(rel_url=sized))
        finally:
            self.sessions.discard(task)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its logo and the command here: not for us."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Stopping the classroom ends every session (each handler stops its app process)."""
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=10)

    # ------------------------------------------------------------------ serving

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get("/ws", self.handle_websocket, name="websocket"),
                web.static("/static", self.statics_path, show_index=False, name="static"),
            ]
        )
        app.on_shutdown.append(self.on_shutdown)
        return app

    async def start(self) -> web.AppRunner:
        """Listen (port 0: any free port, then public_url names the real one)."""
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = runner.addresses[0][1]
            shown = f"[{self.host}]" if ":" in self.host else self.host
            self.public_url = f"http://{shown}:{self.port}"
        return runner

    def run(self) -> int:
        """Serve until SIGINT, SIGTERM or SIGHUP (exit 0)."""

        async def main() -> None:
            try:
                runner = await self.start()
            except OSError as exc:
                raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
                loop.add_signal_handler(sig, stop.set)
            print(
                f"stackscope: classroom on {self.public_url}/ — one session per browser tab, at most "
                f"{self.max_sessions}; Ctrl-C stops it",
                flush=True,
            )
            try:
                await stop.wait()
            finally:
                await runner.cleanup()

        _quiet_logging()
        asyncio.run(main())
        return 0


class _OneLine(logging.Formatter):
    """textual-serve logs a browser's malformed message with its traceback: one line here."""

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        what = f"{type(error).__name__}: {error}" if error is not None else record.getMessage()
        return f"stackscope: classroom: a session ended: {what!r}"[:300]


def _quiet_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    log = logging.getLogger("textual-serve")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.WARNING)


class ServeError(Exception):
    """The classroom cannot start (its port is taken)."""
