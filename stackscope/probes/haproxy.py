"""`haproxy`: read the real pool of one HAProxy backend and compare it with the layout.

Sources: the stats CSV over HTTP (`http://host:port/stats;csv`), or the Runtime API on a
unix socket (`unix:/run/haproxy/admin.sock`) or TCP (`tcp:127.0.0.1:9999`). Over the
Runtime API the probe sends `show servers state` (addresses at every socket level) and
`show stat` (states, checks, counters) in one line and merges them. Only read-only
commands are ever sent: the socket client refuses anything outside an exact allow-list
(haproxy_stats.READ_ONLY_COMMANDS) before it connects, whatever the layout said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from stackscope.kinds import (
    CheckSpec,
    EnvName,
    Invalid,
    Kind,
    LayerRef,
    ParseContext,
    describe,
    haproxy_name,
    option,
    parse_address,
    parse_url,
)
from stackscope.lb.declared import judge_against_declared, pool_result
from stackscope.lb.haproxy_stats import (
    RefusedCommand,
    StatsError,
    parse_csv,
    parse_servers_state,
    pool_from_csv,
    pool_from_states,
    runtime_api_line,
)
from stackscope.lb.pool import Pool
from stackscope.model import Address, ErrorKind, Result, Status, Url
from stackscope.probes.common import (
    Deadline,
    ProbeFailure,
    basic_auth_from_env,
    describe_os_error,
    printable,
    reach,
    timeout_scope,
)
from stackscope.probes.httpclient import fetch_pool_page

REPLY_CAP = 4 * 1024 * 1024  # a stats dump of a very large config still fits
SHOW_LEGENDS_FIX = (
    "add `stats show-legends` to the stats frontend in haproxy.cfg, "
    "or point the check at the admin socket (unix:/run/haproxy/admin.sock)"
)


@dataclass(frozen=True)
class StatsSource:
    """Where HAProxy's stats come from: an HTTP URL, a unix socket or a TCP socket."""

    kind: str  # http | unix | tcp
    raw: str
    url: Url | None = None
    path: str | None = None
    address: Address | None = None

    @property
    def host(self) -> str | None:  # for the dns dependency of the check
        if self.url is not None:
            return self.url.host
        if self.address is not None:
            return self.address.host
        return None

    def __str__(self) -> str:
        return self.raw


class StatsSourceKind(Kind):
    hint = "http://host:port/stats;csv, unix:/path/to/admin.sock or tcp:host:port"

    def parse(self, value: Any, ctx: ParseContext) -> StatsSource:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"expected a stats source, got {describe(value)}", f"write {self.hint}")
        text = value.strip()
        if text.startswith(("http://", "https://")):
            url = parse_url(text)
            if not url.path.split("?")[0].endswith(";csv"):
                raise Invalid(f"'{text}' is the HTML stats page", f"add ;csv to the URL: {text.rstrip('/')};csv")
            return StatsSource("http", text, url=url)
        if text.startswith("unix:"):
            path = text[5:]
            if not path.startswith("/"):
                raise Invalid(f"'{text}' needs an absolute socket path", "write unix:/run/haproxy/admin.sock")
            if not path.isprintable():  # a NUL cannot be in a path; a control character is a typo
                shown = path.encode("unicode_escape").decode("ascii")
                raise Invalid(f"socket path '{shown}' has a control character", "write unix:/run/haproxy/admin.sock")
            return StatsSource("unix", text, path=path)
        if text.startswith(("tcp:", "ipv4@")):
            return StatsSource(
                "tcp", text, address=parse_address(text.split(":", 1)[1] if text.startswith("tcp:") else text[5:])
            )
        raise Invalid(f"'{text}' is not a stats source", f"write {self.hint}")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^(https?://.*;csv|unix:/|tcp:|ipv4@)"}


@dataclass(frozen=True)
class HaproxyOptions:
    backend: str = option(
        haproxy_name("HAProxy backend name"), None, "The HAProxy backend (pool) to inspect.", required=True
    )
    auth_env: str | None = option(EnvName(), None, "Environment variable holding user:password for the stats page.")
    backends: str | None = option(
        LayerRef(role="backend"), None, "Layer whose checks are the declared backends (default: every backend layer)."
    )


def _request_line(source: StatsSource, commands: Sequence[str]) -> bytes:
    """The line to send, or a failed check if any command is not read-only: checked
    before the socket is opened, so a refused command never reaches HAProxy."""
    try:
        return runtime_api_line(commands)
    except RefusedCommand as exc:
        shown = printable("; ".join(str(c) for c in commands).encode("utf-8", "replace"), 120)
        raise ProbeFailure(
            ErrorKind.CONFIG,
            f"refused to send '{shown}' to the Runtime API at {source}: {exc}; "
            "stackscope sends only read-only commands (show info, show stat, show servers state)",
            key_fact="refused command",
            status=Status.UNKNOWN,
        ) from None


async def read_runtime_api(source: StatsSource, commands: Sequence[str], deadline: Deadline) -> str:
    """Send `commands` (read-only ones only: see runtime_api_line) on one line, read the
    reply until HAProxy closes or REPLY_CAP, and return it as text."""
    where = source.raw
    line = _request_line(source, commands)
    try:
        async with timeout_scope(deadline.remaining()):
            if source.kind == "unix":
                reader, writer = await asyncio.open_unix_connection(source.path)
            else:
                assert source.address is not None
                reader, writer = await asyncio.open_connection(source.address.host, source.address.port)
            try:
                writer.write(line)
                await writer.drain()
                data = bytearray()
                while len(data) < REPLY_CAP:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    data.extend(chunk)
            finally:
                writer.transport.abort()
    except TimeoutError:
        raise ProbeFailure(
            ErrorKind.TIMEOUT,
            f"the Runtime API at {where} did not answer within {deadline.text}",
            key_fact="no answer",
            status=Status.UNKNOWN,
        ) from None
    except FileNotFoundError:
        raise ProbeFailure(
            ErrorKind.REFUSED,
            f"no socket at {source.path} (is HAProxy running, with `stats socket` in its global section?)",
            key_fact="no socket",
            status=Status.UNKNOWN,
        ) from None
    except PermissionError:
        raise ProbeFailure(
            ErrorKind.AUTH,
            f"permission denied on {source.path}: run stackscope as a user that "
            "may open it (see the socket's mode/user/group in haproxy.cfg)",
            key_fact="denied",
            status=Status.UNKNOWN,
        ) from None
    except OSError as exc:
        kind, detail, key_fact = describe_os_error(exc, where)
        raise ProbeFailure(kind, f"cannot read the pool: {detail}", key_fact=key_fact, status=Status.UNKNOWN) from None
    if len(data) >= REPLY_CAP:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} sent more than {REPLY_CAP // 1024} KiB",
            key_fact="too big",
            status=Status.UNKNOWN,
        )
    return data.decode("utf-8", "replace")


async def pool_from_socket(check, deadline: Deadline) -> Pool:
    source: StatsSource = check.address
    backend = check.options.backend
    text = await read_runtime_api(source, (f"show servers state {backend}", f"show stat {backend} -1 -1"), deadline)
    blocks = [block for block in text.split("\n\n") if block.strip()]
    if not blocks:
        raise StatsError(f"{source} sent an empty reply (is it an HAProxy Runtime API socket?)")
    first = blocks[0].strip()
    if first.startswith("Can't find backend") or first.startswith("No such"):
        raise StatsError(f"HAProxy has no backend named '{backend}'")
    states = parse_servers_state(blocks[0])
    rows = None
    if len(blocks) > 1 and blocks[1].startswith("# ") and "svname" in blocks[1].split("\n", 1)[0]:
        rows = parse_csv(blocks[1])
    label = f"Runtime API {source}"
    if rows is None:  # a socket level that refuses `show stat`: states alone still tell a lot
        return pool_from_states(states, backend, label)
    return pool_from_csv(rows, backend, label, states)


async def _pool_from_http(check, ctx, deadline: Deadline) -> Pool:
    source: StatsSource = check.address
    assert source.url is not None
    rows = await read_stats_csv(source, ctx, deadline, check.options.auth_env)
    return pool_from_csv(rows, check.options.backend, f"stats CSV {source.url.raw}")


async def read_stats_csv(source: StatsSource, ctx, deadline: Deadline, auth_env: str | None = None) -> list[dict]:
    """The stats CSV's rows, from one plain GET of the stats URL (every backend's)."""
    url = source.url
    assert url is not None
    endpoint = await reach(ctx, url, deadline)
    headers = []
    if auth_env:
        headers.append(basic_auth_from_env(ctx, auth_env, "the stats page's `stats auth` line"))
    response = await fetch_pool_page(
        endpoint, url, deadline=deadline, headers=headers, body_cap=REPLY_CAP, where=f"stats page {url.host}:{url.port}"
    )
    if response.status == 401:
        hint = (
            "check the credentials in " + auth_env if auth_env else "set auth_env to a variable holding user:password"
        )
        raise ProbeFailure(
            ErrorKind.AUTH, f"the stats page asks for a login (401): {hint}", key_fact="401", status=Status.UNKNOWN
        )
    if response.status != 200:
        raise ProbeFailure(
            ErrorKind.HTTP_STATUS,
            f"the stats page answered {response.status_text}, not the CSV",
            key_fact=str(response.status),
            status=Status.UNKNOWN,
        )
    if response.truncated:
        raise StatsError(f"the stats CSV is larger than {REPLY_CAP // 1024} KiB")
    return parse_csv(response.body.decode("utf-8", "replace"))


def _with_rising_counters(pool: Pool, check_id: str, ctx) -> Pool:
    """Mark the members whose error/retry/redispatch counters rose since this check's
    last read: requests the LB sent them failed in between, whatever their state says.
    A counter that went down (HAProxy reloaded) is a new start, not a rise."""
    memory = getattr(ctx, "memory", None)
    if memory is None:
        return pool
    key = ("haproxy-counters", check_id)
    before: dict[str, int] = memory.get(key, {})
    now = {s.name: s.failures for s in pool.servers if s.failures is not None}
    memory[key] = now
    servers = tuple(
        replace(s, errors_rising=True) if s.name in before and now.get(s.name, 0) > before[s.name] else s
        for s in pool.servers
    )
    return replace(pool, servers=servers)


async def probe(check, ctx) -> Result:
    deadline = Deadline(check.timeout)
    source: StatsSource = check.address
    try:
        if source.kind == "http":
            pool = await _pool_from_http(check, ctx, deadline)
        else:
            pool = await pool_from_socket(check, deadline)
    except StatsError as exc:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"cannot read the pool from {source}: {exc}",
            key_fact="unreadable",
            status=Status.UNKNOWN,
        ) from None
    if pool.servers and all(s.address is None and not s.address_note for s in pool.servers):
        raise ProbeFailure(
            ErrorKind.CONFIG,
            f"pool {pool.name}: the stats CSV hides server addresses, so the "
            f"pool cannot be compared with the backends — {SHOW_LEGENDS_FIX}",
            key_fact="no addresses",
            status=Status.UNKNOWN,
            facts={
                "pool": {
                    "backend": pool.name,
                    "source": pool.source,
                    "servers": [s.to_fact(False) for s in pool.servers],
                }
            },
        )
    pool = _with_rising_counters(pool, check.id, ctx)
    return pool_result(check, await judge_against_declared(ctx, pool, check.options.backends, deadline), deadline)


SPEC = CheckSpec(
    key="haproxy",
    doc="Read an HAProxy backend's pool (stats CSV or Runtime API) and compare it with the declared backends.",
    target=StatsSourceKind(),
    options=HaproxyOptions,
    probe=probe,
    example="- haproxy: http://127.0.0.1:18404/stats;csv\n  backend: auth_servers",
)
