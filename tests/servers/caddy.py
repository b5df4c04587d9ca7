"""Caddy 2.6 (Debian 12) on loopback, unprivileged, from a JSON config in a temp directory."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from typing import Any

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until


def caddy_binary() -> str:
    return require_binary("caddy", "/usr/bin/caddy")


def reverse_proxy(ports: list[int], **extra: Any) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "upstreams": [{"dial": f"{LOOPBACK}:{p}"} for p in ports], **extra}


class Caddy:
    """`caddy run` with `servers` (apps.http.servers) and the admin API on a free loopback
    port; no automatic HTTPS, no saved config, HOME and XDG dirs inside `workdir`. `apps`
    adds other apps beside http (e.g. `tls` with certificates loaded from files)."""

    def __init__(self, workdir: Path, servers: dict[str, Any], apps: dict[str, Any] | None = None) -> None:
        self.binary = caddy_binary()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.admin_port = free_port()
        for server in servers.values():
            server.setdefault("automatic_https", {"disable": True})
        self.config = {
            "admin": {"listen": f"{LOOPBACK}:{self.admin_port}", "config": {"persist": False}},
            "apps": {"http": {"servers": servers}, **(apps or {})},
        }
        self.conf = workdir / "caddy.json"
        self.conf.write_text(json.dumps(self.config, indent=2))
        self.ports = [self.admin_port] + [
            int(address.rsplit(":", 1)[1]) for server in servers.values() for address in server.get("listen", [])
        ]
        self.process = Process("caddy", workdir)

    @property
    def admin(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    def env(self) -> dict[str, str]:
        home = str(self.workdir)
        return {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}

    def start(self) -> Caddy:
        self.process.spawn([self.binary, "run", "--config", str(self.conf)], env=self.env())
        for port in self.ports:
            wait_until(lambda port=port: port_open(port), 10, f"caddy on {LOOPBACK}:{port}", self.process.died)
        return self

    def get(self, port: int, path: str) -> tuple[int, dict[str, str], bytes]:
        """One GET (test set-up: a request through Caddy, or a look at the admin API)."""
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def upstreams(self) -> dict[str, dict]:
        status, _, body = self.get(self.admin_port, "/reverse_proxy/upstreams")
        assert status == 200, body
        return {item["address"]: item for item in json.loads(body or b"[]") or []}

    def stop(self) -> None:
        self.process.stop()
