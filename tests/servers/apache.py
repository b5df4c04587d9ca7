"""Apache httpd 2.4 (Debian) on loopback as a mod_proxy_balancer LB, with a generated config.

It runs in the foreground (`-DFOREGROUND`) from its own temp directory: PidFile,
ErrorLog, DefaultRuntimeDir (slotmem files) and mutexes all live there. Run as root, its
children switch to nobody/nogroup (httpd refuses to serve as root), so the directory is
world-readable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until

MODULES = "/usr/lib/apache2/modules"
LOADED = (
    "mpm_event",
    "authz_core",
    "authz_host",
    "headers",
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "proxy_hcheck",
    "lbmethod_byrequests",
    "slotmem_shm",
    "status",
)

# one worker row of the manager page: the worker URL link, then Route, RouteRedir,
# Factor, Set and Status cells (a regex of our own, so the fixture does not lean on the
# parser under test)
_ROW = re.compile(
    r">((?:https?|unix)[^<]*)</a></td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>"
)


def apache_binary() -> str:
    return require_binary("apache2", "/usr/sbin/apache2")


def preamble(workdir: Path, port: int) -> str:
    """Everything but the pools: httpd needs these to start unprivileged from workdir."""
    lines = [
        f'ServerRoot "{workdir}"',
        "ServerName 127.0.0.1",
        f"Listen {LOOPBACK}:{port}",
        f'PidFile "{workdir}/httpd.pid"',
        f'ErrorLog "{workdir}/error.log"',
        "LogLevel warn",
        f'DefaultRuntimeDir "{workdir}"',
        f'Mutex "file:{workdir}" default',
        "StartServers 1",
        "ServerLimit 1",
        "ThreadLimit 16",
        "ThreadsPerChild 16",
        "MinSpareThreads 1",
        "MaxSpareThreads 16",
        "MaxRequestWorkers 16",
    ]
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    lines += [f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in LOADED]
    return "\n".join(lines) + "\n"


MANAGER = """
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
ProxyPass "/balancer-manager" "!"
"""


class Apache:
    """httpd with `body` (pools, ProxyPass lines) after a preamble that makes it run from
    its own directory, plus the balancer-manager at /balancer-manager."""

    def __init__(self, body: str, name: str = "apache") -> None:
        self.binary = apache_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"stackscope-{name}-"))
        os.chmod(self.workdir, 0o755)
        self.port = free_port()
        self.conf = self.workdir / "httpd.conf"
        self.conf.write_text(preamble(self.workdir, self.port) + MANAGER + body)
        self.process = Process("apache", self.workdir)
        self.manager_url = f"http://{LOOPBACK}:{self.port}/balancer-manager"

    def check_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-t", "-f", str(self.conf)], capture_output=True, text=True)

    def start(self) -> Apache:
        test = self.check_config()
        if test.returncode != 0:
            raise RuntimeError(f"apache config rejected:\n{test.stderr}\n{self.conf.read_text()}")
        self.process.spawn([self.binary, "-f", str(self.conf), "-DFOREGROUND"])
        wait_until(lambda: port_open(self.port), 15, f"apache on {LOOPBACK}:{self.port}", self._died)
        return self

    def _died(self) -> str | None:
        reason = self.process.died()
        if reason:
            try:
                reason += "\n" + (self.workdir / "error.log").read_text(errors="replace")[-3000:]
            except OSError:
                pass
        return reason

    def page(self) -> str:
        with urllib.request.urlopen(self.manager_url, timeout=5) as response:  # a plain GET, as the probe does
            return response.read().decode("utf-8", "replace")

    def worker_status(self) -> dict[str, str]:
        """{worker URL: Status cell} from the manager page, for polling until the health
        checks agree with a scenario."""
        try:
            text = self.page()
        except OSError:
            return {}
        return {url: " ".join(status.split()) for url, status in _ROW.findall(text)}

    def stop(self) -> None:
        try:
            self.process.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
