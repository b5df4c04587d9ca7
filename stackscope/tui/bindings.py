"""Key bindings made from the action registry, with ids a user keymap can remap.

Textual reads a node's bindings from its class (BINDINGS, merged along the MRO when the
class is made). The dashboard's actions are known only per app (the demo adds its own),
so each app is an instance of a subclass made here for its actions: public Textual all
the way, where the app used to write into a node's private BindingsMap.

Every binding runs `app.invoke(<action id>)` and has the action's `binding_id` as its
id, so `App.set_keymap({"probe_now": "g"})` moves it. What a key does in a given state
(Pause or Resume on p) is the app's `check_action`, not a rewritten binding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from textual.binding import Binding
from textual.dom import DOMNode

from stackscope.tui.actions import Action

N = TypeVar("N", bound=DOMNode)


def bindings_for(actions: Iterable[Action]) -> list[Binding]:
    """One Binding per action that has keys Textual should handle."""
    return [
        Binding(
            action.keys,
            action.action_string,
            action.footer_label or action.label,
            show=action.footer_rank is not None,
            key_display=action.key_display,
            priority=action.priority,
            id=action.binding_id,
        )
        for action in actions
        if action.bind and action.keys.strip()
    ]


def with_bindings(node_class: type[N], bindings: list[Binding]) -> type[N]:
    """`node_class` with `bindings` added: a subclass of the same name and module (so CSS
    type selectors and CSS_PATH resolve as for the class itself)."""
    namespace = {"BINDINGS": bindings, "__module__": node_class.__module__, "__doc__": node_class.__doc__}
    return type(node_class.__name__, (node_class,), namespace)
