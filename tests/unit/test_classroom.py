"""The classroom (`--serve`, stackscope/classroom.py) without a browser: the session cap,
the request checks, no directory listing, the loopback rule, and the quoting of the
command each session runs. A session here runs a tiny Python that waits for textual-serve's
quit message instead of the dashboard (the browser test runs the real one)."""

from __future__ import annotations

import asyncio
import gc
import shlex
import sys
import time

import aiohttp
import pytest

from stackscope import cli
from stackscope.classroom import FULL_CODE, Classroom, session_command
from stackscope.demo.faults import FAULTS
from stackscope.launch import python_command

FAULT = next(iter(FAULTS))

# a session: note the terminal size it was given, then wait for the quit message on stdin
WAITER = "import os,sys; open(sys.argv[1],'w').write(os.environ['COLUMNS']); sys.stdin.buffer.read(1)"


def test_the_session_command_is_the_argv_quoted_word_by_word():
    hostile = ["replay", "/tmp/a b; rm -rf ~ `id` $(id) 'x\".jsonl", "--speed", "2.0"]
    command = session_command(hostile)
    assert shlex.split(command) == python_command("stackscope", *hostile)
    assert shlex.split(command)[0] == sys.executable and shlex.split(command)[-4:] == hostile


async def _until(predicate, what: str, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
async def classroom(tmp_path):
    room = Classroom(["demo"], host="127.0.0.1", port=0, title="stackscope demo", max_sessions=1)
    room.command = shlex.join([sys.executable, "-c", WAITER, str(tmp_path / "columns")])
    runner = await room.start()
    try:
        yield room
    finally:
        await runner.cleanup()
        # textual-serve leaves its processes' pipe transports to the garbage collector: let
        # them close while this test's loop runs (else "Event loop is closed" in a later test)
        gc.collect()


async def test_sessions_beyond_the_cap_are_refused_with_a_message_and_the_slot_frees(classroom, tmp_path):
    url = classroom.public_url
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(f"{url}/ws?width=100000&height=30")
        columns = tmp_path / "columns"

        async def noted():
            return columns.exists() and columns.read_text()

        assert await _until(noted, "the first session started") == "500"  # the size asked for is bounded

        async with http.get(f"{url}/") as page:
            assert page.status == 503
            assert "classroom full: 1 sessions in use" in await page.text()
        second = await http.ws_connect(f"{url}/ws")
        message = await second.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == FULL_CODE
        assert "classroom full" in message.extra and "--max-sessions" in message.extra

        await first.close()

        async def page_back():
            async with http.get(f"{url}/") as page:
                return page.status == 200 and "stackscope demo" in await page.text()

        await _until(page_back, "the closed session's slot came back")
        again = await http.ws_connect(f"{url}/ws")
        columns.unlink()
        assert await _until(noted, "a new session started") == "80"
        await again.close()


async def test_other_sites_and_other_host_names_get_no_session_and_static_has_no_listing(classroom):
    url = classroom.public_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/", headers={"Host": "rebound.example"}) as page:
            assert page.status == 403 and "loopback names" in await page.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{url}/ws", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
        async with http.get(f"{url}/", headers={"Origin": url}) as page:
            assert page.status == 200
            text = await page.text()
        assert f'data-session-websocket-url="ws://127.0.0.1:{classroom.port}/ws"' in text
        assert sys.executable not in text  # the page's title is not the command
        async with http.get(f"{url}/static/") as listing:
            assert listing.status == 403
        async with http.get(f"{url}/static/js/textual.js") as script:
            assert script.status == 200
        async with http.get(f"{url}/download/anything") as download:
            assert download.status == 404
        assert not classroom.sessions


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["demo", "--serve", "0.0.0.0:8000"], "--allow-remote"),
        (["demo", "--serve", "10.1.2.3:8000", "--fault", FAULT], "not a loopback address"),
        (["demo", "--serve", "8000"], "expected HOST:PORT"),
        (["demo", "--serve", "127.0.0.1:8000", "--max-sessions", "0"], "at least 1"),
        (["demo", "--serve", "127.0.0.1:8000", "--headless"], "not with --headless"),
    ],
)
def test_the_loopback_rule_and_bad_serve_options_are_clear_errors(argv, needle, capsys):
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_without_textual_serve_serve_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    monkeypatch.delitem(sys.modules, "stackscope.classroom")
    assert cli.main(["demo", "--serve", "127.0.0.1:8000"]) == 3
    assert "pip install 'stackscope[serve]'" in capsys.readouterr().err


def test_each_session_runs_the_checked_command_with_the_file_names_quoted(tmp_path, monkeypatch, capsys):
    from stackscope.layout import ParseContext, parse_layout
    from stackscope.model import Status
    from tests.unit.test_recording import T0, TEXT, record, result

    served: list[tuple[str, str]] = []
    monkeypatch.setattr(Classroom, "run", lambda self: served.append((self.command, self.title)) or 0)
    path = tmp_path / "inc $(id); 1.jsonl"
    layout = parse_layout(TEXT, str(tmp_path / "layout.yaml"), ParseContext())
    record(path, layout, [result(Status.OK, T0 + 1)])
    assert cli.main(["replay", str(path), "--serve", "127.0.0.1:8000", "--speed", "4"]) == 0
    assert cli.main(["demo", "--serve", "[::1]:8000", "--fault", FAULT, "--blind"]) == 0
    (replay, title), (demo, _) = served
    assert shlex.split(replay) == python_command("stackscope", "replay", str(path), "--speed", "4.0")
    assert title.startswith("stackscope replay: ") and str(path) not in title
    assert shlex.split(demo) == python_command("stackscope", "demo", "--fault", FAULT, "--blind")

    assert cli.main(["replay", str(path), "--serve", "127.0.0.1:8000", "--plain"]) == 3
    assert "not with --plain" in capsys.readouterr().err
    assert cli.main(["replay", str(tmp_path / "missing.jsonl"), "--serve", "127.0.0.1:8000"]) == 3
    assert "cannot replay" in capsys.readouterr().err
    assert len(served) == 2
