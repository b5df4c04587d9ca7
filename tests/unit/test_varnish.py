"""VCL parsing, the Varnish CLI framing and allow-list, and the state mapping (no servers)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from stackscope.lb import ConfigError
from stackscope.lb.pool import BACKUP, DOWN_BY_CHECK, IN, MAINT, WEIGHT_0, Declared, judge_pool
from stackscope.lb.varnish_cli import (
    CliError,
    Refused,
    active_vcl,
    allowed,
    auth_command,
    challenge_of,
    parse_backend_list,
    parse_status,
)
from stackscope.lb.varnish_vcl import Health, load, load_text, pool_of, split_show, tokenize
from stackscope.model import Status
from stackscope.redact import Redactor
from tests.probe_helpers import one_check

VCL = """vcl 4.1;
import directors;
import std;

/* a block comment with a brace { and backend fake { .host = "6.6.6.6"; } */
# a hash comment }
// a slash comment }
probe hc {
    .request = "GET /ready HTTP/1.1"
        "Host: auth"
        "Connection: close";
    .interval = 1s;
}
probe named { .url = "/health"; }
backend auth1 { .host = "127.0.0.1"; .port = "9001"; .probe = named; }
backend auth2 { .host = "127.0.0.1"; .port = "9002"; .probe = { .url = "/inline"; } }
backend auth3 { .host = "localhost"; .port = "http"; .probe = hc; }
backend spare { .host = "127.0.0.1:9009"; }
backend sock { .path = "/run/app.sock"; }
backend gone none;

sub vcl_init {
    new rr = directors.round_robin();
    rr.add_backend(auth1);
    rr.add_backend(auth2);
    rr.add_backend(auth3);
    new fb = directors.fallback();
    fb.add_backend(rr.backend());
    fb.add_backend(spare);
    new weighted = directors.random();
    weighted.add_backend(auth1, 10.0);
    weighted.add_backend(spare, 0);
    new trimmed = directors.hash();
    trimmed.add_backend(auth1, 1);
    trimmed.add_backend(auth2, 1);
    trimmed.remove_backend(auth2);
    new lonely = directors.shard();
    lonely.add_backend(sock);
    lonely.reconfigure();
}

sub vcl_recv {
    if (req.url ~ "^/static") {
        set req.backend_hint = spare;
        return (pass);
    }
    set req.http.x = "}{;";
    set req.backend_hint = fb.backend();
}

sub vcl_backend_fetch { if (bereq.url == "/gone") { set bereq.backend = gone; } }
"""


@pytest.fixture
def vcl_file(tmp_path):
    path = tmp_path / "default.vcl"
    path.write_text(VCL)
    return path


def test_backends_probes_and_directors_are_read_past_comments_and_strings(vcl_file):
    vcl = load(str(vcl_file))
    assert list(vcl.backends) == ["auth1", "auth2", "auth3", "spare", "sock", "gone"]
    b = vcl.backends
    assert (b["auth1"].host, b["auth1"].port, b["auth1"].probe, b["auth1"].line) == ("127.0.0.1", 9001, "/health", 15)
    assert b["auth2"].probe == "/inline"
    assert (b["auth3"].host, b["auth3"].port, b["auth3"].probe) == ("localhost", 80, "/ready")
    assert (b["spare"].host, b["spare"].port, b["spare"].has_probe) == ("127.0.0.1", 9009, False)
    assert b["sock"].path == "/run/app.sock" and b["gone"].none
    assert {n: d.type for n, d in vcl.directors.items()} == {
        "rr": "round_robin",
        "fb": "fallback",
        "weighted": "random",
        "trimmed": "hash",
        "lonely": "shard",
    }
    assert [m.ref for m in vcl.directors["trimmed"].members] == ["auth1"]  # remove_backend applied
    assert [(a.sub, a.text, a.line) for a in vcl.assignments] == [
        ("vcl_recv", "spare", 44),
        ("vcl_recv", "fb.backend()", 48),
        ("vcl_backend_fetch", "gone", 51),
    ]


def test_member_services_from_the_config(vcl_file):
    vcl = load(str(vcl_file))
    pool = pool_of(vcl, "fb")
    rows = [(s.name, s.address, s.configured_as, s.service, s.line) for s in pool.servers]
    assert rows == [
        ("auth1", "127.0.0.1:9001", None, IN, 24),
        ("auth2", "127.0.0.1:9002", None, IN, 25),
        ("auth3", None, "localhost:80", IN, 26),
        ("spare", "127.0.0.1:9009", None, BACKUP, 29),  # a fallback's second member is a standby
    ]
    assert pool.from_config and pool.extra["used_by"] == [
        "vcl_recv set req.backend_hint = fb.backend() [default.vcl:48]"
    ]
    weighted = pool_of(vcl, "weighted")
    assert [s.service for s in weighted.servers] == [IN, WEIGHT_0]
    lonely = pool_of(vcl, "lonely")
    assert lonely.servers[0].address is None and "unix socket" in lonely.servers[0].address_note


def test_nested_director_is_used_through_its_parent(vcl_file):
    vcl = load(str(vcl_file))
    assert pool_of(vcl, "rr").extra["used_by"] == ["vcl_recv set req.backend_hint = fb.backend() [default.vcl:48]"]
    unused = pool_of(vcl, "weighted")
    assert unused.extra["used_by"] == []
    assert unused.extra["routes"] == [
        "vcl_recv → spare [default.vcl:44]",
        "vcl_recv → fb.backend() [default.vcl:48]",
        "vcl_backend_fetch → gone [default.vcl:51]",
    ]
    judged = judge_pool(unused, [Declared("127.0.0.1:9001", "auth-1", "127.0.0.1:9001")])
    assert judged.status is Status.CRIT and judged.unrouted
    assert judged.detail.startswith("nothing routes to pool weighted in default.vcl")


def test_without_any_assignment_the_first_backend_takes_everything(tmp_path):
    path = tmp_path / "x.vcl"
    path.write_text(
        'vcl 4.1;\nimport directors;\nbackend a { .host = "127.0.0.1"; .port = "1"; }\n'
        "sub vcl_init { new d = directors.round_robin(); d.add_backend(a); }\n"
    )
    pool = pool_of(load(str(path)), "d")
    assert pool.extra["used_by"] == []
    assert pool.extra["routes"] == ["the default backend a (no subroutine sets req.backend_hint)"]


def test_includes_are_followed_with_their_own_file_and_line(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "backends.vcl").write_text(
        '\n\nbackend b1 { .host = "127.0.0.1"; .port = "81"; }\ninclude "./more.vcl";\n'
    )
    (tmp_path / "sub" / "more.vcl").write_text(
        'backend b2 { .host = "127.0.0.1"; .port = "82"; }\n'
        "sub vcl_init {\n  new d = directors.round_robin();\n  d.add_backend(b1);\n  d.add_backend(b2);\n}\n"
    )
    main = tmp_path / "main.vcl"
    main.write_text(
        'vcl 4.1;\nimport directors;\ninclude "sub/backends.vcl";\nsub vcl_recv { set req.backend_hint = d.backend(); }\n'
    )
    vcl = load(str(main))
    assert vcl.files == [str(main), str(tmp_path / "sub" / "backends.vcl"), str(tmp_path / "sub" / "more.vcl")]
    assert (vcl.backends["b1"].file, vcl.backends["b1"].line) == (str(tmp_path / "sub" / "backends.vcl"), 3)
    pool = pool_of(vcl, "d")
    assert [(s.file, s.line) for s in pool.servers] == [(str(tmp_path / "sub" / "more.vcl"), 4)] * 1 + [
        (str(tmp_path / "sub" / "more.vcl"), 5)
    ]


def test_include_loop_and_missing_file_are_located_errors(tmp_path):
    (tmp_path / "a.vcl").write_text('vcl 4.1;\ninclude "./a.vcl";\n')
    with pytest.raises(ConfigError, match="nested deeper than 16"):
        load(str(tmp_path / "a.vcl"))
    (tmp_path / "b.vcl").write_text('vcl 4.1;\n\ninclude "nope.vcl";\n')
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "b.vcl"))
    assert info.value.line == 3 and "no such file" in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ('vcl 4.1;\nbackend a { .host = "127.0.0.1; }\n', "unterminated string"),
        ("vcl 4.1;\n/* never closed\n", r"unterminated /\* comment"),
        ("vcl 4.1;\nbackend a { .host = 1;\n", "never closed"),
        ("vcl 4.1;\nfrobnicate;\n", "unexpected 'frobnicate'"),
        ('vcl 4.1;\nbackend a { .host = "x"; }\nbackend a { .host = "y"; }\n', "defined twice"),
    ],
)
def test_broken_vcl_is_a_located_error(tmp_path, text, words):
    path = tmp_path / "bad.vcl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load(str(path))


def test_vcl_show_verbose_is_split_into_files_and_the_builtin_dropped():
    main = 'vcl 4.1;\ninclude "./inc/b.vcl";\n'
    inc = 'backend b { .host = "127.0.0.1"; .port = "80"; }\n'
    builtin = "sub vcl_recv { }\n"
    text = (
        f"// VCL.SHOW 0 {len(main)} /etc/varnish/default.vcl\n{main}"
        f"// VCL.SHOW 1 {len(inc)} /etc/varnish/inc/b.vcl\n{inc}"
        f"// VCL.SHOW 2 {len(builtin)} <builtin>\n{builtin}"
    )
    files = split_show(text)
    assert list(files) == ["/etc/varnish/default.vcl", "/etc/varnish/inc/b.vcl"]
    vcl = load_text(files)
    assert vcl.backends["b"].file == "/etc/varnish/inc/b.vcl"


def test_tokenizer_keeps_long_strings_and_inline_c_whole():
    tokens = tokenize('set x = {"a } ; {"} + """b }""";\nC{ int x = 1; } }C\nsub', "f")
    assert [t.text for t in tokens if t.kind == "string"] == ["a } ; {", "b }"]
    assert tokens[-1].text == "sub" and tokens[-1].line == 3


# ----------------------------------------------------------------------------- live state


def _health(admin: str, good: int, window: int, word: str) -> Health:
    return Health(admin, good, window, word)


@pytest.mark.parametrize(
    "admin, word, state, service, serving",
    [
        ("probe", "healthy", "healthy", IN, True),
        ("auto", "healthy", "healthy", IN, True),
        ("probe", "sick", "DOWN (sick)", DOWN_BY_CHECK, False),
        ("sick", "healthy", "MAINT (set sick)", MAINT, False),
        ("sick", "sick", "MAINT (set sick)", MAINT, False),
        ("healthy", "sick", "healthy (forced)", IN, True),
    ],
)
def test_admin_state_and_probe_map_to_service_words(vcl_file, admin, word, state, service, serving):
    vcl = load(str(vcl_file))
    pool = pool_of(vcl, "rr", health={"auth1": _health(admin, 3 if word == "healthy" else 0, 3, word)})
    first = pool.servers[0]
    assert (first.state, first.service, first.serving, first.receives_traffic) == (
        state,
        service,
        serving,
        service == IN,
    )
    assert first.check.startswith("probe /health ")
    assert not pool.from_config


def test_fallback_standby_that_is_sick_is_down_not_backup(vcl_file):
    vcl = load(str(vcl_file))
    health = {"spare": _health("healthy", 0, 0, "healthy")}
    assert pool_of(vcl, "fb", health=health).servers[-1].service == BACKUP
    health = {"spare": _health("sick", 0, 0, "healthy")}
    assert pool_of(vcl, "fb", health=health).servers[-1].service == MAINT


# ----------------------------------------------------------------------------- the CLI protocol


def test_status_line_is_exactly_thirteen_bytes_with_a_capped_length():
    assert parse_status(b"200 277     \n") == (200, 277)
    assert parse_status(b"107 59      \n") == (107, 59)
    for bad in (b"200 abcdefgh\n", b"200 12345678 \n"[:13] + b"x", b"HTTP/1.1 400 ", b"20 5        \n"):
        with pytest.raises(CliError, match="not a Varnish CLI status line"):
            parse_status(bad)
    with pytest.raises(CliError, match="announced a reply of 99999999 bytes"):
        parse_status(b"200 99999999\n")


def test_auth_answer_follows_varnish_cli_7():
    challenge = b"iynhyjzsxdegbyqcoacemfeoapzvqqxf"
    secret = b"s3cr3t\n"
    expected = hashlib.sha256(challenge + b"\n" + secret + challenge + b"\n").hexdigest()
    assert auth_command(challenge, secret) == f"auth {expected}\n".encode()
    assert challenge_of(challenge + b"\n\nAuthentication required.\n") == challenge
    with pytest.raises(CliError):
        challenge_of(b"\n\n")


@pytest.mark.parametrize(
    "command",
    [
        "backend.set_health auth1 sick",
        "vcl.use boot",
        "vcl.load x /tmp/x.vcl",
        "vcl.inline x vcl",
        "vcl.discard boot",
        "param.set x y",
        "stop",
        "start",
        "ban req.url ~ .",
        "quit",
        "vcl.show boot\nstop",
        "vcl.show -v boot; stop",
        "backend.list",
        "ping ",
        "",
    ],
)
def test_anything_outside_the_allow_list_is_refused(command):
    assert not allowed(command)


def test_the_allow_list_itself():
    for command in (
        "backend.list -j",
        "backend.list -p",
        "vcl.list",
        "ping",
        "banner",
        "vcl.show -v boot",
        "vcl.show v2",
    ):
        assert allowed(command)


def test_the_client_refuses_before_writing_anything():
    from stackscope.probes.varnish import VarnishCli

    written: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            written.append(data)

        async def drain(self) -> None:
            pass

    class Talk:
        reader = None
        writer = Writer()
        awaiting = ""

    cli = VarnishCli(Talk(), "peer")  # type: ignore[arg-type]
    with pytest.raises(Refused):
        asyncio.run(cli.command("backend.set_health auth1 sick"))
    assert written == [] and cli.sent == []


def test_active_vcl_and_labels():
    assert active_vcl("available  auto  warm  0  old\nactive   auto    warm         0    boot\n") == "boot"
    assert active_vcl("active   label   warm   0   lbl   ->   v2\n") == "v2"
    assert active_vcl("active auto warm 0 bad;name\n") is None
    assert active_vcl("nothing here") is None


def test_backend_list_json_keeps_the_active_vcls_backends():
    doc = [
        3,
        ["backend.list", "-j"],
        1.0,
        {
            "boot.auth1": {
                "type": "backend",
                "admin_health": "probe",
                "probe_message": [0, 3, "sick"],
                "last_change": 2.5,
            },
            "boot.d": {"type": "round-robin", "admin_health": "probe", "probe_message": [1, 2, "healthy"]},
            "old.auth1": {"type": "backend", "admin_health": "sick", "probe_message": [3, 3, "healthy"]},
        },
    ]
    states = parse_backend_list(json.dumps(doc), "boot")
    assert set(states) == {"auth1", "d"}
    assert states["auth1"].health == Health("probe", 0, 3, "sick", 2.5)
    with pytest.raises(CliError):
        parse_backend_list("not json", "boot")
    with pytest.raises(CliError):
        parse_backend_list("{}", "boot")


# ----------------------------------------------------------------------------- layout and secrets


def test_director_name_is_validated_with_a_located_error():
    from stackscope.layout import LayoutError

    with pytest.raises(LayoutError) as info:
        one_check({"varnish": "127.0.0.1:6082", "director": "auth servers;stop"})
    assert "director" in str(info.value) and "is not a VCL director name" in str(info.value)


def test_secret_file_must_be_a_small_regular_file(tmp_path):
    from stackscope.probes.common import ProbeFailure
    from stackscope.probes.varnish import SECRET_CAP, read_secret_file

    good = tmp_path / "secret"
    good.write_bytes(b"abc-123\n")
    assert read_secret_file(str(good)) == b"abc-123\n"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (SECRET_CAP + 1))
    for path, words in ((big, "larger than"), (tmp_path, "not a regular file"), (tmp_path / "none", "no secret file")):
        with pytest.raises(ProbeFailure, match=words) as info:
            read_secret_file(str(path))
        assert info.value.status is Status.UNKNOWN


def test_redactor_add_masks_a_secret_read_at_probe_time():
    redactor = Redactor(["env-secret-1"])
    redactor.add("file-secret-2\n")
    redactor.add("file-secret-2")
    assert redactor.text("a env-secret-1 b file-secret-2 c") == "a «redacted» b «redacted» c"


def test_secret_file_and_secret_env_together_are_a_layout_error():
    from stackscope.layout import LayoutError

    with pytest.raises(LayoutError, match="secret_file and secret_env are both set"):
        one_check(
            {"varnish": "127.0.0.1:6082", "director": "d", "secret_file": "/etc/varnish/secret", "secret_env": "VS"}
        )


def test_gate_reads_a_saved_vcl_show_reply(tmp_path):
    from stackscope.lb.gate import detect

    main = (
        'vcl 4.1;\nimport directors;\nbackend a { .host = "127.0.0.1"; .port = "81"; }\n'
        "sub vcl_init { new d = directors.random(); d.add_backend(a, 1); }\n"
        "sub vcl_recv { set req.backend_hint = d.backend(); }\n"
    )
    saved = tmp_path / "shown.txt"
    saved.write_text(f"// VCL.SHOW 0 {len(main)} /etc/varnish/default.vcl\n{main}// VCL.SHOW 1 3 <builtin>\nx;\n")
    assert detect(str(saved)) == "varnish"
    pool = pool_of(load(str(saved)), "d")
    assert [(s.address, s.file, s.line) for s in pool.servers] == [("127.0.0.1:81", "/etc/varnish/default.vcl", 4)]


def test_a_member_the_running_varnish_does_not_list_is_unknown_not_up(vcl_file):
    vcl = load(str(vcl_file))
    pool = pool_of(vcl, "rr", health={"auth1": _health("probe", 3, 3, "healthy")})
    assert [(s.name, s.service, s.serving) for s in pool.servers] == [
        ("auth1", IN, True),
        ("auth2", "unknown", False),
        ("auth3", "unknown", False),
    ]


def test_gate_names_a_director_the_vcl_does_not_make(tmp_path):
    from stackscope.lb.gate import GateError, run_gate
    from stackscope.lb.varnish_vcl import gate_pool

    path = tmp_path / "default.vcl"
    path.write_text(VCL)
    with pytest.raises(ConfigError, match="makes no director 'nope' in vcl_init \\(directors: rr, fb,"):
        gate_pool(load(str(path)), "nope", None, "")
    layout = one_check({"varnish": "127.0.0.1:6082", "director": "nope"})
    with pytest.raises(GateError, match="default.vcl: makes no director 'nope'"):
        run_gate(layout, str(path))


NAMED_ARGS_VCL = """vcl 4.1;
import directors;
backend a { .host = "127.0.0.1"; .port = "1"; }
backend b { .host = "127.0.0.1"; .port = "2"; }
sub vcl_init {
  new s = directors.shard();
  s.add_backend(backend=a, ident="one", rampup=5s);
  s.add_backend(b, "two");
  new r = directors.hash();
  r.add_backend(a, weight=0);
  r.add_backend(b, 2);
}
sub vcl_recv { set req.backend_hint = s.backend(); set req.backend_hint = r.backend(req.url); }
"""


def test_add_backend_with_named_arguments(tmp_path):
    path = tmp_path / "x.vcl"
    path.write_text(NAMED_ARGS_VCL)
    vcl = load(str(path))
    assert [(m.ref, m.weight) for m in vcl.directors["s"].members] == [("a", None), ("b", None)]
    assert [(m.ref, m.weight) for m in vcl.directors["r"].members] == [("a", 0.0), ("b", 2.0)]
    assert [s.service for s in pool_of(vcl, "r").servers] == [WEIGHT_0, IN]
    assert [a.refs for a in vcl.assignments] == [("s",), ("r",)]
