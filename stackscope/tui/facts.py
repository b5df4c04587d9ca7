"""Every fact of one check, as sections for the detail screen.

Rich renderables only (no Textual, no colours: emphasis is bold/dim and flags are
words and glyphs), so the sections are tested without an app and read the same with
NO_COLOR. Known fact families (HTTP, DNS, TLS, an LB pool) get a layout made for them;
any other key falls through to a generic tree, so a new check type shows everything it
reports without a change here.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from stackscope.history import Sample
from stackscope.model import Check, Result, Status
from stackscope.render.text import format_latency
from stackscope.timeline import human_duration
from stackscope.tui.cells import spark_char

Section = tuple[str, RenderableType]

HTTP_KEYS = (
    "status_code",
    "reason",
    "ip",
    "resolved",
    "redirects",
    "body_bytes",
    "body_truncated",
    "identity",
    "identities",
    "phases",
    "headers",
)
DNS_KEYS = ("server", "name", "record", "rcode", "transport", "ttl", "answers", "cname_chain")
TLS_KEYS = ("subject", "issuer", "san", "not_before", "not_after", "days_left", "verified", "protocol", "cipher")
POOL_COLUMNS = ("name", "address", "state", "check", "last_change_s", "sessions", "errors", "weight", "readmit_s")
# readmit_s: the longest the LB may keep the member out once it answers again
POOL_HEADERS = {"last_change_s": "changed", "sessions": "sess", "errors": "err", "weight": "wt", "readmit_s": "readmit"}
POOL_DROP_ORDER = ("readmit_s", "weight", "sessions", "errors", "last_change_s", "check")  # first to go when narrow
POOL_NUMERIC = ("last_change_s", "sessions", "errors", "weight", "readmit_s")


def sections(
    check: Check,
    result: Result | None,
    history: Iterable[Sample] = (),
    last_problem: Result | None = None,
    *,
    width: int = 76,
) -> list[Section]:
    """The detail screen, top to bottom: result, the fact families present, other facts,
    the latency history and the last problem seen."""
    out: list[Section] = [("Result", _result(check, result))]
    if result is None:
        return out
    facts = result.facts or {}
    used: set[str] = set()
    if _has_any(facts, ("status_code", "phases", "headers")):
        counted = facts.get("samples")
        samples = counted if isinstance(counted, int) else 1
        # Several samples: the latency is their mean, but the status, identity, phases and
        # headers are the last response's — say so, and list who answered each sample.
        last = f" — last of {samples} samples" if samples > 1 else ""
        http = _pairs(facts, [k for k in HTTP_KEYS[:-2] if k not in ("identity", "identities")])
        if samples > 1:
            http.add_row("samples", f"{samples} requests; latency is their mean, the rest is from the last one")
        if isinstance(facts.get("identities"), Mapping) and facts["identities"]:
            http.add_row(
                "answered by",
                ", ".join(
                    f"{name} ×{count}" for name, count in sorted(facts["identities"].items(), key=lambda i: -i[1])
                ),
            )
        if facts.get("identity"):
            http.add_row("identity" + (" (last)" if samples > 1 else ""), str(facts["identity"]))
        out.append(("HTTP", http))
        used.update(HTTP_KEYS)
        used.add("samples")
        if isinstance(facts.get("phases"), Mapping):
            out.append(("Phases (ms)" + last, phases_table(facts["phases"])))
        if isinstance(facts.get("headers"), Mapping) and facts["headers"]:
            out.append(("Headers" + last, _kv_table(facts["headers"], ("header", "value"))))
    if check.type == "dns" or _has_any(facts, ("rcode", "answers")):
        out.append(("DNS", _pairs(facts, DNS_KEYS)))
        used.update(DNS_KEYS)
    if _has_any(facts, ("not_after", "days_left", "issuer")):
        out.append(("Certificate", _pairs(facts, TLS_KEYS)))
        used.update(TLS_KEYS)
    if isinstance(facts.get("pool"), Mapping):
        out.append(("Pool: declared vs actual", pool_table(facts["pool"], width=width)))
        used.add("pool")
    if isinstance(facts.get("series"), list) and facts["series"]:
        out.append((_series_title(facts), series_table(facts["series"])))
        used.update(("series", "series_total", "series_detail", "failing"))
    rest = {k: v for k, v in facts.items() if k not in used}
    if rest:
        out.append(("Other facts", fact_tree(rest)))
    out.append(("Latency history", latency_graph(list(history), width=width)))
    if last_problem is not None:
        out.append(("Last problem", _last_problem(last_problem)))
    return out


# --------------------------------------------------------------------------- families


def _series_title(facts: Mapping[str, Any]) -> str:
    """'Series per zone (vantage points) — 1 of 3 failing' for a prometheus check."""
    per = facts.get("per")
    title = f"Series per {per}" if per else "Series"
    if facts.get("vantage"):
        title += " (vantage points)"
    total = facts.get("series_total", len(facts.get("series") or ()))
    failing = len(facts.get("failing") or ())
    shown = len(facts.get("series") or ())
    title += f" — {failing} of {total} failing" if failing else f" — {total} ok"
    return title + (f" (first {shown} shown)" if isinstance(total, int) and total > shown else "")


def series_table(series: list[Any]) -> RenderableType:
    """One row per series of a prometheus check: its key, status, value, why and labels."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("series", "status", "value", "labels"):
        table.add_column(column, no_wrap=column in ("status", "value"), overflow="fold")
    for row in series:
        if not isinstance(row, Mapping):
            continue
        try:
            status = Status[str(row.get("status", "unknown")).upper()]
        except KeyError:
            status = Status.UNKNOWN
        given = row.get("labels")
        labels = given if isinstance(given, Mapping) else {}
        table.add_row(
            str(row.get("key", "")),
            f"{status.glyph} {status.word}",
            str(row.get("why") or row.get("value", "")),
            ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "—",
        )
    return table


def _result(check: Check, result: Result | None) -> RenderableType:
    grid = _grid()
    grid.add_row("check", check.name)
    grid.add_row("target", f"{check.type} {check.target}")
    grid.add_row("layer", check.layer)
    if result is None:
        grid.add_row("status", "not probed yet")
        return grid
    grid.add_row("status", f"{result.status.glyph} {result.status.word}")
    grid.add_row("detail", result.detail)
    if result.key_fact:
        grid.add_row("key fact", result.key_fact)
    samples = (result.facts or {}).get("samples")
    mean = f" (mean of {samples} samples)" if isinstance(samples, int) and samples > 1 else ""
    grid.add_row("latency", format_latency(result.latency_ms) + mean)
    if result.error_kind is not None:
        grid.add_row("failure kind", str(result.error_kind))
    if result.started_at:
        grid.add_row("probed at", _clock(result.started_at))
    return grid


def phases_table(phases: Mapping[str, Any]) -> RenderableType:
    """Each phase of the request with a bar in proportion to the total."""
    order = [p for p in ("dns", "connect", "tls", "ttfb", "total") if p in phases]
    order += [p for p in phases if p not in order]
    values = {p: phases[p] for p in order if isinstance(phases[p], (int, float))}
    top = max(values.values(), default=0) or 1
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("phase")
    table.add_column("ms", justify="right")
    table.add_column("", ratio=1, no_wrap=True)
    for phase in order:
        value = phases[phase]
        if isinstance(value, (int, float)):
            table.add_row(phase, f"{value:.1f}", "█" * max(1 if value else 0, round(24 * value / top)))
        else:
            table.add_row(phase, _short(value), "")
    return table


def pool_table(pool: Mapping[str, Any], width: int = 76) -> RenderableType:
    """The LB's pool as the LB reports it, each server flagged against the layout.

    Declared servers the LB does not have are listed too, under the layout's name for
    them, so drift reads both ways and a pool that kept the names on other addresses is
    plain to see: an unexpected server is marked "⚠ unexpected", a matching one "✔ is
    auth-3", a missing one "✖ missing" (named auth-1)."""
    servers = [s for s in pool.get("servers", []) if isinstance(s, Mapping)]
    unexpected = set(pool.get("unexpected", []) or [])
    missing = list(pool.get("missing", []) or [])
    names = pool.get("declared_names") or {}
    names = names if isinstance(names, Mapping) else {}
    head = Text.assemble(
        ("backend ", "dim"), str(pool.get("backend", "?")), ("  source ", "dim"), str(pool.get("source", "?"))
    )
    counts = Text(
        f"declared {len(pool.get('declared', []) or [])} · in LB {len(servers)} · "
        f"missing {len(missing)} · unexpected {len(unexpected)}",
        style="dim",
    )
    rows = []
    for server in servers:
        address = str(server.get("address", ""))
        if address in unexpected or server.get("declared") is False:
            flag = Text("⚠ unexpected", style="bold reverse")
        else:
            label = server.get("declared_as")
            flag = Text(f"✔ is {label}" if label else "✔ declared")
        rows.append((flag, {column: _pool_cell(column, server.get(column)) for column in POOL_COLUMNS}))
    for address in missing:
        rows.append(
            (
                Text("✖ missing", style="bold reverse"),
                {"name": str(names.get(address, "—")), "address": str(address), "state": "absent"},
            )
        )
    # Never wrap a header or a cell mid-word: drop the columns that matter least until
    # the rest fit (the flag, name, address and state always stay).
    columns = list(POOL_COLUMNS)

    def needed(cols: list[str]) -> int:
        flag_w = max([cell_len(flag.plain) for flag, _ in rows] or [0])
        widths = [max([cell_len(_header(c))] + [cell_len(cells.get(c, "")) for _, cells in rows]) for c in cols]
        return flag_w + sum(widths) + 3 * len(cols)  # a pad, the box's blank separator, a pad

    for column in POOL_DROP_ORDER:
        if needed(columns) <= width:
            break
        columns.remove(column)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("", no_wrap=True)
    for column in columns:
        table.add_column(
            _header(column), justify="right" if column in POOL_NUMERIC else "left", no_wrap=True, overflow="ellipsis"
        )
    for flag, cells in rows:
        table.add_row(flag, *[cells.get(column, "") for column in columns])
    dropped = [_header(c) for c in POOL_COLUMNS if c not in columns]
    if dropped:
        counts.append(f" · not shown at this width: {', '.join(dropped)}")
    return Group(head, counts, table)


def fact_tree(facts: Mapping[str, Any], label: str = "facts") -> RenderableType:
    """Any facts as a tree: mappings and lists nest, scalars show as `key: value`."""
    tree = Tree(Text(label, style="dim"), guide_style="dim")
    _grow(tree, facts)
    return tree


def latency_graph(samples: list[Sample], *, width: int = 76, height: int = 5) -> RenderableType:
    """Recent latencies as columns (linear scale, max on the axis), one per round, with
    a row of status marks under them: × failed, ? unknown, · no answer."""
    width = max(10, width - 10)
    samples = samples[-width:]
    if not samples:
        return Text("no samples yet", style="dim")
    values = [s.latency_ms for s in samples]
    known = [v for v in values if v is not None]
    marks = "".join(
        " " if s.status in (Status.OK, Status.WARN) and s.latency_ms is not None else spark_char(s) for s in samples
    )
    if not known:
        return Text(f"no latency in {len(samples)} rounds (every probe failed): {marks.strip()}")
    top = max(known, default=0.0) or 1.0
    rows = []
    for level in range(height, 0, -1):
        line = []
        for value in values:
            if value is None:
                line.append(" ")
                continue
            filled = value / top * height
            if filled >= level:
                line.append("█")
            elif filled > level - 1:
                line.append("▁▂▃▄▅▆▇█"[min(7, int((filled - (level - 1)) * 8))])
            else:
                line.append(" ")
        axis = format_latency(top) if level == height else ("0" if level == 1 else "")
        rows.append(Text(f"{axis:>8} │" + "".join(line)))
    rows.append(Text(f"{'':>8} └" + marks))
    span = samples[-1].at - samples[0].at
    rows.append(
        Text(
            f"{'':>10}{len(samples)} rounds over {span:.0f}s, newest on the right; "
            f"min {format_latency(min(known)) if known else '—'}, max {format_latency(top)}",
            style="dim",
        )
    )
    return Group(*rows)


def _last_problem(result: Result) -> RenderableType:
    grid = _grid()
    grid.add_row("status", f"{result.status.glyph} {result.status.word}")
    grid.add_row("detail", result.detail)
    if result.started_at:
        grid.add_row("at", _clock(result.started_at))
    if result.error_kind is not None:
        grid.add_row("failure kind", str(result.error_kind))
    return grid


# --------------------------------------------------------------------------- helpers


def _has_any(facts: Mapping[str, Any], keys: Iterable[str]) -> bool:
    return any(k in facts for k in keys)


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _pairs(facts: Mapping[str, Any], keys: Iterable[str]) -> Table:
    grid = _grid()
    for key in keys:
        if key in facts and facts[key] not in (None, "", [], {}):
            grid.add_row(key.replace("_", " "), _value(facts[key]))
    return grid


def _kv_table(mapping: Mapping[str, Any], titles: tuple[str, str]) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column(titles[0], no_wrap=True)
    table.add_column(titles[1], overflow="fold")
    for key, value in mapping.items():
        table.add_row(str(key), _value(value))
    return table


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value) or "—"
    return _short(value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _header(column: str) -> str:
    return POOL_HEADERS.get(column, column.replace("_", " "))


def _pool_cell(column: str, value: Any) -> str:
    if value is None:
        return "—"
    if column == "last_change_s" and isinstance(value, (int, float)):
        return human_duration(value)
    if column == "readmit_s" and isinstance(value, (int, float)):
        return f"{value:g}s"
    return _short(value)


def _grow(tree: Tree, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list, tuple)) and item:
                _grow(tree.add(Text(str(key), style="bold")), item)
            else:
                tree.add(Text.assemble((f"{key}: ", "dim"), _value(item)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if isinstance(item, (Mapping, list, tuple)) and item:
                _grow(tree.add(Text(f"[{index}]", style="dim")), item)
            else:
                tree.add(_value(item))


def _clock(at: float) -> str:
    return _dt.datetime.fromtimestamp(at).astimezone().strftime("%H:%M:%S")
