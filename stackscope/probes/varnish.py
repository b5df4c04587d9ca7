"""`varnish`: read the real pool of one Varnish director over the CLI port and compare it.

Varnish keeps a director's members in the running VCL (`new auth = directors.round_robin();
auth.add_backend(b1);`) and each backend's address in its `backend` block, so the probe
reads the active VCL's source (`vcl.list`, then `vcl.show -v NAME`) and each backend's
admin state and probe result (`backend.list -j`), and hands the pool to the same judge
as the haproxy and nginx checks.

Only the read-only commands of `varnish_cli.READ_ONLY` (and `vcl.show`) are ever sent;
`VarnishCli.command` refuses anything else before it reaches the socket. The secret is
read from a regular file when the layout loads (or from an environment variable), masked
in every output from then on, and never sent: only its SHA-256 with the server's
challenge is.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

from stackscope.files import FileRefused, read_bounded
from stackscope.kinds import (
    AddressKind,
    CheckSpec,
    EnvName,
    Invalid,
    LayerRef,
    ParseContext,
    SecretFile,
    Text,
    describe,
    option,
)
from stackscope.lb import ConfigError, varnish_cli, varnish_vcl
from stackscope.lb.declared import judge_against_declared, pool_result, resolve_members
from stackscope.lb.pool import LAYOUT_RESOLVER_FAILED
from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import (
    Conversation,
    Deadline,
    ProbeFailure,
    conversation,
    guess_protocol,
    printable,
    resolve_host,
)
from stackscope.redact import file_secret_forms

SECRET_CAP = SecretFile.cap  # varnish's own secrets are 37 bytes; a larger "secret" is the wrong file


class DirectorName(Text):
    """A director's (or backend's) name in the VCL: it is matched against the VCL, never
    sent, but a name Varnish could not have is a layout mistake worth catching early."""

    hint = "a VCL director name ([A-Za-z0-9_])"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        text = super().parse(value, ctx)
        if not re.fullmatch(r"[A-Za-z0-9_]{1,128}", text):
            raise Invalid(
                f"{describe(value)} is not a VCL director name",
                "write the name from `new NAME = directors.round_robin();` (letters, digits, _)",
            )
        return text

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z0-9_]{1,128}$"}


@dataclass(frozen=True)
class VarnishOptions:
    director: str = option(DirectorName(), None, "The director (pool) to inspect, as named in vcl_init.", required=True)
    secret_file: str | None = option(
        SecretFile(),
        None,
        "The CLI secret file (varnishd -S), e.g. /etc/varnish/secret; read by stackscope when the layout loads.",
    )
    secret_env: str | None = option(
        EnvName(), None, "Environment variable holding the CLI secret (instead of secret_file)."
    )
    backends: str | None = option(
        LayerRef(role="backend"), None, "Layer whose checks are the declared backends (default: every backend layer)."
    )


def _validate(target, options: VarnishOptions) -> list[tuple[str, str, str]]:
    if options.secret_file and options.secret_env:
        return [("secret_env", "secret_file and secret_env are both set", "keep one of them")]
    return []


class Rejected(ProbeFailure):
    """The CLI refused the secret (Varnish then closes the connection)."""

    def __init__(self, detail: str, *, key_fact: str, status: Status, kind: ErrorKind) -> None:
        super().__init__(kind, detail, key_fact=key_fact, status=status)


def _unreadable(detail: str, key_fact: str, kind: ErrorKind = ErrorKind.PROTOCOL) -> ProbeFailure:
    return ProbeFailure(kind, detail, key_fact=key_fact, status=Status.UNKNOWN)


def read_secret_file(path: str) -> bytes:
    """The secret file's bytes: a regular file of at most SECRET_CAP bytes (a FIFO or a
    device is refused without blocking on it)."""
    try:
        data = read_bounded(path, SECRET_CAP)
    except FileRefused as exc:
        fix = " (is it the varnishd -S file?)" if exc.problem.startswith("larger than") else ""
        raise _unreadable(f"the secret file {exc}{fix}", "no secret", ErrorKind.AUTH) from None
    except IsADirectoryError:
        raise _unreadable(
            f"the secret file {path} is not a regular file (a directory)", "no secret", ErrorKind.AUTH
        ) from None
    except FileNotFoundError:
        raise _unreadable(f"no secret file at {path}", "no secret", ErrorKind.AUTH) from None
    except PermissionError:
        raise _unreadable(
            f"permission denied on the secret file {path}: run stackscope as a user that may read it",
            "no secret",
            ErrorKind.AUTH,
        ) from None
    except OSError as exc:
        raise _unreadable(f"cannot open the secret file {path}: {exc.strerror}", "no secret", ErrorKind.AUTH) from None
    if not data:
        raise _unreadable(
            f"the secret file {path} is empty or grew past {SECRET_CAP} bytes", "no secret", ErrorKind.AUTH
        )
    return data


def _register(ctx, secret: bytes) -> None:
    """Mask the secret (and its text without the final newline) in every output."""
    for variant in file_secret_forms(secret):
        ctx.redactor.add(variant)


class VarnishCli:
    """One CLI session: framed replies, a cap on every length, and the allow-list."""

    def __init__(self, talk: Conversation, where: str, cap: int = varnish_cli.REPLY_CAP) -> None:
        self.talk = talk
        self.where = where
        self.cap = cap
        self.sent: list[str] = []

    async def reply(self) -> tuple[int, bytes]:
        reader = self.talk.reader
        try:
            head = await reader.readexactly(varnish_cli.STATUS_LINE_BYTES)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _unreadable(
                    f"{self.where} closed the connection while the probe waited to {self.talk.awaiting}", "closed"
                ) from None
            raise self._garbage(exc.partial) from None
        try:
            code, length = varnish_cli.parse_status(head, self.cap)
        except varnish_cli.CliError as exc:
            if str(exc).startswith("announced"):
                raise _unreadable(f"{self.where}: {exc}", "too big") from None
            raise self._garbage(head + await _more(reader)) from None
        try:
            body = await reader.readexactly(length + 1)
        except asyncio.IncompleteReadError:
            raise _unreadable(
                f"{self.where} closed the connection in the middle of a reply ({length} bytes announced)", "closed"
            ) from None
        if body[-1:] != b"\n":
            raise _unreadable(
                f"{self.where}: a reply longer than its status line says (not the Varnish CLI?)", "bad frame"
            )
        return code, body[:-1]

    def _garbage(self, data: bytes) -> ProbeFailure:
        return _unreadable(
            f"{self.where} does not speak the Varnish CLI: it sent '{printable(data)}' ({guess_protocol(data)} answered)",
            "not varnish",
        )

    async def login(self, secret: bytes | None) -> None:
        self.talk.awaiting = "send the CLI greeting"
        code, body = await self.reply()
        if code == varnish_cli.OK:
            return
        if code != varnish_cli.AUTH:
            raise _unreadable(f"{self.where} greeted with {code}: '{printable(body, 80)}'", f"greeting {code}")
        if secret is None:
            raise _unreadable(
                f"{self.where} asks for the CLI secret (varnishd -S): set secret_file or secret_env",
                "no secret",
                ErrorKind.AUTH,
            )
        try:
            challenge = varnish_cli.challenge_of(body)
        except varnish_cli.CliError as exc:
            raise _unreadable(f"{self.where}: {exc}", "bad challenge") from None
        self.talk.awaiting = "answer the authentication"
        self.talk.writer.write(varnish_cli.auth_command(challenge, secret))
        self.sent.append("auth <response>")
        await self.talk.writer.drain()
        try:
            code, body = await self.reply()
        except ProbeFailure as failure:
            if failure.key_fact != "closed":
                raise
            code = 0  # Varnish answers 500 and hangs up on a wrong answer; a peer may just hang up
        if code != varnish_cli.OK:
            raise Rejected(
                f"{self.where} rejected the CLI secret (is it the file varnishd was started with -S?)",
                key_fact="auth failed",
                status=Status.UNKNOWN,
                kind=ErrorKind.AUTH,
            )

    async def command(self, command: str) -> bytes:
        if not varnish_cli.allowed(command):  # whoever asks: nothing else leaves this client
            raise varnish_cli.Refused(command)
        self.talk.awaiting = f"answer {command}"
        self.talk.writer.write(command.encode() + b"\n")
        self.sent.append(command)
        await self.talk.writer.drain()
        code, body = await self.reply()
        if code != varnish_cli.OK:
            raise _unreadable(f"{self.where} answered {command} with {code}: '{printable(body, 80)}'", f"cli {code}")
        return body


async def _more(reader: asyncio.StreamReader) -> bytes:
    """A few more bytes, if they come at once: enough to name what answered."""
    try:
        return await asyncio.wait_for(reader.read(64), 0.05)
    except (asyncio.TimeoutError, OSError):
        return b""


def _secret(check, ctx) -> tuple[bytes | None, bool]:
    """(the secret, whether a copy with a final newline may be tried too).

    A secret file is the one the loader read when the layout loaded: already masked in
    the layout's names and registered with the redactor (Redactor.for_layout), and the
    same bytes whatever happens to the file later, as an `*_env` value is the one the
    process started with. Only a layout the loader did not read it for (one built by
    hand, or loaded for lint on a machine without the file) has it read here, with the
    same rules (read_bounded, SECRET_CAP), and registered before use."""
    options: VarnishOptions = check.options
    if options.secret_file:
        layout = getattr(ctx, "layout", None)
        secret = layout.file_secret(options.secret_file) if layout is not None else None
        if secret is None:
            secret = read_secret_file(options.secret_file)
            _register(ctx, secret)
        return secret, False
    if options.secret_env:
        value = ctx.secret(options.secret_env)
        if not value:
            raise _unreadable(f"{options.secret_env} is not set or empty", "no secret", ErrorKind.AUTH)
        return value.encode(), True
    return None, False


async def _session(
    check, ip: str, secret: bytes | None, deadline: Deadline, facts: dict
) -> tuple[str, bytes, str, list]:
    """One CLI session: (active VCL name, its vcl.show -v, backend.list -j, commands sent)."""
    where = f"the Varnish CLI at {check.address}"
    async with conversation(
        ip, check.address.port, deadline, facts, where=where, awaiting="send the CLI greeting"
    ) as talk:
        cli = VarnishCli(talk, where)
        await cli.login(secret)
        listing = await cli.command("vcl.list")
        name = varnish_cli.active_vcl(listing.decode("utf-8", "replace"))
        if name is None:
            raise _unreadable(f"{where}: vcl.list shows no active VCL: '{printable(listing, 80)}'", "no vcl")
        shown = await cli.command(f"vcl.show -v {name}")
        states = (await cli.command("backend.list -j")).decode("utf-8", "replace")
    return name, shown, states, cli.sent


async def read_pool(
    check, ctx, deadline: Deadline
) -> tuple[varnish_vcl.Vcl, dict[str, varnish_cli.BackendState], dict]:
    """The active VCL (parsed) and each backend's state, read over one CLI session."""
    secret, retry = _secret(check, ctx)
    where = f"the Varnish CLI at {check.address}"
    ip, facts = await resolve_host(ctx, check.address.host, deadline)
    try:
        try:
            name, shown, states, sent = await _session(check, ip, secret, deadline, facts)
        except Rejected:
            # $(cat /etc/varnish/secret) drops the file's final newline: Varnish hangs up on
            # a wrong answer, so the value with the newline gets a second session
            if not (retry and secret is not None and not secret.endswith(b"\n")):
                raise
            name, shown, states, sent = await _session(check, ip, secret + b"\n", deadline, facts)
    except ProbeFailure as failure:
        failure.status = Status.UNKNOWN
        if not failure.detail.startswith(where) and failure.kind is not ErrorKind.AUTH:
            failure.detail = f"cannot read the pool: {failure.detail}"
        raise
    try:
        files = {  # cut as bytes (the header counts bytes), then made safe for a terminal
            varnish_cli.safe_source(path): varnish_cli.safe_source(text)
            for path, text in (varnish_vcl.split_show(shown) or {}).items()
        }
        if not files:
            raise ConfigError(name, 0, "vcl.show -v printed no VCL source")
        vcl = await asyncio.to_thread(varnish_vcl.load_text, files)  # a large VCL: off the event loop
        backends = varnish_cli.parse_backend_list(states, name)
    except (ConfigError, varnish_cli.CliError) as exc:
        raise _unreadable(
            f"cannot read the pool from {where}: {printable(str(exc).encode(), 200)}", "unreadable"
        ) from None
    facts["varnish"] = {"vcl": name, "files": vcl.files, "commands": sent}
    return vcl, backends, facts


async def probe(check, ctx) -> Result:
    options: VarnishOptions = check.options
    deadline = Deadline(check.timeout)
    vcl, states, facts = await read_pool(check, ctx, deadline)
    name = options.director
    if name not in vcl.directors and name not in vcl.backends:
        directors = sorted(vcl.directors)
        raise ProbeFailure(
            ErrorKind.CONFIG,
            f"the active VCL {facts['varnish']['vcl']} has no director '{name}' "
            f"({'directors: ' + ', '.join(directors) if directors else 'it makes no directors in vcl_init'})",
            key_fact="no director",
            facts=facts,
        )
    try:
        members = varnish_vcl.members_of(vcl, name)
    except ConfigError as exc:
        raise ProbeFailure(ErrorKind.CONFIG, f"VCL error at {exc}", key_fact="config error", facts=facts) from None
    resolved, errors = await resolve_members(ctx, (entry.backend.host for entry in members), deadline)
    notes = [str(exc) for exc in errors]
    health = {backend: state.health for backend, state in states.items()}
    pool = varnish_vcl.pool_of(
        vcl,
        name,
        resolved,
        LAYOUT_RESOLVER_FAILED,
        health,
        source=f"Varnish CLI {check.address} vcl {facts['varnish']['vcl']}",
    )
    director_state = states.get(name)
    if director_state is not None:  # the director's own word: healthy while a member is
        pool = replace(pool, status=director_state.health.word or None)
    judged = await judge_against_declared(ctx, pool, options.backends, deadline)
    all_facts = {**facts, **judged.facts}
    if notes:
        all_facts["pool"]["notes"] = notes
    return pool_result(check, judged, deadline, facts=all_facts)


SPEC = CheckSpec(
    key="varnish",
    doc="Read a Varnish director's pool over the CLI port (varnishd -T; read-only commands) and compare it "
    "with the declared backends.",
    target=AddressKind(),
    options=VarnishOptions,
    probe=probe,
    validate=_validate,
    example="- varnish: 127.0.0.1:6082\n  director: auth_servers\n  secret_file: /etc/varnish/secret",
)
