"""The Caddy config walk (no servers): reverse_proxy handlers in subroutes, choosing the
pool, dial addresses, wrong shapes, JSON lines and Caddyfile directive lines."""

from __future__ import annotations

import json
import textwrap

import pytest

from stackscope.kinds import Invalid, ParseContext
from stackscope.layout import LayoutError, parse_layout
from stackscope.lb import ConfigError, caddy_conf
from stackscope.lb.caddy_conf import SelectError, ShapeError, parse_selector, proxies, select, split_dial
from stackscope.lb.pool import Declared, judge_pool
from stackscope.model import Status

# what `caddy adapt` (2.6.2) made of a Caddyfile with two sites, a matcher and a handle block
ADAPTED = {
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "listen": [":24080"],
                    "routes": [
                        {
                            "match": [{"host": ["auth.test"]}],
                            "handle": [
                                {
                                    "handler": "subroute",
                                    "routes": [
                                        {
                                            "handle": [
                                                {
                                                    "handler": "reverse_proxy",
                                                    "health_checks": {
                                                        "active": {"uri": "/health", "interval": 5000000000},
                                                        "passive": {
                                                            "fail_duration": 30000000000,
                                                            "unhealthy_status": [503],
                                                        },
                                                    },
                                                    "upstreams": [
                                                        {"dial": "127.0.0.1:24001"},
                                                        {"dial": "127.0.0.1:24002"},
                                                    ],
                                                }
                                            ],
                                            "match": [{"path": ["/api/*"]}],
                                        },
                                        {
                                            "handle": [
                                                {"handler": "reverse_proxy", "upstreams": [{"dial": "localhost:24003"}]}
                                            ]
                                        },
                                    ],
                                }
                            ],
                            "terminal": True,
                        }
                    ],
                },
                "srv1": {
                    "listen": [":24081"],
                    "routes": [
                        {
                            "@id": "billing",
                            "match": [{"path": ["/billing/*"]}],
                            "handle": [
                                {
                                    "handler": "subroute",
                                    "routes": [
                                        {
                                            "handle": [
                                                {
                                                    "handler": "reverse_proxy",
                                                    "upstreams": [{"dial": "127.0.0.1:24005"}],
                                                }
                                            ]
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                },
            }
        }
    }
}


def test_walk_finds_every_reverse_proxy_in_subroutes_with_its_matchers():
    found = proxies(ADAPTED)
    assert [p.label for p in found] == ["auth.test/api/*", "auth.test", "@billing"]
    api, rest, billing = found
    assert [u.dial for u in api.upstreams] == ["127.0.0.1:24001", "127.0.0.1:24002"]
    assert api.where == "apps.http.servers.srv0.routes[0].handle[0].routes[0].handle[0]"
    assert api.active.uri == "/health" and api.active.interval_s == 5
    assert api.passive.fail_duration_s == 30 and api.passive.max_fails == 1 and api.passive.unhealthy_status == (503,)
    assert (
        api.health_text() == "active GET /health every 5s; passive max_fails=1 fail_duration=30s unhealthy_status=503"
    )
    assert rest.health_text() == "no health checks"
    assert billing.paths == ("/billing/*",) and billing.server == "srv1"


@pytest.mark.parametrize(
    "selector,label",
    [
        ("@billing", "@billing"),
        ("auth.test/api/*", "auth.test/api/*"),
        ("/billing/*", "@billing"),
        ("AUTH.test/", None),
    ],
)
def test_select_by_id_host_and_path(selector, label):
    found = proxies(ADAPTED)
    if label is None:  # a host with two reverse_proxy handlers: ambiguous, and the error lists them
        with pytest.raises(SelectError, match="holds 2 reverse_proxy handlers .*auth.test/api/\\*, auth.test"):
            select(found, selector, set(), {})
        return
    assert select(found, selector, set(), {})[0].label == label


def test_select_without_a_selector_takes_the_best_match_and_never_guesses():
    found = proxies(ADAPTED)
    proxy, why = select(found, None, {"127.0.0.1:24001", "127.0.0.1:24002", "127.0.0.1:24009"}, {})
    assert proxy.label == "auth.test/api/*" and why == "holds 2 of the 3 declared backends"
    # a name resolves before the comparison
    assert select(found, None, {"127.0.0.1:24003"}, {"localhost": "127.0.0.1"})[0].label == "auth.test"
    with pytest.raises(SelectError) as info:
        select(found, None, {"10.0.0.1:80"}, {})
    assert info.value.no_overlap and "none of the 3 reverse_proxy handlers" in str(info.value)
    with pytest.raises(SelectError, match="no declared backends: name one"):
        select(found, None, set(), {})
    with pytest.raises(SelectError, match="no reverse_proxy under route 'nope.test'"):
        select(found, "nope.test", set(), {})
    with pytest.raises(SelectError, match="no reverse_proxy handler"):
        select([], None, set(), {})


@pytest.mark.parametrize(
    "dial,expected",
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("tcp/10.0.0.1:80", ("10.0.0.1", 80)),
        ("[::1]:443", ("::1", 443)),
        ("auth.internal:9000", ("auth.internal", 9000)),
        ("{http.request.host}:80", caddy_conf.PLACEHOLDER),
        ("unix//run/app.sock", caddy_conf.UNIX),
        ("udp/10.0.0.1:53", "network udp, not TCP"),
        ("10.0.0.1:8000-8002", "a port range: Caddy takes one socket per upstream"),
    ],
)
def test_dial_addresses(dial, expected):
    assert split_dial(dial) == expected


def test_pool_of_keeps_names_and_placeholders_open_and_judges_with_the_shared_rules():
    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "reverse_proxy",
                                        "upstreams": [
                                            {"dial": "127.0.0.1:9001"},
                                            {"dial": "auth-2.internal:9002"},
                                            {"dial": "{http.request.host}:9003"},
                                        ],
                                    }
                                ]
                            }
                        ]
                    }
                }
            }
        }
    }
    (proxy,) = proxies(config)
    pool = caddy_conf.pool_of(proxy, {}, source="caddy.json")
    assert [s.address for s in pool.servers] == ["127.0.0.1:9001", None, None]
    assert pool.servers[1].address_note == "a host name: compare with --resolve"
    assert pool.servers[2].address_note == caddy_conf.PLACEHOLDER
    declared = [Declared("127.0.0.1:9001", "auth-1", "127.0.0.1:9001"), Declared("127.0.0.1:9002", "auth-2", "x")]
    judged = judge_pool(pool, declared)
    assert judged.status is Status.WARN and "the address of auth-2.internal:9002 is unknown" in judged.detail
    resolved = caddy_conf.pool_of(proxy, {"auth-2.internal": "127.0.0.1"}, source="caddy.json")
    assert resolved.servers[1].address == "127.0.0.1:9002"


@pytest.mark.parametrize(
    "config,where",
    [
        ([], "the config is a list, not an object"),
        ({"apps": {"http": {"servers": []}}}, "apps.http.servers is a list"),
        ({"apps": {"http": {"servers": {"s": {"routes": {}}}}}}, "apps.http.servers.s.routes is an object"),
        (
            {
                "apps": {
                    "http": {
                        "servers": {"s": {"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": "x"}]}]}}
                    }
                }
            },
            "apps.http.servers.s.routes[0].handle[0].upstreams is a string, not a list",
        ),
        (
            {
                "apps": {
                    "http": {
                        "servers": {"s": {"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{}]}]}]}}
                    }
                }
            },
            "upstreams[0].dial is null, not a dial address",
        ),
        (
            {"apps": {"http": {"servers": {"s": {"routes": [{"match": [{"host": "a"}], "handle": []}]}}}}},
            "routes[0].match[0].host is a string, not a list of strings",
        ),
        (
            {
                "apps": {
                    "http": {
                        "servers": {
                            "s": {
                                "routes": [
                                    {
                                        "handle": [
                                            {
                                                "handler": "reverse_proxy",
                                                "health_checks": {"active": {"uri": "/", "port": 70000}},
                                            }
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                }
            },
            "health_checks.active.port is not a port number",
        ),
    ],
)
def test_a_wrong_shape_names_where(config, where):
    with pytest.raises(ShapeError) as info:
        proxies(config)
    assert where in str(info.value)


def test_subroutes_nested_without_end_are_refused_not_recursed():
    route: dict = {"handle": [{"handler": "reverse_proxy", "upstreams": []}]}
    for _ in range(200):
        route = {"handle": [{"handler": "subroute", "routes": [route]}]}
    with pytest.raises(ShapeError, match="nested more than 16 deep"):
        proxies({"apps": {"http": {"servers": {"s": {"routes": [route]}}}}})


def test_json_file_gives_the_line_of_each_dial(tmp_path):
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(ADAPTED, indent=2))
    config = caddy_conf.load(str(path))
    lines = path.read_text().splitlines()
    for proxy in config.proxies:
        for upstream in proxy.upstreams:
            assert f'"dial": "{upstream.dial}"' in lines[upstream.line - 1]
        assert '"handler": "reverse_proxy"' in lines[proxy.line - 1]
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "apps": {\n    "http": ,\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        caddy_conf.load(str(bad))
    assert info.value.line == 3 and "not valid JSON" in str(info.value)


CADDYFILE = textwrap.dedent(
    """\
    {
    \tadmin 127.0.0.1:2019
    }
    auth.test {
    \t# reverse_proxy 10.9.9.9:1 (a comment)
    \treverse_proxy /api/* 127.0.0.1:24001 http://127.0.0.1:24002
    \treverse_proxy {
    \t\tto localhost:24003
    \t\thealth_uri /health
    \t}
    }
    """
)


def test_caddyfile_directive_lines_name_their_upstreams():
    assert caddy_conf.directive_lines(CADDYFILE) == [
        (6, frozenset({"127.0.0.1:24001", "127.0.0.1:24002"})),
        (7, frozenset({"localhost:24003"})),
    ]
    found = [caddy_conf._place(p, caddy_conf.directive_lines(CADDYFILE)) for p in proxies(ADAPTED)]
    assert [p.line for p in found] == [6, 7, None]  # @billing is not in this file
    assert all(u.line == 6 for u in found[0].upstreams)


def test_caddyfile_without_the_caddy_binary_says_so(tmp_path, monkeypatch):
    path = tmp_path / "Caddyfile"
    path.write_text(CADDYFILE)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="no caddy binary on PATH"):
        caddy_conf.load(str(path))


def test_detection_by_name_and_contents():
    assert caddy_conf.looks_like("/etc/caddy/Caddyfile", "")
    assert caddy_conf.looks_like("x.json", '{"apps": {}}')
    assert caddy_conf.looks_like("site.conf", "example.com {\n  reverse_proxy 10.0.0.1:80\n}\n")
    assert not caddy_conf.looks_like("nginx.conf", "http { upstream a { server 1.2.3.4; } }")
    assert not caddy_conf.looks_like("haproxy.cfg", "backend a\n  server s 1.2.3.4:80\n")


@pytest.mark.parametrize("bad", ["@", "auth test", "bad_host!/x", "a\x1b[31m"])
def test_bad_selectors_are_refused(bad):
    with pytest.raises(Invalid):
        parse_selector(bad)


def _layout(check: str) -> str:
    return textwrap.dedent(
        """\
        name: x
        layers:
          - name: LB
            role: lb
            checks:
        """
    ) + textwrap.indent(check, "      ")


@pytest.mark.parametrize(
    "check,needles",
    [
        ("- caddy: http://127.0.0.1:2019/config/apps\n", ["has a path", "http://127.0.0.1:2019"]),
        ("- caddy: https://127.0.0.1:2019\n", ["scheme 'https'"]),
        ("- caddy: http://127.0.0.1:2019\n  upstream: auth servers\n", ["is not a route"]),
    ],
)
def test_layout_values_are_checked_at_load_time_with_their_line(check, needles):
    with pytest.raises(LayoutError) as info:
        parse_layout(_layout(check), "lay.yaml", ParseContext(environ={}))
    problems = [str(p) for p in info.value.problems]
    assert any(all(n in p for n in needles) and p.startswith(("lay.yaml:6:", "lay.yaml:7:")) for p in problems), (
        problems
    )
    assert all(" — " in p for p in problems)  # each with its fix


def test_a_good_caddy_check_loads():
    layout = parse_layout(_layout("- caddy: http://127.0.0.1:2019/\n  upstream: '@auth'\n"), "lay.yaml")
    check = layout.layers[0].checks[0]
    assert check.address.port == 2019 and str(check.options.upstream) == "@auth"


GATE_LAYOUT = """\
name: gate
layers:
  - name: LB
    role: lb
    checks:
      - caddy: http://127.0.0.1:2019
        upstream: auth.test/api/*
  - name: Auth
    role: backend
    checks:
      - tcp: 127.0.0.1:24001
      - tcp: auth-2.internal:24002
"""


def test_gate_on_a_json_config_judges_the_named_route_with_file_and_line(tmp_path):
    from stackscope.lb.gate import detect, gate_status, render, run_gate

    path = tmp_path / "caddy.json"
    doc = json.loads(json.dumps(ADAPTED))
    api = doc["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["routes"][0]["handle"][0]
    api["upstreams"][1]["dial"] = "auth-2.internal:24002"
    path.write_text(json.dumps(doc, indent=2))
    assert detect(str(path)) == "caddy"
    layout = parse_layout(GATE_LAYOUT)
    as_written = run_gate(layout, str(path))  # a name on both sides: compared as written
    assert gate_status(as_written) is Status.OK, as_written[0].judgement.detail
    shown = render(as_written, "layout.yaml", str(path))
    line = next(i + 1 for i, text in enumerate(path.read_text().splitlines()) if "auth-2.internal:24002" in text)
    assert f"  = auth-2.internal:24002    auth-2.internal:24002 [caddy.json:{line}] is " in shown, shown
    resolved = run_gate(layout, str(path), resolve=lambda host: "10.0.0.2")  # both sides resolve alike
    assert gate_status(resolved) is Status.OK
    assert resolved[0].pool.servers[1].address == "10.0.0.2:24002"
    other = run_gate(layout, str(path), pool="@billing")
    assert gate_status(other) is Status.CRIT and other[0].pool.name == "@billing"
    assert other[0].judgement.detail.startswith("pool @billing routes to 127.0.0.1:24005 — none is a declared backend")


def test_a_route_with_two_handlers_of_the_same_pool_is_not_ambiguous():
    same = {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}]}
    route = {"match": [{"host": ["a.test"]}], "handle": [same, dict(same)]}
    found = proxies({"apps": {"http": {"servers": {"s": {"routes": [route]}}}}})
    assert len(found) == 2
    assert select(found, "a.test", set(), {})[0] is found[0]


# what `caddy adapt` (2.6.2) made of `reverse_proxy A B { transport http { versions h2c } }`
# on :8080 and of `reverse_proxy h2c://C h2c://D` on :8081 (with an @id each): a gRPC pool's h2c upstreams
GRPC_CADDYFILE = """\
:8080 {
  reverse_proxy 127.0.0.1:50051 127.0.0.1:50052 {
    transport http {
      versions h2c
    }
  }
}
:8081 {
  reverse_proxy h2c://127.0.0.1:50053 h2c://127.0.0.1:50054
}
"""


def _h2c_route(ident: str, versions: list[str], *dials: str) -> dict:
    handler = {
        "@id": ident,
        "handler": "reverse_proxy",
        "transport": {"protocol": "http", "versions": versions},
        "upstreams": [{"dial": d} for d in dials],
    }
    return {"handle": [handler]}


GRPC_ADAPTED = {
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "listen": [":8080"],
                    "routes": [_h2c_route("orders", ["h2c"], "127.0.0.1:50051", "127.0.0.1:50052")],
                },
                "srv1": {
                    "listen": [":8081"],
                    "routes": [_h2c_route("billing", ["h2c", "2"], "127.0.0.1:50053", "127.0.0.1:50054")],
                },
            }
        }
    }
}
GRPC_GATE_LAYOUT = """\
name: grpc
layers:
  - {name: LB, role: lb, checks: [{caddy: "http://127.0.0.1:2019", upstream: "%s"}]}
  - name: Orders
    role: backend
    checks:
      - {grpc: "127.0.0.1:50051", service: orders}
      - {grpc: "127.0.0.1:50052", service: orders}
"""


def test_h2c_upstreams_of_a_grpc_pool_are_its_members():
    """Both Caddyfile spellings of an h2c (gRPC) pool give their dial addresses, on the
    line of their reverse_proxy (a `transport` block inside does not hide them)."""
    found = proxies(GRPC_ADAPTED)
    assert [[u.dial for u in p.upstreams] for p in found] == [
        ["127.0.0.1:50051", "127.0.0.1:50052"],
        ["127.0.0.1:50053", "127.0.0.1:50054"],
    ]
    assert caddy_conf.directive_lines(GRPC_CADDYFILE) == [
        (2, frozenset({"127.0.0.1:50051", "127.0.0.1:50052"})),
        (9, frozenset({"127.0.0.1:50053", "127.0.0.1:50054"})),
    ]


@pytest.mark.parametrize("selector,status", [("@orders", Status.OK), ("@billing", Status.CRIT)])
def test_the_gate_catches_a_misrouted_grpc_pool(tmp_path, selector, status):
    """gRPC backends declared by `grpc` checks are compared with an h2c pool like HTTP
    ones: the @billing route sends the calls to servers that are not the declared ones."""
    from stackscope.lb.gate import gate_status, run_gate

    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(GRPC_ADAPTED, indent=2))
    reports = run_gate(parse_layout(GRPC_GATE_LAYOUT % selector), str(path))
    assert gate_status(reports) is status, reports[0].judgement.detail
    if status is Status.CRIT:
        assert "127.0.0.1:50053" in reports[0].judgement.detail
