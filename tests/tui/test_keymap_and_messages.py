"""Issue 12: the user's keymap (binding ids from the action registry, App.set_keymap),
Pause/Resume as one key's two states (check_action), and results reaching the app as
coalesced messages that carry tuples. Hand-built data, no probing."""

from __future__ import annotations

import dataclasses
import time

import pytest

from stackscope.layout import LayoutError
from stackscope.model import ErrorKind, Result, Status
from stackscope.safetext import is_terminal_safe
from stackscope.tui.actions import BUILTIN, ActionRegistry
from stackscope.tui.app import StackscopeApp
from stackscope.tui.feed import ProbeFeed
from stackscope.tui.keymap import KEYMAP_ENV, keymap_path, load_keymap
from stackscope.tui.messages import ProbesStarted, ResultsArrived
from stackscope.tui.screens import HelpScreen
from stackscope.tui.widgets import FittingFooter
from tests import dashboard_data as data


def app_on_data(tmp_path, **options) -> StackscopeApp:
    layout = data.layout()
    return StackscopeApp(
        layout,
        engine=data.engine_with_history(layout),
        autoprobe=False,
        clock=lambda: data.T0 + 60,
        timeline_dir=str(tmp_path),
        **options,
    )


def write(tmp_path, text: str) -> str:
    path = tmp_path / "keymap.yaml"
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- keymap file


def test_a_keymap_file_maps_binding_ids_to_keys(tmp_path):
    path = write(tmp_path, 'probe_now: g\nproblems_only: "x, ctrl+f"\nquit: [q, ctrl+c]\npause: f5\n')
    keymap = load_keymap(path, ActionRegistry(BUILTIN))
    assert keymap == {"probe_now": "g", "problems_only": "x,ctrl+f", "quit": "q,ctrl+c", "pause": "f5"}


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("probe_now: g\nprobe_nwo: h\n", 2, "probe_nwo: no action has this id"),
        ("probe_now: g\nquit: {a: b}\n", 2, "quit: keys must be a key name"),
        ("help: f\n", 1, "key bound twice (f: problems_only and help)"),
        ("- probe_now\n", 1, "a keymap is a mapping"),
    ],
)
def test_a_broken_keymap_names_the_file_line_and_id(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(LayoutError) as caught:
        load_keymap(path, ActionRegistry(BUILTIN))
    assert f"{path}:{line}: " in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize(
    "value, words",
    [
        (r'"\e]0;PWN\a"', "is not a key Textual knows"),  # an escape sequence: a window title
        (r'"g\u202e"', "is not a key Textual knows"),  # a bidi override after the key
        (r'"\u202e"', "is not a printable character"),
        ('"' + "x" * 100_000 + '"', "is 100000 characters long: no key is named that long (at most 64)"),
        ("[g, escpae]", "'escpae' is not a key Textual knows — did you mean 'escape'?"),
        ('"Ctrl+x"', "has 'Ctrl' where a modifier goes"),
        ('"ctrl+ctrl+x"', "names a modifier twice"),
        ('"ctrl+"', "has nothing on one side of a '+'"),
        ("[" + ", ".join("abcdefghijklmnopqrstu") + "]", "more than 20 keys for one action"),
    ],
    ids=[
        "escape-sequence",
        "bidi",
        "lone-bidi",
        "100000-chars",
        "unknown-name",
        "modifier-case",
        "twice",
        "dangling",
        "too-many",
    ],
)
def test_a_key_textual_does_not_know_is_a_located_problem(tmp_path, value, words):
    path = write(tmp_path, f"probe_now: g\nproblems_only: {value}\n")
    with pytest.raises(LayoutError) as caught:
        load_keymap(path, ActionRegistry(BUILTIN))
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.where) == (path, 2, "problems_only")
    assert words in str(problem) and problem.fix
    assert is_terminal_safe(str(problem)) and len(str(problem)) < 1000  # shown safe, and shortened


def test_every_kind_of_key_textual_names_is_accepted(tmp_path):
    keys = "g, %, é, ctrl+x, f5, shift+tab, shift+escape, slash, exclamation_mark, ctrl+alt+delete, plus"
    keys += ", comma, pageup, full_stop, ctrl+shift+right_square_bracket, f24, meta+home"
    keymap = load_keymap(write(tmp_path, f'problems_only: "{keys}"\n'), ActionRegistry(BUILTIN))
    assert keymap["problems_only"] == keys.replace(", ", ",")


def test_a_keymap_with_a_hostile_key_never_reaches_the_terminal(tmp_path):
    """`stackscope watch` in a real pty with a keymap binding an escape sequence: the
    dashboard does not open, the problem is printed harmlessly, and the raw sequence
    never reaches the terminal (before the fix, the footer wrote it: a new window title)."""
    import os
    import sys

    from tests.conftest import ROOT, write_layout
    from tests.servers.base import free_port
    from tests.tui.test_watch_cli import Terminal

    keymap = write(tmp_path, 'probe_now: g\nproblems_only: "\\e]0;PWNED\\a"\npause: "p\\u202e"\n')
    layout = write_layout(
        tmp_path, f"name: k\nlayers:\n  - name: Web\n    role: lb\n    checks:\n      - tcp: 127.0.0.1:{free_port()}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", KEYMAP_ENV: keymap}
    terminal = Terminal([sys.executable, "-m", "stackscope", "watch", str(layout)], env, cols=200)
    try:
        terminal.expect("2 problems")
        assert terminal.wait() == 3
    finally:
        terminal.close()
    out = terminal.output
    assert b"problems_only: '\xc2\xb7]0;PWNED\xc2\xb7' is not a key Textual knows" in out
    assert b"\x1b]0;PWNED" not in out and b"PWNED\x07" not in out and b"\xe2\x80\xae" not in out


def test_the_keymap_file_is_found_by_env_then_config_dir(tmp_path):
    assert keymap_path({KEYMAP_ENV: "/somewhere/keys.yaml"}) == "/somewhere/keys.yaml"
    assert keymap_path({"XDG_CONFIG_HOME": str(tmp_path)}) is None  # no file: no keymap
    (tmp_path / "stackscope").mkdir()
    (tmp_path / "stackscope" / "keymap.yaml").write_text("probe_now: g\n")
    assert keymap_path({"XDG_CONFIG_HOME": str(tmp_path)}) == str(tmp_path / "stackscope" / "keymap.yaml")


async def test_a_remapped_key_works_and_help_footer_and_palette_say_so(tmp_path):
    app = app_on_data(tmp_path, keymap={"problems_only": "x", "pause": "f5"})
    async with app.run_test(size=(120, 30)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        await pilot.press("f")  # its old key does nothing now
        await pilot.pause()
        assert not app.problems_only
        await pilot.press("x")
        await pilot.pause()
        assert app.problems_only
        footer = app.screen.query_one(FittingFooter).shown()
        assert "x All checks" in footer and "f5 Pause" in footer  # what x does now
        await pilot.press("f5")
        await pilot.pause()
        assert app.paused and "f5 Resume" in app.screen.query_one(FittingFooter).shown()
        await pilot.press("f5")
        await pilot.pause()
        assert not app.paused
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "x  " in app.screen.text() and "Problems — Show only checks" in app.screen.text()


def test_a_keymap_that_gives_one_key_two_jobs_is_refused_by_the_app(tmp_path):
    with pytest.raises(ValueError, match="keys bound twice"):
        app_on_data(tmp_path, keymap={"probe_now": "q"})


async def test_pause_and_resume_are_one_key_in_two_states(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "p Pause" in app.screen.query_one(FittingFooter).shown()
        app.paused = True
        await pilot.pause()
        assert "p Resume" in app.screen.query_one(FittingFooter).shown()
        titles = [command.title for command in app.get_system_commands(app.dashboard)]
        assert "Resume" in titles and "Pause" not in titles


# ---------------------------------------------------------------- messages


async def test_the_feed_posts_a_burst_as_one_batch_in_order():
    posted: list = []
    feed = ProbeFeed(posted.append, delay=3600)  # only flush() posts here
    results = list(data.results().values())
    check = data.layout().layers[0].checks[0]
    feed.started(check)
    for result in results:
        feed.arrived(result)
    assert posted == []  # gathered, not posted one by one
    feed.flush()
    assert [type(m) for m in posted] == [ProbesStarted, ResultsArrived]
    assert posted[0].started[0][0] == check.id
    assert posted[1].results == tuple(results) and isinstance(posted[1].results, tuple)
    feed.flush()
    assert len(posted) == 2  # nothing gathered: nothing posted


async def test_results_arrive_as_messages_and_the_app_keeps_its_own_history(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        result = data.results(broken=True)["Load balancer/lb-health"]
        result = dataclasses.replace(result, started_at=data.T0 + 61)
        engine_rounds = len(app.engine.history[result.check_id])
        app.post_message(ProbesStarted(((result.check_id, time.monotonic()),)))
        await pilot.pause()
        assert result.check_id in app.inflight
        app.post_message(ResultsArrived((result,)))
        await pilot.pause()
        assert result.check_id not in app.inflight
        row = app.dashboard.path.rows[result.check_id]
        assert row.result is result and row.status is Status.CRIT
        assert len(app.history[result.check_id]) == engine_rounds + 1  # the app's, not the engine's
        assert len(app.engine.history[result.check_id]) == engine_rounds
        assert row.sparkline.chars[-1] == "×"


async def test_a_suspected_result_is_shown_as_warn_but_is_no_sample(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        check_id = "Load balancer/lb-health"
        rounds = len(app.history[check_id])
        suspected = Result(
            check_id,
            Status.WARN,
            "no answer for 300 ms (usually 2.0 ms)",
            key_fact="suspected",
            error_kind=ErrorKind.SUSPECTED,
            started_at=data.T0 + 61,
            confirmed=False,
        )
        app.post_message(ResultsArrived((suspected,)))
        await pilot.pause()
        row = app.dashboard.path.rows[check_id]
        assert row.result is suspected and row.status is Status.WARN and row.fact == "suspected"
        assert len(app.history[check_id]) == rounds  # a provisional result is no sample


def test_a_broken_keymap_stops_the_dashboard_before_it_opens(tmp_path, monkeypatch, capsys):
    from stackscope.tui import run_dashboard

    monkeypatch.setenv(KEYMAP_ENV, write(tmp_path, "probe_now: g\nprobe_nwo: h\n"))
    assert run_dashboard(data.layout()) == 3
    assert f"{tmp_path / 'keymap.yaml'}:2: probe_nwo: no action has this id" in capsys.readouterr().err


def test_the_readme_lists_every_id_a_keymap_may_name():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("**Your own keys.**") : readme.index("**Incident timeline.**")]
    assert [i for i in sorted(ActionRegistry(BUILTIN).binding_ids()) if f"`{i}`" not in section] == []
