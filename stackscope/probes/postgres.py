"""`postgres`: speak the PostgreSQL v3 protocol far enough to know the server's state.

A TCP connect says little: a server in recovery or out of connections still accepts TCP.
The probe sends an SSLRequest (upgrading to TLS when the server says `S`), then a
StartupMessage, and classifies the first answer: an authentication request or an
auth/role error means the server is up and accepting; SQLSTATE 57P03 (starting up,
shutting down, in recovery) and 53300 (too many connections) are CRIT with the server's
own message; anything else is named. With `password_env` it logs in (SCRAM-SHA-256 or
md5, implemented here: no driver needed) and runs one read-only query for the version
and, on a standby, the replay lag. It always ends with Terminate. Without TLS the
password goes only to SCRAM, which never reveals it (md5 too if the layout accepts the
risk; a cleartext request never).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
from dataclasses import dataclass, replace
from typing import Any

from stackscope.kinds import (
    AddressKind,
    Boolean,
    CheckSpec,
    Choice,
    Duration,
    EnvName,
    FilePath,
    Invalid,
    ParseContext,
    describe,
    option,
    postgres_name,
)
from stackscope.model import ErrorKind, Result, Status, StoreState
from stackscope.probes.common import (
    Conversation,
    Deadline,
    ProbeFailure,
    conversation,
    describe_os_error,
    guess_protocol,
    printable,
    read_some,
    resolve_host,
    result,
    upgrade_stream,
)

MAX_MESSAGE = 1024 * 1024  # no handshake message is anywhere near this
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
TERMINATE = b"X" + struct.pack("!i", 4)
# Read-only, and runs for any role. The replay lag is 0 when everything received is
# replayed: on an idle primary the last replayed transaction grows old while nothing is
# behind. Whether the standby streams at all comes from pg_stat_wal_receiver: without
# pg_read_all_stats (pg_monitor) a role sees the receiver's pid only (status is NULL), so
# "a receiver exists" is what is judged, its status when visible.
INFO_QUERY = (
    "SELECT 1, current_setting('server_version'), pg_is_in_recovery(), "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch from now() - pg_last_xact_replay_timestamp()) END, "
    "(SELECT count(*) FROM pg_stat_wal_receiver), (SELECT status FROM pg_stat_wal_receiver LIMIT 1), "
    "current_setting('default_transaction_read_only')"
)
MAX_SCRAM_ITERATIONS = 100_000  # PostgreSQL uses 4096; more is a server trying to stall the probe
AUTH_NAMES = {3: "a cleartext password", 5: "an MD5 password", 10: "SASL (SCRAM-SHA-256)", 7: "GSSAPI", 9: "SSPI"}


SSL_MODES = ("disable", "prefer", "require", "verify-full")


class SslMode(Choice):
    """libpq's sslmode, the subset that means something for a probe. `true`/`false` (the
    older form of this option) read as prefer/disable."""

    def __init__(self) -> None:
        super().__init__(*SSL_MODES)
        self.hint = "disable, prefer, require or verify-full (true = prefer, false = disable)"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if isinstance(value, bool):
            return "prefer" if value else "disable"
        try:
            return super().parse(value, ctx)
        except Invalid as exc:
            raise Invalid(f"{describe(value)} is not an ssl mode", exc.fix) from None

    def json_schema(self) -> dict[str, Any]:
        return {"enum": [*SSL_MODES, True, False]}


@dataclass(frozen=True)
class PostgresOptions:
    user: str = option(
        postgres_name("PostgreSQL role name"),
        "stackscope",
        "Role to present (need not exist unless password_env is set).",
    )
    database: str = option(postgres_name("PostgreSQL database name"), "postgres", "Database to ask for.")
    password_env: str | None = option(
        EnvName(), None, "Environment variable with the password: log in and run a read-only query."
    )
    ssl: str = option(
        SslMode(),
        "prefer",
        "TLS as libpq's sslmode: disable (never), prefer (ask; without it only SCRAM may carry a password), "
        "require (TLS or fail; certificate not checked), verify-full (TLS with a trusted certificate for the host).",
    )
    ca: str | None = option(FilePath(must_exist=True), None, "CA file (PEM) to trust for ssl: verify-full.")
    allow_md5_without_tls: bool = option(
        Boolean(),
        False,
        "Answer an MD5 password request on a connection without TLS (the exchange can be cracked offline).",
    )
    max_lag: float = option(Duration(), 30.0, "On a standby, warn when replay lags more than this.")
    expect_role: str | None = option(
        Choice("primary", "standby"),
        None,
        "The role this server must have (needs password_env): a primary that came back in recovery or "
        "read-only after a failover is CRIT; a standby that is a primary is WARN.",
    )


class _Conn:
    def __init__(self, talk: Conversation, deadline: Deadline, where: str) -> None:
        self.talk = talk
        self.deadline, self.where = deadline, where

    def awaiting(self, step: str) -> None:
        """Name the step being waited on, for the timeout message."""
        self.talk.awaiting = step

    async def read_message(self) -> tuple[bytes, bytes]:
        head = await self._exactly(5, "a reply")
        kind, length = head[:1], int.from_bytes(head[1:], "big", signed=True)
        if not (kind.isalpha() and 4 <= length <= MAX_MESSAGE):
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{self.where} is not PostgreSQL: it sent '{printable(head)}' "
                f"({guess_protocol(head, 'PostgreSQL')} answered)",
                key_fact="not postgres",
            )
        return kind, await self._exactly(length - 4, "the rest of a message")

    async def _exactly(self, n: int, what: str) -> bytes:
        try:
            return await self.talk.reader.readexactly(n)
        except ConnectionError as exc:
            kind, detail, key_fact = describe_os_error(exc, self.where)
            raise ProbeFailure(kind, detail, key_fact=key_fact) from None
        except asyncio.IncompleteReadError as exc:
            partial = exc.partial
            what_sent = f" after '{printable(partial)}' ({guess_protocol(partial)} answered)" if partial else ""
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{self.where} closed the connection instead of sending {what}{what_sent}",
                key_fact="closed",
            ) from None

    async def send(self, data: bytes) -> None:
        self.talk.writer.write(data)
        await self.talk.writer.drain()


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _startup(user: str, database: str) -> bytes:
    params = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (("user", user), ("database", database), ("application_name", "stackscope"))
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def parse_error(body: bytes) -> dict[str, str]:
    """ErrorResponse/NoticeResponse fields: {'C': sqlstate, 'M': message, 'V': severity, ...}."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            try:
                fields[chr(part[0])] = part[1:].decode("utf-8")
            except UnicodeDecodeError:  # no real server sends this: say so rather than show '�('
                fields[chr(part[0])] = (
                    f"'{printable(part[1:], 60)}' (not valid UTF-8: garbage rather than an error message)"
                )
    return fields


async def _start_tls(conn: _Conn, host: str, mode: str, context: ssl.SSLContext) -> bool:
    """Ask for TLS; True once it is up, False when the server declined and `mode` lets
    the probe go on without it (prefer). require/verify-full fail instead, as libpq does."""
    await conn.send(SSL_REQUEST)
    answer = await conn._exactly(1, "an answer to the SSL request")
    if answer == b"N":
        if mode in ("require", "verify-full"):
            raise ProbeFailure(
                ErrorKind.TLS,
                f"{conn.where} does not offer TLS (it answered N to the SSL request), and ssl: {mode} needs it",
                key_fact="no tls",
            )
        return False
    if answer != b"S":
        data = answer + await read_some(conn.talk.reader, conn.deadline)
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{conn.where} is not PostgreSQL: it answered the SSL request with "
            f"'{printable(data)}' ({guess_protocol(data, 'PostgreSQL')} answered)",
            key_fact="not postgres",
        )
    try:
        sni = host if mode == "verify-full" else None
        conn.talk.writer = await upgrade_stream(conn.talk.reader, conn.talk.writer, context, sni)
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailure(
            ErrorKind.CERT, f"certificate of {conn.where} rejected (ssl: verify-full): {exc.verify_message}"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise ProbeFailure(
            ErrorKind.TLS, f"TLS with {conn.where} failed: {exc or type(exc).__name__}", key_fact="tls error"
        ) from None
    return True


# --------------------------------------------------------------------------- authentication


def _md5_password(user: str, password: str, salt: bytes) -> bytes:
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode() + b"\0"


class _Scram:
    """SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL uses it: no channel binding."""

    def __init__(self, password: str, where: str) -> None:
        self.password, self.where = password, where
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        data = ("n,," + self.first_bare).encode()
        return _message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(data)) + data)

    def _fields(self, step: str, text: str, needed: str) -> dict[str, str]:
        fields = {}
        for item in text.split(","):
            key, eq, value = item.partition("=")
            if not eq or len(key) != 1:
                raise _malformed(self.where, f"SCRAM {step} message", text, scram=True)
            fields[key] = value
        if any(key not in fields for key in needed):
            raise _malformed(self.where, f"SCRAM {step} message", text, scram=True)
        return fields

    async def final(self, server_first: str) -> bytes:
        parts = self._fields("server-first", server_first, "rsi")
        try:
            nonce, salt, iterations = parts["r"], base64.b64decode(parts["s"], validate=True), int(parts["i"])
        except ValueError:  # binascii.Error is a ValueError
            raise _malformed(self.where, "SCRAM server-first message", server_first, scram=True) from None
        if not nonce.startswith(self.nonce):
            raise ProbeFailure(
                ErrorKind.AUTH, f"{self.where}: the server's SCRAM nonce does not extend ours", key_fact="bad scram"
            )
        if iterations < 1:
            raise _malformed(self.where, "SCRAM server-first message", server_first, scram=True)
        if iterations > MAX_SCRAM_ITERATIONS:
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{self.where}: server asks for {iterations} SCRAM iterations; "
                f"refusing more than {MAX_SCRAM_ITERATIONS}",
                key_fact="bad scram",
            )
        # in a thread: even the capped count must not stall every other probe on the loop
        salted = await asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return _message(b"p", f"{without_proof},p={base64.b64encode(proof).decode()}".encode())

    def verify(self, server_final: str) -> None:
        parts = self._fields("server-final", server_final, "")
        if "e" in parts:
            raise ProbeFailure(
                ErrorKind.AUTH, f"{self.where} refused the login: SCRAM error {parts['e']}", key_fact="login refused"
            )
        try:
            signature = base64.b64decode(parts.get("v", ""), validate=True)
        except ValueError:
            raise _malformed(self.where, "SCRAM server-final message", server_final, scram=True) from None
        if signature != self.server_signature:
            raise ProbeFailure(
                ErrorKind.AUTH,
                f"{self.where}: the server's SCRAM signature is wrong (not the real server?)",
                key_fact="bad scram",
            )


# --------------------------------------------------------------------------- the probe


def _error_failure(fields: dict[str, str], where: str, logging_in: bool) -> ProbeFailure | str:
    """A ProbeFailure for server states that are failures, else the "up" sentence."""
    code, message = fields.get("C", ""), fields.get("M", "")
    if code == "57P03":
        return ProbeFailure(
            ErrorKind.STATE,
            f"{where} is not accepting connections: {message} (57P03)",
            key_fact="not ready",
            facts={"sqlstate": code},
        )
    if code == "53300":
        return ProbeFailure(
            ErrorKind.SATURATED,
            f"{where} is out of connections: {message} (53300)",
            key_fact="too many clients",
            facts={"sqlstate": code},
        )
    if code == "57P01":
        return ProbeFailure(
            ErrorKind.STATE,
            f"{where} is shutting down: {message} (57P01)",
            key_fact="shutdown",
            facts={"sqlstate": code},
        )
    if code == "3D000":
        return ProbeFailure(
            ErrorKind.CONFIG, f"{where}: {message} (3D000)", key_fact="no database", facts={"sqlstate": code}
        )
    if code.startswith("28"):
        if logging_in:
            return ProbeFailure(
                ErrorKind.AUTH,
                f"{where} refused the login: {message} ({code})",
                key_fact="login refused",
                facts={"sqlstate": code},
            )
        return f"up: the server answered and refuses this client ({message}, {code})"
    return ProbeFailure(
        ErrorKind.STATE,
        f"{where} refused the connection: {message} ({code or 'no SQLSTATE'})",
        key_fact=code or "error",
        facts={"sqlstate": code},
    )


async def probe(check, ctx) -> Result:
    options: PostgresOptions = check.options
    deadline = Deadline(check.timeout)
    address = check.address
    ip, facts = await resolve_host(ctx, address.host, deadline)
    where = str(address)
    password = ctx.secret(options.password_env) if options.password_env else None
    async with conversation(
        ip, address.port, deadline, facts, where=where, awaiting="finish the handshake", goodbye=TERMINATE
    ) as talk:
        conn = _Conn(talk, deadline, where)
        facts["tls"] = False
        if options.ssl != "disable":
            conn.awaiting("answer the SSL request")
            # prefer/require check nothing about the certificate (the probe asks about state,
            # and the tls check about identity); verify-full checks chain and host name
            context = ctx.ssl_context(verify=options.ssl == "verify-full", ca_file=options.ca)
            facts["tls"] = await _start_tls(conn, address.host, options.ssl, context)
        conn.awaiting("finish the handshake")
        await conn.send(_startup(options.user, options.database))
        return await _converse(check, conn, password, facts)


async def _converse(check, conn: _Conn, password: str | None, facts: dict[str, Any]) -> Result:
    options: PostgresOptions = check.options
    where = conn.where
    scram: _Scram | None = None
    asked = ""
    params: dict[str, str] = {}
    while True:
        kind, body = await conn.read_message()
        if kind == b"E":
            fields = parse_error(body)
            outcome = _error_failure(fields, where, logging_in=password is not None)
            if isinstance(outcome, ProbeFailure):
                outcome.facts.update(facts)
                raise outcome
            facts["sqlstate"] = fields.get("C")
            return result(
                check,
                Status.OK,
                f"{where} is {outcome}",
                latency_ms=conn.deadline.elapsed_ms(),
                key_fact="up",
                facts=facts,
            )
        if kind == b"R":
            if len(body) < 4:
                raise _malformed(where, "authentication request", kind + body, facts)
            code = int.from_bytes(body[:4], "big", signed=True)
            if code == 0:
                continue  # authenticated (trust, or after a password): parameters follow
            if code in (3, 5, 10) and password is None:
                asked = AUTH_NAMES[code]
                facts["auth"] = asked
                return result(
                    check,
                    Status.OK,
                    f"{where} is accepting connections (asks for {asked})",
                    latency_ms=conn.deadline.elapsed_ms(),
                    key_fact="up",
                    facts=facts,
                )
            secret = password or ""  # codes 3, 5 and 10 without a password returned above
            if code in (3, 5):
                _refuse_unsafe_password_request(code, options, where, facts)
            if code == 3:
                await conn.send(_message(b"p", secret.encode() + b"\0"))
            elif code == 5:
                if len(body) < 8:
                    raise _malformed(where, "MD5 password request (no salt)", kind + body, facts)
                await conn.send(_message(b"p", _md5_password(options.user, secret, body[4:8])))
            elif code == 10:
                if b"SCRAM-SHA-256" not in body:
                    raise ProbeFailure(
                        ErrorKind.AUTH,
                        f"{where} offers no SASL mechanism the probe speaks",
                        key_fact="auth",
                        facts=facts,
                    )
                scram = _Scram(secret, where)
                await conn.send(scram.first())
            elif code == 11 and scram is not None:
                await conn.send(await scram.final(body[4:].decode("utf-8", "replace")))
            elif code == 12 and scram is not None:
                scram.verify(body[4:].decode("utf-8", "replace"))
            else:
                facts["auth"] = AUTH_NAMES.get(code, f"method {code}")
                return result(
                    check,
                    Status.OK,
                    f"{where} is accepting connections (asks for {facts['auth']}, which the probe does not speak)",
                    latency_ms=conn.deadline.elapsed_ms(),
                    key_fact="up",
                    facts=facts,
                )
            continue
        if kind == b"S":
            key, _, value = body.partition(b"\0")
            params[key.decode("utf-8", "replace")] = value.rstrip(b"\0").decode("utf-8", "replace")
            continue
        if kind in (b"K", b"N"):
            continue
        if kind == b"Z":
            break
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} sent an unexpected '{kind.decode()}' message",
            key_fact="protocol",
            facts=facts,
        )
    # Logged in (trust, or with the password): one read-only query.
    facts["server_version"] = params.get("server_version")
    conn.awaiting("answer the query")
    row = await _query(conn, INFO_QUERY)
    return judge_info(check, where, row, facts, conn.deadline.elapsed_ms())


def _refuse_unsafe_password_request(code: int, options: PostgresOptions, where: str, facts: dict[str, Any]) -> None:
    """Raise before the password leaves when the server asks for it in a form that
    exposes it: in clear text without TLS (anyone on the path, or a fake server, reads
    it), or as MD5 without TLS unless the layout accepts that (a recorded or fake-server
    MD5 exchange can be brute-forced offline). SCRAM never reveals it, so it goes on."""
    if facts.get("tls"):
        return
    if code == 3:
        raise ProbeFailure(
            ErrorKind.AUTH,
            f"{where} asked for the password in clear text (AuthenticationCleartextPassword) on a connection "
            "without TLS; the password was not sent. Enable TLS on the server (ssl = on) and set ssl: require, "
            "or use scram-sha-256 in pg_hba.conf",
            key_fact="cleartext refused",
            facts={**facts, "auth": AUTH_NAMES[3]},
        )
    if code == 5 and not options.allow_md5_without_tls:
        raise ProbeFailure(
            ErrorKind.AUTH,
            f"{where} asked for an MD5 password on a connection without TLS; the password was not sent "
            "(an MD5 exchange can be cracked offline). Use scram-sha-256 in pg_hba.conf, enable TLS on the "
            "server, or set allow_md5_without_tls: true to accept the risk",
            key_fact="md5 refused",
            facts={**facts, "auth": AUTH_NAMES[5]},
        )


def judge_info(check, where: str, row: list[str | None], facts: dict[str, Any], latency: float) -> Result:
    """Judge INFO_QUERY's row: primary, standby streaming (with its lag) or standby cut off."""
    options: PostgresOptions = check.options
    if len(row) < 6:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} answered the query with {len(row)} columns (6 expected)",
            key_fact="protocol",
            facts=facts,
        )
    version, in_recovery = row[1], row[2] == "t"
    read_only = in_recovery or (len(row) > 6 and row[6] == "on")
    facts.update({"server_version": version, "in_recovery": in_recovery, "logged_in_as": options.user})
    if len(row) > 6:
        facts["default_transaction_read_only"] = row[6]
    role = "standby" if in_recovery else "primary"
    expected = getattr(options, "expect_role", None)
    refuses = "" if not (expected == "primary" and read_only) else ("in recovery" if in_recovery else "read-only")
    state = StoreState("postgres", role=role, expected_role=expected, read_only=read_only, refuses_writes=refuses)
    judged = _judge_role(check, where, version, in_recovery, read_only, facts, latency)
    if judged is not None:
        return replace(judged, evidence=state)
    return replace(_judge_replication(check, where, row, facts, latency), evidence=state)


def _judge_role(check, where, version, in_recovery: bool, read_only: bool, facts, latency: float) -> Result | None:
    """The server's role against `expect_role`, or None when it matches (or none is declared)."""
    expected = getattr(check.options, "expect_role", None)
    if expected == "primary" and in_recovery:
        return result(
            check,
            Status.CRIT,
            f"{where} is a standby (pg_is_in_recovery() is true) but is declared the primary: "
            "it refuses every write (after a failover, is the application pointed at the old primary?)",
            latency_ms=latency,
            key_fact="standby, not primary",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    if expected == "primary" and read_only:
        return result(
            check,
            Status.CRIT,
            f"{where} is the primary but read-only (default_transaction_read_only = on): writes fail",
            latency_ms=latency,
            key_fact="read-only",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    if expected == "standby" and not in_recovery:
        return result(
            check,
            Status.WARN,
            f"{where} is a primary (not in recovery) but is declared a standby: promoted in a failover? "
            "(two primaries risk a split brain; update the layout if the promotion was meant)",
            latency_ms=latency,
            key_fact="primary, not standby",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    return None


def _judge_replication(check, where: str, row: list[str | None], facts: dict[str, Any], latency: float) -> Result:
    options: PostgresOptions = check.options
    version, in_recovery, lag, receivers, receiver_status = row[1], row[2] == "t", row[3], row[4], row[5]
    if not in_recovery:
        return result(
            check,
            Status.OK,
            f"{where}: logged in, SELECT 1 ok (PostgreSQL {version}, primary)",
            latency_ms=latency,
            key_fact="primary",
            facts=facts,
        )
    try:
        lag_s = None if lag is None else float(lag)
    except ValueError:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} answered the lag query with '{printable(str(lag).encode())}'",
            key_fact="protocol",
            facts=facts,
        ) from None
    facts["replay_lag_s"] = None if lag_s is None else round(lag_s, 3)
    # status is NULL for a role without pg_read_all_stats: then a running receiver is all we know
    facts["wal_receiver"] = receiver_status or (
        "running (status hidden: grant pg_monitor)" if receivers not in (None, "0") else "none"
    )
    if receivers in (None, "0") or receiver_status not in (None, "streaming"):
        return result(
            check,
            Status.WARN,
            f"{where}: standby is not streaming from its primary (serving possibly "
            f"stale data; WAL receiver: {facts['wal_receiver']})",
            latency_ms=latency,
            key_fact="not streaming",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    if lag_s is None:
        return result(
            check,
            Status.OK,
            f"{where}: logged in, SELECT 1 ok (PostgreSQL {version}, standby; nothing replayed yet)",
            latency_ms=latency,
            key_fact="standby",
            facts=facts,
        )
    if lag_s > options.max_lag:
        return result(
            check,
            Status.WARN,
            f"{where}: standby replay lags {lag_s:.0f}s (above {options.max_lag:g}s)",
            latency_ms=latency,
            key_fact=f"lag {lag_s:.0f}s",
            facts=facts,
            kind=ErrorKind.STATE,
        )
    return result(
        check,
        Status.OK,
        f"{where}: logged in, SELECT 1 ok (PostgreSQL {version}, standby, replay lag {lag_s:.1f}s)",
        latency_ms=latency,
        key_fact=f"lag {lag_s:.0f}s",
        facts=facts,
    )


def _malformed(
    where: str, what: str, data: bytes | str, facts: dict[str, Any] | None = None, *, scram: bool = False
) -> ProbeFailure:
    """A reply that breaks the protocol, shown, with who seems to have answered. A SCRAM
    message is text inside a well-formed PostgreSQL message: that guess would say nothing."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    who = "" if scram else f" ({guess_protocol(data, 'PostgreSQL')} answered)"
    return ProbeFailure(
        ErrorKind.PROTOCOL,
        f"{where} sent a malformed {what} '{printable(data)}'{who}",
        key_fact="bad scram" if scram else "not postgres",
        facts=facts,
    )


def parse_data_row(body: bytes, where: str) -> list[str | None]:
    """A DataRow's values as text (None for NULL); a row that overruns its message is a failure."""
    if len(body) < 2:
        raise _malformed(where, "data row", b"D" + body)
    count, pos, row = int.from_bytes(body[:2], "big", signed=True), 2, []
    for _ in range(max(count, 0)):  # bounded: a count beyond the body fails below at once
        if pos + 4 > len(body):
            raise _malformed(where, "data row", b"D" + body)
        size = int.from_bytes(body[pos : pos + 4], "big", signed=True)
        pos += 4
        if size > len(body) - pos:
            raise _malformed(where, "data row", b"D" + body)
        row.append(None if size < 0 else body[pos : pos + size].decode("utf-8", "replace"))
        pos += max(size, 0)
    return row


async def _query(conn: _Conn, sql: str) -> list[str | None]:
    """One simple query; the first row as text values (None for NULL)."""
    await conn.send(_message(b"Q", sql.encode() + b"\0"))
    row: list[str | None] = []
    while True:
        kind, body = await conn.read_message()
        if kind == b"D":
            row = parse_data_row(body, conn.where)
        elif kind == b"E":
            fields = parse_error(body)
            raise ProbeFailure(
                ErrorKind.STATE,
                f"{conn.where}: the query failed: {fields.get('M')} ({fields.get('C')})",
                key_fact="query failed",
            )
        elif kind == b"Z":
            return row


def _validate(address: Any, options: PostgresOptions) -> list[tuple[str, str, str]]:
    if options.ca and options.ssl != "verify-full":
        return [("ca", f"ca has no effect with ssl: {options.ssl}", "set ssl: verify-full, or remove ca")]
    return []


SPEC = CheckSpec(
    key="postgres",
    doc="Speak the PostgreSQL protocol: up, in recovery, out of connections; optionally log in.",
    target=AddressKind(default_port=5432),
    options=PostgresOptions,
    probe=probe,
    validate=_validate,
    example="- postgres: 127.0.0.1:5432\n  password_env: PGPASSWORD",
)
