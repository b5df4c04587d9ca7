"""A real request path on 127.0.0.1 for the dashboard's tests: dnsmasq for the name,
nginx as the load balancer, a second nginx as three auth backends (so the backends can
be stopped while the LB keeps running) and a TCP listener as the database."""

from __future__ import annotations

import html
import re
import socket
import time
from pathlib import Path

from tests.servers.base import LOOPBACK, free_port
from tests.servers.dnsmasq import Dnsmasq
from tests.servers.nginx import Nginx

NAME = "auth.stackscope.test"


class LoopbackStack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = {k: free_port() for k in ("lb", "b1", "b2", "b3")}
        self.backends: Nginx | None = None
        self.lb: Nginx | None = None
        self.dns: Dnsmasq | None = None
        self.db: socket.socket | None = None

    def start(self) -> LoopbackStack:
        p = self.ports
        backends = "\n".join(
            f"""
    server {{
        listen 127.0.0.1:{p[f"b{i}"]};
        location /health {{ add_header X-Served-By auth-{i} always; return 200 "ok\\n"; }}
    }}"""
            for i in (1, 2, 3)
        )
        self.backends = Nginx(self.workdir / "backends", backends, [p["b1"], p["b2"], p["b3"]]).start()
        lb = f"""
    upstream auth_servers {{
        server 127.0.0.1:{p["b1"]};
        server 127.0.0.1:{p["b2"]};
        server 127.0.0.1:{p["b3"]};
    }}
    server {{
        listen 127.0.0.1:{p["lb"]};
        location / {{ proxy_pass http://auth_servers; }}
    }}"""
        self.lb = Nginx(self.workdir / "lb", lb, [p["lb"]]).start()
        self.dns = Dnsmasq(self.workdir / "dns", {NAME: LOOPBACK}).start()
        self.db = socket.socket()
        self.db.bind((LOOPBACK, 0))
        self.db.listen(64)
        p["db"] = self.db.getsockname()[1]
        p["dns"] = self.dns.port
        return self

    def stop(self) -> None:
        for server in (self.lb, self.backends, self.dns):
            if server is not None:
                server.stop()
        if self.db is not None:
            self.db.close()

    def stop_backends(self) -> None:
        assert self.backends is not None
        self.backends.stop()

    def layout_yaml(self, *, interval: str = "1s", timeout: str = "1s") -> str:
        p = self.ports
        return f"""\
name: auth-e2e
interval: {interval}
timeout: {timeout}
resolver: 127.0.0.1:{p["dns"]}
layers:
  - name: DNS
    role: dns
    checks:
      - dns: {NAME}
        expect: [127.0.0.1]
  - name: Load balancer
    role: lb
    checks:
      - http: http://{NAME}:{p["lb"]}/health
        name: lb-health
        expect_status: 200
  - name: Auth backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{p["b1"]}/health", name: auth-1}}
      - {{http: "http://127.0.0.1:{p["b2"]}/health", name: auth-2}}
      - {{http: "http://127.0.0.1:{p["b3"]}/health", name: auth-3}}
  - name: Database
    role: db
    checks:
      - {{tcp: "127.0.0.1:{p["db"]}", name: postgres}}
"""


class StoryClock:
    """A walkthrough's clock, moved by the test (the stack and probes run in real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def walkthrough_app(stack, name: str):
    """A blind walkthrough of the shipped `name` on `stack`, on a clock the test moves:
    (app, controller, clock)."""
    from stackscope.demo.walkthrough import builtin_walkthroughs, load_walkthrough
    from stackscope.tui.training import DemoApp, DemoController

    clock = StoryClock()
    controller = DemoController(stack, load_walkthrough(builtin_walkthroughs()[name]), clock=clock)
    return DemoApp(controller, blind=True), controller, clock


def screen_text(app) -> str:
    """What the screen shows: the SVG screenshot's text, tags stripped and entities
    decoded; "" while a widget the app just replaced is still in the compositor's last map
    (Textual's screenshot then raises NoScreen until the next refresh): poll again."""
    from textual.dom import NoScreen

    try:
        svg = app.export_screenshot()
    except NoScreen:
        return ""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def screen_showing(pilot, app, text: str, what: str, timeout: float = 20.0) -> str:
    """The screen's text once a screenshot could be taken and it shows `text` ("": any)."""
    seen = [""]

    def shows() -> bool:
        seen[0] = screen_text(app)
        return bool(seen[0]) and text in seen[0]

    await until(pilot, shows, what, timeout)
    return seen[0]


async def until(pilot, predicate, what: str, timeout: float = 20.0) -> None:
    """Let the app run until `predicate()` holds; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
