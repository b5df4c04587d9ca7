"""The live dashboard (`stackscope watch`), built on Textual.

Only this package imports Textual, and only when the dashboard opens: `stackscope
check` and the core (layout, engine, diagnosis, timeline) stay lean. Importing the
package itself imports nothing heavy; `run_dashboard` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackscope.model import Layout


def run_dashboard(layout: Layout, *, record: str | None = None, **app_options: Any) -> int:
    """Open the dashboard until the user quits; the timeline goes to `record` on exit
    (and the recording, when the caller opened one, to `app_options["recorder"]` as it runs).
    SIGTERM and SIGHUP (the SSH link dropped) quit it the same way, exit code 0.

    `app_options` go to StackscopeApp: `actions`, `blind`, `on_diagnosis`, `engine`…
    (the demo passes its fault-injection and answer actions this way). The user's keymap
    (keymap.py) is applied; a broken one is reported and the dashboard does not open."""
    from stackscope.engine import raise_fd_limit, settle_memory
    from stackscope.exits import EXIT_UNKNOWN
    from stackscope.tui.app import StackscopeApp
    from stackscope.tui.keymap import user_keymap

    keymap = user_keymap(app_options.get("actions", ()))
    if keymap is None:
        return EXIT_UNKNOWN
    raise_fd_limit()
    app = StackscopeApp(layout, record=record, handle_signals=True, keymap=keymap, **app_options)
    settle_memory()  # the layout, engine and widgets live as long as the app
    app.run()
    return app.return_code or 0
