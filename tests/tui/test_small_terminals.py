"""What must hold on a small terminal: the arrows select checks whether or not the path
scrolls, and a long verdict is read whole.

A scrollable container takes ↑/↓ for itself as soon as it can scroll, so on a short
terminal (or with a two-line verdict) the arrows scrolled the path instead of selecting
the next check — while j/k still worked."""

from __future__ import annotations

import pytest

from stackscope.tui.widgets import CheckRow, PanelHeader
from tests.tui.stack import until
from tests.tui.test_dashboard_real import healthy, make_app, shared_stack  # noqa: F401, F811  (fixture)


@pytest.mark.parametrize("size", [(80, 14), (80, 24)], ids=["80x14 (path scrolls)", "80x24"])
async def test_arrows_select_like_j_and_k_whether_or_not_the_path_scrolls(shared_stack, tmp_path, size):  # noqa: F811
    app = make_app(shared_stack, tmp_path)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        first = app.focused
        assert isinstance(first, CheckRow)
        await pilot.press("down")
        assert isinstance(app.focused, PanelHeader) and app.focused.path_layer.name == "Load balancer"
        await pilot.press("down")
        assert isinstance(app.focused, CheckRow) and app.focused.check.name == "lb-health"
        await pilot.press("up", "up")
        assert app.focused is first
        path = app.dashboard.path
        last = list(path.rows.values())[-1]
        for _ in range(len(path.rows) + len(path.panels)):  # bounded: one press per row and title
            if app.focused is last:
                break
            await pilot.press("down")
        assert app.focused is last
        await pilot.pause()
        # the selected check is scrolled into view, as far as the path can scroll
        assert path.scroll_y == path.max_scroll_y
        assert (path.max_scroll_y > 0) == (size[1] < 20)


async def test_a_long_verdict_summary_wraps_onto_a_second_line_instead_of_being_cut():
    from stackscope.model import ErrorKind, Result, Snapshot, Status
    from stackscope.tui.app import StackscopeApp
    from tests import dashboard_data as data

    layout = data.layout()
    app = StackscopeApp(layout, engine=data.engine_with_history(layout), autoprobe=False, clock=lambda: data.T0 + 60)
    misrouted = (
        "pool auth_servers routes to 127.0.0.1:19101, 127.0.0.1:19102 — none is a declared backend; "
        "declared 127.0.0.1:19001-19003 missing"
    )
    lb = next(c for c in layout.checks() if c.layer == "Load balancer")
    results = {**data.results(), lb.id: Result(lb.id, Status.CRIT, misrouted, 2.0, "misrouted", {}, ErrorKind.POOL)}
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(False, at=data.T0))
        await pilot.pause()
        banner = app.dashboard.banner
        assert banner.size.height == 3  # healthy: head, proofs (cut), nothing more
        diagnosis = app.show_snapshot(Snapshot(layout, results, data.T0 + 60))
        await pilot.pause()
        summary = diagnosis.verdict.summary
        assert diagnosis.verdict.layer == "Load balancer" and len(summary) > 78
        shown = [line.strip() for line in banner.render().plain.splitlines()]
        assert banner.size.height == len(shown) == 5  # the list of what is ruled out wraps too
        assert " ".join(shown[1:3]) == summary  # every word of it, on two lines
        assert shown[3].startswith("ruled out:") and "…" not in "".join(shown)


async def test_a_row_that_loses_the_selection_keeps_no_highlight():
    """Its glyph and key fact are styled text: with the row's background baked in, the
    row kept the selection's colour until its next result (two rows looked selected)."""
    from stackscope.tui.app import StackscopeApp
    from tests import dashboard_data as data

    layout = data.layout()
    app = StackscopeApp(
        layout, engine=data.engine_with_history(layout, broken=True), autoprobe=False, clock=lambda: data.T0 + 60
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        first = app.focused
        assert isinstance(first, CheckRow)
        await pilot.press("j", "j")
        await pilot.pause()
        assert app.focused is not first
        painted = first.main.render()
        assert painted.plain.strip() and painted.spans
        # no span paints a background of its own: the row's (now unselected) one shows
        assert [span.style.bgcolor for span in painted.spans if span.style.bgcolor is not None] == []
