"""A listen address from the command line, and the loopback rule every server here obeys.

`stackscope export` (/metrics) and `--serve` (the classroom) both serve without
authentication, so both listen on loopback unless the user says `--allow-remote`: one
parser keeps the rule and its wording the same for both.
"""

from __future__ import annotations

import ipaddress


class ListenError(ValueError):
    """A bad HOST:PORT, or a non-loopback one without --allow-remote."""


def parse_address(
    text: str, *, allow_remote: bool = False, flag: str = "--listen", why: str = "", example: str = "127.0.0.1:8000"
) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT) -> (host, port). Only loopback addresses unless
    `allow_remote`; `why` says what a remote listener would expose (it goes in the error)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ListenError(f"{flag} {text!r}: expected HOST:PORT, like {example}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ListenError(f"{flag} {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ListenError(f"{flag} {text!r}: port {port} is out of range (1-65535)")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ListenError(f"{flag} {text!r}: {host!r} is not an IP address (write 127.0.0.1 or [::1])") from None
    if not ip.is_loopback and not allow_remote:
        raise ListenError(
            f"{flag} {text!r}: {host} is not a loopback address; {why}"
            "Add --allow-remote to listen there anyway (behind a firewall or a reverse proxy with TLS and auth)"
        )
    return host, port
