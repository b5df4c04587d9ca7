"""The diagnosis, table-driven: which layer is named for each combination of failures."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from stackscope.diagnosis import assess, dependency_groups, layer_state, layers_below
from stackscope.layout import parse_layout
from stackscope.model import (
    DOWN_BY_CHECK,
    IN,
    DnsAnswers,
    GrpcAnswer,
    HttpAnswer,
    Layout,
    PoolEvidence,
    PoolMember,
    Result,
    Snapshot,
    Status,
    StoreState,
)
from stackscope.model import ErrorKind as K

AUTH = """\
name: auth
layers:
  - name: DNS
    role: dns
    checks:
      - dns: auth.example.test
        name: dns
        expect: [127.0.0.1]
  - name: Load balancer
    role: lb
    checks:
      - http: http://auth.example.test:18080/health
        name: lb
  - name: Auth backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/health", name: auth-1}
      - {http: "http://127.0.0.1:19002/health", name: auth-2}
      - {http: "http://127.0.0.1:19003/health", name: auth-3}
  - name: Database
    role: db
    checks:
      - {tcp: "127.0.0.1:15432", name: db}
  - name: Cache
    role: cache
    checks:
      - {tcp: "127.0.0.1:16379", name: cache}
"""
LAYOUT = parse_layout(AUTH, "auth.yaml")


@dataclass(frozen=True)
class F:
    """A failure to inject: status, kind, and facts such as the HTTP status code."""

    status: Status
    kind: K | None = None
    detail: str = "failed"
    facts: dict[str, Any] = field(default_factory=dict)
    evidence: Any = None
    confirmed: bool = True


def ok_result(check) -> Result:
    if check.type == "http":
        return Result(check.id, Status.OK, "200 OK", 3.0, "200", {"status_code": 200}, evidence=HttpAnswer(200))
    if check.type == "dns":
        expected = tuple(check.options.expect or ())
        return Result(
            check.id,
            Status.OK,
            "→ 127.0.0.1",
            1.0,
            "127.0.0.1",
            {"answers": ["127.0.0.1"]},
            evidence=DnsAnswers(("127.0.0.1",), expected),
        )
    if check.type == "grpc":
        return Result(check.id, Status.OK, "SERVING", 2.0, "SERVING", {}, evidence=GrpcAnswer("OK", "SERVING", 200))
    return Result(check.id, Status.OK, "accepts connections", 0.5, "open", {})


def snapshot(layout: Layout, failures: dict[str, F | None]) -> Snapshot:
    results = {}
    for check in layout.checks():
        if check.name in failures:
            f = failures[check.name]
            if f is None:
                continue  # not probed
            results[check.id] = Result(
                check.id, f.status, f.detail, None, "x", f.facts, f.kind, evidence=f.evidence, confirmed=f.confirmed
            )
        else:
            results[check.id] = ok_result(check)
    return Snapshot(layout, results, 0.0)


C, W, U = Status.CRIT, Status.WARN, Status.UNKNOWN
H500 = F(C, K.HTTP_STATUS, "500 Internal Server Error", {"status_code": 500}, HttpAnswer(500))
H503 = F(C, K.HTTP_STATUS, "503 Service Unavailable", {"status_code": 503}, HttpAnswer(503))
H404 = F(C, K.HTTP_STATUS, "404 Not Found", {"status_code": 404}, HttpAnswer(404))
REFUSED = F(C, K.REFUSED, "refused the connection")
TIMEOUT = F(C, K.TIMEOUT, "no response within 2s")
SLOW = F(W, K.SLOW, "slow: 900 ms is above warn_ms 200")
SUSPECTED = F(W, K.SUSPECTED, "no answer for 300 ms (usually 2 ms)", confirmed=False)

# (id, failures, expected verdict layer or None, expected status)
SCENARIOS = [
    ("all healthy", {}, None, Status.OK),
    (
        "db down takes backends and lb with it",
        {"db": REFUSED, "auth-1": H500, "auth-2": H500, "auth-3": H500, "lb": H503},
        "Database",
        C,
    ),
    ("lb misroute: frontend fails, backends answer directly", {"lb": H503}, "Load balancer", C),
    (
        "lb pool drift is the lb's own failure even with backends down",
        {
            "lb": F(C, K.POOL, "pool routes to undeclared servers"),
            "auth-1": REFUSED,
            "auth-2": REFUSED,
            "auth-3": REFUSED,
        },
        "Load balancer",
        C,
    ),
    (
        "dns wrong answer makes the lb unreachable by name",
        {"dns": F(C, K.DNS_ANSWER, "is 127.0.0.9, expected 127.0.0.1"), "lb": REFUSED},
        "DNS",
        C,
    ),
    ("dns nxdomain explains a resolve failure", {"dns": F(C, K.DNS_RCODE), "lb": F(C, K.RESOLVE)}, "DNS", C),
    ("dns failing while the lb (by name) works is still dns", {"dns": F(C, K.DNS_RCODE)}, "DNS", C),
    (
        "lb refused is its own failure, not the backends'",
        {"lb": REFUSED, "auth-1": H500, "auth-2": H500, "auth-3": H500, "db": REFUSED},
        "Load balancer",
        C,
    ),
    (
        "all backends refuse: the lb's 502 is explained",
        {
            "auth-1": REFUSED,
            "auth-2": REFUSED,
            "auth-3": REFUSED,
            "lb": F(C, K.HTTP_STATUS, "502", {"status_code": 502}, HttpAnswer(502)),
        },
        "Auth backends",
        C,
    ),
    ("one backend down is a warn on the pool", {"auth-2": REFUSED}, "Auth backends", W),
    (
        "one backend down explains the lb's 503 in the same window: the lb is only degraded",
        {"auth-2": REFUSED, "lb": H503},
        "Auth backends",
        W,
    ),
    (
        "a hung member: its timeout explains the lb's timeout in the same window",
        {"auth-2": TIMEOUT, "lb": TIMEOUT},
        "Auth backends",
        W,
    ),
    (
        "a hung member suspected before its timeout explains the lb suspected in the same window",
        {"auth-2": SUSPECTED, "lb": SUSPECTED},
        "Auth backends",
        W,
    ),
    (
        "a 500 through the lb from a member that answers directly is not the dead member's doing",
        {
            "auth-2": REFUSED,
            "lb": F(C, K.HTTP_STATUS, "500", {}, HttpAnswer(500, identity="auth-1", identity_header="X-Served-By")),
            "auth-1": F(
                Status.OK, None, "200 OK", {}, HttpAnswer(200, identity="auth-1", identity_header="X-Served-By")
            ),
        },
        "Load balancer",
        C,
    ),
    ("one backend down cannot explain an lb 404", {"auth-2": REFUSED, "lb": H404}, "Load balancer", C),
    ("one backend down cannot explain a refused lb", {"auth-2": REFUSED, "lb": REFUSED}, "Load balancer", C),
    (
        "a 404 from the lb is the lb's own even with backends down",
        {"lb": H404, "auth-1": REFUSED, "auth-2": REFUSED, "auth-3": REFUSED},
        "Load balancer",
        C,
    ),
    (
        "slow db makes everything above it slow",
        {"db": SLOW, "auth-1": SLOW, "auth-2": SLOW, "auth-3": SLOW, "lb": SLOW},
        "Database",
        W,
    ),
    (
        "timeouts cascade from a hung db",
        {"db": TIMEOUT, "auth-1": TIMEOUT, "auth-2": TIMEOUT, "auth-3": TIMEOUT, "lb": TIMEOUT},
        "Database",
        C,
    ),
    (
        "cache is a sibling of the db",
        {"cache": REFUSED, "auth-1": H500, "auth-2": H500, "auth-3": H500, "lb": H503},
        "Cache",
        C,
    ),
    ("crit outranks warn even downstream", {"dns": F(W, K.SLOW), "db": REFUSED}, "Database", C),
    ("two independent crits: the first on the path is named", {"dns": F(C, K.DNS_RCODE), "db": REFUSED}, "DNS", C),
    ("a db failing while the backends answer 200 does not blame the lb path", {"db": REFUSED}, "Database", C),
    (
        "backend 500s with a healthy db: the backends are the culprit",
        {"auth-1": H500, "auth-2": H500, "auth-3": H500, "lb": H503},
        "Auth backends",
        C,
    ),
    ("an lb probe bug is unknown, never ok", {"lb": F(U, K.INTERNAL, "probe error")}, "Load balancer", U),
    ("unknown never hides a real failure", {"lb": F(U, K.INTERNAL), "db": REFUSED}, "Database", C),
    ("a check not probed yet is unknown", {"db": None}, "Database", U),
    ("warn in the lb explained by a warn pool below", {"auth-1": REFUSED, "lb": F(W, K.SLOW)}, "Auth backends", W),
    (
        "db in recovery is the db's own state",
        {"db": F(C, K.STATE, "in recovery"), "auth-1": H500, "auth-2": H500, "auth-3": H500, "lb": H503},
        "Database",
        C,
    ),
    ("tls cert failure at the lb is its own", {"lb": F(C, K.CERT, "expired")}, "Load balancer", C),
    (
        "a resolve failure is dns's doing even when dns is only slow",
        {"dns": SLOW, "lb": F(C, K.RESOLVE, "cannot resolve auth.example.test")},
        "DNS",
        W,
    ),
    (
        "an lb 503 beside members failing with 500 goes through them to the dead db",
        {"db": REFUSED, "auth-1": H500, "auth-2": H500, "lb": H503},
        "Database",
        C,
    ),
    (
        "a backend still answering 200 vouches for the path: an lb 503 with every member healthy is its own",
        {"db": REFUSED, "lb": H503},
        "Load balancer",
        C,
    ),
]

# LB -> backends checked by TCP only -> DB: the backends' open ports prove nothing about
# the database behind them, so a dead database still explains the LB's 503.
SHALLOW = parse_layout(
    """name: shallow
layers:
  - {name: LB, role: lb, checks: [{http: "http://127.0.0.1:18080/", name: lb}]}
  - {name: Backends, role: backend, checks: [{tcp: "127.0.0.1:19001", name: b1}, {tcp: "127.0.0.1:19002", name: b2}]}
  - {name: Database, role: db, checks: [{tcp: "127.0.0.1:15432", name: db}]}
""",
    "shallow.yaml",
)

# A dns-role layer whose own checks address hosts by name (a resolver reached by name).
NAMED_DNS = parse_layout(
    """name: named-dns
layers:
  - {name: Resolver, role: dns, checks: [{tcp: "localhost:53", name: resolver-port}]}
  - {name: Names, role: dns, checks: [{dns: auth.example.test, name: names}]}
  - {name: LB, role: lb, checks: [{http: "http://auth.example.test:18080/", name: lb}]}
""",
    "named-dns.yaml",
)

LAYOUT_SCENARIOS = [
    (
        "a tcp-only backend layer does not vouch for the db below it",
        SHALLOW,
        {"lb": H503, "db": REFUSED},
        "Database",
        C,
    ),
    ("a tcp-only backend layer: a db-level 503 with a healthy db is the lb's", SHALLOW, {"lb": H503}, "LB", C),
    ("a refused lb is its own even past tcp-only backends", SHALLOW, {"lb": REFUSED, "db": REFUSED}, "LB", C),
    (
        "a dns layer addressed by name is a root cause, not explained by itself",
        NAMED_DNS,
        {"resolver-port": REFUSED},
        "Resolver",
        C,
    ),
    (
        "two failing dns layers addressed by name: the first is named",
        NAMED_DNS,
        {"resolver-port": REFUSED, "names": F(C, K.DNS_RCODE, "SERVFAIL"), "lb": F(C, K.RESOLVE)},
        "Resolver",
        C,
    ),
]


@pytest.mark.parametrize("name,layout,failures,layer,status", LAYOUT_SCENARIOS, ids=[s[0] for s in LAYOUT_SCENARIOS])
def test_verdict_on_other_layouts(name, layout, failures, layer, status):
    verdict = assess(snapshot(layout, failures)).verdict
    assert verdict is not None
    assert (verdict.layer, verdict.status) == (layer, status), verdict.summary


@pytest.mark.parametrize("name,failures,layer,status", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_verdict_names_the_right_layer(name, failures, layer, status):
    diagnosis = assess(snapshot(LAYOUT, failures))
    verdict = diagnosis.verdict
    if layer is None:
        assert verdict is None
        assert diagnosis.status is Status.OK
        return
    assert verdict is not None
    assert (verdict.layer, verdict.status) == (layer, status), verdict.summary
    assert verdict.summary.startswith(f"{layer}")
    # every layer that is ok, or only degraded because of the culprit, is ruled out, and only those
    consequences = {
        l.name
        for l in diagnosis.layers
        if l.status is Status.WARN and l.name != layer and _consequence(verdict, l.name)
    }
    healthy = {l.name for l in diagnosis.layers if l.status is Status.OK} | consequences
    assert {item.split(":")[0] for item in verdict.ruled_out} == healthy
    failing = {l.name for l in diagnosis.layers if l.status is not Status.OK} - {layer} - consequences
    assert {item.split(" (")[0] for item in verdict.also_failing} == failing


def _consequence(verdict, name: str) -> bool:
    """The verdict says `name` is slow, degraded or failing because of the culprit."""
    return any(name in clause for clause in verdict.because)


def test_a_layer_named_as_a_plural_takes_a_plural_verb():
    """Issue 21: "App servers fails because of it"; one layer named "Auth backends"
    fails, "Database" fails, "DNS" fails."""
    from stackscope.words import reads_plural

    verdict = assess(snapshot(LAYOUT, {"db": REFUSED, "auth-1": H500, "auth-2": H500, "auth-3": H500})).verdict
    assert verdict.summary.endswith("; Auth backends fail because of it"), verdict.summary
    assert [reads_plural(n) for n in ("App servers", "Auth backends", "Database", "DNS", "Postgres", "Redis")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_db_down_summary_says_what_fails_because_of_it():
    verdict = assess(
        snapshot(LAYOUT, {"db": REFUSED, "auth-1": H500, "auth-2": H500, "auth-3": H500, "lb": H503})
    ).verdict
    assert verdict.summary == ("Database: refused the connection; Load balancer and Auth backends fail because of it")
    assert "Auth backends (crit): 500 Internal Server Error — explained by Database" in verdict.also_failing
    assert verdict.ruled_out == ("DNS: auth.example.test → 127.0.0.1 as expected", "Cache: 1/1 accept connections")


def test_lb_verdict_rules_out_backends_with_direct_proof():
    verdict = assess(snapshot(LAYOUT, {"lb": H503})).verdict
    assert "Auth backends: 3/3 answer 200 directly" in verdict.ruled_out
    assert "Database: 1/1 accept connections" in verdict.ruled_out
    assert verdict.evidence == ("lb: CRIT — 503 Service Unavailable",)


def test_partial_pool_summary_and_evidence():
    verdict = assess(snapshot(LAYOUT, {"auth-2": REFUSED})).verdict
    assert verdict.summary == "Auth backends: 1 of 3 down — auth-2: refused the connection"
    assert "still serving: auth-1, auth-3" in verdict.evidence


def test_independent_failure_is_labelled():
    verdict = assess(snapshot(LAYOUT, {"dns": F(C, K.DNS_RCODE, "NXDOMAIN"), "db": REFUSED})).verdict
    assert "Database (crit): refused the connection — independent failure" in verdict.also_failing


# ----------------------------------------------------------------------------- layer status

POOL = parse_layout(
    "name: p\nlayers:\n  - name: Pool\n    role: backend\n    checks:\n"
    "      - {tcp: '127.0.0.1:1', name: a}\n      - {tcp: '127.0.0.1:2', name: b}\n"
    "      - {tcp: '127.0.0.1:3', name: c}\n"
    "  - name: Single\n    role: db\n    checks:\n"
    "      - {tcp: '127.0.0.1:4', name: p}\n      - {tcp: '127.0.0.1:5', name: r}\n",
    "p.yaml",
)

LAYER_CASES = [
    ("pool all ok", "Pool", {}, Status.OK),
    ("pool one crit", "Pool", {"a": REFUSED}, Status.WARN),
    ("pool two crit", "Pool", {"a": REFUSED, "b": REFUSED}, Status.WARN),
    ("pool all crit", "Pool", {"a": REFUSED, "b": REFUSED, "c": REFUSED}, Status.CRIT),
    ("pool crit and unknown only", "Pool", {"a": REFUSED, "b": REFUSED, "c": F(U)}, Status.CRIT),
    ("pool warn and crit", "Pool", {"a": SLOW, "b": REFUSED, "c": REFUSED}, Status.WARN),
    ("pool one unknown", "Pool", {"a": F(U)}, Status.UNKNOWN),
    ("db primary down, replica up: not a pool", "Single", {"p": REFUSED}, Status.CRIT),
    ("db replica slow", "Single", {"r": SLOW}, Status.WARN),
    ("db unknown and warn", "Single", {"p": F(U), "r": SLOW}, Status.WARN),
]


@pytest.mark.parametrize("name,layer,failures,status", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_status(name, layer, failures, status):
    snap = snapshot(POOL, failures)
    assert layer_state(POOL.layer(layer), snap).status is status


# ----------------------------------------------------------------------------- dependencies


def test_dependency_groups_follow_the_path_with_db_and_cache_as_siblings():
    groups = [[l.name for l in g] for g in dependency_groups(LAYOUT)]
    assert groups == [["Load balancer"], ["Auth backends"], ["Database", "Cache"]]
    below = layers_below(LAYOUT)
    assert below["Load balancer"] == [["Auth backends"], ["Database", "Cache"]]
    assert below["Auth backends"] == [["Database", "Cache"]]
    assert below["Database"] == [] and below["DNS"] == []


def test_other_layers_are_positional():
    layout = parse_layout(
        "name: o\nlayers:\n  - {name: CDN, role: other, checks: [{tcp: '127.0.0.1:1'}]}\n"
        "  - {name: LB, role: lb, checks: [{tcp: '127.0.0.1:2'}]}\n"
        "  - {name: Queue, role: other, checks: [{tcp: '127.0.0.1:3'}]}\n"
        "  - {name: DB, role: db, checks: [{tcp: '127.0.0.1:4'}]}\n"
    )
    below = layers_below(layout)
    assert below == {"CDN": [["LB"], ["Queue"], ["DB"]], "LB": [["Queue"], ["DB"]], "Queue": [["DB"]], "DB": []}


def test_diagnosis_is_pure_and_repeatable():
    snap = snapshot(LAYOUT, {"lb": H503})
    assert assess(snap).verdict == assess(snap).verdict


# ----------------------------------------------------------------------------- partial database failures

DB = parse_layout("""name: d
layers:
  - {name: App, role: backend, checks: [{http: "http://127.0.0.1:1/", name: app}]}
  - name: Database
    role: db
    checks:
      - {postgres: "127.0.0.1:5432", name: primary}
      - {postgres: "127.0.0.1:5433", name: replica}
  - {name: Cache, role: cache, checks: [{redis: "127.0.0.1:6379", name: cache}]}
""")

DB_CASES = [
    ("primary down, replica up: the database is broken", {"primary": REFUSED}, ("Database", C)),
    ("primary down takes the app with it", {"primary": REFUSED, "app": H500}, ("Database", C)),
    (
        "replica lagging is a warning on the database",
        {"replica": F(W, K.STATE, "standby replay lags 90s")},
        ("Database", W),
    ),
    (
        "primary in recovery",
        {"primary": F(C, K.STATE, "not accepting connections (57P03)"), "app": H500},
        ("Database", C),
    ),
    (
        "database out of connections",
        {"primary": F(C, K.SATURATED, "too many clients (53300)"), "app": H500},
        ("Database", C),
    ),
    ("cache down, database fine", {"cache": REFUSED, "app": H500}, ("Cache", C)),
    ("both down: the first on the path", {"cache": REFUSED, "primary": REFUSED, "app": H500}, ("Database", C)),
    ("app down on its own", {"app": REFUSED}, ("App", C)),
]


@pytest.mark.parametrize("name,failures,expect", DB_CASES, ids=[c[0] for c in DB_CASES])
def test_partial_database_failures(name, failures, expect):
    verdict = assess(snapshot(DB, failures)).verdict
    assert (verdict.layer, verdict.status) == expect, verdict.summary


SLOW_308 = F(W, K.SLOW, "answered in 308 ms (warn above 200 ms)")


def test_slowness_is_worded_as_slowness_not_failure():
    snap = snapshot(
        LAYOUT,
        {
            "db": F(W, K.SLOW, "PING answered in 300 ms"),
            "auth-1": SLOW_308,
            "auth-2": SLOW_308,
            "auth-3": SLOW_308,
            "lb": SLOW_308,
        },
    )
    diagnosis = assess(snap)
    verdict = diagnosis.verdict
    assert verdict.layer == "Database"
    assert (
        verdict.summary == "Database: PING answered in 300 ms; Load balancer and Auth backends are slow because of it"
    )
    states = {layer.name: layer.summary for layer in diagnosis.layers}
    assert states["Auth backends"] == "3/3 slow" and states["Load balancer"] == "1/1 slow"


def test_layer_summary_words_per_status():
    other_warn = F(W, K.STATE, "replica lagging")
    states = {
        l.name: l.summary
        for l in assess(snapshot(LAYOUT, {"auth-1": H500, "auth-2": SLOW_308, "auth-3": other_warn, "db": None})).layers
    }
    assert states["Auth backends"] == "1/3 failing, 1/3 slow, 1/3 degraded"
    assert states["Database"] == "1/1 unknown" and states["Cache"] == "1/1 ok"


def test_more_failing_checks_are_counted_as_checks():
    verdict = assess(snapshot(LAYOUT, {"auth-1": H500, "auth-2": H500, "auth-3": H500})).verdict
    assert verdict.summary == "Auth backends: 500 Internal Server Error (+2 more failing checks)"
    lb_two = parse_layout(
        AUTH.replace("        name: lb\n", "        name: lb\n      - {tcp: '127.0.0.1:18081', name: lb-tcp}\n"),
        "a.yaml",
    )
    verdict = assess(snapshot(lb_two, {"lb": F(C, K.REFUSED, "refused"), "lb-tcp": F(C, K.REFUSED, "refused")})).verdict
    assert verdict.summary == "Load balancer: refused (+1 more failing check)"


def test_a_long_list_of_consequences_is_capped():
    layers = "".join(
        f"  - name: Layer{i}\n    role: backend\n    checks:\n      - {{http: 'http://127.0.0.1:{19000 + i}/',"
        f" name: b{i}}}\n"
        for i in range(10)
    )
    layout = parse_layout(
        "name: wide\nlayers:\n" + layers + "  - name: Store\n    role: db\n    checks:\n"
        "      - {tcp: '127.0.0.1:15432', name: db}\n",
        "w.yaml",
    )
    verdict = assess(snapshot(layout, {"db": F(C, K.REFUSED, "refused"), **{f"b{i}": H500 for i in range(10)}})).verdict
    assert verdict.layer == "Store"
    assert verdict.summary.endswith("; Layer0, Layer1 and 8 more fail because of it")


# ----------------------------------------------------------------------------- evidence across layers

# An LB with a frontend check and its HAProxy pool, three backends, a database and a cache.
LINKED = parse_layout(
    """name: linked
layers:
  - name: LB
    role: lb
    checks:
      - {http: "http://127.0.0.1:18080/", name: front, identity_header: X-Served-By}
      - {haproxy: "unix:/run/h.sock", name: pool, backend: auth}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/", name: auth-1, identity_header: X-Served-By}
      - {http: "http://127.0.0.1:19002/", name: auth-2, identity_header: X-Served-By}
      - {http: "http://127.0.0.1:19003/", name: auth-3, identity_header: X-Served-By}
  - {name: Database, role: db, checks: [{postgres: "127.0.0.1:15432", name: primary, expect_role: primary}]}
  - {name: Cache, role: cache, checks: [{redis: "127.0.0.1:16379", name: cache}]}
""",
    "linked.yaml",
)


def pool_of(*members: PoolMember) -> PoolEvidence:
    """The pool evidence of auth-1..3 with the given members replaced (by name)."""
    given = {m.declared_as: m for m in members}
    return PoolEvidence(
        "auth",
        tuple(
            given.get(f"auth-{i}") or PoolMember(f"a{i}", f"127.0.0.1:1900{i}", IN, True, f"auth-{i}", "UP", "L7OK 200")
            for i in (1, 2, 3)
        ),
    )


def crashing(name: str) -> PoolMember:
    """A member still UP on the LB whose error/retry counters rose since the last round."""
    i = name[-1]
    return PoolMember(f"a{i}", f"127.0.0.1:1900{i}", IN, True, name, "UP", "L7OK 200", errors_rising=True)


def hung(name: str) -> PoolMember:
    """A member the LB's last health check timed out on, still UP 1/2 (inter 1s fall 2)."""
    i = name[-1]
    return PoolMember(f"a{i}", f"127.0.0.1:1900{i}", IN, True, name, "UP 1/2", "L4TOUT", check_failing=True)


def ok_linked(name: str) -> F:
    if name == "pool":
        return F(Status.OK, None, "pool auth: 3/3 up", {}, pool_of())
    if name.startswith("auth-") or name == "front":
        who = name if name != "front" else "auth-1"
        return F(Status.OK, None, "200 OK", {}, HttpAnswer(200, identity=who, identity_header="X-Served-By"))
    if name == "primary":
        return F(Status.OK, None, "primary", {}, StoreState("postgres", role="primary", expected_role="primary"))
    return F(Status.OK, None, "PONG", {}, StoreState("redis"))


def linked(failures: dict[str, F]) -> Snapshot:
    names = [c.name for c in LINKED.checks()]
    return snapshot(LINKED, {n: failures.get(n, ok_linked(n)) for n in names})


FRONT_502 = F(C, K.HTTP_STATUS, "502 Bad Gateway", {}, HttpAnswer(502, identity_header="X-Served-By"))
FRONT_TIMEOUT = F(C, K.TIMEOUT, "no response within 2s")
OOM_500 = F(
    C,
    K.HTTP_STATUS,
    "500 Internal Server Error: OOM command not allowed when used memory > 'maxmemory'",
    {},
    HttpAnswer(500, identity="auth-2", identity_header="X-Served-By", store_errors=("redis",)),
)
READ_ONLY_500 = F(
    C,
    K.HTTP_STATUS,
    "500 Internal Server Error: cannot execute INSERT in a read-only transaction",
    {},
    HttpAnswer(500, identity_header="X-Served-By", store_errors=("postgres",)),
)
STANDBY_AS_PRIMARY = F(
    C,
    K.STATE,
    "is a standby (pg_is_in_recovery() is true) but is declared the primary",
    {},
    StoreState("postgres", role="standby", expected_role="primary", read_only=True, refuses_writes="in recovery"),
)
NEAR_FULL = F(
    W,
    K.SATURATED,
    "uses 93% of maxmemory under noeviction",
    {},
    StoreState("redis", used_memory=930, maxmemory=1000, maxmemory_policy="noeviction"),
)

# (id, failures, expected verdict layer, status, the LB layer's status, what the summary says)
LINKED_CASES = [
    (
        "a hung member (SIGSTOP): the lb's timeout is the member's, the lb only degraded",
        {"auth-2": TIMEOUT, "front": FRONT_TIMEOUT, "pool": F(Status.OK, None, "3/3 up", {}, pool_of(hung("auth-2")))},
        ("Backends", W, W),
        "Backends: 1 of 3 down — auth-2: no response within 2s; LB is degraded because of it",
    ),
    (
        "a member the lb's health check times out on, while ours only finds it slow: the lb's timeout is its",
        {"front": FRONT_TIMEOUT, "pool": F(Status.OK, None, "3/3 up", {}, pool_of(hung("auth-2"))), "auth-2": SLOW},
        ("Backends", W, W),
        "Backends: 1 of 3 slow — auth-2: slow: 900 ms is above warn_ms 200; LB is degraded because of it",
    ),
    (
        "a crashing member behind a retrying lb: its counters rise on the lb while it answers our check",
        {"front": FRONT_502, "pool": F(Status.OK, None, "3/3 up", {}, pool_of(crashing("auth-2")))},
        ("Backends", W, W),
        "Backends: auth-2: the LB's error, retry or redispatch counters for it rose since the last round",
    ),
    (
        "a killed member: the lb's 502 in the same window is the member's",
        {"auth-2": REFUSED, "front": FRONT_502},
        ("Backends", W, W),
        "Backends: 1 of 3 down — auth-2: refused the connection; LB is degraded because of it",
    ),
    (
        "a killed member the lb already marks down: the pool warning is the member's too",
        {
            "auth-2": REFUSED,
            "pool": F(
                W,
                K.MEMBERS_DOWN,
                "pool auth: 2/3 up",
                {},
                pool_of(PoolMember("a2", "127.0.0.1:19002", DOWN_BY_CHECK, True, "auth-2", "DOWN", "L4CON")),
            ),
        },
        ("Backends", W, W),
        "Backends: 1 of 3 down — auth-2: refused the connection; LB is degraded because of it",
    ),
    (
        "the store named in a backend's error explains it, though the store is only near full",
        {"auth-2": OOM_500, "cache": NEAR_FULL},
        ("Cache", W, Status.OK),
        "Cache: uses 93% of maxmemory under noeviction; Backends are degraded because of it",
    ),
    (
        "a backend 500 quoting a store that is healthy is the backend's own",
        {"auth-2": OOM_500},
        ("Backends", W, Status.OK),
        "Backends: 1 of 3 down — auth-2: 500 Internal Server Error: OOM command",
    ),
    (
        "a read-only primary after a failover: every backend's write fails, the database is named",
        {
            "primary": STANDBY_AS_PRIMARY,
            "auth-1": READ_ONLY_500,
            "auth-2": READ_ONLY_500,
            "auth-3": READ_ONLY_500,
            "front": FRONT_502,
        },
        ("Database", C, C),
        "Database: is a standby (pg_is_in_recovery() is true) but is declared the primary; "
        "LB and Backends fail because of it",
    ),
    (
        "a killed member that served the lb's request just before it died is no stranger",
        {
            "auth-2": REFUSED,
            "front": F(Status.OK, None, "200 OK", {}, HttpAnswer(200, "auth-2", "X-Served-By", (("auth-2", 1),))),
        },
        ("Backends", W, Status.OK),
        "Backends: 1 of 3 down — auth-2: refused the connection",
    ),
    (
        "responses from two strangers with one member down: misrouted all the same",
        {
            "auth-2": REFUSED,
            "front": F(
                Status.OK,
                None,
                "200 OK",
                {},
                HttpAnswer(200, "decoy-2", "X-Served-By", (("decoy-1", 2), ("decoy-2", 2))),
            ),
        },
        ("LB", C, C),
        "LB: through the LB, 4 of 4 responses came from decoy-1, decoy-2",
    ),
    (
        "an lb 404 is its own even with a member down",
        {"auth-2": REFUSED, "front": H404},
        ("LB", C, C),
        "LB: 404 Not Found",
    ),
]


@pytest.mark.parametrize("name,failures,expect,summary", LINKED_CASES, ids=[c[0] for c in LINKED_CASES])
def test_failures_linked_by_evidence(name, failures, expect, summary):
    diagnosis = assess(linked(failures))
    verdict = diagnosis.verdict
    lb = next(l for l in diagnosis.layers if l.name == "LB")
    assert (verdict.layer, verdict.status, lb.status) == expect, verdict.summary
    assert verdict.summary.startswith(summary), verdict.summary


def test_an_lb_degraded_by_a_member_reads_so_and_is_ruled_out():
    diagnosis = assess(linked({"auth-2": TIMEOUT, "front": FRONT_TIMEOUT}))
    lb = next(l for l in diagnosis.layers if l.name == "LB")
    assert lb.summary == "degraded because of auth-2"
    assert "LB: degraded because of auth-2, not broken; 1/2 checks ok" in diagnosis.verdict.ruled_out
    assert not any(item.startswith("LB") for item in diagnosis.verdict.also_failing)
    assert diagnosis.status is Status.WARN  # nothing is broken: one member of three is down


TWO_LAYERS_TEXT = """name: two
layers:
  - name: LB
    role: lb
    checks:
      - {http: "http://127.0.0.1:18080/", name: front}
      - {haproxy: "unix:/run/h.sock", name: pool, backend: auth}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/", name: auth-1}
      - {http: "http://127.0.0.1:19002/", name: auth-2}
      - {http: "http://127.0.0.1:19003/", name: auth-3}
"""
TWO_LAYERS = parse_layout(TWO_LAYERS_TEXT, "two.yaml")


def test_one_backend_of_three_down_on_two_layers_rules_out_the_lb():
    """Issue 16 item 8: the LB answers 200 and only its pool warns: it is not 'failing'."""
    down = PoolMember("a2", "127.0.0.1:19002", DOWN_BY_CHECK, True, "auth-2", "DOWN", "L4CON")
    verdict = assess(
        snapshot(
            TWO_LAYERS,
            {
                "auth-2": REFUSED,
                "pool": F(W, K.MEMBERS_DOWN, "pool auth: 2/3 up", {}, pool_of(down)),
                "front": F(Status.OK, None, "200 OK", {}, HttpAnswer(200)),
            },
        )
    ).verdict
    assert verdict.layer == "Backends" and verdict.status is W
    assert verdict.ruled_out == ("LB: degraded because of Backends, not broken; 1/2 checks ok",)
    assert verdict.summary == "Backends: 1 of 3 down — auth-2: refused the connection; LB is degraded because of it"


def test_an_unconfirmed_failure_makes_an_unconfirmed_verdict():
    unconfirmed = F(C, K.REFUSED, "refused the connection", confirmed=False)
    verdict = assess(snapshot(LAYOUT, {"db": unconfirmed})).verdict
    assert verdict.layer == "Database" and not verdict.confirmed
    assert verdict.to_dict()["confirmed"] is False
    # a check elsewhere awaiting confirmation does not make the verdict unconfirmed
    other = F(Status.WARN, K.SLOW, "slow", confirmed=False)
    assert assess(snapshot(LAYOUT, {"db": REFUSED, "cache": other})).verdict.confirmed


AT = 1000.0  # the wall clock of the snapshots below


def timed(result: Result, *, changed: float | None, finished: float = AT) -> Result:
    return dataclasses.replace(result, started_at=finished - 0.002, finished_at=finished, changed_at=changed)


def recovering_pool(names, readmit: float | None = 1.0, service=DOWN_BY_CHECK, state="DOWN") -> F:
    members = tuple(
        PoolMember(f"a{n}", f"127.0.0.1:1900{n}", service, True, f"auth-{n}", state, "L4CON", readmit_s=readmit)
        if n in names
        else PoolMember(f"a{n}", f"127.0.0.1:1900{n}", IN, True, f"auth-{n}", "UP", "L7OK", readmit_s=readmit)
        for n in (1, 2, 3)
    )
    status = C if len(names) == 3 else W
    return F(status, K.MEMBERS_DOWN, f"pool auth: {3 - len(names)}/3 up", {}, PoolEvidence("auth", members))


def two_layer_snapshot(failures: dict[str, F], back_since: dict[str, float]) -> Snapshot:
    """TWO_LAYERS with every result timed: each backend named in `back_since` answers
    again since that many seconds; the others have answered for ten minutes."""
    snap = snapshot(TWO_LAYERS, failures)
    results = {}
    for cid, result in snap.results.items():
        name = cid.split("/")[1]
        since = AT - back_since[name] if name in back_since else AT - 600
        results[cid] = timed(result, changed=since)
    return Snapshot(TWO_LAYERS, results, AT)


# (case, LB results, backends answering again since s, readmit_s, expected layer, status, recovering)
RECOVERY_CASES = [
    (
        "every member back 1 s ago, the LB still has them DOWN and answers 503",
        {"pool": recovering_pool((1, 2, 3)), "front": H503},
        {"auth-1": 1, "auth-2": 1, "auth-3": 1},
        1.0,
        "Backends",
        C,
        True,
    ),
    (
        "one member back 0.5 s ago, the LB still has it DOWN and serves from the others",
        {"pool": recovering_pool((2,))},
        {"auth-2": 0.5},
        1.0,
        "Backends",
        W,
        True,
    ),
    (
        "inside a long window (Apache's retry 60 s): still recovering after 30 s",
        {"pool": recovering_pool((1, 2, 3), readmit=60.0), "front": H503},
        {"auth-1": 30, "auth-2": 30, "auth-3": 30},
        60.0,
        "Backends",
        C,
        True,
    ),
    (
        "past the window and the margin: the LB keeping healthy members out is the LB's fault",
        {"pool": recovering_pool((1, 2, 3)), "front": H503},
        {"auth-1": 20, "auth-2": 20, "auth-3": 20},
        1.0,
        "LB",
        C,
        False,
    ),
    (
        "one member held out past its window while answering: the LB's fault",
        {"pool": recovering_pool((2,))},
        {"auth-2": 30},
        1.0,
        "LB",
        W,
        False,
    ),
    (
        "no LB window known: the layout's interval is the window",
        {"pool": recovering_pool((1, 2, 3), readmit=None), "front": H503},
        {"auth-1": 2, "auth-2": 2, "auth-3": 2},
        None,
        "Backends",
        C,
        True,
    ),
    (
        "a passive LB (no pool state) answering 502 right after the members came back",
        {"front": F(C, K.HTTP_STATUS, "502 Bad Gateway", {"status_code": 502}, HttpAnswer(502))},
        {"auth-1": 1, "auth-2": 1, "auth-3": 1},
        None,
        "Backends",
        C,
        True,
    ),
    (
        "the LB refusing connections is its own fault, recovery or not",
        {"front": REFUSED},
        {"auth-1": 1, "auth-2": 1, "auth-3": 1},
        None,
        "LB",
        C,
        False,
    ),
]


@pytest.mark.parametrize(
    "case, failures, back, readmit, layer, status, recovering", RECOVERY_CASES, ids=[c[0] for c in RECOVERY_CASES]
)
def test_a_recovering_member_is_the_broken_layer_getting_better(
    case, failures, back, readmit, layer, status, recovering
):
    verdict = assess(two_layer_snapshot(failures, back)).verdict
    assert (verdict.layer, verdict.status, verdict.recovering) == (layer, status, recovering), verdict.summary
    if recovering:
        assert "recovering:" in verdict.summary and "answer" in verdict.summary
        assert verdict.to_dict()["recovering"] is True
        assert not any(r.startswith("Backends") for r in verdict.ruled_out)
    else:
        assert "recovering" not in verdict.summary


def test_a_recovery_says_which_lb_takes_the_members_back_and_when():
    failures = {"pool": recovering_pool((2,), readmit=3.0)}
    verdict = assess(two_layer_snapshot(failures, {"auth-2": 0.5})).verdict
    assert verdict.summary.startswith("Backends recovering: auth-2 answers again; HAProxy takes it back within 3 s")
    assert "LB: degraded because of Backends, not broken" in verdict.ruled_out[0]


STORE_BEHIND = parse_layout(
    TWO_LAYERS_TEXT
    + """  - name: Cache
    role: cache
    checks:
      - {tcp: "127.0.0.1:16379", name: redis}
""",
    "s.yaml",
)


def test_a_store_that_comes_back_keeps_the_verdict_while_the_lb_re_admits_the_backends():
    """Redis stopped, the backends failed their health checks on the LB; Redis is back and
    so are the backends, but the LB has not re-checked them: the Cache is recovering."""
    snap = snapshot(STORE_BEHIND, {"pool": recovering_pool((1, 2, 3)), "front": H503})
    results = {cid: timed(r, changed=AT - 1.0) for cid, r in snap.results.items()}
    verdict = assess(Snapshot(STORE_BEHIND, results, AT)).verdict
    assert (verdict.layer, verdict.status, verdict.recovering) == ("Cache", C, True)
    assert "redis" in verdict.summary and "auth-1" in verdict.summary


def test_stale_backend_results_hold_a_fresh_lb_failure():
    """The backends answered 2 ms into the round, the LB's 503 came 200 ms later: judged on
    those, the LB would be named. The verdict is marked stale (not shown while streaming,
    never confirmed) until the backends are probed again; then it names the right layer."""
    snap = snapshot(TWO_LAYERS, {"front": H503})
    results = {cid: timed(r, changed=AT - 600, finished=AT - 0.2) for cid, r in snap.results.items()}
    results["LB/front"] = timed(results["LB/front"], changed=AT, finished=AT)  # the change, seen now
    held = assess(Snapshot(TWO_LAYERS, results, AT)).verdict
    assert held.layer == "LB" and not held.confirmed
    assert set(held.stale) == {"Backends/auth-1", "Backends/auth-2", "Backends/auth-3", "LB/pool"}
    # the re-probes: auth-2 refuses now
    for name in ("auth-1", "auth-3"):
        results[f"Backends/{name}"] = timed(results[f"Backends/{name}"], changed=AT - 600, finished=AT + 0.01)
    results["LB/pool"] = timed(results["LB/pool"], changed=AT - 600, finished=AT + 0.01)
    refused = Result("Backends/auth-2", C, "refused the connection", error_kind=K.REFUSED)
    results["Backends/auth-2"] = timed(refused, changed=AT + 0.01, finished=AT + 0.01)
    again = assess(Snapshot(TWO_LAYERS, results, AT + 0.02)).verdict
    # auth-2's failure is itself a change: the LB's 503 from before it is probed again too
    assert again.layer == "Backends" and again.stale == ("LB/front",) and not again.confirmed
    results["LB/front"] = timed(results["LB/front"], changed=AT, finished=AT + 0.03)
    fresh = assess(Snapshot(TWO_LAYERS, results, AT + 0.04)).verdict
    assert (fresh.layer, fresh.stale, fresh.confirmed) == ("Backends", (), True)


def test_results_without_times_are_never_stale():
    verdict = assess(snapshot(TWO_LAYERS, {"front": H503})).verdict
    assert verdict.stale == () and verdict.confirmed


def test_related_layers_are_the_path_through_a_layer_and_dns():
    from stackscope.diagnosis import related_layers

    assert related_layers(LAYOUT, "Load balancer") == {"DNS", "Load balancer", "Auth backends", "Database", "Cache"}
    assert related_layers(LAYOUT, "Cache") == {"DNS", "Load balancer", "Auth backends", "Cache"}  # not its sibling
    assert related_layers(LAYOUT, "DNS") == {layer.name for layer in LAYOUT.layers}


SUSPECTED = F(W, K.SUSPECTED, "no answer for 300 ms (usually 2 ms)", confirmed=False)


def test_an_lb_timeout_while_a_member_is_suspected_is_the_member():
    """The LB's request ran into the member that has been silent for a while: the LB's
    probe started first and timed out first, while the member's own probe is still
    pending (suspected, WARN): the LB is degraded because of it, not broken."""
    verdict = assess(snapshot(TWO_LAYERS, {"auth-2": SUSPECTED, "front": TIMEOUT})).verdict
    assert (verdict.layer, verdict.status) == ("Backends", W), verdict.summary
    assert "LB" in verdict.summary and "because of it" in verdict.summary


def test_a_suspected_check_is_silent_as_of_now_never_stale():
    """Suspected at 0.30 s, a member then suspected at 0.31 s: the first probe is still
    pending, its silence goes on; the verdict is not held for it."""
    snap = snapshot(TWO_LAYERS, {"auth-2": SUSPECTED, "front": F(W, K.SUSPECTED, "no answer for 301 ms")})
    results = {cid: timed(r, changed=AT - 600, finished=AT + 0.31) for cid, r in snap.results.items()}
    results["LB/front"] = timed(results["LB/front"], changed=AT + 0.30, finished=AT + 0.30)
    results["Backends/auth-2"] = timed(results["Backends/auth-2"], changed=AT + 0.31, finished=AT + 0.31)
    verdict = assess(Snapshot(TWO_LAYERS, results, AT + 0.32)).verdict
    assert (verdict.layer, verdict.stale) == ("Backends", ())


GRPC = parse_layout(
    """\
name: grpc
layers:
  - {name: LB, role: lb, checks: [{grpc: "127.0.0.1:18443", name: front, service: orders}]}
  - name: Orders
    role: backend
    checks:
      - {grpc: "127.0.0.1:50051", name: orders-1, service: orders}
      - {grpc: "127.0.0.1:50052", name: orders-2, service: orders}
  - {name: Database, role: db, checks: [{tcp: "127.0.0.1:15432", name: db}]}
""",
    "grpc.yaml",
)
NOT_SERVING = F(C, K.STATE, "service 'orders' is NOT_SERVING", {}, GrpcAnswer("OK", "NOT_SERVING", 200))
UNAVAILABLE = F(C, K.STATE, "failed the health check: UNAVAILABLE", {}, GrpcAnswer("UNAVAILABLE", "", 200))
LB_502 = F(C, K.HTTP_STATUS, "answered HTTP 502 without a grpc-status", {}, GrpcAnswer("", "", 502))
SERVICE_UNKNOWN = F(C, K.STATE, "does not know service 'orders'", {}, GrpcAnswer("NOT_FOUND", "SERVICE_UNKNOWN", 200))
NO_HEALTH = F(U, K.PROTOCOL, "has no health service (UNIMPLEMENTED)", {}, GrpcAnswer("UNIMPLEMENTED", "", 200))

GRPC_CASES = [
    # (name, failures, verdict layer, its status, the LB's own layer status after the diagnosis)
    (
        "NOT_SERVING through the LB, every member NOT_SERVING",
        {"front": NOT_SERVING, "orders-1": NOT_SERVING, "orders-2": NOT_SERVING},
        "Orders",
        C,
        C,
    ),
    (
        "NOT_SERVING through the LB, one member NOT_SERVING: the LB is degraded by it",
        {"front": NOT_SERVING, "orders-1": NOT_SERVING},
        "Orders",
        W,
        W,
    ),
    (
        "UNAVAILABLE through the LB, every member refusing",
        {"front": UNAVAILABLE, "orders-1": REFUSED, "orders-2": REFUSED},
        "Orders",
        C,
        C,
    ),
    (
        "the LB's own 502 page, every member refusing",
        {"front": LB_502, "orders-1": REFUSED, "orders-2": REFUSED},
        "Orders",
        C,
        C,
    ),
    ("NOT_SERVING through the LB while every member is SERVING: misrouted", {"front": NOT_SERVING}, "LB", C, C),
    ("a SERVING member vouches for the database beneath it", {"front": NOT_SERVING, "db": REFUSED}, "LB", C, C),
    ("a refusing LB is its own", {"front": REFUSED, "orders-1": NOT_SERVING, "orders-2": NOT_SERVING}, "LB", C, C),
    (
        "an LB route to a server that does not know the service is its own",
        {"front": SERVICE_UNKNOWN, "orders-1": NOT_SERVING, "orders-2": NOT_SERVING},
        "LB",
        C,
        C,
    ),
    (
        "a database down: members NOT_SERVING and the LB with them",
        {"front": NOT_SERVING, "orders-1": NOT_SERVING, "orders-2": NOT_SERVING, "db": REFUSED},
        "Database",
        C,
        C,
    ),
]


@pytest.mark.parametrize("name,failures,layer,status,lb", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_grpc_through_the_lb(name, failures, layer, status, lb):
    """A gRPC NOT_SERVING or UNAVAILABLE seen through the LB is a member's state passed on,
    like a 5xx; a refused call, or one the members would answer otherwise, is the LB's."""
    diagnosis = assess(snapshot(GRPC, failures))
    verdict = diagnosis.verdict
    assert verdict is not None
    assert (verdict.layer, verdict.status) == (layer, status), verdict.summary
    assert next(l for l in diagnosis.layers if l.name == "LB").status is lb


def test_a_healthy_grpc_pool_is_ruled_out_as_serving_directly():
    verdict = assess(snapshot(GRPC, {"front": NOT_SERVING})).verdict
    assert "Orders: 2/2 SERVING directly" in verdict.ruled_out, verdict.ruled_out
