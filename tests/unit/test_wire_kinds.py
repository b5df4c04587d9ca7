"""Layout values that reach a wire protocol are checked against that protocol's grammar
when the layout is read: a separator of the protocol (`;` or a line break for HAProxy's
Runtime API, NUL for PostgreSQL's startup message, a space for a Redis ACL user, a space
or line break in an HTTP request line) is a located layout error, never something sent."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from stackscope.kinds import ParseContext
from stackscope.layout import LayoutError, parse_layout
from stackscope.schema import json_schema

BAD = [
    # (check, key, line of the key, words in the message, words in the fix)
    (
        {"haproxy": "unix:/run/haproxy.sock", "backend": "auth;shutdown frontend web"},
        "backend",
        "';' is not allowed",
        "letters, digits and _ . : - only",
    ),
    (
        {"haproxy": "unix:/run/haproxy.sock", "backend": "auth\ndisable server auth/s1"},
        "backend",
        "a line break is not allowed",
        "letters, digits and _ . : - only",
    ),
    ({"haproxy": "unix:/run/haproxy.sock", "backend": "a" * 256}, "backend", "is 256 bytes", "at most 255 bytes"),
    ({"postgres": "127.0.0.1", "user": "app\0options\0-c log_statement=all"}, "user", "a NUL byte", "no NUL"),
    ({"postgres": "127.0.0.1", "database": "db\0replication\0true"}, "database", "a NUL byte", "no NUL"),
    ({"postgres": "127.0.0.1", "user": "r" * 64}, "user", "is 64 bytes", "at most 63 bytes"),
    ({"mysql": "127.0.0.1", "user": "app\0x"}, "user", "a NUL byte", "no NUL"),
    ({"mysql": "127.0.0.1", "user": "u" * 81}, "user", "is 81 bytes", "at most 80 bytes"),
    ({"redis": "127.0.0.1", "user": "mon itor"}, "user", "a space is not allowed", "without spaces"),
    ({"redis": "127.0.0.1", "user": "mon\r\nFLUSHALL"}, "user", "a carriage return", "without spaces"),
    ({"tls": "127.0.0.1:443", "sni": "a b.example"}, "sni", "is not a DNS name", "auth.example.test"),
    ({"dns": "auth.example.test\0evil"}, "dns", "is not a DNS name", "auth.example.test"),
    ({"http": "http://127.0.0.1/a b"}, "http", "a space", "percent-encode"),
    ({"http": "http://127.0.0.1/a\r\nX-Injected: 1"}, "http", "a carriage return", "percent-encode"),
    ({"http": "http://127.0.0.1/\u00e9"}, "http", "'é'", "percent-encode"),
    ({"http": "http://127.0.0.1/", "headers": {"X-A": "v\r\nX-B: w"}}, "headers", "cannot be sent in HTTP", "one line"),
    ({"http": "http://127.0.0.1/", "identity_header": "X Served"}, "identity_header", "not a valid HTTP header", ""),
    (
        {"nginx": "/etc/nginx/nginx.conf", "upstream": "u", "status_url": "http://127.0.0.1/st atus"},
        "status_url",
        "a space",
        "",
    ),
    ({"haproxy": "http://127.0.0.1:8404/st ats;csv", "backend": "b"}, "haproxy", "a space", "percent-encode"),
    ({"haproxy": "unix:/run/ha\0proxy.sock", "backend": "b"}, "haproxy", "has a control character", "unix:/run"),
]


def layout_text(check: dict) -> str:
    doc = {"name": "t", "layers": [{"name": "L", "role": "other", "checks": [check]}]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@pytest.mark.parametrize(("check", "key", "message", "fix"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_wire_value_is_a_located_layout_error(check, key, message, fix):
    text = layout_text(check)
    with pytest.raises(LayoutError) as raised:
        parse_layout(text, "wire.yaml", ParseContext(environ={}, require_env=False))
    problems = [p for p in raised.value.problems if f"'{key}'" in p.where or f"'{key}'" in p.message]
    problems = problems or raised.value.problems
    assert len(problems) == 1, raised.value.problems
    problem = problems[0]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.lstrip(" -").startswith(f"{key}:"))
    assert (problem.file, problem.line) == ("wire.yaml", line), str(problem)
    assert message in problem.message, str(problem)
    assert fix in problem.fix and problem.fix, str(problem)


@pytest.mark.parametrize(
    "check",
    [
        {"haproxy": "unix:/run/haproxy.sock", "backend": "be_auth-servers.v2:blue"},
        {"postgres": "127.0.0.1", "user": "app owner", "database": "sales-2024 é"},
        {"mysql": "127.0.0.1", "user": "app@'%'"},
        {"redis": "127.0.0.1", "user": "monitor-ro"},
        {"tls": "127.0.0.1:443", "sni": "auth.example.test"},
        {"http": "http://127.0.0.1/a%20b?x=1&y=%0A"},
    ],
)
def test_values_the_protocols_allow_are_accepted(check):
    parse_layout(layout_text(check), "wire.yaml", ParseContext(environ={}, require_env=False))
    jsonschema.validate(yaml.safe_load(layout_text(check)), json_schema())


@pytest.mark.parametrize(
    "check",
    [b[0] for b in BAD if set(b[0]) & {"haproxy", "postgres", "mysql", "redis"} and b[1] != "haproxy"],
)
def test_editor_schema_refuses_them_too(check):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(layout_text(check)), json_schema())


def test_postgres_ca_needs_verify_full(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read at load time\n")
    check = {"postgres": "127.0.0.1", "ssl": "require", "ca": str(ca)}
    with pytest.raises(LayoutError) as raised:
        parse_layout(layout_text(check), "wire.yaml", ParseContext(environ={}, require_env=False))
    (problem,) = raised.value.problems
    assert "ca has no effect with ssl: require" in problem.message and "verify-full" in problem.fix
    parse_layout(layout_text({**check, "ssl": "verify-full"}), "wire.yaml", ParseContext(environ={}))
