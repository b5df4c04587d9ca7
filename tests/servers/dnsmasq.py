"""dnsmasq answering a test zone on loopback."""

from __future__ import annotations

import os
from pathlib import Path

from .base import LOOPBACK, Process, free_port_both, require_binary, wait_until


class Dnsmasq:
    """Authoritative-ish answers for `records` ({name: address}) under `zone`.

    Names outside the zone are refused; names under `broken.<zone>` are forwarded to a
    port where nothing answers, so they time out (SERVFAIL needs the Python responder).
    """

    def __init__(
        self,
        workdir: Path,
        records: dict[str, str],
        zone: str = "stackscope.test",
        silent_port: int | None = None,
        ttl: int = 30,
        txt: dict[str, list[str]] | None = None,
    ) -> None:
        self.binary = require_binary("dnsmasq", "/usr/sbin/dnsmasq")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_both()
        self.zone = zone
        lines = [
            f"port={self.port}",
            f"listen-address={LOOPBACK}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            f"pid-file={workdir}/dnsmasq.pid",
            f"local=/{zone}/",
            f"local-ttl={ttl}",
            "log-queries",
            "log-facility=-",
        ]
        if os.geteuid() == 0:
            lines += ["user=nobody", "group=nogroup"]
        for name, address in records.items():
            lines.append(f"host-record={name},{address}")
        for name, strings in (txt or {}).items():  # each item one character-string of the record
            lines.append(f"txt-record={name}," + ",".join(f'"{text}"' for text in strings))
        if silent_port is not None:
            lines.append(f"server=/broken.{zone}/{LOOPBACK}#{silent_port}")
        self.conf = workdir / "dnsmasq.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.process = Process("dnsmasq", workdir)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Dnsmasq:
        self.process.spawn([self.binary, "--keep-in-foreground", f"--conf-file={self.conf}"])
        wait_until(self._answers, 10, f"dnsmasq on {self.address}", self.process.died)
        return self

    def _answers(self) -> bool:
        import dns.message
        import dns.query

        try:
            dns.query.udp(dns.message.make_query(f"ready.{self.zone}", "A"), LOOPBACK, port=self.port, timeout=0.2)
            return True
        except Exception:
            return False

    def stop(self) -> None:
        self.process.stop()
