"""Credentials written literally in an http check's `headers:` never reach any output.

A real nginx echoes the request's Authorization, X-Api-Key and a custom token back, in
response headers (under their own names and under others) and in the body, on a 200 and
on a 503 whose body becomes the check's detail; an `expect_header` that does not match
quotes an echoed value. `check` in every format, `watch --plain` and its `--record`
timeline must show none of the three secrets; `lint` warns about each literal credential
with its file and line.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, write_layout
from tests.servers.nginx import Nginx, new_port

TOKEN = "s3cr3t-token-value"
API_KEY = "k3y-0f-the-api-4711"
CUSTOM = "cust0m-t0ken-value"
SECRETS = (TOKEN, API_KEY, CUSTOM)

ECHO = (
    "add_header X-Echo-Auth $http_authorization always; "
    "add_header X-Api-Key $http_x_api_key always; "
    "add_header X-Echo-Key $http_x_api_key always; "
    "add_header X-Custom-Token $http_x_custom_token always; "
    'add_header Set-Cookie "session=$http_x_custom_token" always;'
)


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    ok, down, guarded = new_port(), new_port(), new_port()
    block = f"""
    server {{ listen 127.0.0.1:{ok}; location / {{ {ECHO} return 200 "auth=$http_authorization key=$http_x_api_key\\n"; }} }}
    server {{ listen 127.0.0.1:{down}; location / {{ {ECHO}
        return 503 "auth=$http_authorization key=$http_x_api_key custom=$http_x_custom_token\\n"; }} }}
    server {{ listen 127.0.0.1:{guarded}; location / {{ {ECHO}
        if ($http_x_api_key != "{API_KEY}") {{ return 401 "no key\\n"; }}
        return 200 "key=$http_x_api_key\\n"; }} }}
"""
    nginx = Nginx(tmp_path_factory.mktemp("nginx"), block, [ok, down, guarded]).start()
    try:
        yield ok, down, guarded
    finally:
        nginx.stop()


def layout_text(ok: int, down: int, guarded: int) -> str:
    headers = f'{{Authorization: "Bearer {TOKEN}", X-Api-Key: "{API_KEY}", X-Custom-Token: "{CUSTOM}"}}'
    return f"""\
name: header-secrets
interval: 5s
timeout: 2s
layers:
  - name: Backends
    role: backend
    checks:
      - http: "http://127.0.0.1:{ok}/"
        name: echo-ok
        headers: {headers}
        sensitive_headers: [X-Custom-Token]
      - http: "http://127.0.0.1:{down}/"
        name: echo-503
        headers: {headers}
        sensitive_headers: [X-Custom-Token]
      - http: "http://127.0.0.1:{ok}/"
        name: echo-expect
        headers: {headers}
        sensitive_headers: [X-Custom-Token]
        expect_header: {{X-Echo-Key: nope}}
"""


def test_headers_env_sends_the_key_from_the_environment_and_masks_it(echo, tmp_path):
    _, _, guarded = echo
    layout = write_layout(
        tmp_path,
        f"""\
name: header-env
layers:
  - name: Backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{guarded}/", name: guarded, headers_env: {{X-Api-Key: API_KEY}}}}
""",
    )
    assert "warning" not in run_cli("lint", str(layout)).stdout
    done = run_cli("check", str(layout), "--format", "json", env={"API_KEY": API_KEY})
    assert_absent(done.stdout + done.stderr, "check with headers_env")
    check = json.loads(done.stdout)["layers"][0]["checks"][0]
    assert check["status"] == "ok", check  # the guarded server got the key
    assert check["facts"]["headers"]["x-echo-key"] == "«redacted»"
    unset = run_cli("check", str(layout), "--format", "json", env={"API_KEY": ""})
    assert "API_KEY" in unset.stdout + unset.stderr and unset.returncode != 0


@pytest.fixture
def layout(echo, tmp_path):
    return write_layout(tmp_path, layout_text(*echo))


def assert_absent(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"
        assert secret[:8] not in text, f"a prefix of {secret!r} leaked into {where}"


def test_check_in_every_format(layout):
    outputs = {}
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(layout), "--format", fmt)
        assert_absent(done.stdout, f"check --format {fmt} (stdout)")
        assert_absent(done.stderr, f"check --format {fmt} (stderr)")
        outputs[fmt] = done.stdout
    checks = {c["name"]: c for layer in json.loads(outputs["json"])["layers"] for c in layer["checks"]}
    # the echoes happened and the checks were judged: the secrets were there to leak
    assert checks["echo-ok"]["status"] == "ok", checks["echo-ok"]
    assert checks["echo-503"]["status"] == "crit" and "«redacted»" in checks["echo-503"]["detail"]
    assert checks["echo-expect"]["status"] == "crit"
    headers = checks["echo-ok"]["facts"]["headers"]
    # echoed under another name: masked by value; under a credential's name: shown by size only
    assert headers["x-echo-auth"] == headers["x-echo-key"] == "«redacted»"
    assert headers["x-api-key"].endswith("bytes hidden>") and headers["set-cookie"].endswith("bytes hidden>")


def test_watch_plain_and_the_recorded_timeline(layout, tmp_path):
    record = tmp_path / "timeline.md"
    done = run_cli("watch", str(layout), "--plain", "--rounds", "1", "--record", str(record))
    assert_absent(done.stdout, "watch --plain (stdout)")
    assert_absent(done.stderr, "watch --plain (stderr)")
    assert record.exists(), done.stderr
    timeline = record.read_text()
    assert "echo-503" in timeline
    assert_absent(timeline, "the --record timeline")


def test_lint_warns_about_each_literal_credential_with_its_line(layout):
    done = run_cli("lint", str(layout))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_absent(done.stdout + done.stderr, "lint")
    warnings = [line for line in (done.stdout + done.stderr).splitlines() if "warning" in line]
    lines = layout.read_text().splitlines()
    header_lines = [number for number, text in enumerate(lines, 1) if "headers: {" in text]
    for number in header_lines:
        for name in ("Authorization", "X-Api-Key", "X-Custom-Token"):
            assert any(f"{layout}:{number}:" in w and name in w and "_env" in w for w in warnings), (name, warnings)
