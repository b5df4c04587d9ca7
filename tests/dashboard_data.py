"""Hand-built layouts, results and snapshots for the timeline, the dashboard's
snapshot tests and the detail screen: fixed times, fixed latencies, no probing."""

from __future__ import annotations

from stackscope.engine import Engine
from stackscope.history import Sample
from stackscope.layout import parse_layout
from stackscope.model import DnsAnswers, ErrorKind, HttpAnswer, Layout, Result, Snapshot, Status

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

LAYOUT_YAML = """\
name: auth-prod
interval: 2s
timeout: 1s
layers:
  - name: DNS
    role: dns
    checks:
      - dns: auth.stackscope.test
        server: 127.0.0.1:5353
        expect: [127.0.0.1]
  - name: Load balancer
    role: lb
    checks:
      - http: http://127.0.0.1:18080/health
        name: lb-health
  - name: Auth backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/health", name: auth-1}
      - {http: "http://127.0.0.1:19002/health", name: auth-2}
      - {http: "http://127.0.0.1:19003/health", name: auth-3}
  - name: Database
    role: db
    checks:
      - {tcp: "127.0.0.1:15432", name: postgres}
"""

DNS, LB, B1, B2, B3, DB = (
    "DNS/auth.stackscope.test",
    "Load balancer/lb-health",
    "Auth backends/auth-1",
    "Auth backends/auth-2",
    "Auth backends/auth-3",
    "Database/postgres",
)


def layout() -> Layout:
    return parse_layout(LAYOUT_YAML, "auth-prod.yaml")


def pool(unexpected: bool = False) -> dict:
    declared = ["127.0.0.1:19001", "127.0.0.1:19002", "127.0.0.1:19003"]
    servers = [
        {
            "name": f"auth-{i}",
            "address": f"127.0.0.1:1900{i}",
            "state": "UP",
            "check": "L7OK",
            "last_change_s": 3600,
            "sessions": 4,
            "errors": 0,
            "weight": 1,
            "declared": True,
        }
        for i in (1, 2, 3)
    ]
    if unexpected:
        servers = [
            {
                "name": "decoy-1",
                "address": "127.0.0.1:19101",
                "state": "UP",
                "check": "L7OK",
                "last_change_s": 30,
                "sessions": 9,
                "errors": 0,
                "weight": 1,
                "declared": False,
            }
        ]
    return {
        "backend": "auth_servers",
        "source": "127.0.0.1:8404/stats;csv",
        "servers": servers,
        "declared": declared,
        "missing": declared if unexpected else [],
        "unexpected": ["127.0.0.1:19101"] if unexpected else [],
    }


def http_ok(check_id: str, ms: float, served_by: str = "auth-1") -> Result:
    return Result(
        check_id,
        Status.OK,
        f"200 OK in {ms:.1f} ms",
        latency_ms=ms,
        key_fact="200",
        facts={
            "status_code": 200,
            "reason": "OK",
            "ip": "127.0.0.1",
            "phases": {"dns": 0.0, "connect": 0.3, "ttfb": ms - 0.5, "total": ms},
            "headers": {"content-type": "text/plain", "x-served-by": served_by, "set-cookie": "«redacted: 24 bytes»"},
            "body_bytes": 3,
            "identity": served_by,
        },
        started_at=T0,
        evidence=HttpAnswer(200, identity=served_by),
    )


def results(broken: bool = False) -> dict[str, Result]:
    out = {
        DNS: Result(
            DNS,
            Status.OK,
            "A auth.stackscope.test → 127.0.0.1 (ttl 30)",
            latency_ms=0.6,
            key_fact="127.0.0.1",
            facts={
                "server": "127.0.0.1:5353",
                "name": "auth.stackscope.test",
                "record": "A",
                "rcode": "NOERROR",
                "answers": ["127.0.0.1"],
                "ttl": 30,
                "cname_chain": [],
                "transport": "udp",
            },
            started_at=T0,
            evidence=DnsAnswers(("127.0.0.1",), ("127.0.0.1",)),
        ),
        LB: http_ok(LB, 2.4),
        B1: http_ok(B1, 1.1, "auth-1"),
        B2: http_ok(B2, 1.3, "auth-2"),
        B3: http_ok(B3, 1.2, "auth-3"),
        DB: Result(DB, Status.OK, "127.0.0.1:15432 accepted in 0.2 ms", latency_ms=0.2, key_fact="open", started_at=T0),
    }
    lb = dict(out[LB].facts)
    lb["pool"] = pool(unexpected=broken)
    if broken:
        lb.update(status_code=502, reason="Bad Gateway")
        out[LB] = Result(
            LB,
            Status.CRIT,
            "502 Bad Gateway (expected 200)",
            latency_ms=3.8,
            key_fact="502",
            facts=lb,
            error_kind=ErrorKind.HTTP_STATUS,
            started_at=T0,
            evidence=HttpAnswer(502),
        )
    else:
        out[LB] = Result(
            LB,
            Status.OK,
            out[LB].detail,
            latency_ms=2.4,
            key_fact="pool 3/3 UP",
            facts=lb,
            started_at=T0,
            evidence=out[LB].evidence,
        )
    return out


def snapshot(broken: bool = False, at: float = T0 + 60, round_: int = 30) -> Snapshot:
    return Snapshot(layout(), results(broken), at, round_)


def engine_with_history(lay: Layout, broken: bool = False, rounds: int = 30) -> Engine:
    """An engine that never probes, with a fixed latency history for the sparklines."""
    engine = Engine(lay)
    wobble = (1.0, 1.4, 0.8, 2.5, 6.0, 1.1, 0.9, 40.0, 1.2, 1.3)
    for check in lay.checks():
        for i in range(rounds):
            ms = wobble[i % len(wobble)]
            status = Status.OK
            if broken and check.id == LB and i >= rounds - 5:
                status = Status.CRIT
            engine.history[check.id].append(Sample(T0 + 2 * i, status, ms))
    return engine
