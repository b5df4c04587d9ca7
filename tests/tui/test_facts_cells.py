"""What rows and the detail screen show, tested without an app (no Textual needed)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

from rich.console import Console

from stackscope.history import Sample
from stackscope.model import Result, Status
from stackscope.tui import cells, facts
from tests import dashboard_data as data
from tests.conftest import ROOT


def plain(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def detail_text(result: Result, history=(), last=None) -> str:
    check = data.layout().check(result.check_id)
    return "\n".join(f"## {title}\n{plain(body)}" for title, body in facts.sections(check, result, history, last))


def test_sparkline_uses_a_fixed_log_scale_and_marks_failures():
    samples = [Sample(0, Status.OK, ms) for ms in (0.5, 2, 5, 20, 50, 200, 500, 5000)]
    assert cells.sparkline(samples, 8) == "▁▂▃▄▅▆▇█"
    jitter = [Sample(0, Status.OK, ms) for ms in (1.1, 1.9, 1.3, 2.8)]
    assert cells.sparkline(jitter, 4) == "▂▂▂▂"  # jitter inside a band repaints nothing
    mixed = [Sample(0, Status.CRIT, None), Sample(0, Status.UNKNOWN, None), Sample(0, Status.OK, 1.5)]
    assert cells.sparkline(mixed, 5) == "  ×?▂"


def test_row_latency_is_whole_milliseconds():
    assert [cells.row_latency(v) for v in (None, 0.4, 1.4, 9.6, 142.2, 12_345.0)] == [
        "—",
        "<1 ms",
        "1 ms",
        "10 ms",
        "142 ms",
        "12.3 s",
    ]


def test_fit_cuts_with_an_ellipsis_and_pads():
    assert cells.fit("abcdef", 4) == "abc…"
    assert cells.fit("ab", 4) == "ab  " and cells.fit("ab", 4, right=True) == "  ab"
    assert cells.fit("two\nlines", 20).startswith("two lines")


def test_http_detail_shows_phases_and_headers():
    text = detail_text(data.results()[data.B1])
    assert "## HTTP" in text and re.search(r"status code +200", text)
    assert "## Phases (ms)" in text and "connect" in text and "ttfb" in text
    assert "x-served-by" in text and "auth-1" in text
    assert "«redacted: 24 bytes»" in text  # secrets stay masked as the engine left them


def test_dns_detail_shows_answers_and_ttl():
    text = detail_text(data.results()[data.DNS])
    assert "## DNS" in text
    assert re.search(r"answers +127\.0\.0\.1", text) and re.search(r"ttl +30", text)
    assert re.search(r"rcode +NOERROR", text)


def test_pool_table_flags_unexpected_and_missing_servers():
    text = detail_text(data.results(broken=True)[data.LB])
    assert "## Pool: declared vs actual" in text
    assert "declared 3 · in LB 1 · missing 3 · unexpected 1" in text
    assert "⚠ unexpected" in text and "decoy-1" in text and "127.0.0.1:19101" in text
    assert text.count("✖ missing") == 3
    healthy = detail_text(data.results()[data.LB])
    assert healthy.count("✔ declared") == 3 and "⚠ unexpected" not in healthy


def test_certificate_facts_get_their_section():
    result = Result(
        "Load balancer/lb-health",
        Status.WARN,
        "certificate ends in 5 days",
        key_fact="5 days",
        facts={
            "subject": "CN=auth.stackscope.test",
            "issuer": "CN=test CA",
            "san": ["auth.stackscope.test"],
            "not_before": "2023-01-01",
            "not_after": "2023-11-20",
            "days_left": 5,
            "verified": True,
        },
    )
    text = detail_text(result)
    assert "## Certificate" in text and re.search(r"not after +2023-11-20", text)
    assert re.search(r"days left +5", text) and re.search(r"verified +yes", text)


def test_unknown_facts_show_as_a_tree():
    result = Result(
        "Database/postgres",
        Status.OK,
        "fine",
        latency_ms=1.0,
        facts={"replication": {"lag_s": 3, "replicas": ["db-2", "db-3"]}, "version": "16.1"},
    )
    text = detail_text(result)
    assert "## Other facts" in text
    assert "replication" in text and "lag_s: 3" in text and "db-2" in text and "version: 16.1" in text


def test_history_graph_and_last_problem():
    history = [Sample(data.T0 + i, Status.OK, 1.0 + i) for i in range(10)] + [Sample(data.T0 + 10, Status.CRIT, None)]
    last = Result(data.B1, Status.CRIT, "refused the connection", started_at=data.T0 + 10)
    text = detail_text(data.results()[data.B1], history, last)
    assert "## Latency history" in text and "10 ms │" in text and "11 rounds over 10s" in text
    assert "└" in text and "×" in text
    assert "## Last problem" in text and "refused the connection" in text


def test_cells_and_facts_do_not_import_textual():
    code = (
        "import sys, stackscope.tui.cells, stackscope.tui.facts, stackscope.timeline; print('textual' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "False", done.stderr


def test_pool_table_never_wraps_a_header_at_80_columns():
    result = data.results(broken=True)[data.LB]
    for width in (76, 56):
        text = plain(facts.pool_table(result.facts["pool"], width=width), width=width)
        header = next(line for line in text.splitlines() if " name " in f" {line} ")
        assert "address" in header and "state" in header  # whole words, on one line
        assert not any(line.strip() in ("sta", "te", "che", "ck") for line in text.splitlines())
        assert "127.0.0.1:19101" in text and "decoy-1" in text
    narrow = plain(facts.pool_table(result.facts["pool"], width=56), width=56)
    assert "not shown at this width: check, changed" in " ".join(narrow.split())
    wide = plain(facts.pool_table(result.facts["pool"], width=150), width=150)
    assert "not shown" not in wide and " sess " in wide and "changed" in wide


def test_a_sampled_http_check_says_which_sample_the_details_come_from():
    result = Result(
        data.LB,
        Status.OK,
        "200 OK — 3 requests answered by auth-1 ×2, auth-2 ×1 in 4 ms",
        latency_ms=4.0,
        key_fact="200",
        facts={
            "status_code": 200,
            "reason": "OK",
            "identity": "auth-2",
            "identities": {"auth-1": 2, "auth-2": 1},
            "samples": 3,
            "headers": {"x-served-by": "auth-2"},
            "phases": {"connect": 0.5, "ttfb": 2.0, "total": 2.6},
        },
    )
    text = detail_text(result)
    assert re.search(r"latency +4.0 ms \(mean of 3 samples\)", text)
    assert re.search(r"answered by +auth-1 ×2, auth-2 ×1", text)
    assert re.search(r"identity \(last\) +auth-2", text)
    assert "## Phases (ms) — last of 3 samples" in text and "## Headers — last of 3 samples" in text
    assert "## Other facts" not in text  # samples is not left over
    single = detail_text(data.results()[data.LB])
    assert "last of" not in single and "mean of" not in single


def test_pool_table_shows_the_layouts_names_so_kept_names_on_other_addresses_stand_out():
    """The 2023-12-07 shape: the pool kept the names auth1, auth2 but points elsewhere."""
    from stackscope.lb.pool import Declared, Pool, PoolServer, judge_pool

    declared = [Declared(f"127.0.0.1:1900{i}", f"auth-{i}", f"127.0.0.1:1900{i}") for i in (1, 2, 3)]
    servers = (
        PoolServer("auth1", "127.0.0.1:19101", "UP", True, True),
        PoolServer("auth2", "127.0.0.1:19102", "UP", True, True),
        PoolServer("auth3", "127.0.0.1:19003", "UP", True, True),
    )
    judged = judge_pool(Pool("auth_servers", "stats", servers), declared)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(facts.pool_table(judged.facts["pool"], width=100))
    text = console.file.getvalue()
    assert re.search(r"✔ is auth-3 +auth3 +127\.0\.0\.1:19003", text), text
    assert re.search(r"⚠ unexpected +auth1 +127\.0\.0\.1:19101", text), text
    assert re.search(r"✖ missing +auth-1 +127\.0\.0\.1:19001 +absent", text), text
    assert re.search(r"✖ missing +auth-2 +127\.0\.0\.1:19002 +absent", text), text


def test_a_row_keeps_a_latency_that_only_jitters_and_shows_a_real_move():
    assert cells.steady_latency(None, 2.0) == 2.0
    assert cells.steady_latency(2.0, 1.0) == 2.0 and cells.steady_latency(2.0, 3.4) == 2.0
    assert cells.steady_latency(2.0, 9.0) == 9.0 and cells.steady_latency(0.4, 2.8) == 0.4
    assert cells.steady_latency(100.0, 140.0) == 100.0 and cells.steady_latency(100.0, 160.0) == 160.0
    assert cells.steady_latency(2.0, None) is None


def test_a_sparkline_of_a_target_jittering_across_a_bound_does_not_change_as_it_shifts():
    """0.8-2.5 ms crosses the 1 ms bound every other round: the line stays one bar, so a
    new round of the same jitter repaints nothing; a real jump still shows at once."""
    jitter = [Sample(i, Status.OK, ms) for i, ms in enumerate((1.2, 0.8, 1.3, 0.9, 1.1, 0.85, 1.25, 0.9))]
    line = cells.SparkLine()
    shown = set()
    for i in range(4, len(jitter) + 1):
        line.feed(jitter[:i])
        shown.add(line.text(4))
    assert shown == {cells.BARS[1] * 4}, shown
    line.feed(jitter + [Sample(99, Status.OK, 50.0), Sample(100, Status.CRIT, None)])
    assert line.text(4) == cells.BARS[1] * 2 + cells.BARS[4] + cells.FAILED  # a real move shows at once


def test_pool_table_shows_each_members_readmit_window_and_drops_it_first():
    pool = {
        "backend": "be",
        "source": "stats",
        "servers": [
            {"name": "s1", "address": "127.0.0.1:1", "state": "DOWN", "declared": True, "readmit_s": 4.5},
            {"name": "s2", "address": "127.0.0.1:2", "state": "UP", "declared": True},
        ],
    }
    wide = plain(facts.pool_table(pool, width=150), width=150)
    assert " readmit" in wide and "4.5s" in wide and "not shown" not in wide
    narrow = " ".join(plain(facts.pool_table(pool, width=40), width=40).split())
    assert "readmit" in narrow.split("not shown at this width:", 1)[1] and "4.5s" not in narrow


def test_wrap_breaks_at_spaces_splits_only_an_overlong_word_and_counts_cells():
    assert cells.wrap("pool routes to 127.0.0.1:19101, 127.0.0.1:19102", 20) == [
        "pool routes to",
        "127.0.0.1:19101,",
        "127.0.0.1:19102",
    ]
    assert cells.wrap("see http://example.test/a/very/long/path now", 12) == [
        "see",
        "http://examp",
        "le.test/a/ve",
        "ry/long/path",
        "now",
    ]
    assert cells.wrap("日本語 日本語", 7) == ["日本語", "日本語"]  # six cells each: two do not fit in seven
    assert cells.wrap("✖ CRIT  Load balancer", 80) == ["✖ CRIT  Load balancer"]  # its spaces kept


def test_wrap_items_cuts_a_list_between_items_and_says_how_many_more():
    items = ["DNS: 127.0.0.1 as expected", "Auth backends: 3/3 answer 200", "Database: 1/1 accept"]
    assert cells.wrap_items("ruled out: ", items, "; ", 200, 1) == ["ruled out: " + "; ".join(items)]
    assert cells.wrap_items("ruled out: ", items, "; ", 45, 2) == [
        "ruled out: DNS: 127.0.0.1 as expected; Auth",
        "backends: 3/3 answer 200 (+1 more: v)",
    ]
    assert cells.wrap_items("ruled out: ", items, "; ", 40, 2) == [
        "ruled out: DNS: 127.0.0.1 as expected",
        "(+2 more: v)",
    ]
    # one item too long for its lines is still shown whole: a list never cuts an item
    assert cells.wrap_items("", ["127.0.0.1:19101 and 127.0.0.1:19102"], "; ", 16, 1) == [
        "127.0.0.1:19101",
        "and",
        "127.0.0.1:19102",
    ]
