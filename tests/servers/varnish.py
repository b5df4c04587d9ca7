"""Varnish 7.1 (Debian) on loopback with a generated VCL, a CLI port and a secret file;
and small HTTP backends that name themselves in a header."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until
from .pyservers import Handler, http_response, read_request


def identity_backend(name: str) -> Handler:
    """An HTTP backend: 404 for /wrong (a health check pointed at the wrong path), else 200
    with `X-Served-By: name`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
        if path == b"/wrong":
            writer.write(http_response(404, b"not here\n", reason="Not Found"))
        else:
            writer.write(http_response(200, b"ok\n", {"X-Served-By": name}))
        await writer.drain()

    return handle


class Varnish:
    """Runs varnishd in the foreground (`-F`) in `workdir` with `vcl`. As root it runs with
    `-j none`: the default jail would drop the worker to the `vcache` user, who cannot
    enter pytest's private temp directories."""

    def __init__(self, workdir: Path, vcl: str, secret: bytes = b"Qm7-vT2-xK9-pL4-wR8\n") -> None:
        self.binary = require_binary("varnishd", "/usr/sbin/varnishd")
        self.varnishadm = require_binary("varnishadm", "/usr/bin/varnishadm")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.vcl_path = workdir / "default.vcl"
        self.vcl_path.write_text(vcl)
        self.secret_path = workdir / "secret"
        self.secret_path.write_bytes(secret)
        os.chmod(self.secret_path, 0o600)
        self.http_port = free_port()
        self.admin_port = free_port()
        self.process = Process("varnishd", workdir)

    def argv(self) -> list[str]:
        jail = ["-j", "none"] if os.geteuid() == 0 else []
        return [
            self.binary,
            "-F",
            *jail,
            "-n",
            str(self.workdir / "state"),
            "-a",
            f"{LOOPBACK}:{self.http_port}",
            "-T",
            f"{LOOPBACK}:{self.admin_port}",
            "-S",
            str(self.secret_path),
            "-f",
            str(self.vcl_path),
            "-s",
            "malloc,16m",
            "-p",
            "vcl_path=" + str(self.workdir),
        ]

    def spawn(self) -> Varnish:
        self.process.spawn(self.argv())
        return self

    def wait_ready(self) -> Varnish:
        for port in (self.admin_port, self.http_port):
            wait_until(lambda port=port: port_open(port), 30, f"varnishd on {LOOPBACK}:{port}", self.process.died)
        return self

    def admin(self, *command: str) -> str:
        """One CLI command through varnishadm (test set-up and assertions only)."""
        done = subprocess.run(
            [self.varnishadm, "-T", f"{LOOPBACK}:{self.admin_port}", "-S", str(self.secret_path), *command],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if done.returncode != 0:
            raise RuntimeError(f"varnishadm {' '.join(command)}: {done.stdout}{done.stderr}")
        return done.stdout

    def backend_list(self) -> dict:
        """{backend: {admin_health, probe_message, last_change...}} of the running VCL."""
        return json.loads(self.admin("backend.list", "-j"))[3]

    def health(self) -> dict[str, tuple[str, str]]:
        """{backend name without the VCL prefix: (admin, probe word)}."""
        return {
            key.split(".", 1)[1]: (value["admin_health"], value["probe_message"][2])
            for key, value in self.backend_list().items()
            if value.get("type") == "backend"
        }

    def stop(self) -> None:
        self.process.stop()


def compile_vcl(path: Path, workdir: Path) -> subprocess.CompletedProcess:
    """`varnishd -C -f path`: compiles the VCL (to C) without starting anything."""
    binary = require_binary("varnishd", "/usr/sbin/varnishd")
    workdir.mkdir(parents=True, exist_ok=True)
    jail = ["-j", "none"] if os.geteuid() == 0 else []
    return subprocess.run(
        [binary, "-C", *jail, "-n", str(workdir / "cc"), "-p", f"vcl_path={path.parent}", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
    )
