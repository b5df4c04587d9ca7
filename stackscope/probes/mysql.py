"""`mysql`: read the MySQL/MariaDB handshake, and finish it properly.

The server speaks first: a v10 greeting (version, connection id) or an ERR packet (1129
host blocked, 1130 host not allowed…). MariaDB still greets when it is full and sends
1040 "Too many connections" only after the client's handshake response, so the probe
always answers the greeting: as `user` with `password_env` it logs in and runs
`SELECT 1`; without a password it presents `user` with an empty password, and the
server answers 1040 when saturated, or "access denied" (up) or OK. Why not just hang up
after the greeting: an abandoned handshake is a "connection error" that counts toward
`max_connect_errors` and, from a remote host, ends with that host blocked (1129). A
completed handshake is not: the server only logs an "Access denied" warning (with
log_warnings >= 2) and counts Aborted_connects. A dedicated user with no privileges and
a password (`password_env`) avoids even that.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass

from stackscope.kinds import AddressKind, CheckSpec, Choice, EnvName, mysql_user, option
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
)

MAX_PACKET = 1024 * 1024
# A greeting is ~100 bytes; a "packet" far longer than that is another protocol's bytes
# read as a length (garbage 8f 01 02… would otherwise be waited on as a 131 KB packet).
MAX_GREETING = 64 * 1024
CLIENT_LONG_PASSWORD, CLIENT_PROTOCOL_41, CLIENT_TRANSACTIONS = 0x1, 0x200, 0x2000
CLIENT_SECURE_CONNECTION, CLIENT_PLUGIN_AUTH = 0x8000, 0x80000
CAPABILITIES = (
    CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
)
COM_QUIT, COM_QUERY = b"\x01", b"\x03"
ERRORS = {
    1040: "too many connections",
    1129: "this host is blocked after too many connection errors (mariadb-admin flush-hosts clears it)",
    1130: "this host is not allowed to connect",
    1045: "access denied",
    1203: "the user has too many connections",
    1226: "a resource limit of the user is exceeded",
    1043: "bad handshake",
}


@dataclass(frozen=True)
class MysqlOptions:
    user: str = option(mysql_user(), "stackscope", "User to present (a user with no privileges is best).")
    password_env: str | None = option(
        EnvName(), None, "Environment variable with the password: log in and run SELECT 1."
    )
    expect_role: str | None = option(
        Choice("primary", "standby"),
        None,
        "The role this server must have (needs password_env), read from @@read_only (super_read_only "
        "implies it): a primary that is read-only is CRIT; a standby that takes writes is WARN.",
    )


@dataclass(frozen=True)
class Greeting:
    version: str
    connection_id: int
    capabilities: int
    seed: bytes
    plugin: str


class _Packets:
    def __init__(self, talk: Conversation, deadline: Deadline, where: str) -> None:
        self.talk, self.where = talk, where
        self.deadline = deadline
        self.seq = 0

    async def read(self, what: str, limit: int = MAX_PACKET, starts: bytes = b"") -> bytes:
        """One packet's payload. A length above `limit` is another protocol's bytes read as
        a length; with `starts` (the bytes a payload may begin with) the packet is judged
        as soon as its first byte shows it cannot be MySQL's."""
        self.talk.awaiting = f"send {what}"
        head = await self._exactly(4, what)
        self.talk.timeout_detail = None  # something came: a later timeout is mid-packet
        length = int.from_bytes(head[:3], "little")
        self.seq = (head[3] + 1) % 256
        if length > limit or (starts and length == 0):
            raise await self._not_mysql(head)
        if not starts:
            return await self._exactly(length, what, head)
        first = await self._exactly(1, what, head)
        if first not in starts:
            raise await self._not_mysql(head + first)
        return first + await self._exactly(length - 1, f"the rest of {what}", head + first)

    async def greeting(self) -> bytes:
        """The first packet: a handshake (0x0a) or an error (0xff)."""
        self.talk.timeout_detail = (
            f"{self.where}: nothing greeted within {self.deadline.text} (a MySQL server speaks first)"
        )
        return await self.read("a greeting", MAX_GREETING, starts=b"\x0a\xff")

    async def _not_mysql(self, sent: bytes) -> ProbeFailure:
        sent += await read_some(self.talk.reader, self.deadline)
        return ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{self.where} does not speak MySQL: it sent '{printable(sent)}' "
            f"({guess_protocol(sent, 'MySQL')} answered)",
            key_fact="not mysql",
        )

    async def _exactly(self, n: int, what: str, before: bytes = b"") -> bytes:
        try:
            return await self.talk.reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            sent = before + exc.partial
            if sent:
                raise ProbeFailure(
                    ErrorKind.PROTOCOL,
                    f"{self.where} does not speak MySQL: it sent '{printable(sent)}' and "
                    f"closed the connection ({guess_protocol(sent)} answered)",
                    key_fact="not mysql",
                ) from None
            raise ProbeFailure(
                ErrorKind.PROTOCOL, f"{self.where} closed the connection instead of sending {what}", key_fact="closed"
            ) from None
        except ConnectionError as exc:
            if before:  # bytes came, then a reset: say what they were
                raise ProbeFailure(
                    ErrorKind.PROTOCOL,
                    f"{self.where} does not speak MySQL: it sent '{printable(before)}' "
                    f"and reset the connection ({guess_protocol(before)} answered)",
                    key_fact="not mysql",
                ) from None
            kind, detail, key_fact = describe_os_error(exc, self.where)
            raise ProbeFailure(kind, detail, key_fact=key_fact) from None

    async def send(self, payload: bytes) -> None:
        self.talk.writer.write(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) % 256
        await self.talk.writer.drain()


def parse_err(packet: bytes, where: str = "the server") -> tuple[int, str]:
    """(code, message) of an ERR packet (0xff, int<2> code, ['#' sqlstate], message)."""
    if len(packet) < 3:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} sent a truncated MySQL error packet '{printable(packet)}'",
            key_fact="bad packet",
        )
    code = int.from_bytes(packet[1:3], "little")
    message = packet[3:]
    if message.startswith(b"#"):
        message = message[6:]  # '#' + 5-character SQLSTATE
    return code, message.decode("utf-8", "replace")


def parse_greeting(packet: bytes, where: str) -> Greeting:
    if not packet or packet[0] != 10:
        raise ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} does not speak MySQL: its greeting starts with "
            f"'{printable(packet, 16)}' ({guess_protocol(packet, 'MySQL')} answered)",
            key_fact="not mysql",
        )
    try:
        end = packet.index(b"\0", 1)
        version = packet[1:end].decode("utf-8", "replace")
        pos = end + 1
        connection_id = struct.unpack("<I", packet[pos : pos + 4])[0]
        seed = packet[pos + 4 : pos + 12]
        caps = struct.unpack("<H", packet[pos + 13 : pos + 15])[0]
        caps |= struct.unpack("<H", packet[pos + 18 : pos + 20])[0] << 16
        auth_len = packet[pos + 20]
        rest = packet[pos + 31 :]
        seed += rest[: max(13, auth_len - 8)].rstrip(b"\0")
        plugin_start = max(13, auth_len - 8)
        plugin = rest[plugin_start:].split(b"\0")[0].decode("ascii", "replace") if caps & CLIENT_PLUGIN_AUTH else ""
    except (ValueError, IndexError, struct.error):
        raise ProbeFailure(
            ErrorKind.PROTOCOL, f"{where} sent a truncated MySQL greeting", key_fact="bad greeting"
        ) from None
    if version.startswith("5.5.5-"):
        version = version[6:]  # MariaDB's prefix for old replication clients
    return Greeting(version, connection_id, caps, seed[:20], plugin or "mysql_native_password")


def native_password(password: str, seed: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mix = hashlib.sha1(seed + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix))


def handshake_response(user: str, auth: bytes) -> bytes:
    return (
        struct.pack("<IIB", CAPABILITIES, MAX_PACKET, 45)
        + b"\0" * 23
        + user.encode()
        + b"\0"
        + bytes([len(auth)])
        + auth
        + b"mysql_native_password\0"
    )


def _fail_for(code: int, message: str, where: str, logging_in: bool) -> ProbeFailure | None:
    facts = {"error_code": code}
    if code == 1040:
        return ProbeFailure(
            ErrorKind.SATURATED,
            f"{where} is out of connections: {message} (1040)",
            key_fact="too many connections",
            facts=facts,
        )
    if code in (1129, 1130):
        return ProbeFailure(
            ErrorKind.AUTH,
            f"{where} refuses this host: {message} ({code}: {ERRORS[code]})",
            key_fact=f"error {code}",
            facts=facts,
        )
    if code in (1045, 1698, 1524) and not logging_in:
        return None  # the server checked the user: it is up
    if code in (1045, 1698):
        return ProbeFailure(
            ErrorKind.AUTH, f"{where} refused the login: {message} ({code})", key_fact="login refused", facts=facts
        )
    return ProbeFailure(
        ErrorKind.STATE,
        f"{where}: {message} ({code}{': ' + ERRORS[code] if code in ERRORS else ''})",
        key_fact=f"error {code}",
        facts=facts,
    )


async def probe(check, ctx) -> Result:
    options: MysqlOptions = check.options
    deadline = Deadline(check.timeout)
    address = check.address
    ip, facts = await resolve_host(ctx, address.host, deadline)
    where = str(address)
    password = ctx.secret(options.password_env) if options.password_env else None
    async with conversation(
        ip,
        address.port,
        deadline,
        facts,
        where=where,
        awaiting="finish the handshake",
        goodbye=b"\x01\x00\x00\x00" + COM_QUIT,
    ) as talk:
        packets = _Packets(talk, deadline, where)
        first = await packets.greeting()
        if first[:1] == b"\xff":
            code, message = parse_err(first, where)
            failure = _fail_for(code, message, where, logging_in=True)
            assert failure is not None  # logging in, every error code is a failure
            failure.facts.update(facts)
            raise failure
        greeting = parse_greeting(first, where)
        facts.update(
            {"version": greeting.version, "connection_id": greeting.connection_id, "auth_plugin": greeting.plugin}
        )
        if not greeting.capabilities & CLIENT_PROTOCOL_41:
            return result(
                check,
                Status.WARN,
                f"{where} speaks only the pre-4.1 protocol ({greeting.version})",
                latency_ms=deadline.elapsed_ms(),
                key_fact=greeting.version,
                facts=facts,
                kind=ErrorKind.PROTOCOL,
            )
        await packets.send(handshake_response(options.user, native_password(password or "", greeting.seed)))
        reply = await packets.read("an answer to the login")
        if reply == b"\xfe":  # the old (pre-4.1) auth switch: a bare 0xfe, no plugin named
            old_auth = "the old (pre-4.1) authentication, which the probe does not speak"
            if password:
                raise ProbeFailure(ErrorKind.AUTH, f"{where} asks for {old_auth}", key_fact="old auth", facts=facts)
            return result(
                check,
                Status.OK,
                f"{where} is up (MariaDB/MySQL {greeting.version}); it asks for {old_auth}",
                latency_ms=deadline.elapsed_ms(),
                key_fact="up",
                facts=facts,
            )
        if reply[:1] == b"\xfe" and password:  # AuthSwitchRequest: answer for the plugin it names
            plugin, _, seed = reply[1:].partition(b"\0")
            if not plugin:
                raise ProbeFailure(
                    ErrorKind.PROTOCOL,
                    f"{where} sent an auth switch that names no plugin: '{printable(reply)}'",
                    key_fact="bad auth switch",
                    facts=facts,
                )
            if plugin != b"mysql_native_password":
                raise ProbeFailure(
                    ErrorKind.AUTH,
                    f"{where} wants the {printable(plugin)} plugin, which the probe does not speak",
                    key_fact="auth plugin",
                    facts=facts,
                )
            await packets.send(native_password(password, seed.rstrip(b"\0")[:20]))
            reply = await packets.read("an answer to the login")
        if reply[:1] == b"\xff":
            code, message = parse_err(reply, where)
            failure = _fail_for(code, message, where, logging_in=password is not None)
            if failure is not None:
                failure.facts.update(facts)
                raise failure
            return result(
                check,
                Status.OK,
                f"{where} is up: MariaDB/MySQL {greeting.version} answered and "
                f"refuses user '{options.user}' ({code}), as expected without a password",
                latency_ms=deadline.elapsed_ms(),
                key_fact="up",
                facts=facts,
            )
        if reply[:1] not in (b"\x00", b"\xfe", b"\x01"):  # neither OK, ERR, auth switch nor more-data
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{where} answered the login with a packet that is no MySQL "
                f"reply (not OK, ERR, an auth switch or more auth data): '{printable(reply)}'",
                key_fact="bad reply",
                facts=facts,
            )
        if reply[:1] != b"\x00":
            return result(
                check,
                Status.OK,
                f"{where} is up (MariaDB/MySQL {greeting.version}); it asked for an "
                "authentication method the probe does not speak",
                latency_ms=deadline.elapsed_ms(),
                key_fact="up",
                facts=facts,
            )
        if password is None:
            return result(
                check,
                Status.OK,
                f"{where} is up: MariaDB/MySQL {greeting.version} let '{options.user}' in without a password",
                latency_ms=deadline.elapsed_ms(),
                key_fact="up",
                facts=facts,
            )
        expected = getattr(options, "expect_role", None)
        if expected is not None:
            value = await _select_one(packets, where, b"SELECT @@read_only")
            facts["logged_in_as"] = options.user
            return _judge_role(check, where, expected, value, facts, deadline.elapsed_ms())
        await _select_one(packets, where)
        facts["logged_in_as"] = options.user
        return result(
            check,
            Status.OK,
            f"{where}: logged in, SELECT 1 ok (MariaDB/MySQL {greeting.version})",
            latency_ms=deadline.elapsed_ms(),
            key_fact="logged in",
            facts=facts,
        )


def _judge_role(check, where: str, expected: str, value: str | None, facts: dict, latency: float) -> Result:
    read_only = value not in (None, "0", "OFF")
    facts["read_only"] = read_only
    refuses = "read-only" if expected == "primary" and read_only else ""
    state = StoreState(
        "mysql",
        role="standby" if read_only else "primary",
        expected_role=expected,
        read_only=read_only,
        refuses_writes=refuses,
    )
    if expected == "primary" and read_only:
        return result(
            check,
            Status.CRIT,
            f"{where} is declared the primary but is read-only (@@read_only = {value}): it refuses every write "
            "(came back as a replica after a failover?)",
            latency_ms=latency,
            key_fact="read-only",
            facts=facts,
            kind=ErrorKind.STATE,
            evidence=state,
        )
    if expected == "standby" and not read_only:
        return result(
            check,
            Status.WARN,
            f"{where} is declared a standby but takes writes (@@read_only = {value}): promoted, or a "
            "replica that can drift from its primary",
            latency_ms=latency,
            key_fact="writable",
            facts=facts,
            kind=ErrorKind.STATE,
            evidence=state,
        )
    return result(
        check,
        Status.OK,
        f"{where}: logged in, {'read-only standby' if read_only else 'writable primary'} as declared",
        latency_ms=latency,
        key_fact=expected,
        facts=facts,
        evidence=state,
    )


def _lenenc_text(packet: bytes) -> str | None:
    """The first column of a text-protocol row packet (NULL: None)."""
    if not packet:
        return None
    first = packet[0]
    if first == 0xFB:
        return None
    if first < 0xFB:
        return packet[1 : 1 + first].decode("utf-8", "replace")
    return None  # a longer value: not a flag


async def _select_one(packets: _Packets, where: str, query: bytes = b"SELECT 1") -> str | None:
    """Run a one-row, one-column read-only query; its value (None when not read)."""
    packets.seq = 0
    await packets.send(COM_QUERY + query)
    eofs = 0
    value: str | None = None
    shown = query.decode()
    for _ in range(16):  # column count, column definition, EOF, row, EOF
        packet = await packets.read("the query result")
        if packet[:1] == b"\xff":
            code, message = parse_err(packet, where)
            raise ProbeFailure(ErrorKind.STATE, f"{where}: {shown} failed: {message} ({code})", key_fact="query failed")
        if packet[:1] == b"\xfe" and len(packet) < 9:
            eofs += 1
            if eofs == 2:
                return value
        elif packet[:1] == b"\x00" and eofs == 1:
            return value  # servers that end a result set with OK instead of EOF
        elif eofs == 1 and value is None:
            value = _lenenc_text(packet)
    raise ProbeFailure(ErrorKind.PROTOCOL, f"{where}: {shown} returned an endless result", key_fact="protocol")


SPEC = CheckSpec(
    key="mysql",
    doc="Read the MySQL/MariaDB handshake and finish it cleanly: up, saturated, host blocked; optionally log in.",
    target=AddressKind(default_port=3306),
    options=MysqlOptions,
    probe=probe,
    example="- mysql: 127.0.0.1:3306\n  user: stackscope",
)
