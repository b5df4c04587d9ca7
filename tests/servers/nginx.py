"""nginx on loopback with a generated config."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until


class Nginx:
    """Runs nginx with `servers` (text inside http {}) in its own prefix directory.

    Use `{port}` style placeholders resolved by the caller; `ports` lists the ports the
    config listens on, all of which must accept connections before start() returns.
    """

    def __init__(self, workdir: Path, http_block: str, ports: list[int]) -> None:
        self.binary = require_binary("nginx", "/usr/sbin/nginx")
        self.workdir = workdir
        self.ports = ports
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(self.render(http_block))
        self.process = Process("nginx", workdir)

    def render(self, http_block: str) -> str:
        w = self.workdir
        return f"""
daemon off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    default_type text/plain;
{http_block}
}}
"""

    def start(self) -> Nginx:
        test = subprocess.run(
            [self.binary, "-t", "-p", str(self.workdir), "-c", str(self.conf), "-e", str(self.workdir / "error.log")],
            capture_output=True,
            text=True,
        )
        if test.returncode != 0:
            raise RuntimeError(f"nginx config rejected:\n{test.stderr}\n{self.conf.read_text()}")
        self.process.spawn(
            [self.binary, "-p", str(self.workdir), "-c", str(self.conf), "-e", str(self.workdir / "error.log")]
        )
        for port in self.ports:
            wait_until(lambda port=port: port_open(port), 10, f"nginx on {LOOPBACK}:{port}", self.process.died)
        return self

    def reload(self, http_block: str) -> None:
        self.conf.write_text(self.render(http_block))
        self.process.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.process.stop(signal.SIGQUIT)


def new_port() -> int:
    return free_port()
