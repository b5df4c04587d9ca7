"""HAProxy's view of a backend, from the stats CSV and the Runtime API.

Parsed by header names, never positions (fields after the fixed 0-99 may change between
versions). The CSV over HTTP hides server addresses unless the stats frontend has
`stats show-legends`; `show servers state` on the admin socket gives them at every
level, so the socket path asks for both and merges them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from stackscope.lb import readmit
from stackscope.lb.pool import (
    BACKUP,
    DOWN_BY_CHECK,
    DRAIN,
    IN,
    MAINT,
    NOLB,
    UNKNOWN,
    Pool,
    PoolServer,
    normalise,
)
from stackscope.model import Address
from stackscope.safetext import SHOWN_INSTEAD, terminal_safe


class StatsError(Exception):
    """The reply is not what HAProxy sends; the message says what it was instead (quoting
    the server's bytes, so control characters are replaced here, at the source)."""

    def __init__(self, message: str) -> None:
        super().__init__(terminal_safe(message))


class RefusedCommand(ValueError):
    """A Runtime API command outside the read-only allow-list. It is never sent: the
    admin socket obeys `disable server`, `shutdown frontend` and `set weight` from anyone
    who can open it, and a probe must never change what it probes."""


# The only commands a probe sends, with the grammar of each argument. `show stat` takes
# none or all three of {iid|proxy} type sid; `show servers state` an optional backend.
_PROXY = re.compile(r"[A-Za-z0-9_.:-]{1,255}")  # HAProxy's own name characters, or a numeric id
_NUMBER = re.compile(r"-?[0-9]{1,10}")
_NOT_IN_A_COMMAND = re.compile(r"[^A-Za-z0-9_.:\- ]")
READ_ONLY_COMMANDS: dict[str, tuple[tuple[re.Pattern[str], ...], ...]] = {
    "show info": ((),),
    "show stat": ((), (_PROXY, _NUMBER, _NUMBER)),
    "show servers state": ((), (_PROXY,)),
}


def check_read_only(command: str) -> str:
    """`command` if it is one of READ_ONLY_COMMANDS with well-formed arguments, else
    RefusedCommand saying why. Exact words, no `;` or line break: those would let one
    string carry a second command."""
    if not isinstance(command, str) or not command:
        raise RefusedCommand("an empty command")
    found = _NOT_IN_A_COMMAND.search(command)
    if found is not None:
        bad = found.group()
        what = {";": "';' (a second command)", "\n": "a line break (a second command)"}.get(bad, repr(bad))
        raise RefusedCommand(f"it holds {what}")
    words = command.split(" ")
    for size in (3, 2):
        verb = " ".join(words[:size])
        if verb in READ_ONLY_COMMANDS:
            args = words[size:]
            for grammar in READ_ONLY_COMMANDS[verb]:
                if len(args) == len(grammar) and all(p.fullmatch(a) for p, a in zip(grammar, args)):
                    return command
            raise RefusedCommand(f"'{verb}' does not take the arguments {' '.join(args)!r}")
    raise RefusedCommand("it is not a read-only command (" + ", ".join(READ_ONLY_COMMANDS) + ")")


def runtime_api_line(commands: Sequence[str]) -> bytes:
    """The one line that asks for `commands`, each checked by check_read_only; the `;`
    between them is the only one ever sent."""
    if not commands:
        raise RefusedCommand("no command")
    return ";".join(check_read_only(command) for command in commands).encode("ascii") + b"\n"


@dataclass(frozen=True)
class ServerState:
    """One row of `show servers state`."""

    name: str
    address: str | None  # None when HAProxy has none yet (srv_addr '-': unresolved, init-addr none)
    op_state: int  # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int  # bitmask: 0x01|0x02|0x04|0x20 maintenance, 0x08|0x10 drain
    since_change: int | None


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of a stats CSV as dicts keyed by the header names."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0][2:].split(",") if lines and lines[0].startswith("# ") else []
    if "pxname" not in header or "svname" not in header:
        raise StatsError(_what_instead(text, "a stats CSV (a '# pxname,svname,…' header)"))
    rows = []
    # NUL is not text (and Python 3.10's csv refuses a line that holds one): shown as the
    # mark terminal-safe text uses for what cannot be shown
    body = "\n".join(lines[1:]).replace("\x00", SHOWN_INSTEAD)
    for values in csv.reader(io.StringIO(body)):
        if not values:
            continue
        rows.append({name: (values[i] if i < len(values) else "") for i, name in enumerate(header) if name})
    return rows


def parse_servers_state(text: str) -> list[ServerState]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("# be_id"):
        raise StatsError(_what_instead(text, "'show servers state' output (format 1)"))
    header = lines[1][2:].split()
    out = []
    for line in lines[2:]:
        values = dict(zip(header, line.split()))
        try:
            address = (
                None if values["srv_addr"] in ("-", "") else str(Address(values["srv_addr"], int(values["srv_port"])))
            )
            out.append(
                ServerState(
                    name=values["srv_name"],
                    address=address,
                    op_state=int(values["srv_op_state"]),
                    admin_state=int(values["srv_admin_state"]),
                    since_change=_int(values.get("srv_time_since_last_change", "")),
                )
            )
        except (KeyError, ValueError):
            raise StatsError(f"unreadable 'show servers state' row: {line[:80]}") from None
    return out


def _what_instead(text: str, wanted: str) -> str:
    head = text.lstrip()[:200].lower()
    if not head:
        return f"empty reply instead of {wanted}"
    if head.startswith(("<!doctype", "<html")) or "<html" in head:
        return f"an HTML page instead of {wanted}"
    first = text.strip().splitlines()[0][:80]
    return f"'{first}' instead of {wanted}"


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# The stats `status` column for a server, and what it means for traffic.
def _traffic(status: str, backup: bool = False) -> tuple[bool, bool, str]:
    """(receives new traffic as a primary, serving, service) for a server status word. A
    backup server that is UP is a standby, as a `backup` line in a config is: it receives
    traffic only when the primaries fail."""
    word = status.strip()
    if word.startswith("UP") or word == "no check":  # UP 1/3 is going down, still in rotation
        return not backup, True, BACKUP if backup else IN
    for prefix, service in (("DOWN", DOWN_BY_CHECK), ("MAINT", MAINT), ("DRAIN", DRAIN), ("NOLB", NOLB)):
        if word.startswith(prefix):  # no new requests
            return False, False, service
    return False, False, UNKNOWN


# check_status words of a check that passed, or that has not run (INI, UNK) or is off
_CHECK_PASSES = {"L7OK", "L4OK", "L6OK", "L7OKC", "INI", "UNK", "", "CHECKED"}


def _check_text(row: dict[str, str]) -> str:
    status = row.get("check_status", "").lstrip("* ").strip()
    if not status:
        return ""
    code = row.get("check_code", "").strip()
    desc = (row.get("last_chk") or "").strip()
    text = status + (f" {code}" if code else "")
    if desc and status not in ("L7OK", "L4OK", "L6OK", "L7OKC"):
        text += f" {desc}"
    return text


# Where the haproxy check's re-admission windows come from: the CSV has `check_rise` per
# server but no interval (inter, fastinter, downinter are only in the config, which the
# live check does not read), so HAProxy's defaults stand in for them.
READMIT_SOURCE = (
    f"rise from the stats CSV; HAProxy's default intervals (inter {readmit.HAPROXY_INTER_S:g}s, "
    "no timeout check, no spread-checks): the haproxy check reads no haproxy.cfg"
)


def _readmit(row: dict[str, str], status: str) -> float | None:
    """readmit.haproxy with the server's `check_rise`; 0 for a server without a health
    check (HAProxy never holds it out for its health), None when the CSV has no rise."""
    if status == "no check":
        return 0.0
    rise = _int(row.get("check_rise", ""))
    return None if rise is None or rise < 1 else readmit.haproxy(rise)


def pool_from_csv(
    rows: list[dict[str, str]], backend: str, source: str, states: list[ServerState] | None = None
) -> Pool:
    """The pool of `backend` from stats rows, with addresses from `states` when given."""
    by_name = {s.name: s for s in states or []}
    servers = []
    backend_status = None
    summed = False  # HAProxy writes a backend's BACKEND row after all of its servers
    for row in rows:
        if row.get("pxname") != backend:
            continue
        kind = row.get("type", "")
        if row.get("svname") == "BACKEND" or kind == "1":
            backend_status = row.get("status") or None
            summed = True
            continue
        if row.get("svname") == "FRONTEND" or kind in ("0", "3"):
            continue
        status = row.get("status", "").strip() or "unknown"
        backup = row.get("bck") == "1"
        receives, serving, service = _traffic(status, backup)
        state = by_name.get(row["svname"])
        address = state.address if state else (row.get("addr") or "").strip() or None
        note = "HAProxy has no address for it yet (srv_addr '-')" if state and not state.address else ""
        if address:
            address = normalise(address)
        errors = [_int(row.get(k, "")) for k in ("econ", "eresp")]
        # what real requests to it went through: connection and response errors, retries
        # and redispatches (compared between rounds by the haproxy check)
        counters = [_int(row.get(k, "")) for k in ("econ", "eresp", "wretr", "wredis")]
        check_word = row.get("check_status", "").lstrip("* ").strip()
        servers.append(
            PoolServer(
                name=row["svname"],
                address=address,
                state=status,
                receives_traffic=receives,
                serving=serving,
                check=_check_text(row),
                last_change_s=_int(row.get("lastchg", "")),
                sessions=_int(row.get("scur", "")),
                errors=sum(e for e in errors if e is not None) if any(e is not None for e in errors) else None,
                weight=_int(row.get("weight", "")),
                flags=("backup",) if backup else (),
                address_note=note,
                standby=backup,
                service=service,
                check_failing=bool(check_word) and check_word not in _CHECK_PASSES,
                failures=sum(c for c in counters if c is not None) if any(c is not None for c in counters) else None,
                readmit_s=_readmit(row, status),
            )
        )
    if not servers and not summed:
        names = sorted({row.get("pxname", "") for row in rows if row.get("svname") == "BACKEND"})
        raise StatsError(f"no backend named '{backend}'" + (f" (backends: {', '.join(names)})" if names else ""))
    if not summed:  # the CSV stops inside the backend: its last servers may be missing, so no pool is read
        raise StatsError(
            f"the stats CSV ends before the BACKEND row of '{backend}' (it comes after the servers): "
            f"it is cut short after {len(servers)} of its servers"
        )
    return Pool(
        name=backend,
        source=source,
        servers=tuple(servers),
        status=backend_status,
        extra={"readmit_from": READMIT_SOURCE},
    )


def pool_from_states(states: list[ServerState], backend: str, source: str) -> Pool:
    """A pool from `show servers state` alone (a socket level that refuses `show stat`)."""
    servers = []
    for s in states:
        if s.admin_state & (0x01 | 0x02 | 0x04 | 0x20):
            word = "MAINT"
        elif s.admin_state & (0x08 | 0x10):
            word = "DRAIN"
        else:
            word = {0: "DOWN", 1: "UP (starting)", 2: "UP", 3: "UP (stopping)"}.get(s.op_state, "unknown")
        receives, serving, service = _traffic(word)
        servers.append(
            PoolServer(
                name=s.name,
                address=s.address,
                state=word,
                receives_traffic=receives,
                serving=serving,
                service=service,
                last_change_s=s.since_change,
                address_note="" if s.address else "HAProxy has no address for it yet (srv_addr '-')",
            )
        )
    return Pool(name=backend, source=source, servers=tuple(servers))
