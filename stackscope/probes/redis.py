"""`redis`: PING, read what the server says about itself, and judge it.

RESP2 only (after HELLO 3 replies become maps). +PONG is up; -NOAUTH is up but wants a
password (OK when no `password_env` is given). With `password_env` the probe sends AUTH
first, whatever the server would say to PING: a server whose default user needs no
password would otherwise answer +PONG and a wrong password or unknown `user` would pass
unnoticed; a rejected AUTH is CRIT ("refused the login"). -LOADING,
-MASTERDOWN, -BUSY, -MISCONF and a full server ("max number of clients reached") are
CRIT with what they mean. `INFO` adds the role and, on a replica, the link to its
master, and judges what the server says of itself beyond liveness:

- memory: `used_memory` at `maxmemory` under `maxmemory-policy noeviction` means every
  write is refused (OOM) — CRIT; at 90 % or more of it — WARN (other policies evict,
  as a cache should);
- persistence: `rdb_last_bgsave_status:err` while PING still answers (so
  stop-writes-on-bgsave-error is off: with it on, PING itself gets -MISCONF) — WARN;
- `rejected_connections` that rose since the last round (maxclients reached) — WARN.

Only read-only commands are sent; every reply is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from stackscope.kinds import AddressKind, CheckSpec, EnvName, option, redis_user
from stackscope.model import ErrorKind, Result, Status, StoreState
from stackscope.probes.common import (
    Deadline,
    ProbeFailure,
    conversation,
    describe_os_error,
    guess_protocol,
    printable,
    resolve_host,
    result,
)

MAX_LINE = 64 * 1024
MAX_BULK = 1024 * 1024
MEANINGS = {
    "LOADING": (ErrorKind.STATE, "is still loading its dataset into memory (after a restart)"),
    "MASTERDOWN": (ErrorKind.STATE, "is a replica that lost its master and will not serve stale data"),
    "BUSY": (ErrorKind.STATE, "is busy running a script past busy-reply-threshold (SCRIPT KILL or FUNCTION KILL)"),
    "MISCONF": (ErrorKind.STATE, "cannot persist to disk and refuses writes"),
}


@dataclass(frozen=True)
class RedisOptions:
    password_env: str | None = option(EnvName(), None, "Environment variable with the password (AUTH).")
    user: str | None = option(redis_user(), None, "ACL user for AUTH (Redis 6+); default: the default user.")


class _Resp:
    def __init__(self, reader, writer, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where
        self.buffer = b""  # our own, so bytes received before a reset can still be named

    async def call(self, *words: str) -> tuple[str, str | None]:
        """('+', text) | ('-', error) | ('$', bulk or None) | (':', number) for one command."""
        payload = f"*{len(words)}\r\n".encode()
        for word in words:
            data = word.encode()
            payload += b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"
        self.writer.write(payload)
        await self.writer.drain()
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":"):
            return kind.decode(), rest.decode("utf-8", "replace")
        if kind == b"$":
            try:
                size = int(rest)
            except ValueError:
                raise self._not_redis(line) from None
            if size == -1:
                return "$", None
            if not 0 <= size <= MAX_BULK:
                raise self._not_redis(line)
            data = await self._exactly(size + 2)
            return "$", data[:-2].decode("utf-8", "replace")
        raise self._not_redis(line)

    def _not_redis(self, data: bytes) -> ProbeFailure:
        return ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{self.where} is not Redis: it sent '{printable(data)}' ({guess_protocol(data, 'Redis')} answered)",
            key_fact="not redis",
        )

    async def _fill(self) -> None:
        try:
            chunk = await self.reader.read(65536)
        except ConnectionError as exc:
            if self.buffer:
                raise self._not_redis(self.buffer) from None
            kind, detail, key_fact = describe_os_error(exc, self.where)
            raise ProbeFailure(kind, detail, key_fact=key_fact) from None
        if not chunk:
            if self.buffer:
                raise self._not_redis(self.buffer)
            raise ProbeFailure(
                ErrorKind.PROTOCOL, f"{self.where} closed the connection without answering", key_fact="closed"
            )
        self.buffer += chunk

    async def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise self._not_redis(self.buffer)
            await self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    async def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


def _error(where: str, text: str, facts: dict, command: str = "PING") -> ProbeFailure:
    """The failure for an error reply to `command`: a known server state, or what it said."""
    code = text.split(" ", 1)[0]
    if code in MEANINGS:
        kind, meaning = MEANINGS[code]
        return ProbeFailure(kind, f"{where} {meaning}: -{text}", key_fact=code, facts=facts)
    if "max number of clients" in text:
        return ProbeFailure(
            ErrorKind.SATURATED, f"{where} is out of connections: -{text}", key_fact="maxclients", facts=facts
        )
    if command == "AUTH" or code in ("WRONGPASS", "NOPERM") or "invalid password" in text:
        return ProbeFailure(
            ErrorKind.AUTH, f"{where} refused the login: -{text}", key_fact="login refused", facts=facts
        )
    return ProbeFailure(
        ErrorKind.STATE, f"{where} answered {command} with an error: -{text}", key_fact=code, facts=facts
    )


def parse_info(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and not line.startswith("#"):
            fields[key] = value
    return fields


def _count(value: str | None) -> int | None:
    try:
        return int(value or 0)
    except ValueError:
        return None


async def probe(check, ctx) -> Result:
    options: RedisOptions = check.options
    deadline = Deadline(check.timeout)
    address = check.address
    ip, facts = await resolve_host(ctx, address.host, deadline)
    where = str(address)
    async with conversation(ip, address.port, deadline, facts, where=where, awaiting="answer PING") as talk:
        resp = _Resp(talk.reader, talk.writer, where)
        if options.password_env:
            secret = ctx.secret(options.password_env) or ""
            words = ("AUTH", options.user, secret) if options.user else ("AUTH", secret)
            talk.awaiting = "answer AUTH"
            kind, text = await resp.call(*words)
            if kind == "-":
                raise _error(where, text or "", facts, "AUTH")  # an error reply always has text
            facts["logged_in_as"] = options.user or "default"
            talk.awaiting = "answer PING"
        kind, text = await resp.call("PING")
        if kind == "-" and text is not None and text.startswith("NOAUTH") and not options.password_env:
            facts["auth"] = "required"
            return result(
                check,
                Status.OK,
                f"{where} is up (PING needs AUTH: no password_env given)",
                latency_ms=deadline.elapsed_ms(),
                key_fact="up, auth",
                facts=facts,
            )
        if kind == "-":
            failure = _error(where, text or "", facts)  # an error reply always has text
            if (text or "").startswith("MISCONF"):
                failure.evidence = StoreState("redis", refuses_writes="MISCONF: cannot persist to disk")
            raise failure
        if (kind, text) != ("+", "PONG"):
            raise ProbeFailure(
                ErrorKind.PROTOCOL, f"{where} answered PING with {kind}{text}", key_fact="odd", facts=facts
            )
        latency = deadline.elapsed_ms()
        talk.awaiting = "answer INFO"
        kind, info = await resp.call("INFO")
        judged = _judge(check, where, latency, kind, info, facts)
        return _beyond_liveness(check, ctx, where, judged, parse_info(info) if kind == "$" and info else {})


NEAR_FULL = 0.9  # of maxmemory, under noeviction: WARN


def _beyond_liveness(check, ctx, where: str, judged: Result, fields: dict[str, str]) -> Result:
    """Memory, persistence and rejected connections on top of the liveness judgement; the
    worst of them wins, and the store's state goes into the evidence either way."""
    used, limit = _count(fields.get("used_memory")), _count(fields.get("maxmemory"))
    policy = fields.get("maxmemory_policy")
    facts = dict(judged.facts)
    problems: list[tuple[Status, ErrorKind, str, str]] = []  # status, kind, detail, key fact
    refuses = ""
    if used is not None and limit:
        share = used / limit
        facts.update({"used_memory": used, "maxmemory": limit, "maxmemory_policy": policy})
        facts["memory_used_pct"] = round(100 * share, 1)
        if policy == "noeviction" and used >= limit:
            refuses = "OOM: maxmemory reached under noeviction"
            problems.append(
                (
                    Status.CRIT,
                    ErrorKind.SATURATED,
                    f"{where} is at maxmemory ({_size(used)} of {_size(limit)}) under noeviction: "
                    "every write is refused (OOM command not allowed)",
                    "OOM",
                )
            )
        elif policy == "noeviction" and share >= NEAR_FULL:
            problems.append(
                (
                    Status.WARN,
                    ErrorKind.SATURATED,
                    f"{where} uses {share:.0%} of maxmemory ({_size(used)} of {_size(limit)}) under noeviction: "
                    "writes will be refused at the limit",
                    f"mem {share:.0%}",
                )
            )
    if fields.get("rdb_last_bgsave_status") == "err":
        facts["rdb_last_bgsave_status"] = "err"
        problems.append(
            (
                Status.WARN,
                ErrorKind.STATE,
                f"{where}: the last background save failed (rdb_last_bgsave_status:err); writes are still "
                "accepted (stop-writes-on-bgsave-error is off) but the data is not persisted",
                "bgsave err",
            )
        )
    rejected = _count(fields.get("rejected_connections"))
    if rejected is not None:
        facts["rejected_connections"] = rejected
        memory = getattr(ctx, "memory", None)
        if memory is not None:
            key = ("redis-rejected", check.id)
            before = memory.get(key)
            memory[key] = rejected
            if before is not None and rejected > before:
                problems.append(
                    (
                        Status.WARN,
                        ErrorKind.SATURATED,
                        f"{where} rejected {rejected - before} connections since the last round (maxclients reached)",
                        "rejecting",
                    )
                )
    role = judged.facts.get("role")
    evidence = StoreState(
        "redis",
        role=("standby" if role == "replica" else "primary") if role in ("replica", "master") else None,
        refuses_writes=refuses,
        used_memory=used,
        maxmemory=limit or None,
        maxmemory_policy=policy,
    )
    worst = max(problems, key=lambda p: p[0].rank, default=None)
    if worst is None or worst[0].rank <= judged.status.rank:
        return replace(judged, facts=facts, evidence=evidence)
    status, kind, detail, key_fact = worst
    return replace(
        judged, status=status, detail=detail, key_fact=key_fact, facts=facts, error_kind=kind, evidence=evidence
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _judge(check, where: str, latency: float, kind: str, info: str | None, facts: dict) -> Result:
    if kind != "$" or not info:
        return result(
            check,
            Status.OK,
            f"{where} answered PONG in {latency:.1f} ms (INFO not allowed)",
            latency_ms=latency,
            key_fact="PONG",
            facts=facts,
        )
    fields = parse_info(info)
    if fields.get("redis_version"):
        facts["version"] = fields["redis_version"]
    role = fields.get("role", "?")
    facts["role"] = "replica" if role == "slave" else role
    if role != "slave":
        facts["connected_replicas"] = _count(fields.get("connected_slaves"))
        return result(
            check,
            Status.OK,
            f"{where} answered PONG in {latency:.1f} ms ({facts['role']}, "
            f"{facts['connected_replicas'] if facts['connected_replicas'] is not None else '?'} replicas)",
            latency_ms=latency,
            key_fact=facts["role"],
            facts=facts,
        )
    link = fields.get("master_link_status", "?")
    host, port = fields.get("master_host"), fields.get("master_port")
    master = f"{host}:{port}" if host and port else None  # a replica may not report it (or half of it)
    facts.update(
        {"master": master, "master_link": link, "master_last_io_seconds_ago": fields.get("master_last_io_seconds_ago")}
    )
    named = f"its link to master {master}" if master else "its link to its master"
    unnamed = "" if master else " (master address not reported)"
    if link != "up":
        return result(
            check,
            Status.WARN,
            f"{where} is a replica serving stale data: {named} is {link}{unnamed}",
            latency_ms=latency,
            key_fact="link down",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    return result(
        check,
        Status.OK,
        f"{where} answered PONG in {latency:.1f} ms (replica of "
        f"{master or 'a master whose address it does not report'}, link up)",
        latency_ms=latency,
        key_fact="replica",
        facts=facts,
    )


SPEC = CheckSpec(
    key="redis",
    doc="PING a Redis server and judge its answer (NOAUTH, LOADING, MASTERDOWN, BUSY, full) and replication.",
    target=AddressKind(default_port=6379),
    options=RedisOptions,
    probe=probe,
    example="- redis: 127.0.0.1:6379\n  password_env: REDIS_PASSWORD",
)
