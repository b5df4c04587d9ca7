"""Layout text and layout errors: no escape sequence, no secret, bounded values, clear messages.

Issue 11 items 6, 7, 9 and 10 (layout part): a secret written into a check's name (or
quoted by an error message, or given to password_env in place of the variable's name)
is masked in every output; so is a partial echo of six characters or more. Escape
sequences and NUL in layout text are neutralised where the loader reads them. Durations
are finite and at most a day; a round longer than the interval says so.
"""

from __future__ import annotations

import json
import re

import pytest

from stackscope.diagnosis import assess
from stackscope.engine import Engine
from stackscope.kinds import ParseContext
from stackscope.layout import LayoutError, load_layout, parse_layout
from stackscope.model import Result, Snapshot, Status
from stackscope.redact import MASK, MIN_PARTIAL, Redactor
from stackscope.render import render
from stackscope.tui.app import StackscopeApp
from tests.conftest import run_cli, write_layout
from tests.servers.hostile_dbs import redis_script
from tests.tui.stack import screen_showing, until

SECRET = "S3cr3t-Value"
ENV = {"PW": SECRET}
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e\x00\x7f"  # as a double-quoted YAML string writes it
HOSTILE_YAML = "\\e]0;pwned\\a\\e[2J\\x9b31m\\u202e\\0\\x7f"


def problems_of(text: str, environ: dict | None = None) -> list[str]:
    with pytest.raises(LayoutError) as caught:
        parse_layout(text, "lay.yaml", ParseContext(environ=environ or {}, require_env=False))
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------------------- item 4: Result


def test_a_result_is_terminal_safe_whatever_a_probe_puts_in_it():
    """The one place server text becomes output text: a probe cannot bypass it."""
    result = Result(
        "L/c",
        Status.CRIT,
        "said " + HOSTILE,
        key_fact=HOSTILE,
        facts={HOSTILE: [HOSTILE, {"k": (HOSTILE, 3)}], "n": 1.5, "none": None},
    )
    for text in [result.detail, result.key_fact, *json.dumps(result.facts, ensure_ascii=False)]:
        assert not UNSAFE.search(text), repr(text)
    assert "pwned" in result.detail and result.facts["n"] == 1.5 and result.facts["none"] is None
    assert isinstance(next(iter(result.facts.values()))[1]["k"], tuple)


# --------------------------------------------------------------------------- item 7: layout text


LAYOUT_WITH_ESCAPES = f"""\
name: "esc{HOSTILE_YAML}"
layers:
  - name: "Layer{HOSTILE_YAML}"
    role: other
    checks:
      - {{tcp: "127.0.0.1:1", name: "check{HOSTILE_YAML}"}}
"""


def test_layout_text_with_escapes_or_nul_is_neutralised_by_the_loader():
    layout = parse_layout(LAYOUT_WITH_ESCAPES, "lay.yaml")
    for text in (layout.name, layout.layers[0].name, layout.layers[0].checks[0].name):
        assert "pwned" in text or text.startswith(("Layer", "esc", "check"))
        assert not UNSAFE.search(text), repr(text)


def test_line_and_paragraph_separators_and_nel_in_layout_text_are_replaced():
    """YAML 1.1 (Prometheus's and Alertmanager's YAML, PyYAML) reads U+2028, U+2029 and NEL
    as line breaks: a name holding one, written into a generated config, could start a line
    of its own there (security round 3)."""
    layout = parse_layout(
        'name: "shop\\u2028groups: []"\ndescription: "d\\u2029e"\nlayers:\n'
        '  - name: "DB\\x85global: {}"\n    role: db\n    checks:\n'
        '      - {tcp: "127.0.0.1:1", name: "c\\u2029templates: [x]"}\n',
        "lay.yaml",
    )
    texts = (layout.name, layout.description, layout.layers[0].name, layout.layers[0].checks[0].name)
    assert texts == ("shop·groups: []", "d·e", "DB·global: {}", "c·templates: [x]")


def test_layer_names_equal_once_made_safe_are_a_name_used_twice():
    """`A\\u2028` and `A\\u2029` are both `A·` in the layout: two layers of one name."""
    text = (
        "name: x\nlayers:\n"
        '  - {name: "A\\u2028", role: db, checks: [{tcp: "127.0.0.1:1"}]}\n'
        '  - {name: "A\\u2029", role: backend, checks: [{tcp: "127.0.0.1:2"}]}\n'
    )
    assert problems_of(text) == [
        "lay.yaml:4: layers[1]: layer name 'A·' is used twice — rename one (the other is on line 3)"
    ]


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "nagios"])
def test_layout_escapes_reach_no_check_output(tmp_path, fmt):
    path = write_layout(tmp_path, LAYOUT_WITH_ESCAPES)
    done = run_cli("check", str(path), "--format", fmt, timeout=30)
    out = done.stdout.replace("\n", " ")
    assert "pwned" in done.stdout and not UNSAFE.search(out), repr(done.stdout)
    if fmt == "json":
        assert "\\u001b" not in done.stdout and "\\u0000" not in done.stdout


def test_lint_and_layout_errors_print_no_escape_sequence(tmp_path):
    """lint quoted a bad value (here a timeout) raw, escape sequence and NUL included."""
    text = LAYOUT_WITH_ESCAPES.replace('name: "check', f'timeout: "2s{HOSTILE_YAML}", name: "check')
    done = run_cli("lint", str(write_layout(tmp_path, text)), timeout=30)
    assert done.returncode == 3
    assert "is not a duration" in done.stderr and "pwned" in done.stderr, done.stderr
    assert not UNSAFE.search(done.stderr.replace("\n", " ")), repr(done.stderr)


# --------------------------------------------------------------------------- item 6: secrets


SECRET_LAYOUT = f"""\
name: secret-{SECRET}
description: uses {SECRET}
layers:
  - name: DB {SECRET}
    role: db
    checks:
      - {{tcp: "127.0.0.1:1", name: "tcp {SECRET}"}}
      - {{postgres: "127.0.0.1:1", name: "pg {SECRET}", user: u, password_env: PW, timeout: 2s}}
"""


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "nagios"])
def test_a_secret_in_layout_text_reaches_no_check_output(tmp_path, fmt):
    path = write_layout(tmp_path, SECRET_LAYOUT)
    done = run_cli("check", str(path), "--format", fmt, env=ENV, timeout=30)
    assert done.returncode == 2, done
    assert SECRET not in done.stdout + done.stderr
    assert MASK in done.stdout  # the names were there, masked


async def test_a_secret_in_layout_text_is_not_on_the_dashboard(tmp_path):
    layout = load_layout(str(write_layout(tmp_path, SECRET_LAYOUT)), environ=ENV)
    app = StackscopeApp(layout, engine=Engine(layout, environ=ENV), timeline_dir=str(tmp_path))

    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.diagnosis is not None, "a finished round", timeout=30)
        # a verdict can come before the panels are painted: wait for the layer to show
        svg = await screen_showing(pilot, app, "DB «redacted»", "the masked layer name on screen", timeout=30)
    assert SECRET not in svg and SECRET[:MIN_PARTIAL] not in svg
    assert "DB «redacted»" in svg


@pytest.mark.parametrize(
    "line",
    [
        "timeout: S3cr3t-Value",  # "'timeout': 'S3cr3t-Value' is not a duration"
        "warn_ms: S3cr3t-Value",
        "password_env: S3cr3t-Value",  # the secret given in place of the variable's name
        "password_env: PW, user: u",  # with the target below: "port 'x' in 'S3cr3t-Value:x'"
    ],
)
def test_layout_errors_never_quote_a_secret(tmp_path, line):
    target = "S3cr3t-Value:x" if "user: u" in line else "127.0.0.1:1"
    text = f"""\
name: t
layers:
  - name: DB
    role: db
    checks:
      - {{postgres: "{target}", password_env: PW, {line}}}
""".replace("password_env: PW, password_env", "password_env")
    path = write_layout(tmp_path, text)
    for command in ("lint", "check"):
        done = run_cli(command, str(path), env=ENV, timeout=30)
        assert done.returncode == 3, done
        assert "lay" in done.stderr or "layout.yaml" in done.stderr
        assert SECRET not in done.stderr + done.stdout, done.stderr
        assert SECRET[:MIN_PARTIAL] not in done.stderr, done.stderr


def test_partial_echoes_of_six_characters_or_more_are_masked():
    redactor = Redactor([SECRET])
    assert redactor.text("id=S3cr3t- and t-Value") == f"id={MASK} and {MASK}"
    assert redactor.text(f"whole {SECRET}!") == f"whole {MASK}!"
    # five characters of it are not masked (too common to mask on sight): documented minimum
    assert redactor.text("S3cr3 Value") == "S3cr3 Value"
    # masking twice changes nothing
    once = redactor.text("id=S3cr3t- and t-Value")
    assert redactor.text(once) == once


def test_a_server_echoing_part_of_the_password_shows_none_of_it(pyservers, tmp_path):
    port = pyservers.tcp(redis_script(b"-ERR bad password, got id=S3cr3t- and t-Value\r\n"))
    text = f'name: t\nlayers:\n  - name: C\n    role: cache\n    checks:\n      - {{redis: "127.0.0.1:{port}", password_env: PW}}\n'
    done = run_cli("check", str(write_layout(tmp_path, text)), "--format", "json", env=ENV, timeout=30)
    detail = json.loads(done.stdout)["layers"][0]["checks"][0]["detail"]
    assert "bad password" in detail and "S3cr3t-" not in detail and "t-Value" not in detail, detail


# --------------------------------------------------------------------------- item 9: bounds


def base(interval: str = "5s") -> str:
    return f'name: t\ninterval: {interval}\nlayers:\n  - name: L\n    role: other\n    checks:\n      - {{tcp: "127.0.0.1:1"}}\n'


def test_an_absurd_interval_is_refused_with_the_cap():
    problems = problems_of(base("99999999999999999999m"))
    assert any("longer than a day" in p and "1440m or less" in p and "interval" in p for p in problems), problems


def test_an_interval_of_a_day_is_accepted():
    assert parse_layout(base("1440m"), "lay.yaml").interval == 86400


def _snapshot(duration: float) -> Snapshot:
    layout = parse_layout(base("10s"), "lay.yaml")
    check = next(layout.checks())
    return Snapshot(layout, {check.id: Result(check.id, Status.OK, "fine", 1.0)}, 0.0, 1, duration=duration)


def test_a_round_longer_than_the_interval_says_so_in_text_and_json():
    diagnosis = assess(_snapshot(33.0))
    note = "this round took 33s, longer than the 10s interval"
    assert note in render(diagnosis, "text", color=False)
    assert json.loads(render(diagnosis, "json"))["round_overran"] == {"seconds": 33.0, "interval": 10.0, "note": note}
    on_time = assess(_snapshot(2.0))
    assert "round_overran" not in json.loads(render(on_time, "json"))
    assert "overran" not in render(on_time, "text", color=False)


def test_watch_plain_says_a_round_overran(monkeypatch, capsys, tmp_path):
    from stackscope import cli

    snapshot = _snapshot(33.0)

    async def one_round(layout, emit, rounds, arrived=None):
        emit(snapshot)

    monkeypatch.setattr(cli, "_watch", one_round)
    path = write_layout(tmp_path, base("10s"))
    assert cli.main(["watch", str(path), "--plain"]) == 0
    assert "round overran: this round took 33s, longer than the 10s interval" in capsys.readouterr().out


# --------------------------------------------------------------------------- item 10: messages


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_nan_or_infinite_duration_says_durations_are_finite(value):
    problems = problems_of(base(value))
    assert any(f"'{value}' is not a duration: a duration is a finite length of time" in p for p in problems), problems
    assert not any("write nans" in p or "write infs" in p for p in problems)


@pytest.mark.parametrize("kind", ["http", "tcp", "postgres"])
def test_a_url_with_another_scheme_is_not_read_as_a_host_name(kind):
    text = base().replace('{tcp: "127.0.0.1:1"}', f"{{{kind}: 'javascript:alert(1)'}}")
    problems = problems_of(text)
    assert any("is a URL with the scheme 'javascript:'" in p for p in problems), problems
    assert not any("write http://javascript" in p or "port 'alert(1)'" in p for p in problems), problems


def test_a_complex_mapping_key_says_keys_are_plain_words():
    text = base().replace("  - name: L\n", "  - name: L\n    ? {a: 1}\n    : x\n")
    problems = problems_of(text)
    assert any("keys must be plain words" in p and ":5:" in p for p in problems), problems
    assert not any("'None'" in p for p in problems), problems


def test_checks_given_as_a_word_says_checks_is_a_list_and_shows_the_form():
    text = base().replace('    checks:\n      - {tcp: "127.0.0.1:1"}\n', "    checks: tcp\n")
    problems = problems_of(text)
    assert any(
        "checks must be a list of checks, got the text 'tcp'" in p and "- tcp: 127.0.0.1:5432" in p for p in problems
    ), problems
    assert not any("layer has no checks" in p for p in problems)
