"""The user's keymap: their keys for the dashboard's actions, from a small YAML file.

    # ~/.config/stackscope/keymap.yaml (or the file $STACKSCOPE_KEYMAP names)
    probe_now: g
    problems_only: "x,ctrl+f"
    quit: [q, ctrl+c]

Each key of the file is a binding id (an action's id: `stackscope watch`'s help lists
them), each value the keys, as Textual names them, that replace the action's own. The
app applies it with `App.set_keymap`, as Posting does; help and the palette show the new
keys. A mistake stops the dashboard before it opens, naming the file, the line and the
id, like a layout problem does: a keymap that silently did nothing would be worse.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace

from stackscope.layout import LayoutError, Problem, read_yaml
from stackscope.tui.actions import BUILTIN, Action, ActionRegistry
from stackscope.words import plural

KEYMAP_ENV = "STACKSCOPE_KEYMAP"


def keymap_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The keymap file to read: $STACKSCOPE_KEYMAP if set (it must exist), else
    $XDG_CONFIG_HOME (or ~/.config)/stackscope/keymap.yaml if there is one."""
    environ = os.environ if environ is None else environ
    named = environ.get(KEYMAP_ENV)
    if named:
        return named
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(config, "stackscope", "keymap.yaml")
    return path if os.path.isfile(path) else None


def load_keymap(path: str, registry: ActionRegistry) -> dict[str, str]:
    """The keymap in `path` (binding id -> comma-separated keys), checked against the
    actions in `registry`; LayoutError with every problem, each at its line."""
    try:
        root = read_yaml(path)  # the bounded reader (files.py): no FIFO, no /dev/zero
    except LayoutError as error:  # its fixes speak of layouts: this is a keymap
        raise LayoutError([replace(p, fix=_FIX) if not p.line else p for p in error.problems]) from None
    if root.value is None:
        return {}
    if not isinstance(root.value, dict):
        raise LayoutError([Problem(path, root.line, "", "a keymap is a mapping of action ids to keys", _EXAMPLE)])
    known = registry.binding_ids()
    problems: list[Problem] = []
    keymap: dict[str, str] = {}
    for binding_id, node in root.value.items():
        line = root.key_lines.get(binding_id, node.line)
        if binding_id not in known:
            fix = "one of: " + ", ".join(sorted(known))
            problems.append(Problem(path, line, str(binding_id), "no action has this id", fix))
            continue
        keys = _keys(node.plain())
        if keys is None:
            problems.append(Problem(path, line, binding_id, "keys must be a key name or a list of them", _EXAMPLE))
            continue
        keymap[binding_id] = keys
    if not problems:
        for clash in registry.with_keys(keymap).conflicts():
            key = clash.split(":", 1)[0]
            ids = [i for i, keys in keymap.items() if key in keys.split(",")]
            where = ids[0] if ids else ""
            line = root.key_lines.get(where, root.line)
            problems.append(Problem(path, line, where, f"key bound twice ({clash})", "give each action its own keys"))
    if problems:
        raise LayoutError(problems)
    return keymap


_EXAMPLE = 'for example  probe_now: g  or  quit: [q, "ctrl+c"] (quote yes, no, on and off)'
_FIX = f"point ${KEYMAP_ENV} at a regular YAML file, or remove it (README: Dashboard, your own keys)"


def user_keymap(actions: Iterable[Action] = (), environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The user's keymap for an app with `actions` besides the built-in ones ({} without
    a file), or None after printing its problems to stderr (the dashboard does not open)."""
    path = keymap_path(environ)
    if path is None:
        return {}
    try:
        return load_keymap(path, ActionRegistry([*BUILTIN, *actions]))
    except LayoutError as error:
        print(f"stackscope: keymap {path}: {plural(len(error.problems), 'problem')}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _keys(value: object) -> str | None:
    """'g', 'x,ctrl+f' or ['q', 'ctrl+c'] as Textual's comma-separated key list."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            return None
        names += [part.strip() for part in item.split(",") if part.strip()]
    return ",".join(names) or None
