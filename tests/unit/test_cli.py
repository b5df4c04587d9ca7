"""The command line without servers: version, lint, schema, examples, lean imports."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from stackscope.layout import load_layout
from stackscope.schema import json_schema
from tests.conftest import ROOT, run_cli, write_layout

EXAMPLES = sorted((ROOT / "layouts").glob("*.yaml"))


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    from stackscope import __version__

    assert done.stdout.strip() == f"stackscope {__version__}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_layout_is_valid_and_matches_the_schema(path):
    layout = load_layout(str(path), require_env=False)
    assert layout.layers
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())


def test_committed_schema_is_current():
    committed = json.loads((ROOT / "docs" / "layout.schema.json").read_text())
    assert committed == json_schema(), "run: stackscope schema > docs/layout.schema.json"


def test_schema_command_prints_the_schema():
    done = run_cli("schema")
    assert done.returncode == 0
    assert json.loads(done.stdout) == json_schema()


def test_schema_catches_a_typo_for_the_editor():
    doc = {
        "name": "x",
        "layers": [{"name": "A", "role": "lb", "checks": [{"http": "http://127.0.0.1/", "expect_staus": 200}]}],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema())


def test_lint_reports_problems_with_exit_3_and_no_traceback(tmp_path):
    path = write_layout(
        tmp_path,
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
        "      - http: http://127.0.0.1/\n        expect_staus: 200\n",
    )
    done = run_cli("lint", str(path))
    assert done.returncode == 3
    assert (
        f"{path}:7: layer 'A', checks[0] (http): unknown key 'expect_staus' — did you mean 'expect_status'?"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_lint_ok(tmp_path):
    done = run_cli("lint", str(ROOT / "layouts" / "example.yaml"))
    assert done.returncode == 0
    assert "ok — auth-prod: 4 layers, 6 checks" in done.stdout


@pytest.mark.parametrize("content", [b"name: [unclosed\n", b"\xff\xfe\x00garbage", b"- - - -\n", b"name: x\n"])
def test_broken_files_never_give_a_traceback(tmp_path, content):
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    for command in ("lint", "check"):
        done = run_cli(command, str(path))
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr
        assert str(path) in done.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    done = run_cli("check", str(tmp_path / "nope.yaml"))
    assert done.returncode == 3
    assert "file not found" in done.stderr


def test_core_imports_without_textual():
    code = (
        "import sys, stackscope.layout, stackscope.engine, stackscope.diagnosis, stackscope.render.text, "
        "stackscope.render.jsonout, stackscope.render.junit, stackscope.render.nagios, stackscope.cli\n"
        "from stackscope.probes import all_specs; all_specs()\n"
        "print('textual' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize(
    "args", [("check",), ("check", "x.yaml", "--format", "xml"), ("lint",), ("--nope",), ("watch",)]
)
def test_usage_errors_exit_unknown_not_critical(args):
    done = run_cli(*args)
    assert done.returncode == 3, done.stderr  # 2 would read as CRITICAL to Nagios/Icinga
    assert "usage:" in done.stderr and "error:" in done.stderr


def test_lint_counts_in_the_singular(tmp_path):
    path = write_layout(
        tmp_path, "name: one\nlayers:\n  - name: A\n    role: db\n    checks:\n      - tcp: 127.0.0.1:1\n"
    )
    done = run_cli("lint", str(path))
    assert done.returncode == 0 and "ok — one: 1 layer, 1 check" in done.stdout


def test_lint_refuses_a_header_http_cannot_carry(tmp_path):
    path = write_layout(
        tmp_path,
        "name: h\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
        "      - http: http://127.0.0.1:1/\n        headers: {Bad Header: x}\n",
    )
    done = run_cli("lint", str(path))
    assert done.returncode == 3
    assert ":7: " in done.stderr and "'Bad Header' is not a valid HTTP header name" in done.stderr


SECRET_LAYOUT = (
    "name: x\nlayers:\n  - name: Cache\n    role: cache\n    checks:\n      - redis: 127.0.0.1:1\n"
    "        password_env: S\n        timeout: 2s\n"
)


@pytest.mark.parametrize("value,named", [("pw1", "S"), ("admin:pw", "the password in S")])
def test_a_short_secret_is_named_once_and_never_shown(tmp_path, value, named):
    path = write_layout(tmp_path, SECRET_LAYOUT)
    warning = f"{named} is shorter than 6 characters: every occurrence of it in output is masked, which may garble it"
    for command in (("check",), ("watch", "--rounds", "1")):
        done = run_cli(*command, str(path), env={"S": value})
        assert done.stderr.count(warning) == 1 and f"stackscope: warning: {warning}\n" in done.stderr, done.stderr
        assert value not in done.stderr and value not in done.stdout
    lint = run_cli("lint", str(path), env={"S": value})
    assert lint.returncode == 0 and f"note: {warning}\n" in lint.stdout, lint.stdout + lint.stderr


def test_no_short_secret_warning_for_a_long_or_unset_secret(tmp_path):
    path = write_layout(tmp_path, SECRET_LAYOUT)
    done = run_cli("check", str(path), env={"S": "admin:long-enough"})
    assert "shorter than" not in done.stderr + done.stdout
    for env in ({"S": ""}, {}):  # empty, or unset here (lint needs no secrets)
        lint = run_cli("lint", str(path), env=env)
        assert lint.returncode == 0 and "shorter than" not in lint.stdout, lint.stdout


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_check_imports_neither_rich_nor_textual(tmp_path, fmt):
    """`check` starts cold on every cron run and deploy gate: the report is plain string
    formatting and JSON, so neither Rich nor Textual is loaded (nor the worker machinery
    of large rounds)."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        layout = tmp_path / "one.yaml"
        layout.write_text(
            f"name: one\nlayers:\n  - name: P\n    role: backend\n    checks:\n      - tcp: 127.0.0.1:{port}\n"
        )
        code = (
            "import sys; from stackscope.cli import main; rc = main(['check', sys.argv[1], '-f', sys.argv[2]]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'textual', 'multiprocessing'}), "
            "file=sys.stderr); sys.exit(rc)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(layout), fmt],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_a_stop_that_the_run_swallows_is_asked_again_until_it_ends():
    """Ctrl-C during a run whose task loses a cancellation (Python 3.10's wait_for can,
    when a timeout fires in the same moment): the stop is repeated until the run ends,
    instead of a watch probing on forever (`watch --plain` hung in CI once on 3.10)."""
    import asyncio
    import os
    import signal

    from stackscope.cli import _run_async

    swallowed = []

    async def stubborn() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                swallowed.append(1)
                if len(swallowed) >= 3:
                    raise

    with pytest.raises(KeyboardInterrupt):
        _run_async(stubborn())
    assert len(swallowed) == 3
