"""A real HAProxy stack on loopback whose parts can be broken one by one: three backend
processes (each its own process, so one can be killed or stopped with SIGSTOP), HAProxy
in front with `inter 1s fall 2`, Redis and dnsmasq. Used by the verdict tests and by
bench/time_to_verdict.py. Faults are injected by the stack's own set-up code (signals, the
Runtime API's `set server … addr`); stackscope itself never writes anything.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, wait_until
from .dbs import Redis
from .dnsmasq import Dnsmasq
from .haproxy import Haproxy

BACKEND = """
import http.server, math, random, sys, time
name = sys.argv[2]
jitter = len(sys.argv) > 3 and sys.argv[3] == "jitter"
def delay():
    # log-normal (median 14 ms, sigma 1.3) truncated to 1-200 ms: a heavy-tailed backend
    for _ in range(100):
        ms = random.lognormvariate(math.log(14), 1.3)
        if 1 <= ms <= 200:
            return ms / 1000
    return 0.2
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if jitter:
            time.sleep(delay())
        body = b"ok\\n"
        self.send_response(200)
        self.send_header("X-Served-By", name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class Backend:
    """`jitter`: answer after a random delay, log-normal between 1 and 200 ms."""

    def __init__(self, workdir: Path, name: str, port: int, *, jitter: bool = False) -> None:
        self.name, self.port, self.jitter = name, port, jitter
        self.process = Process(name, workdir)
        self.script = workdir / "backend.py"
        self.script.write_text(BACKEND)

    def start(self) -> Backend:
        argv = [sys.executable, str(self.script), str(self.port), self.name]
        self.process.spawn(argv + (["jitter"] if self.jitter else []))
        wait_until(lambda: port_open(self.port), 10, f"{self.name} on {LOOPBACK}:{self.port}", self.process.died)
        return self

    def kill(self) -> None:
        self.process.stop(signal.SIGKILL)

    def pause(self) -> None:
        assert self.process.proc is not None
        os.killpg(self.process.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process.proc is not None
        os.killpg(self.process.proc.pid, signal.SIGCONT)


class AuthStack:
    """Three backends behind HAProxy (`inter 1s fall 2 rise 1`), Redis, and dnsmasq."""

    def __init__(
        self, *, dns: bool = True, redis: bool = True, interval: str = "2s", timeout: str = "1s", jittery: int = 0
    ) -> None:
        """`jittery`: how many backends (the last ones) answer after a log-normal 1-200 ms delay."""
        self.dir = Path(tempfile.mkdtemp(prefix="stackscope-authstack-"))
        self.ports = [free_port() for _ in range(3)]
        self.backends = [
            Backend(self.dir, f"auth-{i + 1}", port, jitter=i >= 3 - jittery) for i, port in enumerate(self.ports)
        ]
        self.frontend, self.stats = free_port(), free_port()
        self.decoy_port = free_port()  # where a misroute sends the pool: nothing listens
        self.interval, self.timeout = interval, timeout
        servers = "\n".join(
            f"    server s{i + 1} 127.0.0.1:{port} check inter 1s fall 2 rise 1" for i, port in enumerate(self.ports)
        )
        body = f"""
frontend stats
    bind 127.0.0.1:{self.stats}
    stats enable
    stats uri /stats
    stats show-legends
frontend web
    bind 127.0.0.1:{self.frontend}
    default_backend auth_servers
backend auth_servers
    timeout server 5s
    option httpchk GET /health
{servers}
"""
        self.haproxy = Haproxy(self.dir / "haproxy", body, [self.frontend, self.stats])
        self.redis = Redis() if redis else None
        self.dnsmasq = Dnsmasq(self.dir / "dns", {"auth.stackscope.test": LOOPBACK}) if dns else None

    def start(self) -> AuthStack:
        for backend in self.backends:
            backend.start()
        self.haproxy.start()
        self.settle({"s1": "UP", "s2": "UP", "s3": "UP"})
        if self.redis is not None:
            self.redis.start()
        if self.dnsmasq is not None:
            self.dnsmasq.start()
        return self

    def settle(self, expect: dict[str, str], timeout: float = 15) -> None:
        wait_until(lambda: self.haproxy.server_states("auth_servers") == expect, timeout, f"haproxy pool {expect}")

    def misroute(self) -> None:
        """Point every server of the pool elsewhere through the Runtime API (set-up only)."""
        for i in range(3):
            self.haproxy.admin(f"set server auth_servers/s{i + 1} addr 127.0.0.1 port {self.decoy_port}")

    def unmisroute(self) -> None:
        for i, port in enumerate(self.ports):
            self.haproxy.admin(f"set server auth_servers/s{i + 1} addr 127.0.0.1 port {port}")

    def layout(self) -> str:
        rows = "\n".join(
            f'      - {{http: "http://127.0.0.1:{port}/health", name: auth-{i + 1}, identity_header: X-Served-By}}'
            for i, port in enumerate(self.ports)
        )
        dns = ""
        if self.dnsmasq is not None:
            dns = f"""  - name: DNS
    role: dns
    checks:
      - {{dns: auth.stackscope.test, server: "127.0.0.1:{self.dnsmasq.port}", expect: [127.0.0.1], name: dns}}
"""
        cache = ""
        if self.redis is not None:
            cache = f"""  - name: Cache
    role: cache
    checks:
      - {{redis: "127.0.0.1:{self.redis.port}", name: redis}}
"""
        return f"""\
name: authstack
interval: {self.interval}
timeout: {self.timeout}
layers:
{dns}  - name: Load balancer
    role: lb
    checks:
      - {{http: "http://127.0.0.1:{self.frontend}/health", name: frontend, identity_header: X-Served-By}}
      - {{haproxy: "unix:{self.haproxy.admin_socket}", name: pool, backend: auth_servers}}
  - name: Auth backends
    role: backend
    checks:
{rows}
{cache}"""

    def stop(self) -> None:
        for backend in self.backends:
            try:
                backend.resume()
            except (AssertionError, ProcessLookupError):
                pass
            backend.process.stop()
        self.haproxy.stop()
        if self.redis is not None:
            self.redis.remove()
        if self.dnsmasq is not None:
            self.dnsmasq.stop()
