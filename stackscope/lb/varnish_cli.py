"""The Varnish CLI protocol (varnish-cli(7)) as far as a read-only client needs it: no sockets.

Every reply is a status line of exactly 13 bytes, `CODE LENGTH\\n` (the code in 3 digits,
the body length left-justified in 8 columns), then LENGTH bytes of body and a newline.
On connect the server sends 107 with a challenge when it has a secret (`-S`); the
client answers `auth SHA256(challenge + "\\n" + secret + challenge + "\\n")` in hex,
the secret being the secret file's bytes as they are (its newline too).

The client sends only what `allowed()` says: a fixed list of read-only commands. A
command that could change the server (`backend.set_health`, `vcl.use`, `vcl.load`,
`param.set`, `ban`, `stop`...) is refused before it reaches the socket, whoever asks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from stackscope.jsonbound import JsonRefused, NotJson, loads, need
from stackscope.lb.varnish_vcl import Health
from stackscope.safetext import terminal_safe

STATUS_LINE_BYTES = 13
REPLY_CAP = 4 * 1024 * 1024  # a vcl.show -v of a large VCL (plus the 6 KiB builtin) still fits
OK = 200
AUTH = 107
READ_ONLY = frozenset({"backend.list -j", "backend.list -p", "vcl.list", "ping", "banner"})
VCL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
_VCL_SHOW = re.compile(rf"vcl\.show (?:-v )?{VCL_NAME.pattern}")
_STATUS = re.compile(rb"([0-9]{3}) ([0-9]{1,8}) *\n")
_CHALLENGE = re.compile(rb"[\x21-\x7e]{8,128}")


def safe_source(text: str) -> str:
    """VCL source as a server sent it, with every character a terminal could act on
    replaced (lines kept: the parser needs them; a tab becomes a space), so no name,
    path or string that reaches a fact or a sentence can drive the operator's terminal."""
    return "\n".join(terminal_safe(line.replace("\t", " ")) for line in text.split("\n"))


class CliError(Exception):
    """The peer broke the protocol; the message says how (made safe by the caller)."""


class Refused(Exception):
    """A command outside the read-only allow-list: never sent."""


def allowed(command: str) -> bool:
    """True for the read-only commands the client may send, exactly as written."""
    return command in READ_ONLY or _VCL_SHOW.fullmatch(command) is not None


def parse_status(head: bytes, cap: int = REPLY_CAP) -> tuple[int, int]:
    """(code, body length) from a 13-byte status line; CliError when it is none or the
    length is over `cap` (a peer announcing 99999999 bytes is not read)."""
    match = _STATUS.fullmatch(head)
    if len(head) != STATUS_LINE_BYTES or match is None:
        raise CliError("not a Varnish CLI status line")
    code, length = int(match.group(1)), int(match.group(2))
    if length > cap:
        raise CliError(f"announced a reply of {length} bytes, over the cap of {cap // 1024} KiB")
    return code, length


def challenge_of(body: bytes) -> bytes:
    """The challenge of a 107 reply (its first line)."""
    first = body.split(b"\n", 1)[0]
    if not _CHALLENGE.fullmatch(first):
        raise CliError("the 107 reply carries no challenge")
    return first


def auth_command(challenge: bytes, secret: bytes) -> bytes:
    digest = hashlib.sha256(challenge + b"\n" + secret + challenge + b"\n").hexdigest()
    return f"auth {digest}\n".encode()


def active_vcl(text: str) -> str | None:
    """The active VCL's name from `vcl.list` (a label resolved to the VCL it points at)."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 5 and words[0] == "active":
            name = words[-1] if "->" in words else words[4]
            return name if VCL_NAME.fullmatch(name) else None
    return None


@dataclass(frozen=True)
class BackendState:
    kind: str  # backend, round-robin, fallback, ...
    health: Health


def parse_backend_list(text: str, vcl: str) -> dict[str, BackendState]:
    """{backend name: state} of VCL `vcl` from `backend.list -j` (names carry `vcl.`), the
    JSON read within jsonbound's bounds; anything else is a CliError saying why."""
    try:
        doc = loads(text, max_bytes=REPLY_CAP)
    except NotJson:
        raise CliError("backend.list -j did not answer JSON") from None
    except JsonRefused as exc:
        raise CliError(f"backend.list -j answered JSON that cannot be read: {exc.reason}") from None
    if not isinstance(doc, list) or len(doc) < 4 or not isinstance(doc[3], dict):
        raise CliError("backend.list -j answered JSON of another shape")
    out: dict[str, BackendState] = {}
    prefix = vcl + "."
    try:
        for key, value in doc[3].items():
            if not isinstance(key, str) or not key.startswith(prefix) or not isinstance(value, dict):
                continue
            out[terminal_safe(key[len(prefix) :])] = _state(value, terminal_safe(key))
    except JsonRefused as exc:
        raise CliError(f"backend.list -j answered JSON that cannot be read: {exc.reason}") from None
    return out


def _state(value: dict[str, Any], where: str) -> BackendState:
    message = value.get("probe_message")
    good = window = None
    word = ""
    if isinstance(message, list) and len(message) == 3:
        good = message[0] if isinstance(message[0], int) and not isinstance(message[0], bool) else None
        window = message[1] if isinstance(message[1], int) and not isinstance(message[1], bool) else None
        word = str(message[2])
    elif isinstance(message, str):
        word = message
    change = value.get("last_change")
    return BackendState(
        terminal_safe(need(value.get("type", ""), str, f"{where}.type", "a string")),
        Health(
            terminal_safe(need(value.get("admin_health", ""), str, f"{where}.admin_health", "a string")),
            good,
            window,
            terminal_safe(word),
            float(change) if isinstance(change, (int, float)) and not isinstance(change, bool) else None,
        ),
    )
