"""Layout loading and validation: every problem names the line, the key and the fix."""

from __future__ import annotations

import textwrap

import pytest

from stackscope.kinds import Invalid, ParseContext, format_duration, parse_address, parse_duration
from stackscope.layout import LayoutError, load_layout, parse_layout
from stackscope.model import Address, SuspectSettings, Url
from stackscope.probes import CHECK_TYPES, all_specs

GOOD = """\
name: auth-prod
description: login path
interval: 2s
timeout: 1500ms
resolver: 127.0.0.1:5353
layers:
  - name: DNS
    role: dns
    checks:
      - dns: auth.example.test
        record: A
        expect: [127.0.0.1]
  - name: Load balancer
    role: lb
    checks:
      - http: http://auth.example.test:18080/health
        expect_status: 200
        expect_body: ok
  - name: Auth backends
    role: backend
    checks:
      - http: http://127.0.0.1:19001/health
        name: auth-1
      - tcp: 127.0.0.1:19002
  - name: Database
    role: db
    checks:
      - tcp: 127.0.0.1:15432
        timeout: 1s
        warn_ms: 200
"""


def problems_of(text: str, environ: dict | None = None) -> list[str]:
    ctx = ParseContext(environ=environ or {}, require_env=True)
    with pytest.raises(LayoutError) as info:
        parse_layout(textwrap.dedent(text), "lay.yaml", ctx)
    return [str(p) for p in info.value.problems]


def test_good_layout_is_typed():
    layout = parse_layout(GOOD, "good.yaml")
    assert layout.name == "auth-prod"
    assert layout.interval == 2.0 and layout.timeout == 1.5
    assert layout.resolver == Address("127.0.0.1", 5353)
    assert [l.name for l in layout.layers] == ["DNS", "Load balancer", "Auth backends", "Database"]
    assert [l.role for l in layout.layers] == ["dns", "lb", "backend", "db"]
    lb = layout.layers[1].checks[0]
    assert isinstance(lb.address, Url) and lb.address.host == "auth.example.test" and lb.address.port == 18080
    assert lb.options.expect_status == (200,)
    assert lb.hostname == "auth.example.test"
    assert lb.timeout == 1.5  # inherits the layout timeout
    backend = layout.layers[2].checks
    assert backend[0].name == "auth-1" and backend[0].hostname is None
    assert backend[1].name == "127.0.0.1:19002"  # default name: the target
    db = layout.layers[3].checks[0]
    assert db.timeout == 1.0 and db.warn_ms == 200
    assert db.id == "Database/127.0.0.1:15432"
    dns = layout.layers[0].checks[0]
    assert dns.options.record == "A" and dns.options.expect == ("127.0.0.1",)
    assert dns.hostname is None  # a dns check does not depend on the dns layer


# (layout text, expected line, substrings that must all be in the message)
CASES = [
    ("name: x\nlayer: []\n", 2, ["unknown key 'layer'", "did you mean 'layers'?"]),
    (
        "layers:\n  - name: A\n    role: db\n    checks: [{tcp: '127.0.0.1:1'}]\n",
        1,
        ["missing required key 'name'", "add name:"],
    ),
    ("name: x\ninterval: 2\nlayers: []\n", 2, ["'interval'", "no unit", "write 2s or 2ms"]),
    ("name: x\ninterval: 2 sec\nlayers: []\n", 2, ["'2 sec' is not a duration", "500ms, 2s or 1m"]),
    (
        "name: x\ninterval: 1s\ntimeout: 2s\nlayers: []\n",
        3,
        ["timeout 2s is longer than interval 1s", "lower timeout to 1s or less"],
    ),
    ("name: x\nlayers: []\n", 2, ["'layers' must be a non-empty list"]),
    ("name: x\nlayers:\n  - name: A\n    role: db\n    checks: []\n", 5, ["layer 'A'", "layer has no checks"]),
    (
        "name: x\nlayers:\n  - name: A\n    role: bakend\n    checks: [{tcp: '127.0.0.1:1'}]\n",
        4,
        ["'role'", "did you mean 'backend'?"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1\n",
        6,
        ["'tcp'", "has no port", "add one: 127.0.0.1:PORT"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:70000\n",
        6,
        ["port '70000'", "1 to 65535"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: 127.0.0.1:8080/health\n",
        6,
        ["has no scheme", "write http://127.0.0.1:8080/health"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: ftp://127.0.0.1/x\n",
        6,
        ["scheme 'ftp'", "use http:// or https://"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://u:pw@127.0.0.1/x\n",
        6,
        ["credentials in a URL", "auth_env"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        expect_staus: 200\n",
        7,
        ["unknown key 'expect_staus'", "did you mean 'expect_status'?"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        expect_status: ok\n",
        7,
        ["'expect_status'", "not an HTTP status code"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        samples: 5\n",
        7,
        ["samples needs identity_header", "add identity_header"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - htp: http://127.0.0.1/\n",
        6,
        ["check has no type key", "did you mean 'http'?"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - tcp: 127.0.0.1:1\n        http: http://a/\n",
        6,
        ["several type keys (tcp, http)", "one check per type"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks: [{tcp: '127.0.0.1:1'}]\n"
        "  - name: A\n    role: db\n    checks: [{tcp: '127.0.0.1:2'}]\n",
        6,
        ["layer name 'A' is used twice", "line 3"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n      - tcp: 127.0.0.1:1\n",
        7,
        ["two checks are named '127.0.0.1:1'", "give one a different name"],
    ),
    ("name: x\nname: y\nlayers: []\n", 2, ["key 'name' appears twice", "line 1"]),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n        timeout: 9s\n",
        7,
        ["timeout 9s is longer than interval 5s"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: dns\n    checks:\n      - dns: http://a.test/\n",
        6,
        ["is not a DNS name", "write just the name"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: dns\n    checks:\n      - dns: a.test\n        record: AAA\n",
        7,
        ["'record'", "did you mean 'AAAA'?"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        auth_env: STATS_AUTH\n",
        7,
        ["environment variable STATS_AUTH is not set", "export STATS_AUTH="],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        auth_env: hunter2 secret\n",
        7,
        ["is not an environment variable name", "never the secret itself"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        verify_tls: 'no'\n",
        7,
        ["expected true or false"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        ca: /nonexistent/ca.pem\n",
        7,
        ["does not exist"],
    ),
    ("- name: x\n", 1, ["not a layout", "mapping with name: and layers:"]),
    ("name: x\nlayers:\n  - name: A\n    role: db\n   checks: []\n", 5, ["YAML syntax error", "indentation"]),
    ("name: x\nlayers:\n  - just a string\n", 3, ["a layer must be a mapping"]),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - 127.0.0.1:5432\n",
        6,
        ["a check must be a mapping", "'- tcp: 127.0.0.1:5432'"],
    ),
    ("name: x\nresolver: 127.0.0.1:abc\nlayers: []\n", 2, ["'resolver'", "port 'abc'"]),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n        warn_ms: fast\n",
        7,
        ["'warn_ms'", "expected a number"],
    ),
    ("name:\nlayers: []\n", 1, ["'name' is empty"]),
]

_HTTP = "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
_TCP = "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n"

# 'without quotes' is the fix only for a number written in quotes.
CASES += [
    (_TCP + "        warn_ms: 5x\n", 7, ["'warn_ms'", "the text '5x'", "write a number, with no letters or units"]),
    (_TCP + "        warn_ms: '5'\n", 7, ["'warn_ms'", "write the number without quotes"]),
]

# Headers HTTP cannot carry are the layout's fault, found by lint, never a CRIT for the target.
CASES += [
    (
        _HTTP + "        headers: {Bad Header: x}\n",
        7,
        ["'headers'", "'Bad Header' is not a valid HTTP header name", "letters, digits and '-'"],
    ),
    (
        _HTTP + '        headers: {X-A: "a\\r\\nX-Injected: 1"}\n',
        7,
        ["'headers'", "header 'X-A'", "cannot be sent in HTTP", "no line breaks"],
    ),
    (_HTTP + '        headers: {X-A: "a\\nb"}\n', 7, ["cannot be sent in HTTP"]),
    (_HTTP + "        headers: {Host: a, host: b}\n", 7, ["header 'host' is given twice", "case-insensitive"]),
    (_HTTP + "        headers: {Content-Length: 5}\n", 7, ["'Content-Length' is set by the probe itself", "remove it"]),
    (_HTTP + '        expect_header: {"X Served": a}\n', 7, ["'expect_header'", "not a valid HTTP header name"]),
    (_HTTP + "        method: HEAD\n        expect_body: ok\n", 8, ["HEAD response has no body", "method: GET"]),
    (_HTTP + "        timeout: 5ms\n", 7, ["timeout 5ms is too short", "10ms or more"]),
    ("name: x\ntimeout: 1ms\nlayers: []\n", 2, ["timeout 1ms is too short", "10ms or more"]),
]

# YAML the loader must refuse with a located problem, never an internal error.
CASES += [
    ('name: !!int "abc"\nlayers: []\n', 1, ["'name'", "'abc' is not a valid !!int", "remove the tag"]),
    ("name: !foo bar\nlayers: []\n", 1, ["'name'", "unknown YAML tag '!foo'", "remove it"]),
    ("name: x\nlayers:\n  - !layer {name: A}\n", 3, ["layers[0]", "unknown YAML tag '!layer'", "remove it"]),
    ("name: !!binary aGVsbG8=\nlayers: []\n", 1, ["'name'", "YAML tag '!!binary'", "no binary values"]),
    ("name: !!python/name:os.system x\nlayers: []\n", 1, ["unknown YAML tag '!!python/name:os.system'"]),
    (
        'name: x\ndescription: "unclosed\nlayers: []\n',
        2,
        ["while scanning a quoted scalar", "found unexpected end of stream", "quote"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      tcp: 127.0.0.1:1\n",
        5,
        ["layer 'A'", "checks must be a list, got a mapping", "start each check with '- '"],
    ),
    (
        "name: x\nlayers:\n  name: A\n  role: db\n",
        2,
        ["layers must be a list, got a mapping", "start each layer with '- '"],
    ),
    ("name: x\nlayers: &a\n  - *a\n", 2, ["refers to itself"]),
    ("name: 1234\nlayers: []\n", 2, ["'layers' must be a non-empty list"]),  # a numeric name is a name
    (
        "name: t\na0: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 8))
        + "layers: [*a7]\n",
        7,
        ["aliases expand to more than 200000 values", "without aliases"],
    ),  # 'billion laughs': 10^8 values
    # a bracket left open in an IPv6 URL: a located problem with the URL that was meant
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: 'http://[::1:80/'\n",
        6,
        ["'http'", "bad URL", "unclosed '[' in the IPv6 address", "write http://[::1]:80/"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - {haproxy: 'http://[::1/stats', backend: b}\n",
        6,
        ["'haproxy'", "unclosed '['", "write http://[::1]/stats"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
        "      - {nginx: /etc/nginx/nginx.conf, upstream: u, status_url: 'http://[::1:8080/st'}\n",
        6,
        ["'status_url'", "unclosed '['", "write http://[::1]:8080/st"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: 'http://::1]:80/'\n",
        6,
        ["'http'", "']' without '['", "in brackets"],
    ),
    (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: 'http://[db]:80/'\n",
        6,
        ["'db' in brackets is not an IPv6 address", "drop the brackets"],
    ),
]


@pytest.mark.parametrize("text,line,needles", CASES, ids=[c[2][0][:40] for c in CASES])
def test_each_problem_names_line_key_and_fix(text, line, needles):
    problems = problems_of(text)
    matching = [p for p in problems if all(n in p for n in needles)]
    assert matching, f"no problem contains {needles}: {problems}"
    assert matching[0].startswith(f"lay.yaml:{line}:"), matching[0]
    assert " — " in matching[0]  # every problem carries a fix


def test_all_problems_are_reported_at_once():
    text = (
        "name: x\ninterval: 2\nlayers:\n  - name: A\n    role: bakend\n    checks:\n"
        "      - tcp: 127.0.0.1\n      - htp: x\n"
    )
    problems = problems_of(text)
    assert len(problems) == 4, problems
    assert [int(p.split(":")[1]) for p in problems] == sorted(int(p.split(":")[1]) for p in problems)


_SUSPECT = "name: x\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n"


@pytest.mark.parametrize(
    "setting,needles",
    [
        ("suspect: [8]", ["'suspect' must be a mapping or off", "suspect: off"]),
        ("suspect: {threshhold: 8}", ["unknown key 'threshhold'", "threshold"]),
        ("suspect: {threshold: 0.5}", ["'threshold'", "below the minimum 1"]),
        ("suspect: {threshold: 40}", ["threshold 40 is above the maximum 15", "suspect: off"]),
        ("suspect: {threshold: '8'}", ["'threshold'", "without quotes"]),
        ("suspect: {min_spread: -1}", ["'min_spread'", "below the minimum 0"]),
        ("suspect: {min_silence: 300}", ["'min_silence'", "ms"]),
        ("suspect: {min_samples: 1}", ["'min_samples'", "below the minimum 2"]),
        ("suspect: {min_samples: 100}", ["'min_samples'", "above the maximum 30"]),
    ],
)
def test_suspect_settings_errors_name_line_key_and_fix(setting, needles):
    problems = problems_of(setting + "\n" + _SUSPECT)
    matching = [p for p in problems if all(n in p for n in needles)]
    assert matching, f"no problem contains {needles}: {problems}"
    assert matching[0].startswith("lay.yaml:1:") and " — " in matching[0], matching[0]


@pytest.mark.parametrize(
    "setting,expected",
    [
        ("", SuspectSettings()),
        ("suspect: off\n", None),
        ("suspect: false\n", None),
        ("suspect: on\n", SuspectSettings()),
        (
            "suspect: {threshold: 10, min_spread: 0.5, min_silence: 1s, min_samples: 10}\n",
            SuspectSettings(threshold=10, min_spread=0.5, min_silence=1.0, min_samples=10),
        ),
        ("suspect: {min_silence: 150ms}\n", SuspectSettings(min_silence=0.15)),
    ],
)
def test_suspect_settings(setting, expected):
    assert parse_layout(setting + _SUSPECT, "x.yaml").suspect == expected


def test_set_environment_variable_is_accepted_and_only_its_name_is_kept():
    text = (
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n      - http: http://127.0.0.1/\n"
        "        auth_env: STATS_AUTH\n"
    )
    layout = parse_layout(text, "x.yaml", ParseContext(environ={"STATS_AUTH": "admin:s3cret"}))
    assert layout.secret_env_names() == {"STATS_AUTH"}
    assert "s3cret" not in repr(layout)


def test_empty_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(LayoutError) as info:
        load_layout(str(empty))
    assert "the file is empty" in str(info.value)
    with pytest.raises(LayoutError) as info:
        load_layout(str(tmp_path / "nope.yaml"))
    assert "file not found" in str(info.value)


@pytest.mark.parametrize(
    "content,needles",
    [
        (None, ["is a directory", "pass a layout file"]),
        (b"\x89PNG\r\n\x1a\n\xd0\xff\x00", ["not a text file", "pass a layout file"]),
        (b"name: x\nlayers: []\x00\n", ["lay.yaml:2:", "not a text file", "U+0000", "pass a layout file"]),
    ],
    ids=["directory", "binary", "nul"],
)
def test_unreadable_files_say_why_and_what_to_pass(tmp_path, content, needles):
    path = tmp_path / "lay.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(LayoutError) as info:
        load_layout(str(path))
    text = str(info.value.problems[0])
    assert all(n in text for n in needles), text
    assert " — " in text
    assert f"{path}:0" not in text  # a problem with the whole file has no line to point at


def test_relative_paths_are_relative_to_the_layout_file(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "l.yaml"
    path.write_text(
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
        "      - http: https://127.0.0.1/\n        ca: ca.pem\n"
    )
    layout = load_layout(str(path))
    assert layout.layers[0].checks[0].options.ca == str(tmp_path / "ca.pem")


def test_yaml_anchors_and_merge_keys_work():
    text = (
        "name: x\nlayers:\n  - name: A\n    role: backend\n    checks:\n"
        "      - &h {http: 'http://127.0.0.1:1/', expect_status: 204}\n"
        "      - {<<: *h, http: 'http://127.0.0.1:2/'}\n"
    )
    layout = parse_layout(text)
    assert [c.options.expect_status for c in layout.layers[0].checks] == [(204,), (204,)]


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "seconds,text", [(0.5, "500ms"), (2.0, "2s"), (1.99999, "2s"), (0.2504, "250ms"), (120.0, "2m"), (90.0, "90s")]
)
def test_durations_print_without_float_noise(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text,default,expected",
    [
        ("127.0.0.1:53", None, Address("127.0.0.1", 53)),
        ("127.0.0.1", 53, Address("127.0.0.1", 53)),
        ("[::1]:5353", None, Address("::1", 5353)),
        ("::1", 53, Address("::1", 53)),
        ("db.internal:5432", None, Address("db.internal", 5432)),
    ],
)
def test_addresses(text, default, expected):
    assert parse_address(text, default) == expected


@pytest.mark.parametrize("text", ["", "::1:53", "[::1", "http://x:1", "bad host:1", "x:0"])
def test_bad_addresses(text):
    with pytest.raises(Invalid):
        parse_address(text)


def test_no_option_shadows_a_check_type():
    for spec in all_specs():
        for info in spec.option_infos():
            assert info.key not in CHECK_TYPES, f"{spec.key}.{info.key} collides with a check type"
            assert info.key not in ("name", "timeout", "warn_ms"), f"{spec.key}.{info.key} collides with a common key"


def test_the_registry_names_every_secret_key_the_specs_declare():
    """The loader masks secrets by the key names the registry lists (so that it need not
    import every probe module): a check type that adds a secret key must be listed there."""
    from stackscope.kinds import SecretFile
    from stackscope.probes import SECRET_ENV_KEYS, SECRET_FILE_KEYS

    infos = [info for spec in all_specs() for info in spec.option_infos()]
    assert {info.key for info in infos if info.kind.names_a_secret} == SECRET_ENV_KEYS
    assert {info.key for info in infos if isinstance(info.kind, SecretFile)} == SECRET_FILE_KEYS


def test_numeric_names_are_accepted_by_the_loader_and_the_schema_alike():
    import jsonschema
    import yaml

    from stackscope.schema import json_schema

    text = (
        "name: 2024\ndescription: 7\nlayers:\n  - name: 42\n    role: db\n    checks:\n"
        "      - tcp: 127.0.0.1:1\n        name: 1\n"
    )
    layout = parse_layout(text, "lay.yaml")
    assert (layout.name, layout.layers[0].name, layout.layers[0].checks[0].name) == ("2024", "42", "1")
    jsonschema.validate(yaml.safe_load(text), json_schema())
    with pytest.raises(jsonschema.ValidationError):  # what the loader refuses, the schema refuses too
        jsonschema.validate(yaml.safe_load(text.replace("name: 42", "name: true")), json_schema())


def _plain_layout(checks: int) -> str:
    return "name: big\nlayers:\n  - name: L\n    role: backend\n    checks:\n" + "".join(
        f"      - {{tcp: '127.0.0.1:{1000 + i % 60000}', name: c{i}}}\n" for i in range(checks)
    )


def test_alias_cap_counts_only_what_aliases_add():
    """A large file written out (no aliases) is never a 'billion laughs' file: only the
    values aliases add beyond the nodes in the file count against MAX_VALUES."""
    import yaml

    from stackscope.layout import _oversized

    plain = yaml.compose("[" + ",".join(["x"] * 300) + "]")
    assert _oversized(plain, limit=100) is None  # 301 values written out, no alias
    aliased = yaml.compose("a: &a [" + ",".join(["x"] * 30) + "]\nb: [" + ",".join(["*a"] * 5) + "]\n")
    # the aliases add 5 x 31 values; 30 + 1 + ... written once
    assert _oversized(aliased, limit=200) is None
    node, why = _oversized(aliased, limit=100)
    assert why == "too large"


def test_a_large_layout_without_aliases_is_accepted():
    layout = parse_layout(_plain_layout(3000), "big.yaml")  # 9001+ values, plenty for a cap of a few thousand
    assert len(layout.layers[0].checks) == 3000


def test_too_many_checks_is_its_own_problem(monkeypatch):
    import stackscope.layout as layout_module

    monkeypatch.setattr(layout_module, "MAX_CHECKS", 50)
    problems = problems_of(_plain_layout(51))
    assert problems == [
        "lay.yaml:2: a layout of 51 checks is over the limit of 50 — "
        "split it into several layouts (one per stack or region)"
    ], problems
    assert "aliases" not in problems[0]


HEADERS_CHECK = "name: x\nlayers:\n  - name: A\n    role: backend\n    checks:\n      - http: http://127.0.0.1/\n"


def test_headers_env_names_secret_variables_and_refuses_a_pasted_value_without_quoting_it():
    layout = parse_layout(
        HEADERS_CHECK + "        headers_env: {X-Api-Key: API_KEY, Authorization: API_BEARER}\n",
        "x.yaml",
        ParseContext(environ={"API_KEY": "k3y-value-1", "API_BEARER": "Bearer t0ken-value"}),
    )
    assert layout.secret_env_names() == {"API_KEY", "API_BEARER"}
    assert layout.warnings == ()
    problems = problems_of(HEADERS_CHECK + "        headers_env: {X-Api-Key: 'pasted s3cret-key'}\n")
    assert len(problems) == 1 and "X-Api-Key" in problems[0] and "s3cret" not in problems[0]
    both = problems_of(
        HEADERS_CHECK + "        headers: {X-Api-Key: abc}\n        headers_env: {x-api-key: API_KEY}\n",
        environ={"API_KEY": "k"},
    )
    assert any("in both headers and headers_env" in p for p in both), both


def test_a_literal_credential_is_a_warning_with_its_line_and_masked_in_problems():
    text = HEADERS_CHECK + "        headers:\n          Accept: text/plain\n          X-Api-Key: 'k3y-literal-42'\n"
    layout = parse_layout(text, "x.yaml")
    assert len(layout.warnings) == 1
    assert layout.warnings[0].startswith("x.yaml:9: ") and "headers_env: {X-Api-Key: VARIABLE}" in layout.warnings[0]
    assert "k3y-literal-42" in layout.literal_secrets() and "k3y-literal-42" not in layout.warnings[0]
    # a header value the loader refuses is quoted in the problem: masked when it is a credential
    bad = HEADERS_CHECK + '        headers: {Authorization: "Bearer t0ken-s3cret\\x01"}\n'
    problems = problems_of(bad)
    assert problems and not any("t0ken-s3cret" in p for p in problems), problems


def test_the_loaders_shortcut_resolves_every_scalar_as_the_full_resolver_does():
    """layout._Loader answers most scalars' implicit tags itself (text that starts no
    implicit pattern) and keeps the tag of each plain text it resolved: on scalars of every
    kind, seen once or again, it finds the tags yaml's own resolver finds."""
    import yaml

    from stackscope.layout import _Loader

    scalars = [
        "yes", "No", "on", "OFF", "true", "False", "~", "null", "", "0", "-1", "+7", "0x1F", "0o17", "1_000",
        "1.5", ".5", "-.inf", ".NaN", "1e3", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "<<", "=", "c12",
        "http://x/", "auth backend", "'quoted true'", '"42"', "!!str 5", "[1, two]", "{a: 1}",
    ]  # fmt: skip
    # twice, quoted between: the second time a plain value's tag is the one the loader kept
    text = "\n".join(f"k{index}: {value}" for index, value in enumerate(scalars)) + "\n"
    text += "".join(f"q{index}: '{value}'\n" for index, value in enumerate(["yes", "0", "1.5", "null"]))
    text += "".join(f"m{index}: {value}\n" for index, value in enumerate(scalars))

    def tags(loader) -> list[str]:
        root = yaml.compose(text, Loader=loader)
        out = []
        stack = [root]
        while stack:
            node = stack.pop()
            out.append(node.tag)
            if isinstance(node, yaml.MappingNode):
                stack.extend(item for pair in node.value for item in pair)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return out

    assert tags(_Loader) == tags(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_a_star_in_a_value_is_no_alias_and_a_real_alias_is_still_bounded():
    """The alias bound is skipped only for a file without the '*' alias indicator."""
    layout = parse_layout(
        "name: x\nlayers:\n  - name: LB\n    role: lb\n    checks:\n      - http: 'http://127.0.0.1:8080/*'\n"
    )
    assert layout.layers[0].checks[0].target == "http://127.0.0.1:8080/*"
    with pytest.raises(LayoutError, match="refers to itself"):
        parse_layout("name: x\nlayers: &a\n  - *a\n")
