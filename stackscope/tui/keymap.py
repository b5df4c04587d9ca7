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

A key is checked before it is used (`key_problem`): the footer, help and the palette
write it to the terminal, so a "key" holding an escape sequence or a bidi override would
drive the terminal, and one of 100,000 characters would fill it. A key is a printable
character or a name Textual gives a key (`textual.keys`), after modifiers Textual
reports, and at most MAX_KEY characters long; anything else is a located problem.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace

from textual.keys import KEY_ALIASES, REPLACED_KEYS, Keys, key_to_character

from stackscope.kinds import did_you_mean
from stackscope.layout import LayoutError, Problem, read_yaml
from stackscope.safetext import is_terminal_safe
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
            problems.append(Problem(path, line, _quoted(str(binding_id)), "no action has this id", fix))
            continue
        keys = _keys(node.plain())
        if keys is None:
            problems.append(Problem(path, line, binding_id, "keys must be a key name or a list of them", _EXAMPLE))
            continue
        bad = [(key, why) for key in keys.split(",") if (why := key_problem(key))]
        for key, why in bad:
            problems.append(Problem(path, line, binding_id, f"'{_quoted(key)}' {why}", _key_fix(key)))
        if len(keys.split(",")) > MAX_KEYS:
            problems.append(
                Problem(path, line, binding_id, f"more than {MAX_KEYS} keys for one action", "keep a few keys")
            )
        if bad or len(keys.split(",")) > MAX_KEYS:
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


# The longest key Textual names, with every modifier, is under 60 characters.
MAX_KEY = 64
MAX_KEYS = 20  # keys for one action
# The modifiers Textual puts in front of a key's name, in any order.
MODIFIERS = ("shift", "alt", "ctrl", "super", "hyper", "meta")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@functools.cache
def named_keys() -> frozenset[str]:
    """The names Textual gives keys that are no character (escape, f5, tab, pageup…),
    without their modifiers: those of the public `textual.keys.Keys` and its aliases."""
    names = {key.value.rsplit("+", 1)[-1] for key in Keys if not key.value.startswith("<")}
    names |= {alias.rsplit("+", 1)[-1] for aliases in KEY_ALIASES.values() for alias in aliases}
    return frozenset(names)


def _printable(character: str | None) -> bool:
    return (
        character is not None
        and len(character) == 1
        and character.isprintable()
        and is_terminal_safe(character)
        and not character.isspace()  # a space is 'space'
    )


def key_problem(key: str) -> str | None:
    """Why `key` is no key Textual knows (the words after the quoted key), or None: it
    is a printable character ('g', '?', 'é') or a key's name ('escape', 'f5', 'slash',
    'question_mark'), after modifiers ('ctrl+x', 'shift+tab', 'ctrl+alt+delete')."""
    if len(key) > MAX_KEY:
        return f"is {len(key)} characters long: no key is named that long (at most {MAX_KEY})"
    *modifiers, base = key.split("+")
    if "" in (*modifiers, base):
        return "has nothing on one side of a '+' (the + key is 'plus')"
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            return f"has '{modifier}' where a modifier goes ({', '.join(MODIFIERS)})"
    if len(set(modifiers)) < len(modifiers):
        return "names a modifier twice"
    if len(base) == 1:
        return None if _printable(base) else "is not a printable character"
    if base in named_keys():
        return None
    if _NAME.fullmatch(base) and _printable(key_to_character(REPLACED_KEYS.get(base, base))):
        return None  # a character's name: 'slash', 'question_mark', 'full_stop'
    return "is not a key Textual knows"


def _key_fix(key: str) -> str:
    base = key.rsplit("+", 1)[-1]
    guess = did_you_mean(base, sorted(named_keys())) if len(key) <= MAX_KEY else ""
    return guess or (
        "write one printable character or a Textual key name, with modifiers if any: "
        "g, ?, ctrl+x, f5, shift+tab, escape, pageup (a comma is 'comma', + is 'plus')"
    )


def _quoted(text: str, limit: int = 40) -> str:
    """`text` shortened for a problem (which makes it terminal-safe)."""
    return text if len(text) <= limit else text[:limit] + "…"


def _keys(value: object) -> str | None:
    """'g', 'x,ctrl+f' or ['q', 'ctrl+c'] as Textual's comma-separated key list."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            return None
        names += [part.strip() for part in item.split(",") if part.strip()]
    return ",".join(names) or None
