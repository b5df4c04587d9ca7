"""LB parsing and judging without servers: nginx grammar, haproxy.cfg, stats CSV, pool
rules, cross-layer findings and the lint gate."""

from __future__ import annotations

import pytest

from stackscope.diagnosis import assess
from stackscope.layout import parse_layout
from stackscope.lb import haproxy_cfg, haproxy_stats, nginx_conf
from stackscope.lb.gate import GateError, detect, gate_status, render, run_gate
from stackscope.lb.haproxy_stats import StatsError, parse_csv, parse_servers_state, pool_from_csv, pool_from_states
from stackscope.lb.pool import Declared, Pool, PoolServer, compress, judge_pool
from stackscope.model import (
    NO_IDENTITY,
    ErrorKind,
    HttpAnswer,
    PoolEvidence,
    PoolMember,
    Result,
    Snapshot,
    Status,
)

# ----------------------------------------------------------------------------- nginx grammar


def test_nginx_comments_quotes_variables_and_multiline_directives(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("""
# a comment with { braces } and ; semicolons
http {
    map $host $x { default "a#b;{}"; }   # quoted specials are data
    upstream auth {
        server 127.0.0.1:9001
               weight=3;                  # a directive over two lines
        server 'localhost:9002' backup;
        server unix:/run/app.sock;
        server 10.0.0.1 down;             # port 80 by default
    }
    server {
        listen 80;
        location / { return 200 "${request_uri}#not-a-comment"; }
        location /a { proxy_pass http://auth/x; }
    }
}
""")
    config = nginx_conf.load(str(conf))
    upstream = nginx_conf.upstreams(config)["auth"]
    servers = upstream.servers
    assert [s.written for s in servers] == ["127.0.0.1:9001", "localhost:9002", "unix:/run/app.sock", "10.0.0.1"]
    assert servers[0].params == {"weight": "3"} and servers[0].line == 6
    assert servers[1].flags == ("backup",)
    assert (servers[3].host, servers[3].port, servers[3].flags) == ("10.0.0.1", 80, ("down",))
    assert upstream.used_by and "location /a" in upstream.used_by[0]
    pool = nginx_conf.pool_of(upstream, {"localhost": "127.0.0.1"})
    states = [(s.address, s.state, s.receives_traffic) for s in pool.servers]
    assert states == [
        ("127.0.0.1:9001", "in rotation", True),
        ("127.0.0.1:9002", "backup", False),
        (None, "in rotation", True),
        ("10.0.0.1:80", "down (config)", False),
    ]
    # the diagnosis reads the service fact, never the state words
    assert [s.to_fact(True)["service"] for s in pool.servers] == ["in", "backup", "in", "disabled"]
    assert pool.servers[1].standby and not pool.servers[0].standby


def test_nginx_includes_with_globs_relative_to_the_main_file(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("upstream a { server 127.0.0.1:1; }\n")
    (tmp_path / "conf.d" / "b.conf").write_text("upstream b { server 127.0.0.1:2; }\n")
    (tmp_path / "nginx.conf").write_text("http {\n  include conf.d/*.conf;\n  include missing/*.conf;\n}\n")
    config = nginx_conf.load(str(tmp_path / "nginx.conf"))
    assert set(nginx_conf.upstreams(config)) == {"a", "b"}
    assert len(config.files) == 3


def test_nginx_include_loop_is_stopped(tmp_path):
    (tmp_path / "loop.conf").write_text("include loop.conf;\n")
    with pytest.raises(nginx_conf.ConfigError) as info:
        nginx_conf.load(str(tmp_path / "loop.conf"))
    assert "nested too deeply" in str(info.value) or "more than" in str(info.value)


def test_nginx_dash_T_dump_is_split_into_files(tmp_path):
    dump = tmp_path / "dump.txt"
    dump.write_text(
        "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/conf.d/*.conf; }\n\n"
        "# configuration file /etc/nginx/conf.d/auth.conf:\n"
        "upstream auth { server 127.0.0.1:9; }\n"
    )
    config = nginx_conf.load(str(dump))
    assert config.main == "/etc/nginx/nginx.conf"
    assert [s.port for s in nginx_conf.upstreams(config)["auth"].servers] == [9]


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("http {\n  upstream a {\n    server 1.2.3.4:1\n  }\n}\n", 4, 'unexpected "}" (directive "server"'),
        ("http {\n  upstream a {\n", 2, 'unexpected end of file, expecting "}"'),
        ("}\n", 1, 'unexpected "}"'),
        ('http { return 200 "open\n', 1, 'unterminated " quote'),
        ("http { ; }\n", 1, 'unexpected ";"'),
        ("upstream a { server 1.2.3.4:99999; }\n", 1, "bad server address"),
    ],
)
def test_nginx_syntax_errors_name_file_and_line(tmp_path, text, line, message):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    with pytest.raises(nginx_conf.ConfigError) as info:
        nginx_conf.upstreams(nginx_conf.load(str(conf)))
    assert info.value.line == line
    assert message in info.value.message


# ----------------------------------------------------------------------------- haproxy


CSV_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,last_chk,addr,"
)


def csv_row(px, sv, status, typ, check="", code="", addr="", last_chk="", bck="0"):
    values = {
        "pxname": px,
        "svname": sv,
        "status": status,
        "type": typ,
        "check_status": check,
        "check_code": code,
        "addr": addr,
        "last_chk": last_chk,
        "bck": bck,
        "scur": "2",
        "econ": "1",
        "eresp": "0",
        "weight": "1",
        "lastchg": "30",
    }
    names = CSV_HEADER[2:].split(",")
    return ",".join(values.get(n, "") for n in names)


def test_stats_csv_is_read_by_header_names_whatever_the_order():
    rows = [
        csv_row("app", "a1", "UP", "2", "L7OK", "200", "127.0.0.1:1"),
        csv_row("app", "a2", "DOWN", "2", "L4CON", "", "127.0.0.1:2", "Connection refused"),
        csv_row("app", "a3", "UP 1/3", "2", "* L7OK", "200", "127.0.0.1:3"),
        csv_row("app", "a4", "no check", "2", addr="127.0.0.1:4", bck="1"),
        csv_row("app", "BACKEND", "UP", "1"),
        csv_row("other", "o1", "UP", "2", addr="127.0.0.1:9"),
    ]
    text = CSV_HEADER + "\n" + "\n".join(r + "," for r in rows) + "\n"
    # reverse every column: a parser by position would read garbage
    names = CSV_HEADER[2:].rstrip(",").split(",")
    table = [r.split(",") for r in [CSV_HEADER[2:].rstrip(",")] + rows]
    reordered = "# " + "\n".join(",".join(reversed(cols[: len(names)])) for cols in table) + "\n"
    for source in (text, reordered):
        pool = pool_from_csv(parse_csv(source), "app", "test")
        assert pool.status == "UP"
        assert [(s.name, s.address, s.state, s.receives_traffic) for s in pool.servers] == [
            ("a1", "127.0.0.1:1", "UP", True),
            ("a2", "127.0.0.1:2", "DOWN", False),
            ("a3", "127.0.0.1:3", "UP 1/3", True),
            ("a4", "127.0.0.1:4", "no check", False),
        ]
        assert pool.servers[1].check == "L4CON Connection refused"
        assert pool.servers[2].check == "L7OK 200"
        assert pool.servers[3].flags == ("backup",) and pool.servers[3].standby  # an UP backup: a standby
        assert [s.service for s in pool.servers] == ["in", "down-by-check", "in", "backup"]
        assert pool.servers[0].sessions == 2 and pool.servers[0].errors == 1


def test_stats_problems_say_what_came_instead():
    with pytest.raises(StatsError, match="an HTML page instead of"):
        parse_csv("<!DOCTYPE html><html>stats</html>")
    with pytest.raises(StatsError, match="empty reply"):
        parse_csv("")
    with pytest.raises(StatsError, match="no backend named 'nope'.*backends: app"):
        pool_from_csv(parse_csv(CSV_HEADER + "\n" + csv_row("app", "BACKEND", "UP", "1") + "\n"), "nope", "t")
    with pytest.raises(StatsError, match="'show servers state'"):
        parse_servers_state("Permission denied\n")


@pytest.mark.parametrize("cut", ["at a line", "inside a line"])
def test_a_stats_csv_cut_short_is_refused_not_read_as_fewer_servers(cut):
    rows = [csv_row("app", f"a{i}", "UP", "2", "L7OK", "200", f"127.0.0.1:{i}") + "," for i in range(1, 4)]
    whole = CSV_HEADER + "\n" + "\n".join(rows + [csv_row("app", "BACKEND", "UP", "1") + ","]) + "\n"
    assert len(pool_from_csv(parse_csv(whole), "app", "t").servers) == 3
    text = CSV_HEADER + "\n" + "\n".join(rows[:2]) + "\n"
    if cut == "inside a line":
        text += rows[2][:20]
    with pytest.raises(StatsError, match="the stats CSV ends before the BACKEND row of 'app'.*cut short"):
        pool_from_csv(parse_csv(text), "app", "t")


def test_servers_state_gives_addresses_and_admin_states():
    text = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
        "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
        "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n"
        "3 app 1 a1 127.0.0.1 2 0 1 1 10 15 3 4 6 0 0 0 - 19001 -\n"
        "3 app 2 a2 ::1 2 1 1 1 10 15 3 4 6 0 0 0 - 19002 -\n"
        "3 app 3 a3 127.0.0.1 2 8 1 1 10 15 3 4 6 0 0 0 - 19003 -\n"
        "3 app 4 a4 127.0.0.1 0 0 1 1 10 8 2 0 6 0 0 0 - 19004 -\n"
    )
    pool = pool_from_states(parse_servers_state(text), "app", "socket")
    assert [(s.address, s.state) for s in pool.servers] == [
        ("127.0.0.1:19001", "UP"),
        ("[::1]:19002", "MAINT"),
        ("127.0.0.1:19003", "DRAIN"),
        ("127.0.0.1:19004", "DOWN"),
    ]


def test_haproxy_cfg_servers_routes_and_templates(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("""global
    daemon
frontend web
    bind :80
    use_backend auth if { path_beg /login }
    default_backend www
backend auth
    default-server check
    server a1 10.0.0.1:8080 check   # comment
    server a2 ipv4@10.0.0.2:8080 disabled
    server a3 "auth-3.internal:8080" backup
    server a4 ::1:8080
    server-template s 3 _auth._tcp.example.test resolvers dns
listen www
    bind :81
    server w1 10.0.1.1:80
backend orphan
    server o1 10.0.2.1:80
""")
    config = haproxy_cfg.parse(str(cfg))
    backends = config.backends
    auth = backends["auth"]
    assert [(s.name, s.host, s.port) for s in auth.servers] == [
        ("a1", "10.0.0.1", 8080),
        ("a2", "10.0.0.2", 8080),
        ("a3", "auth-3.internal", 8080),
        ("a4", "::1", 8080),
    ]
    assert auth.used_by == ["frontend web [haproxy.cfg:5]"]
    assert backends["www"].used_by == ["frontend web [haproxy.cfg:6]", "listen www (its own bind)"]
    assert backends["orphan"].used_by == []
    pool = haproxy_cfg.pool_of(config, "auth", {"auth-3.internal": "10.0.0.3"})
    assert [(s.address, s.state) for s in pool.servers] == [
        ("10.0.0.1:8080", "in rotation"),
        ("10.0.0.2:8080", "disabled (config)"),
        ("10.0.0.3:8080", "backup"),
        ("[::1]:8080", "in rotation"),
    ]
    assert pool.extra["dynamic"] == ["s3 → _auth._tcp.example.test (line 13)"]


# ----------------------------------------------------------------------------- pool rules


def server(name, address, state="UP", traffic=True, serving=True, check=""):
    return PoolServer(name, address, state, traffic, serving, check=check)


DECLARED = [Declared(f"127.0.0.1:{p}", f"auth-{i + 1}", f"127.0.0.1:{p}") for i, p in enumerate((9001, 9002, 9003))]
UP3 = [server(f"a{i + 1}", f"127.0.0.1:{p}") for i, p in enumerate((9001, 9002, 9003))]

POOL_CASES = [
    ("healthy", UP3, Status.OK, None, "pool p: 3/3 up, all declared backends present"),
    (
        "misrouted, none declared",
        [server("a1", "127.0.0.1:9101"), server("a2", "127.0.0.1:9102")],
        Status.CRIT,
        ErrorKind.POOL,
        "pool p routes to 127.0.0.1:9101, 127.0.0.1:9102 — none is a declared backend; "
        "declared 127.0.0.1:9001-9003 missing",
    ),
    (
        "one stranger among the right ones",
        UP3 + [server("x", "10.9.9.9:80")],
        Status.CRIT,
        ErrorKind.POOL,
        "pool p routes to 10.9.9.9:80, which is not a declared backend",
    ),
    (
        "a stranger in maintenance takes no traffic",
        UP3 + [server("old", "10.9.9.9:80", "MAINT", False, False)],
        Status.OK,
        None,
        "pool p: 3/4 up, all declared backends present; undeclared but taking no traffic: old MAINT",
    ),
    (
        "dead ports instead of the backends",
        [server("a1", "127.0.0.1:1", "DOWN", False, False)],
        Status.CRIT,
        ErrorKind.POOL,
        "none of the declared backends (127.0.0.1:9001-9003) is in pool p; it holds 127.0.0.1:1 (none taking traffic)",
    ),
    (
        "all declared down",
        [server(s.name, s.address, "DOWN", False, False, "L7STS 404") for s in UP3],
        Status.CRIT,
        ErrorKind.MEMBERS_DOWN,
        "pool p has no server that can take traffic: a1 DOWN (L7STS 404)",
    ),
    ("one missing", UP3[:2], Status.WARN, ErrorKind.POOL, "declared 127.0.0.1:9003 missing from pool p (2/3 present)"),
    (
        "one in maintenance",
        UP3[:2] + [server("a3", "127.0.0.1:9003", "MAINT", False, False)],
        Status.WARN,
        ErrorKind.MEMBERS_DOWN,
        "pool p: 2/3 up — a3 MAINT",
    ),
    (
        "going down still takes traffic",
        UP3[:2] + [server("a3", "127.0.0.1:9003", "UP 1/3")],
        Status.OK,
        None,
        "pool p: 3/3 up",
    ),
    ("empty pool", [], Status.CRIT, ErrorKind.POOL, "none of the declared backends"),
]


@pytest.mark.parametrize("name,servers,status,kind,detail", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_rules(name, servers, status, kind, detail):
    judged = judge_pool(Pool("p", "test", tuple(servers)), DECLARED)
    assert (judged.status, judged.kind) == (status, kind), judged.detail
    assert judged.detail.startswith(detail)


def test_pool_without_declared_backends_judges_health_only():
    judged = judge_pool(Pool("p", "t", tuple(UP3)), [])
    assert judged.status is Status.OK and "no backend layer declared" in judged.detail
    hidden = judge_pool(Pool("p", "t", (server("a", None),)), DECLARED)
    assert hidden.status is Status.UNKNOWN


def test_compress():
    assert compress(["127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:5"]) == "127.0.0.1:1-3, 127.0.0.1:5"
    assert compress(["[::1]:80", "[::1]:81"]) == "[::1]:80, [::1]:81"


# ----------------------------------------------------------------------------- findings

LB_LAYOUT = parse_layout("""name: f
layers:
  - name: LB
    role: lb
    checks:
      - {http: "http://127.0.0.1:80/", name: front, identity_header: X-Served-By, samples: 4}
      - {haproxy: "unix:/run/h.sock", name: pool, backend: auth}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:9001/", name: auth-1, identity_header: X-Served-By}
      - {http: "http://127.0.0.1:9002/", name: auth-2, identity_header: X-Served-By}
""")


def lb_snapshot(front_ids=None, pool_states=("UP", "UP"), backend_ok=True, pool_status=Status.OK):
    results = {}
    ids = front_ids or {"auth-1": 2, "auth-2": 2}
    results["LB/front"] = Result(
        "LB/front",
        Status.OK,
        "200 OK",
        1.0,
        "200",
        {"status_code": 200, "identities": ids},
        evidence=HttpAnswer(200, identity_header="X-Served-By", identities=tuple(ids.items())),
    )
    servers = [member(i, s, check="L7STS 404") for i, s in enumerate(pool_states, 1)]
    results["LB/pool"] = Result(
        "LB/pool",
        pool_status,
        "pool",
        1.0,
        "pool",
        {},
        ErrorKind.MEMBERS_DOWN if pool_status is not Status.OK else None,
        evidence=PoolEvidence("auth", tuple(servers)),
    )
    for i in (1, 2):
        status = Status.OK if backend_ok else Status.CRIT
        results[f"Backends/auth-{i}"] = Result(
            f"Backends/auth-{i}",
            status,
            "200 OK",
            1.0,
            "200",
            {"status_code": 200, "identity": f"auth-{i}"},
            evidence=HttpAnswer(200, identity=f"auth-{i}", identity_header="X-Served-By"),
        )
    return Snapshot(LB_LAYOUT, results, 0.0)


def test_finding_responses_from_strangers_through_the_lb():
    diagnosis = assess(lb_snapshot(front_ids={"auth-1": 1, "decoy-1": 3}))
    assert diagnosis.verdict.layer == "LB" and diagnosis.verdict.status is Status.CRIT
    assert diagnosis.verdict.summary == (
        "LB: through the LB, 3 of 4 responses came from decoy-1 — no declared "
        "backend answers as it (directly: auth-1, auth-2)"
    )
    # the evidence names the check whose results, compared, convict the LB
    assert diagnosis.verdict.evidence[0].startswith("front: CRIT — through the LB, 3 of 4 responses")


def test_responses_without_identity_are_strangers_when_every_backend_sends_it():
    diagnosis = assess(lb_snapshot(front_ids={"auth-1": 2, NO_IDENTITY: 2}))
    assert diagnosis.verdict.layer == "LB" and diagnosis.verdict.status is Status.CRIT
    assert diagnosis.verdict.summary == (
        "LB: through the LB, 2 of 4 responses came without X-Served-By — every "
        "declared backend sends it directly (directly: auth-1, auth-2)"
    )
    both = assess(lb_snapshot(front_ids={"decoy-1": 1, NO_IDENTITY: 2, "auth-1": 1}))
    assert (
        "3 of 4 responses came from decoy-1 — no declared backend answers as it; 2 without X-Served-By"
        in both.verdict.summary
    )


def test_responses_without_identity_are_not_strangers_when_a_backend_sends_none():
    snapshot = lb_snapshot(front_ids={"auth-1": 2, NO_IDENTITY: 2})
    quiet = Result(
        "Backends/auth-2", Status.OK, "200 OK", 1.0, "200", {}, evidence=HttpAnswer(200, identity_header="X-Served-By")
    )
    assert assess(Snapshot(LB_LAYOUT, {**snapshot.results, "Backends/auth-2": quiet}, 0.0)).verdict is None


def test_the_lbs_own_error_page_ending_the_sampling_is_no_stranger():
    snapshot = lb_snapshot(front_ids={"auth-1": 3, NO_IDENTITY: 1})
    error = Result(
        "LB/front",
        Status.CRIT,
        "503 Service Unavailable",
        1.0,
        "503",
        {},
        ErrorKind.HTTP_STATUS,
        evidence=HttpAnswer(503, identity_header="X-Served-By", identities=(("auth-1", 3), (NO_IDENTITY, 1))),
    )
    diagnosis = assess(Snapshot(LB_LAYOUT, {**snapshot.results, "LB/front": error}, 0.0))
    assert diagnosis.layers[0].findings == ()


def test_finding_health_check_wrong():
    diagnosis = assess(lb_snapshot(pool_states=("DOWN", "DOWN"), pool_status=Status.CRIT))
    assert diagnosis.verdict.summary == (
        "LB: health check fails on the LB but every backend answers 200 directly: "
        "the LB's health check is wrong (the LB's check says: L7STS 404)"
    )


def test_members_down_because_backends_are_down_is_not_the_lbs_fault():
    diagnosis = assess(lb_snapshot(pool_states=("DOWN", "DOWN"), pool_status=Status.CRIT, backend_ok=False))
    assert diagnosis.verdict.layer == "Backends"
    assert any("explained by Backends" in item for item in diagnosis.verdict.also_failing)


# ----------------------------------------------------------------------------- gate


GATE_LAYOUT = """name: gate
layers:
  - name: LB
    role: lb
    checks:
      - {haproxy: "unix:/run/h.sock", backend: auth}
      - {nginx: /etc/nginx/nginx.conf, upstream: auth}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:9001/", name: auth-1}
      - {http: "http://127.0.0.1:9002/", name: auth-2}
      - {http: "http://auth-3.internal:9003/", name: auth-3}
"""


def test_gate_on_haproxy_and_nginx(tmp_path):
    layout = parse_layout(GATE_LAYOUT)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "frontend f\n  default_backend auth\nbackend auth\n  server a1 127.0.0.1:9001\n"
        "  server a2 127.0.0.1:9002\n  server a3 10.0.0.3:9003\n"
    )
    assert detect(str(cfg)) == "haproxy"
    reports = run_gate(layout, str(cfg))
    # auth-3 is declared by name: without --resolve it cannot be compared (10.0.0.3:9003 may
    # be it), and says so — never OK
    text = render(reports, "layout.yaml", str(cfg))
    assert "? auth-3.internal:9003" in text and "compare with --resolve" in text
    assert "? 10.0.0.3:9003" in text and "not compared" in text
    assert gate_status(reports) is Status.UNKNOWN
    assert "cannot compare the pool: 1 declared backend unresolved: auth-3.internal:9003" in text
    resolved = run_gate(layout, str(cfg), resolve=lambda host: "10.0.0.3")
    assert gate_status(resolved) is Status.OK
    assert "= 10.0.0.3:9003" in render(resolved, "layout.yaml", str(cfg))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http { upstream auth { server 127.0.0.1:9001; server 127.0.0.1:9002; } "
        "server { location / { proxy_pass http://auth; } } }\n"
    )
    assert detect(str(conf)) == "nginx"
    nginx_reports = run_gate(layout, str(conf), resolve=lambda host: "10.0.0.3")
    assert gate_status(nginx_reports) is Status.WARN
    assert "- 10.0.0.3:9003" in render(nginx_reports, "layout.yaml", str(conf))


def test_gate_errors_are_clear(tmp_path):
    layout = parse_layout(GATE_LAYOUT)
    odd = tmp_path / "odd.txt"
    odd.write_text("hello\n")
    with pytest.raises(GateError, match="neither an haproxy.cfg nor an nginx config"):
        run_gate(layout, str(odd))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("backend other\n  server a 127.0.0.1:1\n")
    with pytest.raises(GateError, match="has no backend 'auth' \\(backends: other\\)"):
        run_gate(layout, str(cfg))


# ----------------------------------------------------------------------------- audit fixes


def with_pool(servers: list[dict]) -> Snapshot:
    """lb_snapshot with the pool check's servers replaced (all backends answer directly)."""
    snapshot = lb_snapshot(pool_states=("DOWN", "DOWN"), pool_status=Status.CRIT)
    pool = Result(
        "LB/pool",
        Status.CRIT,
        "pool",
        1.0,
        "pool",
        {},
        ErrorKind.MEMBERS_DOWN,
        evidence=PoolEvidence("auth", tuple(servers)),
    )
    return Snapshot(LB_LAYOUT, {**snapshot.results, "LB/pool": pool}, 0.0)


def member(i, state, service=None, check=""):
    """A declared member as the pool sources report it; the service of an HAProxy state
    word is the one the stats reader gives it."""
    return PoolMember(
        name=f"a{i}",
        address=f"127.0.0.1:900{i}",
        service=service or haproxy_stats._traffic(state)[2],
        declared=True,
        declared_as=f"auth-{i}",
        state=state,
        check=check,
    )


@pytest.mark.parametrize(
    "servers,summary",
    [
        (
            [member(1, "MAINT"), member(2, "MAINT")],
            "LB: every declared backend is in maintenance (MAINT) on the LB while each answers 200 directly",
        ),
        (
            [member(1, "DRAIN"), member(2, "DRAIN")],
            "LB: every declared backend is draining (DRAIN) on the LB while each answers 200 directly",
        ),
        (
            [member(1, "down (config)", "disabled")],
            "LB: every declared backend is marked `down` in the LB config while each answers 200 directly",
        ),
        (
            [member(1, "backup", "backup")],
            "LB: every declared backend is only a backup in the LB pool (used when the primaries fail) while each "
            "answers 200 directly",
        ),
        (
            [member(1, "weight 0 (no traffic)", "weight-0")],
            "LB: every declared backend has weight 0 in the LB config (takes no traffic) while each answers 200 directly",
        ),
        (
            [member(1, "DOWN", check="L7STS 404"), member(2, "MAINT")],
            "LB: no declared backend takes traffic on the LB (a1 DOWN by health check, a2 MAINT) while each answers "
            "200 directly",
        ),
    ],
    ids=["maint", "drain", "nginx down", "backup only", "weight 0", "mixed"],
)
def test_out_of_service_on_the_lb_is_worded_for_what_it_is(servers, summary):
    verdict = assess(with_pool(servers)).verdict
    assert verdict.layer == "LB" and verdict.status is Status.CRIT
    assert verdict.summary == summary
    assert "health check is wrong" not in verdict.summary


def test_health_check_wrong_only_for_members_down_by_checks():
    verdict = assess(with_pool([member(1, "DOWN", check="L4CON"), member(2, "DOWN 1/3")])).verdict
    assert "the LB's health check is wrong (the LB's check says: L4CON)" in verdict.summary
    assert assess(with_pool([member(1, "MAINT"), member(2, "UP")])).layers[0].findings == ()


def test_unresolved_declared_backends_make_the_pool_unknown_not_ok():
    unresolved = [Declared(None, f"auth-{i}", f"auth-{i}.internal:900{i}", "does not resolve") for i in (1, 2, 3)]
    judged = judge_pool(Pool("p", "t", tuple(UP3)), unresolved)
    assert judged.status is Status.UNKNOWN
    assert judged.detail == (
        "pool p: 3/3 up; cannot compare the pool: 3 declared backends unresolved: "
        "auth-1.internal:9001 (does not resolve), auth-2.internal:9002 (does not resolve), "
        "auth-3.internal:9003 (does not resolve)"
    )
    assert judged.facts["pool"]["unresolved"][0] == "auth-1.internal:9001: does not resolve"
    # a member on a port no unresolved backend uses is a stranger all the same
    stranger = judge_pool(Pool("p", "t", tuple(UP3) + (server("x", "10.9.9.9:80"),)), unresolved)
    assert stranger.status is Status.CRIT and stranger.unexpected == ("10.9.9.9:80",)
    # one resolved, one not: still not OK
    mixed = judge_pool(Pool("p", "t", tuple(UP3[:2])), DECLARED[:2] + unresolved[2:])
    assert mixed.status is Status.UNKNOWN and "1 declared backend unresolved" in mixed.detail


NAMED_LAYOUT = """name: names
layers:
  - name: LB
    role: lb
    checks:
      - {haproxy: "unix:/run/h.sock", backend: auth_servers}
  - name: Backends
    role: backend
    checks:
      - {http: "http://localhost:19001/health", name: auth-1}
      - {http: "http://localhost:19002/health", name: auth-2}
"""


def test_gate_compares_names_as_written_when_both_sides_are_names(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "frontend web\n    bind 127.0.0.1:18080\n    default_backend auth_servers\n"
        "backend auth_servers\n    server auth1 localhost:19001 check\n    server auth2 LOCALHOST:19002\n"
    )
    reports = run_gate(parse_layout(NAMED_LAYOUT), str(cfg))
    text = render(reports, "l.yaml", str(cfg))
    assert gate_status(reports) is Status.OK, text
    assert "= localhost:19001          auth1 [haproxy.cfg:5] is auth-1" in text
    other = tmp_path / "other.cfg"
    other.write_text(
        "frontend web\n    default_backend auth_servers\n"
        "backend auth_servers\n    server auth1 localhost:19001\n    server auth2 decoy.internal:19102\n"
    )
    drift = run_gate(parse_layout(NAMED_LAYOUT), str(other))
    assert gate_status(drift) is Status.WARN  # decoy.internal: a name, unknown address, at least WARN
    assert "the address of auth2 is unknown (a host name: compare with --resolve)" in drift[0].judgement.detail


def gate_layout(pool_kind: str = "haproxy") -> str:
    check = (
        '{haproxy: "unix:/run/h.sock", backend: auth_servers}'
        if pool_kind == "haproxy"
        else "{nginx: /etc/nginx/nginx.conf, upstream: auth_servers}"
    )
    return f"""name: g
layers:
  - name: LB
    role: lb
    checks:
      - {check}
  - name: Backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:19001/health", name: auth-1}}
      - {{http: "http://127.0.0.1:19002/health", name: auth-2}}
      - {{http: "http://127.0.0.1:19003/health", name: auth-3}}
"""


HEAD = "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:18080\n    default_backend auth_servers\n"
AUTH3 = (
    "backend auth_servers\n    server auth1 127.0.0.1:19001 check\n    server auth2 127.0.0.1:19002 check\n"
    "    server auth3 127.0.0.1:19003 check\n"
)


def gate_on(tmp_path, text: str, kind: str = "haproxy", name: str = "haproxy.cfg"):
    cfg = tmp_path / name
    cfg.write_text(text)
    reports = run_gate(parse_layout(gate_layout(kind)), str(cfg))
    return reports, render(reports, "l.yaml", str(cfg))


def test_gate_fails_a_pool_nothing_routes_to(tmp_path):
    text = (
        HEAD.replace("default_backend auth_servers", "default_backend other")
        + "backend other\n    server o1 127.0.0.1:19101\n"
        + AUTH3
    )
    reports, shown = gate_on(tmp_path, text)
    assert gate_status(reports) is Status.CRIT, shown
    assert reports[0].judgement.detail.startswith(
        "nothing routes to pool auth_servers in haproxy.cfg: users' traffic does not reach the declared backends "
        "(traffic goes to frontend web → other [haproxy.cfg:5])"
    )
    assert "! nothing routes to auth_servers" in shown
    dynamic = HEAD.replace("default_backend auth_servers", "use_backend be_%[req.hdr(host),lower]") + AUTH3
    assert gate_status(gate_on(tmp_path, dynamic)[0]) is Status.OK


@pytest.mark.parametrize(
    "directive,status",
    [
        ("proxy_pass http://127.0.0.1:19101", Status.CRIT),
        ("grpc_pass grpc://auth_servers", Status.OK),
        ("fastcgi_pass auth_servers", Status.OK),
        ("uwsgi_pass uwsgi://auth_servers", Status.OK),
        ("scgi_pass auth_servers", Status.OK),
        ("memcached_pass auth_servers", Status.OK),
    ],
)
def test_gate_counts_every_pass_directive_as_a_use(tmp_path, directive, status):
    text = (
        "http {\n upstream auth_servers { server 127.0.0.1:19001; server 127.0.0.1:19002; "
        "server 127.0.0.1:19003; }\n server { location / { %s; } }\n}\n" % directive
    )
    reports, shown = gate_on(tmp_path, text, "nginx", "nginx.conf")
    assert gate_status(reports) is status, shown


def test_a_pool_nothing_routes_to_is_one_rule_for_lint_and_live(tmp_path):
    text = (
        "http {\n upstream auth_servers { server 127.0.0.1:19001; server 127.0.0.1:19002; "
        "server 127.0.0.1:19003; }\n server { location / { proxy_pass http://127.0.0.1:19101; } }\n}\n"
    )
    reports, _ = gate_on(tmp_path, text, "nginx", "nginx.conf")
    config = nginx_conf.load(str(tmp_path / "nginx.conf"))
    declared = [Declared(f"127.0.0.1:1900{i}", f"auth-{i}", f"127.0.0.1:1900{i}") for i in (1, 2, 3)]
    live = judge_pool(nginx_conf.pool_of(nginx_conf.upstreams(config)["auth_servers"], {}, config), declared)
    assert live.unrouted and (live.status, live.key_fact) == (Status.CRIT, "unrouted")
    assert (
        live.detail
        == reports[0].judgement.detail
        == (
            "nothing routes to pool auth_servers in nginx.conf: users' traffic does not reach the declared backends "
            "(traffic goes to proxy_pass http://127.0.0.1:19101 [nginx.conf:3])"
        )
    )
    # a running LB's stats say nothing about routing: the rule is for configs
    assert not judge_pool(Pool("p", "stats", tuple(UP3)), DECLARED).unrouted


def test_gate_rejects_a_port_on_an_upstream_name(tmp_path):
    text = (
        "http {\n upstream auth_servers { server 127.0.0.1:19001; }\n"
        " server {\n  location / { proxy_pass http://auth_servers:8080; }\n }\n}\n"
    )
    with pytest.raises(GateError, match=r"nginx.conf:4: upstream \"auth_servers\" may not have port 8080"):
        gate_on(tmp_path, text, "nginx", "nginx.conf")


def test_undeclared_backup_down_and_unknown_members_warn_in_lint_and_live(tmp_path):
    reports, shown = gate_on(tmp_path, HEAD + AUTH3 + "    server spare 127.0.0.1:19102 check backup\n")
    assert gate_status(reports) is Status.WARN, shown
    assert (
        "127.0.0.1:19102 (spare, backup) is not a declared backend — it takes traffic when the primaries fail"
        in reports[0].judgement.detail
    )
    rows = [csv_row("auth_servers", f"auth{i}", "UP", "2", "L7OK", "200", f"127.0.0.1:1900{i}") for i in (1, 2, 3)]
    declared = [Declared(f"127.0.0.1:1900{i}", f"auth-{i}", f"127.0.0.1:1900{i}") for i in (1, 2, 3)]
    for extra, words in [
        (
            csv_row("auth_servers", "spare", "UP", "2", "L7OK", "200", "127.0.0.1:19102", bck="1"),
            "(spare, backup) is not a declared backend — it takes traffic when the primaries fail",
        ),
        (
            csv_row("auth_servers", "old", "DOWN", "2", "L4CON", "", "127.0.0.1:19103"),
            "(old, DOWN) is not a declared backend — it takes traffic once it comes UP",
        ),
    ]:
        summary = csv_row("auth_servers", "BACKEND", "UP", "1")  # as HAProxy writes it: after the servers
        pool = pool_from_csv(
            parse_csv(CSV_HEADER + "\n" + "\n".join([*rows, extra, summary]) + "\n"), "auth_servers", "t"
        )
        judged = judge_pool(pool, declared)
        assert judged.status is Status.WARN and words in judged.detail, judged.detail
    unknown = judge_pool(
        Pool("p", "t", tuple(UP3) + (PoolServer("x", None, "in rotation", True, True, address_note="no port"),)),
        DECLARED,
    )
    assert unknown.status is Status.WARN and "the address of x is unknown (no port)" in unknown.detail


def test_haproxy_server_template_with_an_ip_is_expanded_and_judged(tmp_path):
    reports, shown = gate_on(tmp_path, HEAD + AUTH3 + "    server-template srv 1-3 127.0.0.1:19101 check\n")
    assert [s.name for s in reports[0].pool.servers][3:] == ["srv1", "srv2", "srv3"]
    # health-checked beside the declared backends: WARN, as a running LB's member that is not UP yet
    assert gate_status(reports) is Status.WARN, reports[0].judgement.detail
    assert "takes traffic once its health check passes" in reports[0].judgement.detail
    assert "+ 127.0.0.1:19101          srv2 [haproxy.cfg:10]" in shown
    unchecked, _ = gate_on(tmp_path, HEAD + AUTH3 + "    server-template srv 1-3 127.0.0.1:19101\n")
    assert gate_status(unchecked) is Status.CRIT and "routes to 127.0.0.1:19101" in unchecked[0].judgement.detail
    counted = haproxy_cfg.parse(str(tmp_path / "haproxy.cfg")).backends
    named = tmp_path / "named.cfg"
    named.write_text(HEAD + AUTH3 + "    server-template srv 2 auth.internal:19001 check\n")
    assert haproxy_cfg.parse(str(named)).backends["auth_servers"].templates == ["srv2 → auth.internal:19001 (line 10)"]
    assert len(counted["auth_servers"].servers) == 6


def test_a_wrong_port_is_the_same_severity_in_the_gate_and_live(tmp_path):
    """Issue 21: `server auth3 127.0.0.1:19004 check` (a typo for 19003) was CRIT in the
    gate and WARN live (HAProxy's check finds nothing on 19004: DOWN). The same pool,
    judged from the config and from the running LB's stats, gets the same status."""
    from stackscope.lb.pool import DOWN_BY_CHECK

    reports, _ = gate_on(tmp_path, HEAD + AUTH3.replace("19003 check", "19004 check"))
    gate = reports[0].judgement
    live = Pool(
        "auth_servers",
        "stats",
        (
            PoolServer("auth1", "127.0.0.1:19001", "UP", True, True),
            PoolServer("auth2", "127.0.0.1:19002", "UP", True, True),
            PoolServer("auth3", "127.0.0.1:19004", "DOWN", False, False, service=DOWN_BY_CHECK),
        ),
    )
    declared = [
        Declared(f"127.0.0.1:{port}", f"auth-{n}", f"127.0.0.1:{port}")
        for n, port in enumerate((19001, 19002, 19003), 1)
    ]
    assert gate.status is judge_pool(live, declared).status is Status.WARN, gate.detail
    assert "declared 127.0.0.1:19003 missing" in gate.detail


@pytest.mark.parametrize("numbers", ["1-99999999", "99999999", "1-10001", "5-99999999999999999999999999"])
def test_haproxy_server_template_over_the_cap_is_a_located_error_not_an_expansion(tmp_path, numbers):
    """A typo'd range (1-99999999) is refused before any member is made: it used to take
    minutes and gigabytes. DNS templates, never expanded, are checked alike."""
    for address in ("127.0.0.1:19101", "auth.internal:19001"):
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HEAD + AUTH3 + f"    server-template s {numbers} {address} check\n")
        with pytest.raises(haproxy_cfg.ConfigError) as info:
            haproxy_cfg.parse(str(cfg))
        assert info.value.line == 10
        assert f"server-template range {numbers} is over 10000 servers" in str(info.value)
        with pytest.raises(GateError, match=r"haproxy.cfg:10: server-template"):
            gate_on(tmp_path, cfg.read_text())


def test_haproxy_server_template_at_the_cap_is_expanded(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HEAD + AUTH3 + f"    server-template s 1-{haproxy_cfg.MAX_TEMPLATE_SERVERS} 127.0.0.1:19101\n")
    assert len(haproxy_cfg.parse(str(cfg)).backends["auth_servers"].servers) == 3 + haproxy_cfg.MAX_TEMPLATE_SERVERS


def test_haproxy_default_server_params_apply_and_servers_override_them(tmp_path):
    text = (
        "defaults\n    mode http\n    default-server check backup\nfrontend web\n    bind :80\n"
        "    default_backend auth_servers\nbackend auth_servers\n    default-server disabled\n"
        "    server auth1 127.0.0.1:19001\n    server auth2 127.0.0.1:19002 enabled no-backup\n"
        "    server auth3 127.0.0.1:19003 enabled\n"
    )
    reports, shown = gate_on(tmp_path, text)
    states = [(s.name, s.state, s.receives_traffic) for s in reports[0].pool.servers]
    assert states == [("auth1", "disabled (config)", False), ("auth2", "in rotation", True), ("auth3", "backup", False)]
    assert [s.service for s in reports[0].pool.servers] == ["maint", "in", "backup"]
    assert haproxy_cfg.has_flag(["check", "no-check"], "check") is False


@pytest.mark.parametrize(
    "written,note",
    [
        ("127.0.0.1", "no port: HAProxy connects to the port the client connected to"),
        ("127.0.0.1:+1", "port offset +1: the port the client connected to plus 1"),
        ("${AUTH3}:19003", "set from the environment (AUTH3) when HAProxy starts"),
    ],
)
def test_haproxy_addresses_settled_at_run_time_are_reported_not_fatal(tmp_path, written, note):
    text = HEAD + AUTH3.replace("127.0.0.1:19003", written)
    reports, shown = gate_on(tmp_path, text)
    auth3 = reports[0].pool.servers[2]
    assert (auth3.address, auth3.address_note) == (None, note)
    assert gate_status(reports) is Status.WARN and f"the address of auth3 is unknown ({note})" in shown
    assert f"? {written:<24} auth3 [haproxy.cfg:9]: {note}" in shown


def test_haproxy_duplicate_backend_is_a_config_error(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HEAD + AUTH3 + "backend auth_servers\n    server evil 127.0.0.1:19101 check\n")
    with pytest.raises(
        haproxy_cfg.ConfigError, match="haproxy.cfg:10: backend 'auth_servers' is already defined at line 6"
    ):
        haproxy_cfg.parse(str(cfg))


def test_lint_shows_each_servers_own_file_and_line(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "up.conf").write_text(
        "upstream auth_servers {\n    server 127.0.0.1:19001;\n\n    server 127.0.0.1:19101;\n}\n"
    )
    main = "events {}\nhttp {\n    include conf.d/*.conf;\n    server { location / { proxy_pass http://auth_servers; } }\n}\n"
    reports, shown = gate_on(tmp_path, main, "nginx", "nginx.conf")
    assert "127.0.0.1:19001 [conf.d/up.conf:2]" in shown and "127.0.0.1:19101 [conf.d/up.conf:4]" in shown
    dump = (
        f"# configuration file {tmp_path}/nginx.conf:\n{main}\n"
        f"# configuration file {tmp_path}/conf.d/up.conf:\n" + (tmp_path / "conf.d" / "up.conf").read_text()
    )
    reports, from_dump = gate_on(tmp_path, dump, "nginx", "dump.txt")
    assert "127.0.0.1:19001 [conf.d/up.conf:2]" in from_dump and "127.0.0.1:19101 [conf.d/up.conf:4]" in from_dump
    config = nginx_conf.load(str(tmp_path / "dump.txt"))
    assert [d.line for d in config.directives] == [1, 2]


@pytest.mark.parametrize(
    "body,line,message",
    [
        (
            "  server 127.0.0.1:19001\n  server 127.0.0.1:19002;\n",
            3,
            'invalid parameter "server" in server 127.0.0.1:19001 (is the ";" missing at the end of line 3?)',
        ),
        ("  server 127.0.0.1:19001 wieght=2;\n", 3, 'invalid parameter "wieght=2" in server 127.0.0.1:19001'),
        ("  server 127.0.0.1:19001 weight=two;\n", 3, 'invalid parameter "weight=two"'),
        ("  server 127.0.0.1:19001;\n  serverr 127.0.0.1:19002;\n", 4, 'unknown directive "serverr" in upstream a'),
        ("  server 127.0.0.1:19001;\n  health_check;\n", 4, 'unknown directive "health_check"'),
    ],
)
def test_nginx_upstream_members_are_validated(tmp_path, body, line, message):
    conf = tmp_path / "bad.conf"
    conf.write_text("http {\n upstream a {\n" + body + " }\n}\n")
    with pytest.raises(nginx_conf.ConfigError) as info:
        nginx_conf.upstreams(nginx_conf.load(str(conf)))
    assert info.value.line == line and message in info.value.message
    assert "nginx would refuse this config" in info.value.message


def test_nginx_upstream_accepts_every_known_parameter_and_directive(tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text(
        "http {\n upstream a {\n  zone a 64k; least_conn; keepalive 8; keepalive_timeout 60s;\n"
        "  server 127.0.0.1:1 weight=2 max_fails=0 fail_timeout=5s max_conns=10 slow_start=5s;\n"
        "  server 127.0.0.1:2 backup; server 127.0.0.1:3 down; server b.internal:4 resolve drain;\n"
        " }\n}\n"
    )
    assert len(nginx_conf.upstreams(nginx_conf.load(str(conf)))["a"].servers) == 4


def test_smaller_audit_items(tmp_path):
    state = parse_servers_state(
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
        "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
        "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n"
        "3 auth_servers 7 auth5 - 0 37 1 1 1 1 0 0 14 0 0 0 localhost 19005 -\n"
    )
    assert state[0].address is None
    pool = pool_from_states(state, "auth_servers", "socket")
    assert pool.servers[0].address is None and "srv_addr '-'" in pool.servers[0].address_note
    includes = tmp_path / "nginx.conf"
    includes.write_text("# the real config lives in conf.d\ninclude /etc/nginx/conf.d/*.conf;\n")
    assert detect(str(includes)) == "nginx"


# ----------------------------------------------------------------------------- text from the file is made safe


def _has_controls(text: str) -> bool:
    return any(ord(ch) < 0x20 and ch not in "\n\t" or 0x7F <= ord(ch) < 0xA0 for ch in text)


def test_config_errors_quote_the_file_without_its_control_characters(tmp_path):
    """An escape sequence in a config (retitle the terminal, clear it) used to reach the
    operator's terminal raw through the error message."""
    conf = tmp_path / "nginx.conf"
    conf.write_text("http {\n  upstream auth_servers {\n    server 127.0.0.1:19001;\n  }\n  \x1b]0;PWN\x07\x1b[2J\n}\n")
    with pytest.raises(nginx_conf.ConfigError) as info:
        nginx_conf.upstreams(nginx_conf.load(str(conf)))
    assert "PWN" in str(info.value) and not _has_controls(str(info.value)), repr(str(info.value))
    with pytest.raises(GateError) as gate:
        gate_on(tmp_path, conf.read_text(), kind="nginx", name="nginx.conf")
    assert "nginx.conf:6" in str(gate.value) and not _has_controls(str(gate.value)), repr(str(gate.value))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("backend b\n    server s1 \x1b[31m127.0.0.1\x07:1\n")
    with pytest.raises(haproxy_cfg.ConfigError) as bad:
        haproxy_cfg.parse(str(cfg))
    assert "server address" in str(bad.value) and not _has_controls(str(bad.value)), repr(str(bad.value))


def test_gate_diff_shows_config_names_without_control_characters(tmp_path):
    reports, shown = gate_on(tmp_path, HEAD + AUTH3 + "    server \x1b]0;PWN\x07evil 127.0.0.1:19101 check\n")
    assert "PWN" in shown and not _has_controls(shown), repr(shown)


def test_stats_errors_quote_the_reply_without_control_characters():
    with pytest.raises(StatsError) as info:
        parse_csv("\x04z\x07\x1b[2J garbage\n")
    assert not _has_controls(str(info.value)), repr(str(info.value))
    with pytest.raises(StatsError) as rows:
        parse_servers_state("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n1 b 1 s1 \x1b[31m x\n")
    assert not _has_controls(str(rows.value)), repr(str(rows.value))
