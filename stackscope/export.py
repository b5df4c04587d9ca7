"""`stackscope export`: the latest results of one or more layouts as Prometheus metrics.

The engine runs rounds exactly as `watch` does; a scrape never probes anything, it reads
the latest diagnosis of each layout, so a Prometheus that scrapes every second costs the
targets nothing and a slow target never makes a scrape slow. The exposition format (the
Prometheus text format and OpenMetrics, chosen by the scrape's Accept header, gzip when
asked) is prometheus_client's: a custom Collector yields metric families built from the
latest snapshot, nothing here writes the format by hand.

This module imports prometheus_client, so only the export command imports it: `check`
stays fast to start.

Naming: base units (`_seconds`), 0/1 gauges, everything that varies in labels, never in
names. Every label value passes through the layout's redactor. Per check: up, status,
duration and, for http checks, one series per phase (dns, connect, tls, ttfb, total).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry

from stackscope import __version__
from stackscope.boundedhttp import BoundedWSGIServer, BoundedWSGIServer6, QuietHandler
from stackscope.diagnosis import Diagnosis, assess
from stackscope.listen import ListenError, parse_address
from stackscope.model import Layout, Status
from stackscope.stream import held

DEFAULT_LISTEN = "127.0.0.1:9464"
PHASES = ("dns", "connect", "tls", "ttfb", "total")  # the http probe's phases (httpclient.py)
CHECK_LABELS = ("layout", "layer", "role", "check", "type")
LAYER_LABELS = ("layout", "layer", "role")


class ExportError(Exception):
    """The exporter cannot start: a bad or non-loopback listen address, a port in use."""


# --------------------------------------------------------------------------- listen address


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """HOST:PORT -> (host, port), loopback only unless `allow_remote` (stackscope/listen.py):
    the metrics name every layer, check and target of the layouts, and the endpoint has no
    authentication, so exposing it is a decision to make on purpose."""
    why = "the metrics name every layer, check and target and /metrics has no authentication. "
    try:
        return parse_address(text, allow_remote=allow_remote, flag="--listen", why=why, example=DEFAULT_LISTEN)
    except ListenError as error:
        raise ExportError(str(error)) from None


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Latest:
    """What a scrape reads for one layout: replaced whole after each round (one reference
    assignment, so a scrape in another thread sees either the old round or the new one)."""

    diagnosis: Diagnosis
    round_seconds: float
    finished_at: float  # time.time()


class ExportedLayout:
    def __init__(self, layout: Layout, engine) -> None:
        self.layout = layout
        self.engine = engine
        self.latest: Latest | None = None
        self.version = 0  # rounds observed: the key of the encoded-scrape cache

    def label(self, value: str) -> str:
        return self.engine.redactor.text(str(value))

    def observe(self, snapshot) -> None:
        starts = [r.started_at for r in snapshot.results.values() if r.started_at]
        seconds = max(0.0, snapshot.taken_at - min(starts)) if starts else 0.0
        diagnosis = assess(snapshot)
        if held(diagnosis) and self.latest is not None:
            return  # evidence from two moments: the last verdict stands (stream.held)
        self.latest = Latest(diagnosis, seconds, time.time())
        self.version += 1


# --------------------------------------------------------------------------- collector


def status_value(status: Status) -> int:
    """0 ok, 1 warn, 2 crit, 3 unknown (the monitoring-plugins codes)."""
    return status.value


class StackscopeCollector(Collector):
    """Yields metric families from the latest diagnosis of each layout; probes nothing."""

    def __init__(self, layouts: Sequence[ExportedLayout]) -> None:
        self.layouts = list(layouts)

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the layouts; registering must not call collect()

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("stackscope_build_info", "stackscope version, always 1.", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        fams = {
            "up": GaugeMetricFamily(
                "stackscope_check_up",
                "1 when the check's target answers (status ok or warn), 0 when it fails or cannot tell.",
                labels=CHECK_LABELS,
            ),
            "status": GaugeMetricFamily(
                "stackscope_check_status", "Check status: 0 ok, 1 warn, 2 crit, 3 unknown.", labels=CHECK_LABELS
            ),
            "duration": GaugeMetricFamily(
                "stackscope_check_duration_seconds",
                "How long the check's probe took in the latest round (absent when it produced no latency).",
                labels=CHECK_LABELS,
            ),
            "phase": GaugeMetricFamily(
                "stackscope_check_phase_seconds",
                "Duration of one phase of an http check's last request (dns, connect, tls, ttfb, total).",
                labels=(*CHECK_LABELS, "phase"),
            ),
            "layer": GaugeMetricFamily(
                "stackscope_layer_status", "Layer status: 0 ok, 1 warn, 2 crit, 3 unknown.", labels=LAYER_LABELS
            ),
            "verdict": GaugeMetricFamily(
                "stackscope_verdict",
                "1 for the layer the diagnosis names as broken; no series while every layer is ok.",
                labels=(*LAYER_LABELS, "confirmed"),
            ),
            "overall": GaugeMetricFamily(
                "stackscope_status",
                "Worst layer status of the layout: 0 ok, 1 warn, 2 crit, 3 unknown.",
                labels=["layout"],
            ),
            "round": GaugeMetricFamily(
                "stackscope_round_duration_seconds", "How long the latest probe round took.", labels=["layout"]
            ),
            "finished": GaugeMetricFamily(
                "stackscope_last_round_timestamp_seconds",
                "Unix time when the latest round finished (alert on its age to catch a stuck exporter).",
                labels=["layout"],
            ),
            "rounds": CounterMetricFamily("stackscope_rounds", "Probe rounds completed.", labels=["layout"]),
        }
        for exported in self.layouts:
            latest = exported.latest
            if latest is None:
                continue
            self._add_layout(exported, latest, fams)
        yield from fams.values()

    @staticmethod
    def _add_layout(exported: ExportedLayout, latest: Latest, fams: dict) -> None:
        label = exported.label
        diagnosis = latest.diagnosis
        layout = label(exported.layout.name)
        for layer_state in diagnosis.layers:
            layer = label(layer_state.name)
            role = layer_state.layer.role
            fams["layer"].add_metric([layout, layer, role], status_value(layer_state.status))
            for state in layer_state.checks:
                values = [layout, layer, role, label(state.check.name), state.check.type]
                result = state.result
                fams["up"].add_metric(values, 1 if result.status in (Status.OK, Status.WARN) else 0)
                fams["status"].add_metric(values, status_value(result.status))
                if result.latency_ms is not None:
                    fams["duration"].add_metric(values, result.latency_ms / 1000)
                phases = result.facts.get("phases") if state.check.type == "http" else None
                if isinstance(phases, dict):
                    for phase in PHASES:
                        ms = phases.get(phase)
                        if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                            fams["phase"].add_metric([*values, phase], ms / 1000)
        verdict = diagnosis.verdict
        if verdict is not None:
            # Verdict confirmation is being added separately; until Verdict has the
            # attribute, every verdict counts as confirmed.
            confirmed = "true" if getattr(verdict, "confirmed", True) else "false"
            fams["verdict"].add_metric([layout, label(verdict.layer), verdict.role, confirmed], 1)
        fams["overall"].add_metric([layout], status_value(diagnosis.status))
        fams["round"].add_metric([layout], latest.round_seconds)
        fams["finished"].add_metric([layout], latest.finished_at)
        fams["rounds"].add_metric([layout], diagnosis.snapshot.round)


# --------------------------------------------------------------------------- HTTP


class Exporter:
    """The HTTP endpoint (bound at construction, so a port in use fails before any probe)
    and the engines that feed it."""

    def __init__(self, layouts: Sequence[Layout], listen: str = DEFAULT_LISTEN, *, allow_remote: bool = False) -> None:
        from stackscope.engine import Engine

        names = [layout.name for layout in layouts]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ExportError(
                f"several layouts are named {', '.join(duplicates)}; their series would collide "
                "(give each layout its own name:)"
            )
        self.host, self.port = parse_listen(listen, allow_remote=allow_remote)
        self.layouts = [ExportedLayout(layout, Engine(layout)) for layout in layouts]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StackscopeCollector(self.layouts))
        metrics = make_wsgi_app(self.registry)
        # bounded threads and a deadline per connection (boundedhttp.py): an idle or slow
        # client cannot hold the exporter's resources or keep a scraper out
        server_class = BoundedWSGIServer6 if ":" in self.host else BoundedWSGIServer
        try:
            self.server = make_server(
                self.host, self.port, self._app(metrics), server_class=server_class, handler_class=QuietHandler
            )
        except OSError as exc:
            raise ExportError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None
        self._cache_lock = threading.Lock()
        self._cache_versions: tuple[int, ...] | None = None
        self._cache: dict[tuple[str, bool], bytes] = {}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def health(self, now: float | None = None) -> tuple[bool, str]:
        """Healthy when every layout finished a round recently (within three intervals plus
        the timeout): about the exporter, not the stack it watches."""
        now = time.time() if now is None else now
        problems = []
        for exported in self.layouts:
            latest = exported.latest
            name = exported.label(exported.layout.name)
            if latest is None:
                problems.append(f"{name}: no round finished yet")
                continue
            limit = 3 * exported.layout.interval + exported.layout.timeout + 1
            age = now - latest.finished_at
            if age > limit:
                problems.append(f"{name}: last round finished {age:.0f}s ago")
        return (not problems, "; ".join(problems) or "ok")

    def _scrape(self, environ, start_response, metrics):
        """/metrics. The library encodes (format by the Accept header, gzip if accepted);
        the bytes are kept until the next round, since only a round changes them: with
        1000 checks an encoding costs a few hundred ms of CPU, and several Prometheus
        servers (HA pairs) or a fast scrape interval would pay it on every scrape.
        A `name[]` filter in the query string goes straight to the library, uncached."""
        if environ.get("QUERY_STRING"):
            return metrics(environ, start_response)
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        compress = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        versions = tuple(exported.version for exported in self.layouts)
        with self._cache_lock:
            if self._cache_versions != versions:
                self._cache_versions, self._cache = versions, {}
            body = self._cache.get((content_type, compress))
            if body is None:
                body = encoder(self.registry)
                if compress:
                    body = gzip.compress(body)
                self._cache[(content_type, compress)] = body
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    def _app(self, metrics):
        def app(environ, start_response):
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return self._scrape(environ, start_response, metrics)
            if path == "/healthz":
                ok, text = self.health()
                start_response(
                    "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")]
                )
                return [(text + "\n").encode()]
            if path == "/":
                start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"stackscope export: /metrics (Prometheus, OpenMetrics) and /healthz\n"]
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics or /healthz\n"]

        return app

    def start_server(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="stackscope-export", daemon=True
        )
        self._thread.start()

    async def run(self, rounds: int | None = None) -> None:
        """Probe every layout continuously (each on its own interval) until cancelled."""
        from stackscope.engine import raise_fd_limit

        raise_fd_limit()
        try:
            await asyncio.gather(*(exported.engine.watch(exported.observe, rounds=rounds) for exported in self.layouts))
        finally:
            for exported in self.layouts:
                await exported.engine.aclose()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()
