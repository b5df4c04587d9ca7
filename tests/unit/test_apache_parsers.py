"""The Apache parsers without servers: the balancer-manager page and httpd.conf."""

from __future__ import annotations

import os

import pytest

from stackscope.lb import ConfigError, apache_conf, apache_manager
from stackscope.lb.gate import detect
from stackscope.lb.pool import BACKUP, DOWN_BY_CHECK, DRAIN, IN, MAINT, UNKNOWN, judge_pool
from stackscope.model import Status

# The worker part of a page httpd 2.4.71 (Debian 12) served, with mod_proxy_hcheck loaded:
# a member failing its check, one disabled by status=+D, a hot standby, a draining one.
PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html><head><title>Balancer Manager</title></head>
<body><h1>Load Balancer Manager for 127.0.0.1</h1>
<h3>LoadBalancer Status for <a href="/balancer-manager?b=auth_servers&amp;nonce=b717430c">balancer://auth_servers</a>
 [pc09dfdc3_auth_servers]</h3>
<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th><th>Timeout</th><th>FailoverAttempts</th>
<th>Method</th><th>Path</th><th>Active</th></tr>
<tr><td>4 [4 Used]</td>
<td> (None) </td><td>Off</td>
<td>0</td><td>3</td>
<td>byrequests</td>
<td>/</td>
<td>Yes</td>
</tr>
</table>
<br />
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th>
<th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>HC Method</th><th>HC Interval</th><th>Passes</th>
<th>Fails</th><th>HC uri</th><th>HC Expr</th></tr>
<tr>
<td><a href="/balancer-manager?b=auth_servers&amp;w=http://127.0.0.1:28101&amp;nonce=b717430c">http://127.0.0.1:28101</a></td>
<td>auth1</td><td></td><td>1.00</td><td>0</td><td>Init HcFl </td><td>0</td><td>0</td><td>0</td><td>  0 </td><td>  0 </td>
<td>GET</td><td>1000ms</td><td>1 (0)</td><td>1 (0)</td><td>/wrong</td><td></td></tr>
<tr>
<td><a href="/balancer-manager?b=auth_servers&amp;w=http://127.0.0.1:28102&amp;nonce=b717430c">http://127.0.0.1:28102</a></td>
<td>auth2</td><td></td><td>1.00</td><td>0</td><td>Init Dis </td><td>0</td><td>0</td><td>0</td><td>  0 </td><td>  0 </td>
<td>NONE</td><td>30000ms</td><td>1 (0)</td><td>1 (0)</td><td></td><td></td></tr>
<tr>
<td><a href="/balancer-manager?b=auth_servers&amp;w=http://127.0.0.1:28103&amp;nonce=b717430c">http://127.0.0.1:28103</a></td>
<td>auth3</td><td></td><td>1.00</td><td>0</td><td>Init Stby Ok </td><td>0</td><td>0</td><td>0</td><td>  0 </td><td>  0 </td>
<td>NONE</td><td>30000ms</td><td>1 (0)</td><td>1 (0)</td><td></td><td></td></tr>
<tr>
<td><a href="/balancer-manager?b=auth_servers&amp;w=http://127.0.0.1:28104&amp;nonce=b717430c">http://127.0.0.1:28104</a></td>
<td>auth4</td><td></td><td>3.00</td><td>0</td><td>Init Drn Ok </td><td>4</td><td>2</td><td>0</td><td>1.2K</td><td>  0 </td>
<td>NONE</td><td>30000ms</td><td>1 (0)</td><td>1 (0)</td><td></td><td></td></tr>
</table>
<hr />
<h3>LoadBalancer Status for <a href="/balancer-manager?b=other">balancer://other</a> [p_other]</h3>
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th></tr>
<tr><td><a>http://auth.internal</a></td><td></td><td></td><td>1.00</td><td>0</td><td>Init Ok </td></tr>
<tr><td><a>unix:/run/app.sock|http://localhost/</a></td><td></td><td></td><td>1.00</td><td>0</td><td>Init Ok </td></tr>
</table>
</body></html>
"""


def test_manager_page_rows_become_pool_members():
    balancers = apache_manager.parse_page(PAGE)
    assert [b.name for b in balancers] == ["auth_servers", "other"]
    pool = apache_manager.pool_of(balancers[0], "balancer-manager test")
    rows = [(s.name, s.address, s.state, s.service, s.receives_traffic, s.serving, s.standby) for s in pool.servers]
    assert rows == [
        ("auth1", "127.0.0.1:28101", "HcFl", DOWN_BY_CHECK, False, False, False),
        ("auth2", "127.0.0.1:28102", "Dis", MAINT, False, False, False),
        ("auth3", "127.0.0.1:28103", "Stby Ok", BACKUP, False, True, True),
        ("auth4", "127.0.0.1:28104", "Drn Ok", DRAIN, False, False, False),
    ]
    assert pool.servers[0].check == "GET /wrong failed" and pool.servers[1].check == ""
    assert pool.servers[3].weight == 3 and pool.servers[3].sessions == 2
    assert pool.extra["workers"][3]["to"] == "1.2K" and pool.extra["workers"][3]["elected"] == "4"
    assert pool.extra["settings"]["Method"] == "byrequests"


def test_manager_members_without_an_ip_say_why():
    other = apache_manager.parse_page(PAGE)[1]
    pool = apache_manager.pool_of(other, "x", {"auth.internal": "10.0.0.5"})
    assert pool.servers[0].address == "10.0.0.5:80" and pool.servers[0].configured_as == "auth.internal:80"
    assert pool.servers[1].address is None and "unix socket" in pool.servers[1].address_note
    unresolved = apache_manager.pool_of(other, "x", {}, "does not resolve")
    assert unresolved.servers[0].address is None and unresolved.servers[0].address_note == "does not resolve"


@pytest.mark.parametrize(
    "flags,service",
    [
        ("Init Ok", IN),
        ("Init Dis", MAINT),
        ("Init Stop", MAINT),
        ("Init Dis HcFl", MAINT),  # an admin's word outranks the check
        ("Init HcFl", DOWN_BY_CHECK),
        ("Init Err", DOWN_BY_CHECK),
        ("Init Drn Ok", DRAIN),
        ("Init Stby Ok", BACKUP),
        ("Init Spar Ok", BACKUP),
        ("Init Stby HcFl", DOWN_BY_CHECK),
        ("Init", UNKNOWN),
        ("Init Ign Ok", IN),
    ],
)
def test_status_flags_map_to_the_pool_service_words(flags, service):
    assert apache_manager.service_of(tuple(flags.split()))[0] == service


@pytest.mark.parametrize(
    "page,words",
    [
        ("", "an empty page"),
        ("\x00\xff garbage \x1b[2J", "instead of the balancer-manager page"),
        ("<html><body>It works!</body></html>", "an HTML page that is not the balancer-manager"),
        ("<html><h1>Load Balancer Manager for x</h1></html>", "a balancer-manager page with no balancers"),
        ("<html><h3>LoadBalancer Status for <a", "a balancer-manager page with no balancers"),
    ],
)
def test_pages_that_are_not_a_manager_page(page, words):
    with pytest.raises(apache_manager.ManagerError) as caught:
        apache_manager.parse_page(page)
    assert words in str(caught.value)
    assert "\x1b" not in str(caught.value)


def test_manager_text_is_terminal_safe_and_short():
    page = (
        "<h3>LoadBalancer Status for balancer://a\x1b]0;x\x07b</h3><table><tr><th>Worker URL</th><th>Route</th>"
        f"<th>Status</th></tr><tr><td>http://127.0.0.1:1</td><td>r\x1b[31m{'x' * 5000}</td><td>Init Ok</td></tr></table>"
    )
    (balancer,) = apache_manager.parse_page(page)
    assert "\x1b" not in balancer.name and "\x07" not in balancer.name
    member = apache_manager.pool_of(balancer, "x").servers[0]
    assert "\x1b" not in member.name and len(member.name) <= apache_manager.SHOWN + 1
    assert member.service == IN


def test_manager_rows_past_the_cap_refuse_the_page_not_shorten_the_pool():
    rows = "".join(f"<tr><td>http://127.0.0.1:{1 + i % 60000}</td><td>Init Ok</td></tr>" for i in range(30000))
    page = f"<h3>balancer://big</h3><table><tr><th>Worker URL</th><th>Status</th></tr>{rows}</table>"
    with pytest.raises(apache_manager.ManagerError, match="more than 20000 rows: the page is not read in part"):
        apache_manager.parse_page(page)


def test_manager_cells_past_the_cap_refuse_the_page():
    row = "<tr>" + "<td>x</td>" * 17 + "</tr>"
    page = "<h3>balancer://big</h3><table><tr><th>Worker URL</th></tr>" + row * 6000 + "</table>"
    with pytest.raises(apache_manager.ManagerError, match="more than 100000 table cells"):
        apache_manager.parse_page(page)


HEAD = "<h3>LoadBalancer Status for <a>balancer://{name}</a> [p1]</h3>"
SETTINGS = "<table><tr><th>MaxMembers</th><th>Method</th></tr><tr><td>2 [2 Used]</td><td>byrequests</td></tr></table>"
WORKERS = (
    "<table><tr><th>Worker URL</th><th>Route</th><th>Status</th></tr>"
    "<tr><td>http://127.0.0.1:1</td><td>a</td><td>Init Ok</td></tr>"
)


@pytest.mark.parametrize(
    "page, problems",
    [
        (HEAD.format(name="a") + SETTINGS + WORKERS + "</table>", {"a": ""}),
        (HEAD.format(name="a") + SETTINGS + WORKERS, {"a": apache_manager.UNCLOSED}),
        (HEAD.format(name="a") + SETTINGS, {"a": apache_manager.NO_WORKER_TABLE}),
        (HEAD.format(name="a") + SETTINGS + "<table><tr><th>Worker URL</th></tr></table>", {"a": ""}),  # empty
        (
            HEAD.format(name="a") + SETTINGS + WORKERS + "</table>" + HEAD.format(name="b") + SETTINGS + WORKERS,
            {"a": "", "b": apache_manager.UNCLOSED},
        ),
        (  # the page ends inside a's table: b (read inside it) is not trusted either
            HEAD.format(name="a") + SETTINGS + WORKERS + HEAD.format(name="b") + SETTINGS + WORKERS + "</table>",
            {"a": apache_manager.UNCLOSED, "b": apache_manager.UNCLOSED},
        ),
    ],
    ids=["whole", "unclosed", "no worker table", "no members", "second unclosed", "first unclosed"],
)
def test_a_worker_table_that_cannot_be_read_whole_is_a_problem_not_a_smaller_pool(page, problems):
    found = {b.name: b.problem for b in apache_manager.parse_page(page)}
    assert found == problems


# --------------------------------------------------------------------------- httpd.conf


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_words_quotes_comments_and_continuations(tmp_path):
    conf = write(
        tmp_path,
        "httpd.conf",
        "# a comment\n"
        "Define AUTH_PORT 19002\n"
        "<Proxy 'balancer://auth_servers'>\n"
        '    BalancerMember "http://127.0.0.1:19001" route=a1 \\\n'
        "        loadfactor=2 status=+H-H\n"
        "    BalancerMember http://127.0.0.1:${AUTH_PORT} route=a2 status=+D\n"
        '    BalancerMember "http://127.0.0.1:19003" "route=a\\"3"\n'
        "    ProxySet lbmethod=bytraffic\n"
        "</Proxy>\n"
        '<VirtualHost 127.0.0.1:80>\n  ProxyPass "/auth/" "balancer://auth_servers/" stickysession=ROUTEID\n'
        "</VirtualHost>\n",
    )
    config = apache_conf.load(conf)
    balancer = apache_conf.balancers(config)["auth_servers"]
    assert [(m.url, m.line, m.status) for m in balancer.members] == [
        ("http://127.0.0.1:19001", 4, ""),
        ("http://127.0.0.1:19002", 6, "D"),
        ("http://127.0.0.1:19003", 7, ""),
    ]
    assert balancer.members[2].params["route"] == 'a"3'
    assert balancer.settings == {"lbmethod": "bytraffic"}
    assert balancer.used_by == ("VirtualHost 127.0.0.1:80 ProxyPass /auth/ [httpd.conf:11]",)
    pool = apache_conf.pool_of(balancer, {}, config)
    assert [(s.name, s.state, s.service, s.weight) for s in pool.servers] == [
        ("a1", "enabled", IN, 2),
        ("a2", "Dis (config)", MAINT, 1),
        ('a"3', "enabled", IN, 1),
    ]
    assert pool.from_config and pool.extra["used_by"]


def test_includes_follow_server_root_globs_and_directories(tmp_path):
    write(tmp_path, "root/conf.d/b.conf", "<Proxy balancer://p>\n\n  BalancerMember http://127.0.0.1:2\n</Proxy>\n")
    write(tmp_path, "root/conf.d/a.conf", "BalancerMember balancer://p http://127.0.0.1:1 route=one\n")
    write(tmp_path, "root/sites/x.conf", "<Location /p>\nProxyPass balancer://p/\n</Location>\n")
    conf = write(
        tmp_path,
        "etc/httpd.conf",
        f"ServerRoot {tmp_path}/root\nIncludeOptional conf.d/*.conf\nInclude sites\nIncludeOptional none/*.conf\n",
    )
    config = apache_conf.load(conf)
    balancer = apache_conf.balancers(config)["p"]
    assert [(os.path.basename(m.file), m.line) for m in balancer.members] == [("a.conf", 1), ("b.conf", 3)]
    assert balancer.used_by == ("<Location /p> ProxyPass [x.conf:2]",)
    assert len(config.files) == 4


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("<Proxy balancer://p>\nBalancerMember http://127.0.0.1:1 wieght=2\n</Proxy>\n", 2, "unknown worker parameter"),
        ("<Proxy balancer://p>\nBalancerMember http://127.0.0.1:1 status=+Z\n</Proxy>\n", 2, "unknown status flag 'Z'"),
        ("<Proxy balancer://p>\nBalancerMember http://127.0.0.1:1 loadfactor=101\n</Proxy>\n", 2, "1..100"),
        ("<Proxy balancer://p>\nBalancerMember http://127.0.0.1:1\n", 1, "is never closed"),
        ("<Proxy balancer://p>\nBalancerMember http://127.0.0.1:1\n</Location>\n", 3, "closes <Proxy>"),
        ("</Proxy>\n", 1, "without matching"),
        ('BalancerMember "http://127.0.0.1:1\n', 1, "unterminated"),
        ("Include nowhere/*.conf\n", 1, "cannot open directory"),
        ("Include missing.conf\n", 1, "does not exist"),
        ("Include self.conf\n", 1, "nested too deeply"),
    ],
)
def test_config_errors_name_the_line(tmp_path, text, line, words):
    conf = write(tmp_path, "self.conf", f"ServerRoot {tmp_path}\n" + text)
    with pytest.raises(ConfigError) as caught:
        apache_conf.balancers(apache_conf.load(conf))
    assert caught.value.line == line + 1 or (words == "nested too deeply"), str(caught.value)
    assert words in str(caught.value)


def test_an_include_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo)
    conf = write(tmp_path, "httpd.conf", f"ServerRoot {tmp_path}\nInclude pipe.conf\n")
    with pytest.raises(ConfigError, match="not a regular file"):
        apache_conf.load(conf)


def test_unrouted_balancer_and_other_routes(tmp_path):
    conf = write(
        tmp_path,
        "httpd.conf",
        "<Proxy balancer://auth>\nBalancerMember http://127.0.0.1:1\n</Proxy>\n"
        "<Proxy balancer://billing>\nBalancerMember http://127.0.0.1:2\n</Proxy>\n"
        "ProxyPass /x !\nRewriteRule ^/b(.*) balancer://billing$1 [P,L]\n",
    )
    config = apache_conf.load(conf)
    found = apache_conf.balancers(config)
    assert found["billing"].used_by and not found["auth"].used_by
    judged = judge_pool(apache_conf.pool_of(found["auth"], {}, config), [])
    assert judged.status is Status.CRIT and judged.unrouted
    assert "traffic goes to RewriteRule balancer://billing$1 [httpd.conf:8]" in judged.detail


def test_members_with_names_sockets_and_variables(tmp_path):
    conf = write(
        tmp_path,
        "httpd.conf",
        "<Proxy balancer://p>\nBalancerMember http://auth.internal:8080\nBalancerMember unix:/run/a.sock|http://x/\n"
        "BalancerMember http://${AUTH_HOST}:1\nBalancerMember ajp://127.0.0.1\n</Proxy>\nProxyPass / balancer://p/\n",
    )
    balancer = apache_conf.balancers(apache_conf.load(conf))["p"]
    pool = apache_conf.pool_of(balancer, {"auth.internal": "10.1.1.1"})
    assert [s.address for s in pool.servers] == ["10.1.1.1:8080", None, None, "127.0.0.1:8009"]
    assert "unix socket" in pool.servers[1].address_note
    assert "AUTH_HOST" in pool.servers[2].address_note


def test_detect_tells_apache_from_nginx_and_haproxy(tmp_path):
    apache = write(tmp_path, "a.conf", "Listen 80\n<Proxy balancer://p>\nBalancerMember http://h\n</Proxy>\n")
    nginx = write(tmp_path, "n.conf", "events {}\nhttp { upstream a { server 127.0.0.1:1; } }\n")
    haproxy = write(tmp_path, "h.cfg", "defaults\n  mode http\nbackend a\n  server s 127.0.0.1:1\n")
    debian = write(
        tmp_path, "d.conf", "# Global\nDefaultRuntimeDir ${APACHE_RUN_DIR}\nIncludeOptional mods-enabled/*.load\n"
    )
    assert [detect(p) for p in (apache, nginx, haproxy, debian)] == ["apache", "nginx", "haproxy", "apache"]


def test_an_undeclared_member_failing_its_check_is_a_warning_as_on_haproxy():
    """It takes traffic once it passes its check again, whatever the LB calls the state."""
    from stackscope.lb.pool import Declared

    page = PAGE.replace("Init Dis", "Init Ok").replace("Init Stby Ok", "Init Ok").replace("Init Drn Ok", "Init Ok")
    pool = apache_manager.pool_of(apache_manager.parse_page(page)[0], "x")
    declared = [Declared(f"127.0.0.1:{p}", f"auth-{p}", f"127.0.0.1:{p}") for p in (28102, 28103, 28104)]
    judged = judge_pool(pool, declared)
    assert judged.status is Status.WARN
    assert (
        "127.0.0.1:28101 (auth1, HcFl) is not a declared backend — it takes traffic once it comes UP" in judged.detail
    )


@pytest.mark.parametrize(
    "page",
    [
        "<table" * 500_000,
        "<" * 3_000_000,
        "<h3>balancer://x</h3><table><tr>" + "<td>" * 1_000_000 + "</table>",
        "<h3>balancer://x</h3><table>" + ("<tr>" + "<td>x" * 100) * 5000 + "</table>",
    ],
    ids=["open-tables", "angles", "a-million-cells", "wide-rows"],
)
def test_hostile_pages_are_bounded(page):
    """Each is read or refused; the cell budget bounds the work (no timing asserted)."""
    try:
        found = apache_manager.parse_page(page)
    except apache_manager.ManagerError:
        return
    cells = sum(len(w.cells) for b in found for w in b.workers)
    assert cells <= apache_manager.MAX_CELLS


def test_members_inside_conditional_sections_of_a_proxy(tmp_path):
    conf = write(
        tmp_path,
        "httpd.conf",
        "<IfModule proxy_balancer_module>\n<Proxy balancer://p>\n  BalancerMember http://127.0.0.1:1\n"
        "  <IfModule proxy_hcheck_module>\n    BalancerMember http://127.0.0.1:2 hcmethod=GET hcuri=/h\n"
        "    ProxySet lbmethod=bybusyness\n  </IfModule>\n</Proxy>\n</IfModule>\nProxyPass / balancer://p/\n",
    )
    balancer = apache_conf.balancers(apache_conf.load(conf))["p"]
    assert [(m.url, m.line) for m in balancer.members] == [("http://127.0.0.1:1", 3), ("http://127.0.0.1:2", 5)]
    assert balancer.settings == {"lbmethod": "bybusyness"} and balancer.line == 2
    pool = apache_conf.pool_of(balancer)
    assert pool.servers[1].check == "hcmethod=GET hcuri=/h"


def test_random_configs_raise_only_config_errors(tmp_path):
    """Shuffled fragments of real syntax and bytes: parsed or refused with a ConfigError."""
    import random

    pieces = [
        "<",
        ">",
        "</",
        "<Proxy balancer://p>",
        "</Proxy>",
        "BalancerMember",
        " http://127.0.0.1:1",
        " balancer://p",
        " status=+",
        "D",
        " loadfactor=",
        "1.5",
        '"',
        "'",
        "\\",
        "\n",
        "#",
        "${X}",
        "Define X 1\n",
        "ProxyPass / balancer://p/",
        " route=",
        "\x00",
        "\x1b[2J",
        "é",
        "ProxySet",
        " unix:/x|http://h",
        " [P]",
        "RewriteRule",
    ]
    rng = random.Random(20231207)
    for index in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
        conf = write(tmp_path, f"c{index}.conf", text)
        try:
            config = apache_conf.load(conf)
            for balancer in apache_conf.balancers(config).values():
                judge_pool(apache_conf.pool_of(balancer, {}, config), [])
        except ConfigError as exc:
            assert "\x1b" not in str(exc)


def test_random_manager_pages_raise_only_manager_errors():
    import random

    pieces = [
        "<h3>",
        "</h3>",
        "LoadBalancer Status for balancer://",
        "auth",
        "<table>",
        "</table>",
        "<tr>",
        "</tr>",
        "<td>",
        "</td>",
        "<th>Worker URL</th>",
        "<th>Status</th>",
        "<th>Route</th>",
        "http://127.0.0.1:1",
        "http://[::1",
        "unix:",
        "Init Ok",
        "HcFl",
        "Dis",
        "&amp;",
        "&#27;",
        "<a href='x'>",
        "\x1b]0;x\x07",
        "<",
        ">",
    ]
    rng = random.Random(7)
    for _ in range(500):
        page = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 80)))
        try:
            found = apache_manager.parse_page(page)
        except apache_manager.ManagerError as exc:
            assert "\x1b" not in str(exc)
            continue
        for balancer in found:
            pool = apache_manager.pool_of(balancer, "x")
            for server in pool.servers:
                assert "\x1b" not in server.name + server.state + server.check
            judge_pool(pool, [])


def test_h2c_and_h2_members_of_a_grpc_balancer(tmp_path):
    """mod_proxy_http2's h2c:// and h2:// workers are members like http:// ones, with
    their default ports (80, 443), and a ProxyPass to the balancer routes to it."""
    conf = write(
        tmp_path,
        "httpd.conf",
        "<Proxy balancer://orders>\nBalancerMember h2c://127.0.0.1:50051\nBalancerMember h2c://127.0.0.1\n"
        "BalancerMember h2://127.0.0.1\n</Proxy>\nProxyPass / balancer://orders/\n",
    )
    config = apache_conf.load(conf)
    balancer = apache_conf.balancers(config)["orders"]
    assert balancer.used_by
    pool = apache_conf.pool_of(balancer, {}, config)
    assert [s.address for s in pool.servers] == ["127.0.0.1:50051", "127.0.0.1:80", "127.0.0.1:443"]


GRPC_LAYOUT = """\
name: grpc
layers:
  - {name: LB, role: lb, checks: [{apache: "http://127.0.0.1:8080/balancer-manager", balancer: orders}]}
  - name: Orders
    role: backend
    checks:
      - {grpc: "127.0.0.1:50051", service: orders}
      - {grpc: "127.0.0.1:50052", service: orders}
"""


@pytest.mark.parametrize("ports,status", [((50051, 50052), Status.OK), ((50053, 50054), Status.CRIT)])
def test_the_gate_catches_a_misrouted_h2c_balancer(tmp_path, ports, status):
    """A gRPC pool behind Apache (h2c:// members) is compared with the `grpc` checks
    like an HTTP pool: members on other ports are not the declared backends."""
    from stackscope.layout import parse_layout
    from stackscope.lb.gate import gate_status, run_gate

    members = "".join(f"BalancerMember h2c://127.0.0.1:{port}\n" for port in ports)
    conf = write(
        tmp_path, "httpd.conf", f"<Proxy balancer://orders>\n{members}</Proxy>\nProxyPass / balancer://orders/\n"
    )
    reports = run_gate(parse_layout(GRPC_LAYOUT), conf)
    assert gate_status(reports) is status, reports[0].judgement.detail
