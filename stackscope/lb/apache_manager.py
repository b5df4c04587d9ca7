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

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from stackscope.lb.apache_conf import split_worker_url
from stackscope.lb.pool import BACKUP, DOWN_BY_CHECK, DRAIN, IN, MAINT, UNKNOWN, Pool, PoolServer, normalise
from stackscope.probes.common import printable
from stackscope.schema import is_ip

MAX_TABLES = 2000
MAX_ROWS = 20000
MAX_CELL = 2048
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


class _Page(HTMLParser):
    """Collects h3 headings and tables (rows of cell texts) in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, object]] = []
        self._h3: list[str] | None = None
        self._tables: list[list[list[str]]] = []  # the tables open now (nested tables)
        self._cell: list[str] | None = None
        self.rows = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "h3":
            self._h3 = []
        elif tag == "table":
            if len(self._tables) < 8 and len(self.events) < MAX_TABLES:
                self._tables.append([])
        elif tag == "tr" and self._tables:
            self._end_cell()
            if self.rows < MAX_ROWS:
                self.rows += 1
                self._tables[-1].append([])
        elif tag in ("td", "th") and self._tables and self._tables[-1]:
            self._end_cell()
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._h3 is not None:
            self.events.append(("h3", "".join(self._h3)))
            self._h3 = None
        elif tag in ("td", "th"):
            self._end_cell()
        elif tag == "table" and self._tables:
            self._end_cell()
            self.events.append(("table", self._tables.pop()))

    def handle_data(self, data: str) -> None:
        if self._h3 is not None and sum(len(x) for x in self._h3) < MAX_CELL:
            self._h3.append(data)
        if self._cell is not None and sum(len(x) for x in self._cell) < MAX_CELL:
            self._cell.append(data)

    def _end_cell(self) -> None:
        if self._cell is not None and self._tables and self._tables[-1]:
            self._tables[-1][-1].append(_clean("".join(self._cell)))
        self._cell = None


def _clean(text: str) -> str:
    """Terminal-safe, white space folded, cut to SHOWN characters."""
    folded = " ".join(text.split())
    return printable(folded.encode("utf-8", "replace"), limit=SHOWN)


_NAME = re.compile(r"balancer://([^\s\[\]/]+)")


def parse_page(html: str) -> list[Balancer]:
    """Every balancer on the page, with its worker rows; ManagerError when the page is
    not a balancer-manager page."""
    page = _Page()
    try:
        page.feed(html)
        page.close()
    except Exception as exc:  # html.parser is lenient; anything it still chokes on is garbage
        raise ManagerError(f"unreadable HTML ({type(exc).__name__})") from None
    out: list[Balancer] = []
    current: dict | None = None
    for kind, value in page.events:
        if kind == "h3":
            match = _NAME.search(str(value))
            if match:
                if current is not None:
                    out.append(_balancer(current))
                current = {"name": _clean(match.group(1)), "settings": {}, "workers": []}
            continue
        if current is None:
            continue
        rows = [row for row in value if row]  # type: ignore[union-attr]
        if not rows:
            continue
        header = rows[0]
        if "Worker URL" in header:
            for row in rows[1:]:
                cells = dict(zip(header, row))
                if cells.get("Worker URL"):
                    current["workers"].append(Worker(cells["Worker URL"], cells))
        elif "MaxMembers" in header or "StickySession" in header:
            if len(rows) > 1:
                current["settings"] = dict(zip(header, rows[1]))
    if current is not None:
        out.append(_balancer(current))
    if not out:
        raise ManagerError(_what_instead(html))
    return out


def _balancer(item: dict) -> Balancer:
    return Balancer(item["name"], item["settings"], tuple(item["workers"]))


def _what_instead(html: str) -> str:
    head = html.lstrip()[:400].lower()
    if not head:
        return "an empty page instead of the balancer-manager page"
    if "load balancer manager" in head or "loadbalancer status for" in head:
        return "a balancer-manager page with no balancers (is the balancer defined in this virtual host?)"
    if "<html" in head or "<!doctype" in head:
        return "an HTML page that is not the balancer-manager (is `SetHandler balancer-manager` on that path?)"
    first = html.strip().splitlines()[0] if html.strip() else ""
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
    workers = {}
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
            )
        )
        workers[name] = {
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
    extra = {"workers": workers}
    if balancer.settings:
        extra["settings"] = dict(balancer.settings)
    return Pool(name=balancer.name, source=source, servers=tuple(servers), extra=extra)
