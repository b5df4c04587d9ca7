"""The dashboard app: probes in a worker, shows results as they arrive, acts on keys.

Probing never blocks the screen. Each round runs in an async worker (group "probe",
exclusive) that hands the round to a loop thread of its own (so a repaint is never timed
as a target's latency) and posts RoundFinished with the snapshot. Starts and results
reach the app as messages from that thread (feed.ProbeFeed, a few a second), carrying
tuples: the app keeps its own record of them (in-flight probes, each check's history)
and never reads the engine's state while a round runs. The next round is scheduled only when the
current one has finished, so rounds never overlap however slow a target is. While a probe runs longer
than half a second its row says "probing… 1.4s"; quitting cancels the worker, so it is
instant even while probes hang.

The app takes extra actions (and, through them, extra screens) from its caller: the
demo adds fault injection and a training mode without changing this module. Callers
can also watch every diagnosis (`on_diagnosis`) and hide the verdict (`blind`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from textual.app import App, ScreenResultCallbackType, SystemCommand
from textual.markup import escape
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import AwaitMount
from textual.worker import Worker, WorkerState

from stackscope.diagnosis import Diagnosis, assess
from stackscope.engine import Engine
from stackscope.exits import TERMINATING
from stackscope.history import History, Sample
from stackscope.kinds import format_duration
from stackscope.loop_thread import LoopNotRunning, LoopThread
from stackscope.model import ErrorKind, Layout, Result, Snapshot, Status
from stackscope.recording import Recorder
from stackscope.stream import arrival, held, settled
from stackscope.timeline import VERDICT, Event, Timeline
from stackscope.tui import cells
from stackscope.tui.actions import BUILTIN, DASHBOARD, Action, ActionRegistry
from stackscope.tui.bindings import bindings_for, with_bindings
from stackscope.tui.feed import ProbeFeed
from stackscope.tui.messages import CURSOR_SCROLLS, ProbesStarted, RecordingStopped, ResultsArrived, RoundFinished
from stackscope.tui.screens import DashboardScreen, DetailScreen, HelpScreen, VerdictScreen
from stackscope.tui.widgets import clock_text

SIXTEEN_COLOUR_TERMS = ("linux", "vt100", "vt220", "ansi", "cons25")
SIXTEEN_COLOUR_THEME = "stackscope-16"


def sixteen_colours(term: str | None = None) -> bool:
    """A console that has 16 colours only (the Linux console, old terminals)."""
    term = os.environ.get("TERM", "") if term is None else term
    return term.split("-")[0] in SIXTEEN_COLOUR_TERMS or term.endswith("-16color")


def sixteen_colour_theme():
    """The terminal's own 16 colours: the default theme's soft shades all round to grey
    or white there (CRIT lost its red). Accent is magenta so UNKNOWN is not OK's green."""
    from textual.theme import BUILTIN_THEMES

    return dataclasses.replace(BUILTIN_THEMES["ansi-dark"], name=SIXTEEN_COLOUR_THEME, accent="ansi_magenta")


PROBE_GROUP = "probe"
TICK = 0.25  # seconds between batches of results, and between "probing…" repaints


AppT = TypeVar("AppT", bound="StackscopeApp")
ScreenT = TypeVar("ScreenT", bound=Screen)


class StackscopeApp(App[int]):
    """`stackscope watch`: the request path, live."""

    CSS_PATH = "stackscope.tcss"
    TITLE = "stackscope"
    ENABLE_COMMAND_PALETTE = True

    blind: reactive[bool] = reactive(False, init=False)
    paused: reactive[bool] = reactive(False, init=False)
    problems_only: reactive[bool] = reactive(False, init=False)

    def __new__(cls: type[AppT], *args: Any, actions: Iterable[Action] = (), **options: Any) -> AppT:
        """An app of a subclass whose BINDINGS are made from its actions (bindings.py):
        Textual takes bindings from the class, and the caller's actions are per app.
        Every binding is on the app; DASHBOARD actions are off elsewhere (check_action)."""
        registry = ActionRegistry([*BUILTIN, *actions])
        return super().__new__(with_bindings(cls, bindings_for(registry)))

    def __init__(
        self,
        layout: Layout,
        *,
        engine: Engine | None = None,
        actions: Iterable[Action] = (),
        record: str | None = None,
        recorder: Recorder | None = None,
        timeline_dir: str = ".",
        autoprobe: bool = True,
        clock: Callable[[], float] = time.time,
        blind: bool = False,
        on_diagnosis: Iterable[Callable[[Diagnosis], Any]] = (),
        handle_signals: bool = False,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        """`keymap`: binding id -> keys (keymap.load_keymap reads the user's file)."""
        super().__init__()
        self.layout = layout
        self.engine = engine or Engine(layout)
        self.prober = LoopThread("stackscope-probes")
        self.keymap = dict(keymap or {})
        self.registry = ActionRegistry([*BUILTIN, *actions]).with_keys(self.keymap)
        clashes = self.registry.conflicts()
        if clashes:  # a caller's key silently shadowing another would be a bug to hunt at 3 a.m.
            raise ValueError("keys bound twice: " + "; ".join(clashes))
        self.record = record
        # `--record`'s recording (recording.py): results and rounds are written on the probe
        # thread as the engine hands them over, verdict lines handed to it; never on the UI loop
        self.recorder = recorder
        if recorder is not None:
            recorder.on_stop = self._recording_stopped
        self.timeline_dir = timeline_dir
        self.autoprobe = autoprobe
        self.clock = clock
        self.on_diagnosis = list(on_diagnosis)
        self.handle_signals = handle_signals
        self._signals_installed: list[int] = []
        self.timeline = Timeline(layout.name, source=layout.path, interval=layout.interval)
        self.diagnosis: Diagnosis | None = None
        self.last_problem: dict[str, Result] = {}
        self._culprit: str | None = None  # the verdict's layer last shown
        self.last_timeline_path: Path | None = None
        self.round_running = False
        self._round_started = 0.0
        self._again = False
        self._next_round: Timer | None = None
        self._probing_ticker: Timer | None = None
        self.feed = ProbeFeed(self.post_message, TICK)  # the engine's callbacks, on the probe thread
        self.inflight: dict[str, float] = {}  # check id -> monotonic start, from ProbesStarted
        # Each check's history as the app has seen it: the engine's as it stood before any
        # round (the engine's thread is not running yet), then one sample per result.
        self.history: dict[str, History] = {cid: _copy(h) for cid, h in self.engine.history.items()}
        # streaming verdicts (stream.py): the latest result of every check, and the checks
        # that have reported in the running round; once all have, each flush re-judges
        self._latest: dict[str, Result] = {}
        self._fresh: set[str] = set()
        # Keys with a footer_rank show in the footer, which drops the highest ranks first
        # when the width runs out, except help and quit (widgets.FittingFooter).
        if self.keymap:
            self.set_keymap(self.keymap)
        title = f"stackscope · {layout.name} · every {format_duration(layout.interval)}"
        seeds = {cid: tuple(h) for cid, h in self.history.items()}
        self.dashboard = DashboardScreen(layout, seeds, title, clock_text(clock()))
        self.set_reactive(StackscopeApp.blind, blind)

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen:
        return self.dashboard

    def on_mount(self) -> None:
        if sixteen_colours() and not os.environ.get("NO_COLOR"):
            self.register_theme(sixteen_colour_theme())
            self.theme = SIXTEEN_COLOUR_THEME
        self.dashboard.banner.set_class(self.blind, "-blind")
        self.dashboard.events.set_blind(self.blind)
        # monochrome greys red darker than green: CRIT gets reverse video instead
        self.dashboard.set_class(bool(os.environ.get("NO_COLOR")), "-no-color")
        self.set_interval(1.0, self._tick_clock)
        if self.handle_signals:
            self._install_signal_handlers()
        self._probing_ticker = self.set_interval(TICK, self._tick_probing, pause=True)
        if self.autoprobe:
            # After the first paint: a round timed while the first frame is built would
            # report the frame's cost as latency.
            self.call_after_refresh(self.start_round)

    def _install_signal_handlers(self) -> None:
        """SIGTERM (kill, a service manager) and SIGHUP (the SSH link dropped, the tmux
        session was killed) quit like q: the timeline is written (--record), the terminal
        restored, exit code 0. Without this they killed the process and lost the record."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for signum in TERMINATING:
            loop.add_signal_handler(signum, self.quit_on_signal, signum)
            self._signals_installed.append(signum)

    def quit_on_signal(self, signum: int) -> None:
        self.do_quit()

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        while self._signals_installed:
            loop.remove_signal_handler(self._signals_installed.pop())

    async def on_unmount(self) -> None:
        if self.record:
            self._write_timeline(Path(self.record), quiet=True)
        if self.prober.running:
            try:
                await asyncio.wait_for(self.prober.run(self.engine.aclose()), 1.0)
            except (asyncio.TimeoutError, LoopNotRunning):
                pass  # quitting must stay instant; the thread is a daemon
            await asyncio.to_thread(self.prober.stop, 1.0)
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)  # the probe thread has stopped: nothing more comes
        self._remove_signal_handlers()  # last: a second signal must not cut the record short

    # ------------------------------------------------------------------ probing

    def start_round(self) -> None:
        """Start a round now, unless one is running (then run another right after it)."""
        if self._next_round is not None:
            self._next_round.stop()
            self._next_round = None
        if self.round_running:
            self._again = True
            return
        self.round_running = True
        self._fresh = set()
        self._round_started = time.monotonic()
        if self._probing_ticker is not None:
            self._probing_ticker.resume()
        self._probe_round()

    def _probe_round(self) -> Worker:
        return self.run_worker(
            self._round(), name="probe round", group=PROBE_GROUP, exclusive=True, exit_on_error=False
        )

    async def _round(self) -> None:
        # Probes run on a loop of their own: on this one, a probe started during a repaint
        # would time the repaint, not the target.
        self.prober.start()
        if self.engine.rounds == 0:
            await asyncio.to_thread(self.engine.warm_up)  # imports and TLS contexts, off the UI loop
        feed = self.feed
        snapshot = await self.prober.run(self._recorded_round(feed.started, feed.arrived))
        feed.flush()  # the last results before the round's end, in that order
        self.post_message(RoundFinished(snapshot))

    async def _recorded_round(self, on_start: Callable, on_result: Callable[[Result], None]) -> Snapshot:
        """One round on the probe thread, each result and the round's end written to the
        recording there first (as `watch --plain --record` writes them: stream.arrival)."""
        recorder, engine = self.recorder, self.engine
        if recorder is None:
            return await engine.run_round(on_start=on_start, on_result=on_result)

        def arrived(result: Result) -> None:
            snapshot, _, kept = arrival(engine)
            at = snapshot.taken_at if snapshot is not None else None
            recorder.result(result, max(1, engine.rounds + 1), kept, at)
            on_result(result)

        snapshot = await engine.run_round(on_start=on_start, on_result=arrived)
        recorder.round(snapshot.taken_at, snapshot.round, snapshot.duration)
        return snapshot

    def _record_verdicts(self, events: list[Event]) -> None:
        """The verdict lines shown, to the recording: written on the probe thread when it
        runs (a write, and once a second an fsync, must not stall a repaint)."""
        recorder = self.recorder
        lines = [(event.at, event.line()) for event in events if event.kind == VERDICT]
        if recorder is None or not lines:
            return

        def write() -> None:
            for at, line in lines:
                recorder.verdict(at, line)

        loop = self.prober.loop
        if self.prober.running and loop is not None:
            loop.call_soon_threadsafe(write)
        else:
            write()  # no probe thread (a caller showing its own snapshots): rare and small

    def _recording_stopped(self, why: str) -> None:
        """Recorder.on_stop, on either thread: told on the UI loop."""
        self.post_message(RecordingStopped(why))

    def on_recording_stopped(self, message: RecordingStopped) -> None:
        self.notify(message.why, severity="error", timeout=10)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == PROBE_GROUP and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.feed.flush()
            self.post_message(RoundFinished(None, f"{type(error).__name__}: {error}"))

    def on_probes_started(self, message: ProbesStarted) -> None:
        self.inflight.update(message.started)

    def on_results_arrived(self, message: ResultsArrived) -> None:
        """Record and paint a batch: one terminal update for a fast round, a few a second
        for a slow one."""
        latest: dict[str, Result] = {}
        rows = self.dashboard.path.rows
        for result in message.results:
            self.inflight.pop(result.check_id, None)
            history = self.history.get(result.check_id)
            if history is not None and result.error_kind is not ErrorKind.SUSPECTED:  # provisional: no sample
                sample = Sample(result.started_at, result.status, result.latency_ms)
                history.append(sample)
                if result.check_id in rows:
                    rows[result.check_id].add_samples((sample,))
            latest[result.check_id] = result
        if not self.dashboard.is_attached:  # quitting: a batch posted just before; no screen to paint
            return
        for result in latest.values():
            self._apply_result(result)
        self._latest.update(latest)
        self._fresh.update(latest)
        checks = [c.id for c in self.layout.checks()]
        if latest and self.round_running and len(self._latest) >= len(checks):
            # the verdict follows each result once every check has reported this round, or
            # earlier when the checks still out cannot change it (stream.py), not the round's end
            snap = Snapshot(self.layout, dict(self._latest), self.clock(), self.engine.rounds + 1)
            if settled(snap, set(checks) - self._fresh) is not None:
                self.show_snapshot(snap, partial=True)

    def _apply_result(self, result: Result) -> None:
        row = self.dashboard.path.rows.get(result.check_id)
        if row is None or row.result is result:
            return
        row.set_result(result)
        if result.status is not Status.OK:
            self.last_problem[result.check_id] = result
        screen = self.screen
        if isinstance(screen, DetailScreen) and screen.check.id == result.check_id:
            self._show_detail(screen)

    def on_round_finished(self, message: RoundFinished) -> None:
        self.round_running = False
        self.inflight.clear()  # finished, or cancelled with the round
        if self._probing_ticker is not None:
            self._probing_ticker.pause()
        for row in self.dashboard.path.rows.values():
            if row.probing_for is not None:
                row.set_probing(None)
        if message.snapshot is not None:
            diagnosis = assess(message.snapshot)
            if self.diagnosis is None or not held(diagnosis):  # held: the last verdict stands
                self.show_snapshot(message.snapshot, diagnosis=diagnosis)
        else:
            self.notify(f"probe round failed: {message.error}", severity="error", timeout=10)
        if self._again:
            self._again = False
            self.start_round()
        elif not self.paused and self.autoprobe:
            # Keep the cadence: a round that took 0.3 s of a 2 s interval waits 1.7 s.
            took = time.monotonic() - self._round_started
            self._next_round = self.set_timer(max(0.05, self.layout.interval - took), self.start_round)

    def show_snapshot(self, snapshot: Snapshot, partial: bool = False, diagnosis: Diagnosis | None = None) -> Diagnosis:
        """Show a snapshot: rows, panels, banner, header and events. Tests and callers with
        their own data use it directly; the probe loop uses it after every round, and with
        `partial` as results arrive within a round once every check has reported."""
        diagnosis = assess(snapshot) if diagnosis is None else diagnosis
        self.diagnosis = diagnosis
        dashboard = self.dashboard
        for layer in diagnosis.layers:
            dashboard.path.panels[layer.name].set_state(layer)
            for state in layer.checks:
                self._apply_result(state.result)
        dashboard.banner.show(diagnosis)
        culprit = diagnosis.verdict.layer if diagnosis.verdict is not None else None
        if culprit is not None and culprit != self._culprit:
            # after the layout pass, so the panel's place reflects this round
            self.call_after_refresh(dashboard.show_culprit, culprit)
        self._culprit = culprit
        dashboard.header.set_overall(diagnosis.status)
        events = self.timeline.observe(diagnosis, partial=partial)
        dashboard.events.add(events)
        self._record_verdicts(events)
        for callback in self.on_diagnosis:
            callback(diagnosis)
        return diagnosis

    def _tick_probing(self) -> None:
        """The "probing… 1.4s" label's clock: app-side state only (ProbesStarted)."""
        now = time.monotonic()
        rows = self.dashboard.path.rows
        for check_id, started in self.inflight.items():
            elapsed = now - started
            if elapsed >= cells.PROBING_AFTER and check_id in rows:
                rows[check_id].set_probing(elapsed)

    def _tick_clock(self) -> None:
        self.dashboard.header.set_clock(clock_text(self.clock()))

    # ------------------------------------------------------------------ screens

    def open_screen(self, kind: type[ScreenT]) -> ScreenT | None:
        """The open screen of exactly this class, wherever it is in the stack."""
        return next((s for s in self.screen_stack if type(s) is kind), None)

    def raise_screen(self, screen: Screen) -> None:
        """Make an open screen the current one: the screens above it are dismissed (their
        callbacks get None, as if esc had been pressed)."""
        for _ in range(len(self.screen_stack)):
            if self.screen is screen or screen not in self.screen_stack:
                return
            self.screen.dismiss()

    if TYPE_CHECKING:

        @overload
        def push_screen(
            self,
            screen: Screen[Any] | str,
            callback: ScreenResultCallbackType[Any] | None = None,
            wait_for_dismiss: Literal[False] = False,
            *,
            mode: str | None = None,
        ) -> AwaitMount: ...

        @overload
        def push_screen(
            self,
            screen: Screen[Any] | str,
            callback: ScreenResultCallbackType[Any] | None = None,
            wait_for_dismiss: Literal[True] = True,
            *,
            mode: str | None = None,
        ) -> asyncio.Future[Any]: ...

    def push_screen(
        self,
        screen: Screen[Any] | str,
        callback: ScreenResultCallbackType[Any] | None = None,
        wait_for_dismiss: bool = False,
        *,
        mode: str | None = None,
    ) -> AwaitMount | asyncio.Future[Any]:
        """Every screen is open once: a screen of a kind already open is not pushed again,
        the open one becomes the current screen instead (the screens above it close).

        `v` pressed twice pushed a second verdict screen, and Textual stopped the app
        (DuplicateIds: two screens with one id); `? v ?` did the same with help, `i i`
        stacked two fault pickers. This is the one guard, for every caller (the demo's
        screens too): the action that asked for the screen gets the open one from
        `open_screen` to refresh. A second request that waits for the screen's result
        gets None (what esc gives), since the open one answers its own caller."""
        if isinstance(screen, Screen) and mode is None:
            shown = self.open_screen(type(screen))
            if shown is not None:
                self.raise_screen(shown)
                if wait_for_dismiss:
                    answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                    answered.set_result(None)
                    return answered
                return AwaitMount(shown, [])
        if wait_for_dismiss:
            return super().push_screen(screen, callback, wait_for_dismiss=True, mode=mode)
        return super().push_screen(screen, callback, mode=mode)

    # ------------------------------------------------------------------ actions

    async def action_invoke(self, action_id: str) -> None:
        """Run a registry action: every key, palette entry and help line comes here."""
        action = self.registry[action_id]
        if not self.action_enabled(action) or not self.in_scope(action):
            return
        outcome = action.run(self) if action.run is not None else getattr(self, f"do_{action.id}")()
        if inspect.isawaitable(outcome):
            await outcome

    def action_enabled(self, action: Action) -> bool:
        return action.enabled is None or bool(action.enabled(self))

    def in_scope(self, action: Action) -> bool:
        return action.scope != DASHBOARD or self.screen is self.dashboard

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """An action's keys work (and show in the footer) where it applies and while it is
        enabled: p is Pause while probing and Resume while paused, two bindings of which
        one is off; False lets the key go on to the next binding."""
        if action == "invoke" and parameters and parameters[0] in self.registry:
            registered = self.registry[str(parameters[0])]
            return self.action_enabled(registered) and self.in_scope(registered)
        return True

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity="information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """One toast at a time: a new one replaces the last (at 80x24 a stack of them
        covered half the path)."""
        self.clear_notifications()
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    async def action_quit(self) -> None:
        self.do_quit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers the registry's actions, as help lists them, and nothing of
        Textual's own (Theme, Maximize, Screenshot, Keys, Quit): help, which lists every
        key and action, never mentioned those, so the two told a newcomer different things."""
        for action in self.registry:
            if not action.palette or not self.action_enabled(action):
                continue
            if action.scope == DASHBOARD and screen is not self.dashboard:
                continue
            # The palette reads titles and help as markup: "[r]" would vanish unescaped.
            keys = action.keys_for_humans()
            words = action.help if keys == "palette" else f"{action.help} [{keys}]"
            yield SystemCommand(
                escape(action.label),
                escape(words),
                lambda action_id=action.id: self.run_action(f"invoke({action_id!r})"),
            )

    # the built-in actions -------------------------------------------------

    def do_cursor_down(self) -> None:
        self._cursor(+1)

    def do_cursor_up(self) -> None:
        self._cursor(-1)

    def _cursor(self, step: int) -> None:
        """j/k (and the arrows where nothing focused takes them): select on the dashboard,
        scroll on the detail, verdict, help, story and debrief screens, as ↑↓ do."""
        if self.screen is self.dashboard:
            self.dashboard.move(step)
            return
        scroller = next(iter(self.screen.query(f".{CURSOR_SCROLLS}")), None)
        if scroller is not None:
            (scroller.scroll_down if step > 0 else scroller.scroll_up)(animate=False)

    def do_panel_next(self) -> None:
        self.dashboard.jump_panel(+1)

    def do_panel_previous(self) -> None:
        self.dashboard.jump_panel(-1)

    def do_detail(self) -> None:
        dashboard = self.dashboard
        header = dashboard.header_for_focus()
        if header is not None:
            self.do_collapse()
            return
        row = dashboard.row_for_focus()
        if row is None:
            return
        self.push_screen(DetailScreen(row.check))
        screen = self.open_screen(DetailScreen)
        if screen is not None:
            screen.check = row.check  # an open detail shows the check asked for now
            self._show_detail(screen)

    def _show_detail(self, screen: DetailScreen) -> None:
        check_id = screen.check.id
        row = self.dashboard.path.rows[check_id]
        screen.show(row.result, tuple(self.history.get(check_id, ())), self.last_problem.get(check_id))

    def do_collapse(self) -> None:
        panel = self.dashboard.selected_panel()
        if panel is not None:
            panel.toggle()
            self.dashboard.refocus()
            self.call_after_refresh(self.dashboard.path.catch_up)

    def do_problems_only(self) -> None:
        self.problems_only = True

    def do_all_checks(self) -> None:
        self.problems_only = False

    def watch_problems_only(self, value: bool) -> None:
        self.dashboard.set_class(value, "-problems")
        self.dashboard.header.set_flags(paused=self.paused, problems_only=value)
        self.refresh_bindings()  # the footer says what f does now: All checks while filtered
        self.call_after_refresh(self.dashboard.refocus)
        self.call_after_refresh(self.dashboard.path.catch_up)

    def do_probe_now(self) -> None:
        self.start_round()

    def do_pause(self) -> None:
        self.paused = True

    def do_resume(self) -> None:
        self.paused = False

    def watch_paused(self, paused: bool) -> None:
        self.dashboard.header.set_flags(paused=paused, problems_only=self.problems_only)
        self.refresh_bindings()  # the footer says what p does now: Resume while paused
        if paused:
            if self._next_round is not None:
                self._next_round.stop()
                self._next_round = None
        elif not self.round_running:
            self.start_round()

    def watch_blind(self, blind: bool) -> None:
        self.dashboard.banner.set_class(blind, "-blind")
        self.dashboard.banner.refresh(layout=True)  # the prompt and the verdict wrap to other heights
        self.dashboard.events.set_blind(blind)
        self.refresh_bindings()

    def do_verdict(self) -> None:
        self.push_screen(VerdictScreen(self.diagnosis))
        screen = self.open_screen(VerdictScreen)
        if screen is not None:  # open already: v shows the verdict as it is now
            screen.show(self.diagnosis)

    def do_timeline(self) -> None:
        self._write_timeline(self._timeline_path())

    def do_help(self) -> None:
        self.push_screen(HelpScreen(self.registry))

    def do_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def do_quit(self) -> None:
        self.workers.cancel_group(self, PROBE_GROUP)
        self.exit(0)

    # ------------------------------------------------------------------ timeline

    def _timeline_path(self) -> Path:
        if self.record:
            return Path(self.record)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.layout.name).strip("-") or "layout"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        return Path(self.timeline_dir) / f"stackscope-{name}-{stamp}.md"

    def _write_timeline(self, path: Path, *, quiet: bool = False) -> Path | None:
        try:
            written = self.timeline.write(path, now=self.clock())
        except OSError as exc:
            if not quiet:
                self.notify(f"cannot write the timeline to {path}: {exc.strerror or exc}", severity="error")
            return None
        self.last_timeline_path = written
        if not quiet:
            self.notify(f"timeline written to {written}")
        return written


def _copy(history: History) -> History:
    copy = History(history.maxlen)
    for sample in history:
        copy.append(sample)
    return copy
