"""HAProxy (Debian 2.6) on loopback with a generated config and two Runtime API sockets."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until


class Haproxy:
    """Runs haproxy in the foreground with `body` (frontends/backends) after a global
    section that opens an admin unix socket, an operator TCP socket and a user-level
    TCP socket."""

    def __init__(self, workdir: Path, body: str, ports: list[int]) -> None:
        self.binary = require_binary("haproxy", "/usr/sbin/haproxy")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.admin_socket = workdir / "admin.sock"
        self.operator_port = free_port()
        self.user_port = free_port()
        self.ports = ports + [self.operator_port, self.user_port]
        self.conf = workdir / "haproxy.cfg"
        self.conf.write_text(f"""
global
    stats socket {self.admin_socket} mode 600 level admin
    stats socket ipv4@{LOOPBACK}:{self.operator_port} level operator
    stats socket ipv4@{LOOPBACK}:{self.user_port} level user
    pidfile {workdir}/haproxy.pid
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
{body}
""")
        self.process = Process("haproxy", workdir)

    def start(self) -> Haproxy:
        check = subprocess.run([self.binary, "-c", "-f", str(self.conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config rejected:\n{check.stdout}{check.stderr}\n{self.conf.read_text()}")
        self.process.spawn([self.binary, "-db", "-f", str(self.conf)])
        for port in self.ports:
            wait_until(lambda port=port: port_open(port), 10, f"haproxy on {LOOPBACK}:{port}", self.process.died)
        return self

    def admin(self, command: str) -> str:
        """Send one Runtime API command on the admin socket (test set-up only)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.decode()

    def server_states(self, backend: str) -> dict[str, str]:
        """{server: status word} from `show stat`, for polling until checks settle."""
        out = {}
        for line in self.admin(f"show stat {backend} 4 -1").splitlines():
            if line and not line.startswith("#"):
                fields = line.split(",")
                out[fields[1]] = fields[17]
        return out

    def stop(self) -> None:
        self.process.stop()
