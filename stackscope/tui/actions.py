"""One registry of actions: it makes the key bindings, the command palette entries and
the help screen, so the three can never disagree.

An action is data: its keys, a label, one sentence of help, where it applies and what
it runs. The dashboard's own actions are listed here; a caller (the demo) passes more
to `StackscopeApp(actions=...)` — a fault-injection key, answer keys 1–4 — and they
appear in the footer, the palette and the help exactly like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackscope.tui.app import StackscopeApp

Handler = Callable[["StackscopeApp"], "Awaitable[Any] | Any"]
Enabled = Callable[["StackscopeApp"], bool]

APP, DASHBOARD = "app", "dashboard"


@dataclass(frozen=True)
class Action:
    """A thing the user can do, by key, from the palette, and listed in help.

    `run` receives the app; without it the app's method `do_<id>` runs. `scope` says
    where the keys work: APP on every screen, DASHBOARD on the main screen only.
    `bind=False` documents keys that Textual itself handles (tab, ctrl+p); an action
    with no keys at all is offered by the palette only (help says "palette").
    `footer_rank` puts the action in the footer: lower ranks come first and are the last
    to go when the width runs out (help and quit always stay); None keeps it out of the
    footer. A caller's actions take ranks between the built-in ones (which step by 10).
    `footer_label` is the footer's shorter word ("Answer" for the keys 1-4).
    `keymap_id` names the action's keys in a user keymap (default: its id); two actions
    that are one key's two states (pause and resume on p) share it, and their keys.
    """

    id: str
    keys: str  # Textual key names, comma-separated: "r", "down,j", "question_mark"
    label: str
    help: str
    run: Handler | None = None
    scope: str = APP
    footer_rank: int | None = None
    palette: bool = True
    bind: bool = True
    priority: bool = False
    enabled: Enabled | None = None
    key_display: str | None = None
    footer_label: str | None = None
    keymap_id: str | None = None

    @property
    def binding_id(self) -> str:
        """The id of the action's Textual bindings, which a user keymap remaps."""
        return self.keymap_id or self.id

    @property
    def action_string(self) -> str:
        """The Textual action every binding of this action runs."""
        return f"app.invoke({self.id!r})"

    def keys_for_humans(self) -> str:
        """Every key of the action, for help (the footer shows `key_display`, shorter)."""
        if not self.keys.strip():
            return "palette"
        return " / ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in self.keys.split(","))


_KEY_NAMES = {
    "question_mark": "?",
    "space": "space",
    "escape": "esc",
    "enter": "enter",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "ctrl+q": "ctrl+q",
    "ctrl+p": "ctrl+p",
    "shift+tab": "shift+tab",
}


class ActionRegistry:
    """The actions in the order help lists them; a later action replaces one with its id."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        for action in actions:
            self.add(action)

    def add(self, action: Action) -> None:
        self._actions[action.id] = action

    def __getitem__(self, action_id: str) -> Action:
        return self._actions[action_id]

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def in_scope(self, scope: str) -> list[Action]:
        return [a for a in self if a.scope == scope]

    def footer(self) -> list[Action]:
        """The footer's actions, most important (lowest `footer_rank`) first."""
        ranked = [(a.footer_rank, index, a) for index, a in enumerate(self) if a.footer_rank is not None]
        return [a for _, _, a in sorted(ranked, key=lambda item: (item[0], item[1]))]

    def binding_ids(self) -> set[str]:
        """The ids a user keymap may name: those of actions with keys of their own."""
        return {a.binding_id for a in self if a.bind}

    def with_keys(self, keymap: dict[str, str]) -> ActionRegistry:
        """The registry with a user keymap's keys (binding id -> comma-separated keys), so
        help, the palette and the clash check show what the keys are now."""
        out = ActionRegistry()
        for action in self:
            keys = keymap.get(action.binding_id) if action.bind else None
            out.add(action if keys is None else replace(action, keys=keys, key_display=None))
        return out

    def conflicts(self) -> list[str]:
        """Keys bound twice, in any scope (a caller's action shadowing another, a keymap
        giving one key two jobs); actions that share a keymap id share keys on purpose."""
        seen: dict[str, Action] = {}  # every scope: all the bindings live on the app
        clashes = []
        for action in self:
            if not action.bind:
                continue
            for key in filter(None, (k.strip() for k in action.keys.split(","))):
                other = seen.setdefault(key, action)
                if other.binding_id != action.binding_id:
                    clashes.append(f"{key}: {other.id} and {action.id}")
        return clashes


def _enabled_when_pushed(app: StackscopeApp) -> bool:
    return len(app.screen_stack) > 1


def _verdict_visible(app: StackscopeApp) -> bool:
    return not app.blind


def _probing(app: StackscopeApp) -> bool:
    return not app.paused


def _paused(app: StackscopeApp) -> bool:
    return app.paused


def _all_shown(app: StackscopeApp) -> bool:
    return not app.problems_only


def _problems_only(app: StackscopeApp) -> bool:
    return app.problems_only


BUILTIN: tuple[Action, ...] = (
    # moving around the dashboard
    Action(
        "cursor_down",
        "down,j",
        "Next row",
        "Select the next check or panel (on other screens: scroll down).",
        palette=False,
    ),
    Action(
        "cursor_up",
        "up,k",
        "Previous row",
        "Select the previous check or panel (on other screens: scroll up).",
        palette=False,
    ),
    Action(
        "panel_next", "right,l", "Next panel", "Jump to the next layer on the path.", scope=DASHBOARD, palette=False
    ),
    Action(
        "panel_previous",
        "left,h",
        "Previous panel",
        "Jump to the previous layer on the path.",
        scope=DASHBOARD,
        palette=False,
    ),
    Action(
        "focus_cycle",
        "tab,shift+tab",
        "Cycle focus",
        "Move through panels, checks and the events pane.",
        bind=False,
        palette=False,
    ),
    Action(
        "detail",
        "enter",
        "Detail",
        "Every fact of the selected check: phases, headers, answers, pool, "
        "certificate, latency history, last problem (on a panel title: collapse or expand).",
        scope=DASHBOARD,
        footer_rank=10,
    ),
    Action("collapse", "space", "Collapse", "Collapse or expand the selected panel.", scope=DASHBOARD),
    Action(
        "problems_only",
        "f",
        "Problems",
        "Show only checks that are not OK (again: show all).",
        scope=DASHBOARD,
        footer_rank=30,
        enabled=_all_shown,
    ),
    # f's other state: the footer and the palette say what f does now
    Action(
        "all_checks",
        "f",
        "All checks",
        "Show every check again (while only problems show).",
        scope=DASHBOARD,
        footer_rank=30,
        enabled=_problems_only,
        keymap_id="problems_only",
    ),
    # probing
    Action("probe_now", "r", "Probe", "Start a round now instead of waiting for the interval.", footer_rank=40),
    Action(
        "pause",
        "p",
        "Pause",
        "Stop probing (the screen keeps the last results); again to resume.",
        footer_rank=50,
        enabled=_probing,
    ),
    # p's other state: the footer and the palette say what p does now
    Action(
        "resume",
        "p",
        "Resume",
        "Probe again at the interval (while paused).",
        footer_rank=50,
        enabled=_paused,
        keymap_id="pause",
    ),
    # reading
    Action(
        "verdict",
        "v",
        "Verdict",
        "The verdict in full: evidence, everything ruled out, what else fails.",
        enabled=_verdict_visible,
    ),
    Action("timeline", "t", "Timeline", "Write the incident timeline (Markdown postmortem draft) now.", footer_rank=60),
    Action("help", "question_mark,f1", "Help", "List every key and what it does.", footer_rank=80),
    Action("palette", "ctrl+p", "Command palette", "Search and run any action by name.", bind=False, palette=False),
    Action(
        "back",
        "escape",
        "Back",
        "Close the detail, verdict or help screen.",
        palette=False,
        footer_rank=70,
        enabled=_enabled_when_pushed,
    ),
    Action(
        "quit",
        "q,ctrl+q",
        "Quit",
        "Leave now, even while probes hang (--record writes the timeline).",
        footer_rank=90,
        priority=False,
        key_display="q",
    ),
)
