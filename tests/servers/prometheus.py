"""Prometheus, Alertmanager and blackbox_exporter on loopback, each from a temp dir.

The Debian 12 packages (Prometheus 2.42, Alertmanager 0.25, blackbox_exporter 0.23);
every one listens on 127.0.0.1 only, keeps its state under `workdir` and dies with the
test process (PR_SET_PDEATHSIG, base.py). `query` and the other helpers use urllib with
a short timeout: every wait in the tests is a poll with a deadline.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until


def get_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


class Prometheus:
    def __init__(self, workdir: Path, config: dict, rule_files: dict[str, str] | None = None) -> None:
        self.binary = require_binary("prometheus", "/usr/bin/prometheus")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        names = []
        for name, text in (rule_files or {}).items():
            (workdir / name).write_text(text)
            names.append(str(workdir / name))
        if names:
            config = {**config, "rule_files": names}
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = Process("prometheus", workdir)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Prometheus:
        self.process.spawn(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                "--log.level=warn",
            ]
        )
        wait_until(lambda: ready(f"{self.url}/-/ready"), 30, "prometheus ready", self.process.died)
        return self

    def query(self, expr: str) -> list[dict]:
        answer = get_json(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        self.process.stop()


class Alertmanager:
    def __init__(self, workdir: Path, config_text: str) -> None:
        self.binary = require_binary("prometheus-alertmanager", "alertmanager", "/usr/bin/prometheus-alertmanager")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(config_text)
        self.process = Process("alertmanager", workdir)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Alertmanager:
        self.process.spawn(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                f"--storage.path={self.workdir / 'data'}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )
        wait_until(lambda: ready(f"{self.url}/-/ready"), 30, "alertmanager ready", self.process.died)
        return self

    def alerts(self) -> list[dict]:
        return get_json(f"{self.url}/api/v2/alerts")

    def stop(self) -> None:
        self.process.stop()


class Blackbox:
    """A blackbox_exporter whose `http_2xx` module probes HOST:PORT from `source_ip`."""

    def __init__(self, workdir: Path, source_ip: str) -> None:
        self.binary = require_binary("prometheus-blackbox-exporter", "blackbox_exporter")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "modules": {
                # blackbox_exporter 0.23 has source_ip_address for the tcp prober only, so
                # the HTTP request is spoken through it: a GET, and a 200 expected back
                "http_2xx": {
                    "prober": "tcp",
                    "timeout": "2s",
                    "tcp": {
                        "preferred_ip_protocol": "ip4",
                        "source_ip_address": source_ip,
                        "query_response": [
                            {"send": "GET / HTTP/1.0\r\nHost: stackscope.test\r\n\r\n"},
                            {"expect": "^HTTP/1\\.[01] 200 "},
                        ],
                    },
                }
            }
        }
        self.config = workdir / "blackbox.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.process = Process("blackbox", workdir)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Blackbox:
        self.process.spawn(
            [self.binary, f"--config.file={self.config}", f"--web.listen-address={self.address}", "--log.level=warn"]
        )
        wait_until(lambda: port_open(self.port), 20, "blackbox_exporter", self.process.died)
        return self

    def stop(self) -> None:
        self.process.stop()
