"""What `init` found, before it becomes a layout: plain frozen data with its provenance.

Every value here comes from a file or a server, so text is made terminal-safe when these
objects are made (Origin.of, safe()), never later: the layout and the comments quote them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from stackscope.safetext import terminal_safe


def safe(text: str) -> str:
    """One line of terminal-safe text (a config value may hold a newline or an escape)."""
    return terminal_safe(str(text)).replace("\n", " ").replace("\r", " ")


@dataclass(frozen=True)
class Origin:
    """Where an entry came from: `haproxy.cfg:42`, `listening: postgres on 127.0.0.1:5432`."""

    text: str

    @classmethod
    def of(cls, file: str | None, line: int | None = None) -> Origin:
        name = os.path.basename(file or "?")
        return cls(safe(f"{name}:{line}" if line else name))


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int
    origin: Origin
    standby: bool = False
    out: str = ""  # read from a live LB: why it holds the member out of rotation ("" when in or not known)


@dataclass(frozen=True)
class FoundPool:
    name: str
    members: tuple[Member, ...]
    origin: Origin
    health_path: str = "/"  # what the LB asks each member; the direct check asks the same
    health_origin: Origin | None = None
    routed: bool = True  # some frontend sends traffic to it
    skipped: tuple[str, ...] = ()  # members whose address the config leaves open, and why
    # how the LB's pool check names this pool when its name is not how the check finds it
    # (Caddy's route selector); "" leaves the check to choose by the declared backends
    selector: str | None = None


@dataclass(frozen=True)
class Frontend:
    url: str  # http://HOST:PORT (no path): where users connect
    origin: Origin
    pool: str | None  # the pool it routes to, when the config says
    hosts: tuple[str, ...] = ()  # names it serves (server_name, ServerName, hdr(host), Caddy hosts)


@dataclass(frozen=True)
class PoolCheck:
    """The LB's own pool check: its type, target and options other than backends."""

    type: str
    target: str
    options: tuple[tuple[str, str], ...]
    origin: Origin
    pool_option: str  # backend / upstream / balancer / director (the option naming the pool)


@dataclass(frozen=True)
class FoundLb:
    kind: str
    source: str  # what was read, for the header comment
    frontends: tuple[Frontend, ...]
    pools: tuple[FoundPool, ...]
    admin: PoolCheck | None  # target and options of the pool check, without the pool name
    notes: tuple[str, ...] = ()  # why a pool check or a frontend is missing


@dataclass(frozen=True)
class Service:
    """A database or cache found listening (--local)."""

    type: str  # postgres, mysql, redis
    address: str
    origin: Origin
    password_env: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    name: str = ""  # the check's name when not its type (mariadb for a mysql check)


@dataclass
class Review:
    """Entries to mark `# review:` and say why on stderr, keyed by check name."""

    why: dict[str, str] = field(default_factory=dict)
