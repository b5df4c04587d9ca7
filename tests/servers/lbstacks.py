"""The same stack behind each real load balancer, whose parts can be broken one by one: three
backend processes (each its own process, so one can be killed, stopped with SIGSTOP or made
to answer 500), an LB in front (HAProxy, nginx, Apache httpd, Caddy or Varnish), Redis and
dnsmasq, all on 127.0.0.1. Used by the verdict tests and bench/time_to_verdict.py.

Every fault and every repair is done by this set-up code (signals, a flag file, the LB's
own admin interface or a config reload); stackscope itself never writes anything.

Each LB runs health-check settings typical of production-but-fast:

- HAProxy  `check inter 1s fall 2 rise 1` (active)
- nginx    `max_fails=1 fail_timeout=2s` (passive: open-source nginx has no active check)
- Apache   `retry=1 timeout=1` and mod_proxy_hcheck `hcinterval=1 hcpasses=1 hcfails=1`
- Caddy    active `interval 1s timeout 1s` on /health and passive `fail_duration 2s`, round-robin
- Varnish  probe `.interval = 0.5s; .timeout = 1s; .window = 3; .threshold = 2`, round-robin

The LBs' own wait for a member's answer (nginx proxy connect/read timeouts, Caddy's dial and
response-header timeouts, Varnish's connect and first-byte timeouts) is half the probes'
timeout (at least 500 ms): a request through the LB to a hung member fails on the LB's side,
and counts against that member, before the probe gives up on it.

`members_back()` says when the LB has taken every member back after a repair. Where the LB
publishes its members' state it is read (HAProxy's stats, Apache's balancer-manager,
Varnish's backend.list). Caddy 2.6 does not publish its active checks' results and nginx
(passive) publishes nothing: there the documented re-admission window must have passed
since the repair (protocols.md §3d: Caddy one health interval + the check's timeout, and
its passive `fails` back to 0; nginx `fail_timeout` + 1 s, its clock counting whole
seconds) and then every member must serve a request sent through the LB (bounded: a few
requests; for nginx such a request is what takes a member back, as users' traffic would).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, wait_until
from .dbs import Redis
from .dnsmasq import Dnsmasq

BACKEND = """
import http.server, math, os, random, sys, time
name, flag = sys.argv[2], sys.argv[3]
jitter = len(sys.argv) > 4 and sys.argv[4] == "jitter"
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
        failing = os.path.exists(flag)  # the set-up code's switch: answer 500 while it exists
        body = b"error\\n" if failing else b"ok\\n"
        self.send_response(500 if failing else 200)
        self.send_header("X-Served-By", name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def seconds(duration: str) -> float:
    """'2s' or '800ms' (the layouts' durations this module writes) in seconds."""
    return float(duration[:-2]) / 1000 if duration.endswith("ms") else float(duration.rstrip("s"))


class Backend:
    """`jitter`: answer after a random delay, log-normal between 1 and 200 ms."""

    def __init__(self, workdir: Path, name: str, port: int, *, jitter: bool = False) -> None:
        self.name, self.port, self.jitter = name, port, jitter
        self.process = Process(name, workdir)
        self.script = workdir / "backend.py"
        self.script.write_text(BACKEND)
        self.flag = workdir / f"{name}.error"

    def start(self) -> Backend:
        argv = [sys.executable, str(self.script), str(self.port), self.name, str(self.flag)]
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

    def fail(self) -> None:
        """Answer 500 to every request (the process stays up and fast)."""
        self.flag.touch()

    def heal(self) -> None:
        self.flag.unlink(missing_ok=True)


def served_by(port: int, path: str = "/health", timeout: float = 2) -> str | None:
    """One GET through the LB (set-up code): the X-Served-By of a 200, else None."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.getheader("X-Served-By") if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


class LbStack:
    """Three backends behind one LB, Redis and dnsmasq. Subclasses start the LB, write its
    checks in the layout, and misroute, take a member out (maintenance) and read the LB's
    state with the LB's own means."""

    kind = "lb"
    can_maintain = True  # whether the LB has an operator's "take this member out"
    readmission = ""  # how members_back() decides, for the bench's output

    def __init__(self, *, dns: bool = True, redis: bool = True, interval: str = "2s", timeout: str = "2s") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"stackscope-{self.kind}stack-"))
        os.chmod(self.dir, 0o755)  # Apache's children may run as nobody
        self.ports = [free_port() for _ in range(3)]
        self.backends = [Backend(self.dir, f"auth-{i + 1}", port) for i, port in enumerate(self.ports)]
        self.frontend = free_port()
        self.decoy_port = free_port()  # where a misroute sends the pool: nothing listens
        self.interval, self.timeout = interval, timeout
        # the LB's own wait for a member's answer: half the probe's, so a request through the
        # LB to a hung member ends (and counts as the member's failure) before the probe gives up
        self.upstream_ms = max(500, int(seconds(timeout) * 500))
        self.redis = Redis() if redis else None
        self.dnsmasq = Dnsmasq(self.dir / "dns", {"auth.stackscope.test": LOOPBACK}) if dns else None
        self.repaired_at = 0.0  # monotonic time of the last repair (for the windows of passive LBs)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> LbStack:
        for backend in self.backends:
            backend.start()
        self.start_lb()
        wait_until(self.members_in_now, 20, f"{self.kind}: every member in")
        if self.redis is not None:
            self.redis.start()
        if self.dnsmasq is not None:
            self.dnsmasq.start()
        return self

    def stop(self) -> None:
        for backend in self.backends:
            try:
                backend.resume()
            except (AssertionError, ProcessLookupError):
                pass
            backend.process.stop()
        self.stop_lb()
        if self.redis is not None:
            self.redis.remove()
        if self.dnsmasq is not None:
            self.dnsmasq.stop()

    def start_lb(self) -> None:
        raise NotImplementedError

    def stop_lb(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ faults (set-up code)

    def misroute(self) -> None:
        raise NotImplementedError

    def unmisroute(self) -> None:
        raise NotImplementedError

    def maintain(self, index: int = 1) -> None:
        raise NotImplementedError

    def unmaintain(self, index: int = 1) -> None:
        raise NotImplementedError

    def mark_repaired(self) -> None:
        self.repaired_at = time.monotonic()

    # ------------------------------------------------------------------ the LB's state

    def members_in_now(self) -> bool:
        """The LB's own state says every member is in (or, without one, requests show it)."""
        raise NotImplementedError

    def window(self) -> float:
        """Seconds after a repair before the LB can have taken a member back (passive LBs)."""
        return 0.0

    def members_back(self) -> bool:
        return time.monotonic() - self.repaired_at >= self.window() and self.members_in_now()

    def taken_out(self, index: int = 1) -> bool:
        """The LB has noticed member `index` failing (its state, or a sign in its log)."""
        raise NotImplementedError

    def all_serve(self, tries: int = 9) -> bool:
        """Every member answers a request sent through the LB (at most `tries` requests)."""
        want = {backend.name for backend in self.backends}
        seen: set[str] = set()
        for _ in range(tries):
            name = served_by(self.frontend)
            if name is not None:
                seen.add(name)
            if seen >= want:
                return True
        return False

    # ------------------------------------------------------------------ the layout

    def lb_checks(self) -> str:
        raise NotImplementedError

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
name: {self.kind}stack
interval: {self.interval}
timeout: {self.timeout}
layers:
{dns}  - name: Load balancer
    role: lb
    checks:
      - {{http: "http://127.0.0.1:{self.frontend}/health", name: frontend, identity_header: X-Served-By, samples: 3}}
{self.lb_checks()}
  - name: Auth backends
    role: backend
    checks:
{rows}
{cache}"""


# ----------------------------------------------------------------------------- HAProxy


class HaproxyStack(LbStack):
    kind = "haproxy"
    readmission = "HAProxy's stats: every server UP"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        from .haproxy import Haproxy

        self.stats = free_port()
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

    def start_lb(self) -> None:
        self.haproxy.start()

    def stop_lb(self) -> None:
        self.haproxy.stop()

    def settle(self, expect: dict[str, str], timeout: float = 15) -> None:
        wait_until(lambda: self.haproxy.server_states("auth_servers") == expect, timeout, f"haproxy pool {expect}")

    def misroute(self) -> None:
        """Point every server of the pool elsewhere through the Runtime API (set-up only)."""
        for i in range(3):
            self.haproxy.admin(f"set server auth_servers/s{i + 1} addr 127.0.0.1 port {self.decoy_port}")

    def unmisroute(self) -> None:
        for i, port in enumerate(self.ports):
            self.haproxy.admin(f"set server auth_servers/s{i + 1} addr 127.0.0.1 port {port}")

    def maintain(self, index: int = 1) -> None:
        self.haproxy.admin(f"set server auth_servers/s{index + 1} state maint")

    def unmaintain(self, index: int = 1) -> None:
        self.haproxy.admin(f"set server auth_servers/s{index + 1} state ready")

    def members_in_now(self) -> bool:
        return set(self.haproxy.server_states("auth_servers").values()) == {"UP"}

    def taken_out(self, index: int = 1) -> bool:
        return self.haproxy.server_states("auth_servers").get(f"s{index + 1}", "").startswith("DOWN")

    def lb_checks(self) -> str:
        return f'      - {{haproxy: "unix:{self.haproxy.admin_socket}", name: pool, backend: auth_servers}}'


# ----------------------------------------------------------------------------- nginx


class NginxStack(LbStack):
    kind = "nginx"
    FAIL_TIMEOUT = 2
    readmission = (
        "nginx publishes no member state (passive checks): fail_timeout + 1 s after the repair, "
        "then every member serves a request sent through nginx"
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        from .nginx import Nginx

        self.status_port = free_port()
        self.nginx = Nginx(self.dir / "nginx", self.block(self.ports), [self.frontend, self.status_port])

    def block(self, ports: list[int], down: int | None = None) -> str:
        servers = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout={self.FAIL_TIMEOUT}s"
            f"{' down' if i == down else ''};"
            for i, port in enumerate(ports)
        )
        return f"""
    upstream auth_servers {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.frontend};
        location / {{
            proxy_pass http://auth_servers;
            proxy_connect_timeout {self.upstream_ms}ms;
            proxy_read_timeout {self.upstream_ms}ms;
        }}
    }}
    server {{
        listen 127.0.0.1:{self.status_port};
        location = /nginx_status {{ stub_status; }}
    }}
"""

    def start_lb(self) -> None:
        self.nginx.start()

    def stop_lb(self) -> None:
        self.nginx.stop()

    def _reload(self, block: str) -> None:
        before = self._workers()
        self.nginx.reload(block)
        # the reload is done when the old worker is gone and a new one serves
        wait_until(lambda: not (before & self._workers()) and port_open(self.frontend), 10, "nginx reload")

    def _workers(self) -> set[int]:
        assert self.nginx.process.proc is not None
        parent = self.nginx.process.proc.pid
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    found.add(int(entry.name))
        return found

    def misroute(self) -> None:
        self._reload(self.block([self.decoy_port] * 3))

    def unmisroute(self) -> None:
        self._reload(self.block(self.ports))

    def maintain(self, index: int = 1) -> None:
        self._reload(self.block(self.ports, down=index))

    def unmaintain(self, index: int = 1) -> None:
        self._reload(self.block(self.ports))

    def window(self) -> float:
        return self.FAIL_TIMEOUT + 1.0

    def members_in_now(self) -> bool:
        return self.all_serve()

    def taken_out(self, index: int = 1) -> bool:
        try:
            log = (self.nginx.workdir / "error.log").read_text(errors="replace")
        except OSError:
            return False
        return f"127.0.0.1:{self.ports[index]}" in log and (
            "temporarily disabled" in log or "upstream timed out" in log or "connect() failed" in log
        )

    def lb_checks(self) -> str:
        return (
            f"      - nginx: {self.nginx.conf}\n        name: pool\n        upstream: auth_servers\n"
            f"        status_url: http://127.0.0.1:{self.status_port}/nginx_status"
        )


# ----------------------------------------------------------------------------- Apache


class ApacheStack(LbStack):
    kind = "apache"
    readmission = "Apache's balancer-manager: every member 'Init Ok'"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        from .apache import Apache

        self.apache = Apache(self.body(self.ports), "apachestack")
        self.frontend = self.apache.port

    def body(self, ports: list[int], disabled: int | None = None) -> str:
        lines = "\n".join(
            f'    BalancerMember "http://127.0.0.1:{port}" route=auth{i + 1} retry=1 timeout=1 '
            f"hcmethod=GET hcinterval=1 hcpasses=1 hcfails=1 hcuri=/health{' status=+D' if i == disabled else ''}"
            for i, port in enumerate(ports)
        )
        return (
            f'<Proxy "balancer://auth_servers">\n{lines}\n    ProxySet lbmethod=byrequests\n</Proxy>\n'
            'ProxyPass "/" "balancer://auth_servers/"\n'
        )

    def start_lb(self) -> None:
        self.apache.start()

    def stop_lb(self) -> None:
        self.apache.stop()

    def _reload(self, body: str) -> None:
        from .apache import MANAGER, preamble

        self.apache.conf.write_text(preamble(self.apache.workdir, self.apache.port) + MANAGER + body)
        assert self.apache.process.proc is not None
        os.kill(self.apache.process.proc.pid, signal.SIGUSR1)  # a graceful restart, as `apachectl graceful`
        expect = ports_of(body)
        wait_until(lambda: set(self.apache.worker_status()) == expect, 15, "apache graceful restart")

    def misroute(self) -> None:
        # three members on the same address would be one worker: three decoy ports
        self.decoys = getattr(self, "decoys", None) or [self.decoy_port, free_port(), free_port()]
        self._reload(self.body(self.decoys))

    def unmisroute(self) -> None:
        self._reload(self.body(self.ports))

    def maintain(self, index: int = 1) -> None:
        self._reload(self.body(self.ports, disabled=index))

    def unmaintain(self, index: int = 1) -> None:
        self._reload(self.body(self.ports))

    def members_in_now(self) -> bool:
        status = self.apache.worker_status()
        return len(status) == 3 and set(status.values()) == {"Init Ok"}

    def taken_out(self, index: int = 1) -> bool:
        words = self.apache.worker_status().get(f"http://127.0.0.1:{self.ports[index]}", "").split()
        return "HcFl" in words or "Err" in words

    def lb_checks(self) -> str:
        return f"      - {{apache: {self.apache.manager_url}, name: pool, balancer: auth_servers}}"


def ports_of(body: str) -> set[str]:
    return {line.split('"')[1] for line in body.splitlines() if line.strip().startswith("BalancerMember")}


# ----------------------------------------------------------------------------- Caddy


class CaddyStack(LbStack):
    kind = "caddy"
    can_maintain = False  # Caddy 2.6 has no per-member administrative state: a member is in the config or not
    HEALTH_INTERVAL, HEALTH_TIMEOUT = 1.0, 1.0
    readmission = (
        "Caddy 2.6 does not publish its active checks' results: one health interval + the check's timeout "
        "after the repair, passive fails back to 0, then every member serves a request through Caddy"
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        from .caddy import Caddy

        self.caddy = Caddy(self.dir / "caddy", self.servers(self.ports))

    def servers(self, ports: list[int]) -> dict:
        from .caddy import reverse_proxy

        handler = reverse_proxy(
            ports,
            load_balancing={"selection_policy": {"policy": "round_robin"}},
            health_checks={
                "active": {"uri": "/health", "interval": "1s", "timeout": "1s"},
                "passive": {"fail_duration": "2s", "max_fails": 1},
            },
            transport={
                "protocol": "http",
                "dial_timeout": f"{self.upstream_ms}ms",
                "response_header_timeout": f"{self.upstream_ms}ms",
            },
        )
        return {
            "web": {
                "listen": [f"127.0.0.1:{self.frontend}"],
                "routes": [{"@id": "auth", "handle": [handler]}],
                "automatic_https": {"disable": True},
            }
        }

    def start_lb(self) -> None:
        self.caddy.start()

    def stop_lb(self) -> None:
        self.caddy.stop()

    def _load(self, ports: list[int]) -> None:
        """POST /load with the new config: how an operator (or a deploy) changes Caddy's pool."""
        config = {**self.caddy.config, "apps": {"http": {"servers": self.servers(ports)}}}
        conn = http.client.HTTPConnection(LOOPBACK, self.caddy.admin_port, timeout=10)
        try:
            conn.request("POST", "/load", json.dumps(config), {"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"caddy /load: {response.status} {body[:300]!r}")

    def misroute(self) -> None:
        self._load([self.decoy_port])

    def unmisroute(self) -> None:
        self._load(self.ports)

    def window(self) -> float:
        return self.HEALTH_INTERVAL + self.HEALTH_TIMEOUT

    def members_in_now(self) -> bool:
        try:
            upstreams = self.caddy.upstreams()
        except OSError:
            return False
        if any(item.get("fails", 0) for item in upstreams.values()):
            return False
        return self.all_serve()

    def taken_out(self, index: int = 1) -> bool:
        try:
            return bool(self.caddy.upstreams().get(f"127.0.0.1:{self.ports[index]}", {}).get("fails"))
        except OSError:
            return False

    def lb_checks(self) -> str:
        return f"      - {{caddy: {self.caddy.admin}, name: pool, upstream: '@auth'}}"


# ----------------------------------------------------------------------------- Varnish


class VarnishStack(LbStack):
    kind = "varnish"
    readmission = "Varnish's backend.list: every backend of the active VCL healthy (probe)"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        from .varnish import Varnish

        self.varnish = Varnish(self.dir / "varnish", self.vcl(self.ports))
        self.frontend = self.varnish.http_port
        self.loaded = 0
        self.active = "boot"

    def vcl(self, ports: list[int]) -> str:
        backends = "\n".join(
            f'backend auth{i + 1} {{ .host = "127.0.0.1"; .port = "{port}"; .probe = hc; '
            f".connect_timeout = {self.upstream_ms}ms; .first_byte_timeout = {self.upstream_ms}ms; }}"
            for i, port in enumerate(ports)
        )
        adds = "\n".join(f"    auth_servers.add_backend(auth{i + 1});" for i in range(len(ports)))
        return f"""vcl 4.1;
import directors;

probe hc {{ .url = "/health"; .interval = 0.5s; .timeout = 1s; .window = 3; .threshold = 2; }}

{backends}

sub vcl_init {{
    new auth_servers = directors.round_robin();
{adds}
}}

sub vcl_recv {{
    set req.backend_hint = auth_servers.backend();
    return (pass);
}}
"""

    def start_lb(self) -> None:
        self.varnish.spawn().wait_ready()

    def stop_lb(self) -> None:
        self.varnish.stop()

    def _use(self, ports: list[int]) -> None:
        """vcl.load + vcl.use through varnishadm: how an operator deploys a new VCL."""
        self.loaded += 1
        name = f"v{self.loaded}"
        path = self.varnish.workdir / f"{name}.vcl"
        path.write_text(self.vcl(ports))
        previous = self.active
        self.varnish.admin("vcl.load", name, str(path))
        self.varnish.admin("vcl.use", name)
        self.active = name
        if previous != "boot":
            self.varnish.admin("vcl.discard", previous)

    def misroute(self) -> None:
        self._use([self.decoy_port] * 3)

    def unmisroute(self) -> None:
        self._use(self.ports)

    def maintain(self, index: int = 1) -> None:
        self.varnish.admin("backend.set_health", f"{self.active}.auth{index + 1}", "sick")

    def unmaintain(self, index: int = 1) -> None:
        self.varnish.admin("backend.set_health", f"{self.active}.auth{index + 1}", "auto")

    def _health(self) -> dict[str, tuple[str, str]]:
        return {
            key.split(".", 1)[1]: (value["admin_health"], value["probe_message"][2])
            for key, value in self.varnish.backend_list().items()
            if key.startswith(self.active + ".") and value.get("type") == "backend"
        }

    def members_in_now(self) -> bool:
        health = self._health()
        return len(health) == 3 and set(health.values()) == {("probe", "healthy")}

    def taken_out(self, index: int = 1) -> bool:
        return self._health().get(f"auth{index + 1}", ("", ""))[1] == "sick"

    def lb_checks(self) -> str:
        return (
            f"      - varnish: 127.0.0.1:{self.varnish.admin_port}\n        name: pool\n"
            f"        director: auth_servers\n        secret_file: {self.varnish.secret_path}"
        )


STACKS: dict[str, type[LbStack]] = {
    "haproxy": HaproxyStack,
    "nginx": NginxStack,
    "apache": ApacheStack,
    "caddy": CaddyStack,
    "varnish": VarnishStack,
}
