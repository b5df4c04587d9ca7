"""What stackscope sends is what it means to send: layout values cannot smuggle commands
into a wire protocol, the HAProxy Runtime API client sends read-only commands only,
credentials stay with the origin they were written for, a PostgreSQL password never
travels in clear, and a DNS reply with the wrong ID is ignored like a resolver would.

Real HAProxy 2.6 and PostgreSQL 15 on 127.0.0.1, plus hostile fakes (tests/servers).
"""

from __future__ import annotations

import socket
import ssl
from types import SimpleNamespace

import dns.message
import dns.rrset
import pytest
import trustme

from stackscope.lb.haproxy_stats import RefusedCommand, runtime_api_line
from stackscope.model import ErrorKind, Status
from stackscope.probes.common import Deadline, ProbeFailure
from stackscope.probes.haproxy import StatsSource, pool_from_socket, read_runtime_api
from stackscope.probes.postgres import TERMINATE
from tests.conftest import run_cli, write_layout
from tests.probe_helpers import probe
from tests.servers.base import free_port, port_open, wait_until
from tests.servers.dbs import Postgres
from tests.servers.haproxy import Haproxy
from tests.servers.hostile_dbs import (
    mysql_raw,
    pg_asks_then_records,
    pg_auth,
    pg_script,
    pg_tls_asks_then_records,
)
from tests.servers.pyservers import PyServers, hang_up, http_response, read_request, recorder

INJECTIONS = {
    "semicolon": "auth_servers;disable server auth_servers/s1;shutdown frontend web",
    "newline": "auth_servers\ndisable server auth_servers/s1\nshutdown frontend web",
}


@pytest.fixture(scope="module")
def servers():
    fakes = PyServers()
    yield fakes
    fakes.close()


def start_haproxy(tmp_path_factory, web: int, backend: int) -> Haproxy | None:
    """HAProxy with its admin socket up, or None when it died (a port it wanted was taken)."""
    body = f"""
frontend web
    bind 127.0.0.1:{web}
    default_backend auth_servers
backend auth_servers
    server s1 127.0.0.1:{backend} check inter 100ms fall 1 rise 1
"""
    proxy = Haproxy(tmp_path_factory.mktemp("haproxy-wire"), body, [web])
    try:
        proxy.start()
        wait_until(lambda: proxy.admin_socket.exists() or proxy.process.died(), 10, "the admin socket")
    except (RuntimeError, AssertionError, TimeoutError):
        pass
    if proxy.process.died() or not proxy.admin_socket.exists():
        proxy.stop()
        return None
    return proxy


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory, servers):
    """HAProxy with frontend `web` and backend `auth_servers` whose one server s1 is UP."""
    backend = servers.tcp(hang_up)
    proxy, web = None, 0
    for _ in range(3):  # a free port taken by another test run before HAProxy binds it: try new ones
        web = free_port()
        proxy = start_haproxy(tmp_path_factory, web, backend)
        if proxy is not None:
            break
    assert proxy is not None, "HAProxy did not start in 3 tries"
    proxy.web_port = web
    wait_until(lambda: proxy.server_states("auth_servers") == {"s1": "UP"}, 10, "s1 UP")
    yield proxy
    proxy.stop()


def assert_untouched(proxy: Haproxy) -> None:
    """HAProxy's own stats: s1 still UP, frontend `web` still OPEN and listening."""
    rows = [line.split(",") for line in proxy.admin("show stat").splitlines() if line and line[0] != "#"]
    status = {(row[0], row[1]): row[17] for row in rows}
    assert status[("auth_servers", "s1")] == "UP", status
    assert status[("web", "FRONTEND")] == "OPEN", status
    assert port_open(proxy.web_port)


def hostile_layout(tmp_path, source: str, backend: str):
    quoted = backend.replace("\n", "\\n")
    return write_layout(
        tmp_path,
        f"""\
name: inject
timeout: 2s
layers:
  - name: LB
    role: lb
    checks:
      - haproxy: {source}
        backend: "{quoted}"
""",
    )


# ----------------------------------------------------------------------------- item 1: HAProxy


@pytest.mark.parametrize("payload", sorted(INJECTIONS))
@pytest.mark.parametrize("command", ["lint", "check"])
def test_injected_backend_is_a_located_layout_error_and_haproxy_is_untouched(haproxy, tmp_path, payload, command):
    path = hostile_layout(tmp_path, f"unix:{haproxy.admin_socket}", INJECTIONS[payload])
    done = run_cli(command, str(path))
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{path}:8:" in done.stderr and "'backend'" in done.stderr, done.stderr
    assert "is not a valid HAProxy backend name" in done.stderr
    assert "use letters, digits and _ . : - only" in done.stderr
    assert_untouched(haproxy)


@pytest.mark.parametrize(
    "commands",
    [
        ("show stat;disable server auth_servers/s1",),
        ("show info\nshutdown frontend web",),
        ("disable server auth_servers/s1",),
        ("shutdown frontend web",),
        ("show servers state auth_servers", "set weight auth_servers/s1 0"),
        ("show stat auth_servers -1 -1 ;shutdown frontend web",),
    ],
)
async def test_socket_client_refuses_anything_but_read_only_commands(haproxy, servers, tmp_path, commands):
    connections: list[int] = []

    async def count(reader, writer) -> None:
        connections.append(1)

    decoy = servers.unix(count, str(tmp_path / "decoy.sock"))
    for path in (str(haproxy.admin_socket), decoy):
        source = StatsSource("unix", f"unix:{path}", path=path)
        with pytest.raises(ProbeFailure) as raised:
            await read_runtime_api(source, commands, Deadline(2))
        failure = raised.value
        assert failure.status is Status.UNKNOWN and failure.kind is ErrorKind.CONFIG
        assert "refused to send" in failure.detail and "read-only commands" in failure.detail
        assert "\n" not in failure.detail
    assert connections == []  # refused before the socket was even opened
    assert_untouched(haproxy)


async def test_pool_reader_refuses_a_hostile_backend_that_bypassed_the_layout(haproxy):
    path = str(haproxy.admin_socket)
    check = SimpleNamespace(
        address=StatsSource("unix", f"unix:{path}", path=path),
        options=SimpleNamespace(backend=INJECTIONS["semicolon"]),
    )
    with pytest.raises(ProbeFailure, match="refused to send"):
        await pool_from_socket(check, Deadline(2))
    assert_untouched(haproxy)


async def test_read_only_commands_still_read_the_pool(haproxy):
    path = str(haproxy.admin_socket)
    source = StatsSource("unix", f"unix:{path}", path=path)
    text = await read_runtime_api(source, ("show info", "show stat auth_servers -1 -1"), Deadline(2))
    assert "Version:" in text and "auth_servers,s1," in text


def test_allow_list_is_exact():
    assert (
        runtime_api_line(["show servers state b", "show stat b -1 -1"]) == b"show servers state b;show stat b -1 -1\n"
    )
    for hostile in ("show stat b", "show info 1", "show  info", "SHOW INFO", "show stat b 1 1 json", "clear counters"):
        with pytest.raises(RefusedCommand):
            runtime_api_line([hostile])


# ----------------------------------------------------------------------------- item 3: PostgreSQL

PG_SECRET = "Pg-wire-secret-4711"


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (pg_auth(3), "asked for the password in clear text (AuthenticationCleartextPassword)"),
        (pg_auth(5, b"salt"), "asked for an MD5 password on a connection without TLS"),
    ],
    ids=["cleartext", "md5"],
)
async def test_password_is_never_sent_to_a_server_that_asks_for_it_unsafely(pyservers, request_, words):
    received: list[bytes] = []
    port = pyservers.tcp(pg_asks_then_records(request_, received))
    result = await probe(
        {"postgres": f"127.0.0.1:{port}", "user": "app", "password_env": "PGPW", "timeout": "2s"},
        environ={"PGPW": PG_SECRET},
    )
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.AUTH, result.detail
    assert words in result.detail and "the password was not sent" in result.detail
    assert "scram-sha-256" in result.detail  # the fix
    wait_until(lambda: len(received) == 2, 5, "the fake saw the client hang up")
    assert received[1] in (b"", TERMINATE), received  # not even a password message: only goodbye
    assert PG_SECRET.encode() not in b"".join(received)


async def test_md5_without_tls_only_when_the_layout_opts_in(pyservers):
    received: list[bytes] = []
    port = pyservers.tcp(pg_asks_then_records(pg_auth(5, b"salt"), received))
    await probe(
        {
            "postgres": f"127.0.0.1:{port}",
            "user": "app",
            "password_env": "PGPW",
            "allow_md5_without_tls": True,
            "timeout": "500ms",  # the fake never answers the md5 message: the probe gives up
        },
        environ={"PGPW": PG_SECRET},
    )
    wait_until(lambda: len(received) == 2, 5, "the fake saw the client hang up")
    assert received[1].startswith(b"p") and b"md5" in received[1]  # the opt-in is honoured
    assert PG_SECRET.encode() not in received[1]


@pytest.mark.parametrize("mode", ["require", "verify-full"])
async def test_ssl_require_fails_when_the_server_declines_tls(pyservers, mode):
    received: list[bytes] = []
    port = pyservers.tcp(pg_asks_then_records(pg_auth(3), received))
    result = await probe(
        {"postgres": f"127.0.0.1:{port}", "ssl": mode, "password_env": "PGPW", "timeout": "2s"},
        environ={"PGPW": PG_SECRET},
    )
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.TLS, result.detail
    assert f"does not offer TLS (it answered N to the SSL request), and ssl: {mode} needs it" in result.detail
    assert PG_SECRET.encode() not in b"".join(received)


def accepts_sessions(server: Postgres) -> bool:
    try:
        return server.psql("select 1") == "1"
    except RuntimeError:  # "the database system is starting up"
        return False


@pytest.fixture(scope="module")
def postgres():
    """scram-sha-256 for every role but `md5role` (md5) and `plainrole` (password: cleartext)."""
    hba = (
        "host all md5role 127.0.0.1/32 md5\n"
        "host all plainrole 127.0.0.1/32 password\n"
        "host all all 127.0.0.1/32 scram-sha-256"
    )
    server = Postgres(hba=hba).start()
    wait_until(lambda: accepts_sessions(server), 30, "postgres past 'starting up'")  # the port opens earlier
    server.psql(f"create role scramrole login password '{PG_SECRET}'")
    server.psql(f"set password_encryption = 'md5'; create role md5role login password '{PG_SECRET}'")
    server.psql(f"create role plainrole login password '{PG_SECRET}'")
    yield server
    server.remove()


@pytest.mark.parametrize(
    ("role", "extra", "status", "words"),
    [
        ("scramrole", {}, Status.OK, "logged in, SELECT 1 ok"),
        ("scramrole", {"ssl": True}, Status.OK, "logged in, SELECT 1 ok"),
        ("md5role", {}, Status.CRIT, "asked for an MD5 password on a connection without TLS"),
        ("md5role", {"allow_md5_without_tls": True}, Status.OK, "logged in, SELECT 1 ok"),
        ("plainrole", {}, Status.CRIT, "asked for the password in clear text"),
    ],
)
async def test_real_postgres_logins_by_auth_method(postgres, role, extra, status, words):
    check = {"postgres": f"127.0.0.1:{postgres.port}", "user": role, "password_env": "PGPW", **extra}
    result = await probe(check, environ={"PGPW": PG_SECRET})
    assert result.status is status, result.detail
    assert words in result.detail
    assert result.facts["tls"] is False  # the test cluster has no certificate: prefer fell back


def test_ssl_modes_and_booleans_in_the_layout(tmp_path):
    for value, ok in (("prefer", True), ("verify-full", True), ("true", True), ("false", True), ("allow", False)):
        path = write_layout(
            tmp_path,
            f"name: t\nlayers:\n  - name: DB\n    role: db\n    checks:\n"
            f"      - postgres: 127.0.0.1:5432\n        ssl: {value}\n",
        )
        done = run_cli("lint", str(path))
        assert (done.returncode == 0) is ok, done.stdout + done.stderr
        if not ok:
            assert f"{path}:7:" in done.stderr and "disable, prefer, require, verify-full" in done.stderr


# ----------------------------------------------------------------------------- item 2: redirects


def redirector(heads: list[bytes], location: str):
    """An HTTP server that records each request head and answers 302 to `location`."""

    async def handle(reader, writer) -> None:
        heads.append(await read_request(reader))
        writer.write(http_response(302, b"", {"Location": location}, reason="Found"))
        await writer.drain()

    return handle


HTTP_SECRET = "user:Http-wire-secret-99"
API_KEY = "key-Http-wire-secret-77"


def redirect_check(url: str, **extra) -> dict:
    return {
        "http": url,
        "auth_env": "AUTH",
        "follow_redirects": True,
        "headers": {"Host": "auth.example.test", "X-Api-Key": API_KEY, "Cookie": "session=abc123", "X-Trace": "t-1"},
        "sensitive_headers": ["X-Api-Key"],
        "timeout": "2s",
        **extra,
    }


@pytest.mark.parametrize("elsewhere", ["127.0.0.1", "127.0.0.2"], ids=["other-port", "other-host"])
async def test_credentials_stay_with_their_origin_on_a_redirect(pyservers, elsewhere):
    sink_heads: list[bytes] = []
    origin_heads: list[bytes] = []
    sink = pyservers.tcp(recorder(sink_heads), host=elsewhere)
    start = pyservers.tcp(redirector(origin_heads, f"http://{elsewhere}:{sink}/landing"))
    result = await probe(redirect_check(f"http://127.0.0.1:{start}/login"), environ={"AUTH": HTTP_SECRET})
    assert result.status is Status.OK, result.detail
    origin_head, sink_head = origin_heads[0].lower(), sink_heads[0].lower()
    assert b"authorization: basic" in origin_head and API_KEY.lower().encode() in origin_head  # sent at home
    for header in (b"authorization", b"cookie", b"x-api-key", b"proxy-authorization"):
        assert header + b":" not in sink_head, sink_head
    assert b"x-trace: t-1" in sink_head  # a header not marked sensitive still goes, as with curl
    assert b"host: auth.example.test" in origin_head
    assert f"host: {elsewhere}:{sink}".encode() in sink_head  # the layout's Host names the first server only
    assert result.facts["credentials_dropped_on_redirect"] == ["X-Api-Key", "Cookie", "Authorization"]


async def test_credentials_follow_a_redirect_within_the_same_origin(pyservers):
    heads: list[bytes] = []
    port_holder: list[int] = []

    async def handle(reader, writer) -> None:
        heads.append(await read_request(reader))
        if len(heads) == 1:
            writer.write(http_response(302, b"", {"Location": f"http://127.0.0.1:{port_holder[0]}/next"}))
        else:
            writer.write(http_response(200))
        await writer.drain()

    port_holder.append(pyservers.tcp(handle))
    result = await probe(redirect_check(f"http://127.0.0.1:{port_holder[0]}/"), environ={"AUTH": HTTP_SECRET})
    assert result.status is Status.OK, result.detail
    assert b"authorization: basic" in heads[1].lower() and b"x-api-key" in heads[1].lower()
    assert "credentials_dropped_on_redirect" not in result.facts


def test_sensitive_header_must_be_one_the_check_sends(tmp_path):
    path = write_layout(
        tmp_path,
        "name: t\nlayers:\n  - name: W\n    role: backend\n    checks:\n"
        "      - http: http://127.0.0.1:8080/\n        headers: {X-Trace: a}\n        sensitive_headers: [X-Api-Key]\n",
    )
    done = run_cli("lint", str(path))
    assert done.returncode == 3 and "'X-Api-Key' is not one of the headers this check sends" in done.stderr


# ----------------------------------------------------------------------------- item 8: DNS query IDs


def answer(query_wire: bytes, query_id: int | None = None) -> bytes:
    """An A answer 127.0.0.7 to `query_wire`, with the query's ID or `query_id`."""
    query = dns.message.from_wire(query_wire)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 30, "IN", "A", "127.0.0.7"))
    if query_id is not None:
        reply.id = query_id
    return reply.to_wire()


def wrong_id(query_wire: bytes) -> int:
    return (int.from_bytes(query_wire[:2], "big") + 1) % 65536


async def test_dns_reply_with_the_wrong_id_is_ignored_until_the_right_one(pyservers):
    port = pyservers.udp(lambda data: [answer(data, wrong_id(data)), answer(data)])
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.OK, result.detail
    assert result.facts["answers"] == ["127.0.0.7"]


async def test_a_closed_dns_port_is_refused_not_waited_out():
    """The query's socket is connected, so the ICMP port-unreachable comes back as refused:
    a stopped DNS server is named at once, not after the timeout."""
    port = free_port(socket.SOCK_DGRAM)  # bound and released: nothing listens there
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.REFUSED, result.detail
    assert f"127.0.0.1:{port} refused" in result.detail


async def test_dns_replies_only_with_wrong_ids_time_out_and_say_so(pyservers):
    port = pyservers.udp(lambda data: [answer(data, wrong_id(data)), answer(data, wrong_id(data) + 1)])
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "timeout": "300ms"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.TIMEOUT, result.detail
    assert f"no answer from 127.0.0.1:{port} in 300ms" in result.detail
    assert "2 replies with the wrong query ID or question ignored" in result.detail
    assert result.facts["ignored_replies"] == 2


async def test_layout_resolver_also_ignores_wrong_id_replies(pyservers):
    listening = pyservers.tcp(hang_up, host="127.0.0.7")
    dns_port = pyservers.udp(lambda data: [answer(data, wrong_id(data)), answer(data)])
    result = await probe({"tcp": f"api.stackscope.test:{listening}"}, resolver=f"127.0.0.1:{dns_port}")
    assert result.status is Status.OK, result.detail


# ----------------------------------------------------------------------------- item 10: messages


async def test_bad_http_status_line_is_shown_as_text_not_a_python_repr(pyservers):
    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    port = pyservers.tcp(handle)
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert "illegal status line: 'HTTP/1.1 abc OK'" in result.detail
    assert "bytearray" not in result.detail and "b'" not in result.detail


async def test_garbage_that_resembles_mysql_is_not_called_a_mysql_server(pyservers):
    port = pyservers.tcp(mysql_raw(b"\xff\xff\xff\x00\x0ajunk-junk-junk"))
    result = await probe({"mysql": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert "does not speak MySQL" in result.detail
    assert result.detail.endswith("(something that is not a MySQL server answered)"), result.detail
    assert "a MySQL/MariaDB server answered" not in result.detail


async def test_garbage_that_resembles_postgres_is_not_called_a_postgres_server(pyservers):
    port = pyservers.tcp(pg_script(b"E\xff\xff\xff\xffjunk-junk"))
    result = await probe({"postgres": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert "is not PostgreSQL" in result.detail
    assert result.detail.endswith("(something that is not a PostgreSQL server answered)"), result.detail


@pytest.fixture(scope="module")
def pg_certs(tmp_path_factory):
    """A CA file, and the server side of TLS for 127.0.0.1 under that CA."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("pg-certs") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return SimpleNamespace(ca=str(path), server=server)


@pytest.mark.parametrize("mode", ["prefer", "require"])
async def test_cleartext_request_over_tls_is_answered(pyservers, pg_certs, mode):
    """The rule is about the connection, not the method: over TLS (as libpq) it goes."""
    received: list[bytes] = []
    port = pyservers.tcp(pg_tls_asks_then_records(pg_certs.server, pg_auth(3), received))
    result = await probe(
        {"postgres": f"127.0.0.1:{port}", "ssl": mode, "user": "app", "password_env": "PGPW", "timeout": "2s"},
        environ={"PGPW": PG_SECRET},
    )
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.AUTH, result.detail
    assert "refused the login" in result.detail and result.facts["tls"] is True
    assert received[1] == b"p" + PG_SECRET.encode() + b"\0"


async def test_verify_full_refuses_an_untrusted_certificate_before_any_password(pyservers, pg_certs):
    received: list[bytes] = []
    port = pyservers.tcp(pg_tls_asks_then_records(pg_certs.server, pg_auth(3), received))
    check = {"postgres": f"127.0.0.1:{port}", "ssl": "verify-full", "password_env": "PGPW", "timeout": "2s"}
    result = await probe(check, environ={"PGPW": PG_SECRET})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.CERT, result.detail
    assert "rejected (ssl: verify-full)" in result.detail
    assert received == []  # not even the StartupMessage got through
    trusted = await probe({**check, "ca": pg_certs.ca}, environ={"PGPW": PG_SECRET})
    assert trusted.error_kind is ErrorKind.AUTH and "refused the login" in trusted.detail, trusted.detail
