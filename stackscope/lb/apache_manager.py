"""mod_proxy_balancer's balancer-manager page (Apache httpd 2.4), read as a pool.

The page is HTML: per balancer an `<h3>LoadBalancer Status for balancer://NAME …</h3>`,
a settings table (MaxMembers, StickySession, …, Method, Path, Active), then the worker
table: Worker URL, Route, RouteRedir, Factor, Set, Status, Elected, Busy, Load, To, From
(and, with mod_proxy_hcheck loaded, HC Method, HC Interval, Passes, Fails, HC uri, HC
Expr). Columns are found by their header text, never by position. Every string taken
from the page is made terminal-safe and cut short here, where it enters.

The Status cell is a word list built by httpd's ap_proxy_parse_wstatus: `Init` (set up),
`Ign`, `Drn`, `Dis`, `Stop`, `Err`, `Stby`, `Spar`, `HcFl`, … and `Ok` when the worker is
usable. How those map to the pool's service words is `service_of` below.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from stackscope.lb import readmit
from stackscope.lb.apache_conf import split_worker_url
from stackscope.lb.pool import BACKUP, DOWN_BY_CHECK, DRAIN, IN, MAINT, UNKNOWN, Pool, PoolServer, normalise
from stackscope.model import is_ip
from stackscope.probes.common import printable
from stackscope.redact import active as active_redactor

MAX_TABLES = 2000
MAX_ROWS = 20000
MAX_CELL = 2048
MAX_ROW_CELLS = 64  # the worker table has 17 columns with mod_proxy_hcheck
MAX_CELLS = 100_000  # for the whole page: about 5800 workers
SHOWN = 120  # characters of a cell kept (terminal-safe) for names, states, checks


class ManagerError(Exception):
    """The page is not a balancer-manager page, or not the balancer asked for."""


@dataclass(frozen=True)
class Worker:
    url: str
    cells: dict[str, str]  # header -> cell text, terminal-safe

    def get(self, name: str) -> str:
        return self.cells.get(name, "")

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(self.get("Status").split())


@dataclass(frozen=True)
class Balancer:
    name: str
    settings: dict[str, str]
    workers: tuple[Worker, ...]
    # why its workers cannot be read whole ("its worker table does not close"); "" when they
    # can. A pool read from half a table would be a smaller pool, a false verdict on the LB.
    problem: str = ""


# attributes are bounded, so a "<table" with no ">" costs one short scan, not one to the end
_BLOCK = re.compile(r"<(/?)(h3|table)\b[^<>]{0,2000}>", re.I)
_ROW_START = re.compile(r"<tr\b[^<>]{0,2000}>", re.I)
_CELL_START = re.compile(r"<t[dh]\b[^<>]{0,2000}>", re.I)
_CELL_END = re.compile(r"</t[dh]\s*>|</tr\s*>|</table\s*>", re.I)
_TAG = re.compile(r"<[^<>]*>")


def _events(text: str) -> list[tuple[str, int, object]]:
    """h3 headings and tables (rows of cell texts) in document order, with where each starts;
    a table still open where the text ends is an `unclosed` event at its start. Every step
    is a single pass of a regex with no backtracking across tags, so a hostile page costs
    time in proportion to its size (html.parser took 1 s for 1000 workers here). A page
    past the bounds below is refused, not read in part."""
    events: list[tuple[str, int, object]] = []
    budget = [MAX_CELLS]
    opened: dict[str, int] = {}
    depth = tables = 0
    for mark in _BLOCK.finditer(text):
        closing, tag = mark.group(1), mark.group(2).lower()
        if tag == "table":
            if not closing:
                depth += 1
                if depth == 1:
                    opened["table"] = mark.end()
            elif depth:
                depth -= 1
                if depth == 0:
                    tables += 1
                    if tables > MAX_TABLES:
                        raise ManagerError(f"more than {MAX_TABLES} tables: the page is not read in part")
                    start = opened.pop("table")
                    events.append(("table", start, _rows(text[start : mark.start()], budget)))
        elif not closing:
            opened["h3"] = mark.end()
        elif "h3" in opened:
            start = opened.pop("h3")
            events.append(("h3", start, _cell_text(text[start : mark.start()])))
    if depth:
        events.append(("unclosed", opened["table"], None))
    return events


def _rows(table: str, budget: list[int]) -> list[list[str]]:
    """The rows of one table; `budget` is the cells left for the whole page (a page of
    nothing but `<td>` must not cost a million cleaned cells). Past a bound the page is
    refused: the rows after it would be members missing from the pool."""
    chunks = _ROW_START.split(table)[1:]
    if len(chunks) > MAX_ROWS:
        raise ManagerError(f"a table of more than {MAX_ROWS} rows: the page is not read in part")
    rows = []
    for chunk in chunks:
        cells = []
        for cell in _CELL_START.split(chunk)[1 : MAX_ROW_CELLS + 1]:
            if budget[0] <= 0:
                raise ManagerError(f"more than {MAX_CELLS} table cells: the page is not read in part")
            budget[0] -= 1
            end = _CELL_END.search(cell)
            cells.append(_clean(_cell_text(cell[: end.start()] if end else cell)))
        rows.append(cells)
    return rows


def _cell_text(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment[:MAX_CELL]))


_PLAIN = re.compile(r"[\x20-\x7e]*")


def _clean(text: str) -> str:
    """Terminal-safe, white space folded, cut to SHOWN characters: printable() (which
    also masks the running probe's secrets) for any cell that needs it. A short cell of
    plain ASCII with no secret in it is already what printable() would return, and most
    cells are ("1.00", "Init Ok"): this keeps a 3000-worker page from costing seconds."""
    folded = " ".join(text.split())
    if len(folded) <= SHOWN and _PLAIN.fullmatch(folded) and not active_redactor().spans(folded):
        return folded
    return printable(folded.encode("utf-8", "replace"), limit=SHOWN)


_NAME = re.compile(r"balancer://([^\s\[\]/]+)")


UNCLOSED = "its worker table does not close (the page ends inside it: cut short, or not the manager's HTML)"
NO_WORKER_TABLE = "the page shows no worker table for it"


def parse_page(text: str) -> list[Balancer]:
    """Every balancer on the page, with its worker rows; ManagerError when the page is
    not a balancer-manager page. A balancer whose worker table is missing, or that the page
    ends inside of, carries a `problem` instead of an empty or shorter list of workers."""
    out: list[dict] = []
    current: dict | None = None
    for kind, start, value in _events(text):
        if kind == "unclosed":  # the balancer it belongs to, and every one whose heading is inside it
            owner = next((i for i in range(len(out) - 1, -1, -1) if out[i]["start"] < start), None)
            if owner is None:
                raise ManagerError("a table that does not close (the page ends inside it)")
            for item in out[owner:]:
                item["problem"] = UNCLOSED
            continue
        if kind == "h3":
            match = _NAME.search(str(value))
            if match:
                current = {"name": _clean(match.group(1)), "settings": {}, "workers": [], "start": start}
                out.append(current)
            continue
        if current is None:
            continue
        rows = [row for row in value if row]  # type: ignore[attr-defined]  # a table event carries a list of rows
        if not rows:
            continue
        header = rows[0]
        if "Worker URL" in header:
            current["table"] = True
            for row in rows[1:]:
                cells = dict(zip(header, row))
                if cells.get("Worker URL"):
                    current["workers"].append(Worker(cells["Worker URL"], cells))
        elif "MaxMembers" in header or "StickySession" in header:
            if len(rows) > 1:
                current["settings"] = dict(zip(header, rows[1]))
    if not out:
        raise ManagerError(_what_instead(text))
    return [_balancer(item) for item in out]


def _balancer(item: dict) -> Balancer:
    problem = item.get("problem") or ("" if item.get("table") else NO_WORKER_TABLE)
    return Balancer(item["name"], item["settings"], tuple(item["workers"]), problem)


def _what_instead(text: str) -> str:
    head = text.lstrip()[:400].lower()
    if not head:
        return "an empty page instead of the balancer-manager page"
    if "load balancer manager" in head or "loadbalancer status for" in head:
        return "a balancer-manager page with no balancers (is the balancer defined in this virtual host?)"
    if "<html" in head or "<!doctype" in head:
        return "an HTML page that is not the balancer-manager (is `SetHandler balancer-manager` on that path?)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"'{printable(first.encode('utf-8', 'replace'), limit=60)}' instead of the balancer-manager page"


# --------------------------------------------------------------------------- pool


def service_of(flags: tuple[str, ...]) -> tuple[str, bool, bool, bool]:
    """(service, receives traffic as a primary, serving, standby) for a Status word list.

    An admin's word outranks a health verdict: Dis/Stop (disabled or stopped by an admin,
    or `status=+D`/`+S` in the config) is MAINT whatever the checks say; then HcFl (failing
    mod_proxy_hcheck) and Err (a request to it failed; httpd retries it after `retry`) are
    DOWN_BY_CHECK; Drn (draining: sticky sessions only) is DRAIN; Stby/Spar (hot standby or
    spare: used only when the others are unusable) is BACKUP; Ok alone is IN. A worker
    showing none of these (only `Init`, `Shut`, `Free`) is UNKNOWN."""
    words = set(flags)
    if words & {"Dis", "Stop"}:
        return MAINT, False, False, False
    if words & {"HcFl", "Err"}:
        return DOWN_BY_CHECK, False, False, bool(words & {"Stby", "Spar"})
    if "Drn" in words:
        return DRAIN, False, False, False
    if words & {"Stby", "Spar"}:
        return BACKUP, False, "Ok" in words, True
    if "Ok" in words:
        return IN, True, True, False
    return UNKNOWN, False, False, False


def _state(flags: tuple[str, ...]) -> str:
    shown = [f for f in flags if f != "Init"]
    return " ".join(shown) or " ".join(flags) or "(no status)"


def _check(worker: Worker, flags: tuple[str, ...]) -> str:
    """The member's health check as mod_proxy_hcheck runs it ("GET /health"), and whether it
    is failing; empty when the worker has no active check (HC Method NONE, or no hcheck)."""
    method = worker.get("HC Method")
    if not method or method.upper() == "NONE":
        return ""
    text = f"{method} {worker.get('HC uri') or '/'}"
    if worker.get("HC Expr"):
        text += f" expr {worker.get('HC Expr')}"
    return f"{text} failed" if "HcFl" in flags else text


READMIT_SOURCE = (
    "the page's HC Interval x Passes + 0.1s for a worker with an active check, else httpd's default "
    f"retry ({readmit.APACHE_RETRY_S:g}s): the page does not show retry"
)


def readmit_of(worker: Worker) -> float | None:
    """The worker's re-admission window: with an active mod_proxy_hcheck check, the page's
    `HC Interval` (ms) and `Passes` (`1 (0)`: the setting, then the count so far) give
    readmit.apache_hcheck; without one, `retry` brings it back, which the page does not
    show, so httpd's default stands in (readmit.apache_retry). None for a cell that is
    not what httpd prints."""
    method = worker.get("HC Method")
    if not method or method.upper() == "NONE":
        return readmit.apache_retry()
    interval = readmit.apache_time(worker.get("HC Interval"))
    passes = _int(worker.get("Passes").split(" ", 1)[0])
    if interval is None or passes is None:
        return None
    return readmit.apache_hcheck(interval, passes)


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _weight(text: str) -> int | None:
    try:
        return round(float(text))
    except ValueError:
        return None


def pool_of(balancer: Balancer, source: str, resolved: dict[str, str] | None = None, unresolved_note: str = "") -> Pool:
    """The balancer's workers as a Pool; `resolved` maps worker host names to an IP."""
    servers = []
    workers = []  # in page order, as the servers (two workers may share a route)
    for worker in balancer.workers:
        flags = worker.flags
        service, receives, serving, standby = service_of(flags)
        address = None
        configured_as = None
        try:
            host, port, note = split_worker_url(worker.url)
        except ValueError as exc:
            host, port, note = None, None, str(exc)
        if host is not None and port is not None:
            if is_ip(host):
                address = normalise(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            else:
                configured_as = f"{host}:{port}"
                ip = (resolved or {}).get(host)
                if ip:
                    address = normalise(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
                else:
                    note = unresolved_note or "a host name that does not resolve here"
        name = worker.get("Route") or worker.url
        servers.append(
            PoolServer(
                name=name,
                address=address,
                state=_state(flags),
                receives_traffic=receives,
                serving=serving,
                check=_check(worker, flags),
                sessions=_int(worker.get("Busy")),
                weight=_weight(worker.get("Factor")),
                flags=tuple(f for f in flags if f not in ("Init", "Ok")),
                configured_as=configured_as or (worker.url if address is None else None),
                address_note="" if address else note,
                standby=standby,
                service=service,
                readmit_s=readmit_of(worker),
            )
        )
        workers.append(
            {
                key: worker.get(column)
                for key, column in (
                    ("url", "Worker URL"),
                    ("route", "Route"),
                    ("route_redir", "RouteRedir"),
                    ("factor", "Factor"),
                    ("set", "Set"),
                    ("status", "Status"),
                    ("elected", "Elected"),
                    ("busy", "Busy"),
                    ("load", "Load"),
                    ("to", "To"),
                    ("from", "From"),
                )
            }
        )
    extra: dict[str, Any] = {"workers": workers, "readmit_from": READMIT_SOURCE}
    if balancer.settings:
        extra["settings"] = dict(balancer.settings)
    return Pool(name=balancer.name, source=source, servers=tuple(servers), extra=extra)
