"""Files that are not regular files, or too large, are refused promptly with a clear error.

`/dev/zero` and `/dev/urandom` never end, a FIFO blocks open() until a writer comes, and a
symlink can point at either: each used to hang `check`, `lint`, `lint --lb-config` or the
nginx check (which grew to 12 GB on /dev/zero). Every command runs in a subprocess whose
timeout is the hang guard; the assertions are on the message and the exit code.
"""

from __future__ import annotations

import os

import pytest

from stackscope.files import FileRefused, read_bounded
from tests.conftest import run_cli, write_layout

HANG_GUARD = 30  # seconds: a command that has not exited by then hangs


def special(kind: str, tmp_path, size: int) -> tuple[str, str]:
    """(path, what the refusal must say) for a file of `kind`."""
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        return str(path), "not a regular file (a named pipe (FIFO))"
    if kind in ("zero", "urandom"):
        return f"/dev/{kind}", "not a regular file (a character device)"
    if kind == "symlink":
        path = tmp_path / "link.yaml"
        path.symlink_to("/dev/zero")
        return str(path), "not a regular file (a character device, through a symlink)"
    path = tmp_path / "huge"
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: its size is what counts, no disk is used
    return str(path), "larger than"


KINDS = ["fifo", "zero", "urandom", "symlink", "oversized"]
LAYOUT_CAP = 4 * 1024 * 1024
LB_CAP = 8 * 1024 * 1024
NGINX_CAP = 4 * 1024 * 1024

GOOD = """\
name: t
layers:
  - name: LB
    role: lb
    checks:
      - {nginx: NGINX, upstream: app}
  - name: Backends
    role: backend
    checks:
      - {tcp: "127.0.0.1:1", name: b1}
"""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["check", "lint"])
def test_a_layout_that_is_no_regular_file_is_refused(kind, command, tmp_path):
    path, says = special(kind, tmp_path, LAYOUT_CAP + 1)
    done = run_cli(command, path, timeout=HANG_GUARD)
    assert done.returncode == 3, done
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_an_lb_config_that_is_no_regular_file_is_refused(kind, tmp_path):
    path, says = special(kind, tmp_path, LB_CAP + 1)
    layout = write_layout(tmp_path, GOOD.replace("NGINX", str(tmp_path / "nginx.conf")))
    (tmp_path / "nginx.conf").write_text("http { upstream app { server 127.0.0.1:1; } }\n")
    done = run_cli("lint", str(layout), "--lb-config", path, timeout=HANG_GUARD)
    assert done.returncode == 3, done
    assert f"--lb-config {path} is {says}" in done.stderr, done.stderr
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["config", "include"])
def test_the_nginx_check_refuses_a_config_or_include_that_is_no_regular_file(kind, how, tmp_path):
    path, says = special(kind, tmp_path, NGINX_CAP + 1)
    if how == "include":
        main = tmp_path / "nginx.conf"
        main.write_text(f"http {{ include {path}; upstream app {{ server 127.0.0.1:1; }} }}\n")
        path = str(main)
    layout = write_layout(tmp_path, GOOD.replace("NGINX", path))
    done = run_cli("check", str(layout), "--format", "json", timeout=HANG_GUARD)
    assert done.returncode in (2, 3), done
    assert "cannot read the nginx config" in done.stdout and says in done.stdout, done.stdout


def test_watch_plain_on_a_fifo_nginx_config_ends_by_itself(tmp_path):
    """`watch --plain --rounds 1` used to block in open() on the FIFO, unable to quit."""
    path, says = special("fifo", tmp_path, 0)
    layout = write_layout(tmp_path, GOOD.replace("NGINX", path))
    done = run_cli("watch", str(layout), "--plain", "--rounds", "1", timeout=HANG_GUARD)
    assert says in done.stdout, done.stdout


def test_read_bounded_reads_a_regular_file_and_refuses_one_byte_over_the_cap(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(str(path), 100) == b"x" * 100
    with pytest.raises(FileRefused, match="larger than 99 bytes"):
        read_bounded(str(path), 99)


def test_a_large_layout_is_refused_before_it_is_parsed(tmp_path):
    """A 10 MB, 180,000-check layout took 9-13 s and 637 MB before MAX_CHECKS refused it;
    the size cap refuses it unread (the message names the cap and the fix)."""
    check = "      - {tcp: '127.0.0.1:1'}\n"
    text = "name: big\nlayers:\n  - name: L\n    role: other\n    checks:\n" + check * 180_000
    path = write_layout(tmp_path, text)
    assert path.stat().st_size > 4 * 1024 * 1024
    done = run_cli("lint", str(path), timeout=HANG_GUARD)
    assert done.returncode == 3
    assert "larger than 4 MiB" in done.stderr and "split a larger one" in done.stderr, done.stderr


async def test_the_dashboard_shows_a_fifo_nginx_config_as_unreadable_and_quits(tmp_path):
    """A FIFO as the nginx config blocked a worker thread in open(): the dashboard could
    not quit. Now the row says why the config is unreadable and `q` ends the app."""

    from stackscope.engine import Engine
    from stackscope.layout import load_layout
    from stackscope.tui.app import StackscopeApp
    from tests.tui.stack import screen_showing, until

    path, says = special("fifo", tmp_path, 0)
    layout = load_layout(str(write_layout(tmp_path, GOOD.replace("NGINX", path))))
    app = StackscopeApp(layout, engine=Engine(layout), timeline_dir=str(tmp_path))
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await until(pilot, lambda: app.diagnosis is not None, "a finished round", timeout=HANG_GUARD)
            await screen_showing(pilot, app, "unreadable", "the unreadable config on screen", timeout=HANG_GUARD)
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running, "the app to quit", timeout=HANG_GUARD)
    finally:
        # a reader still blocked in open() (the bug) is released by a writer coming and going
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
