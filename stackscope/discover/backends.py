"""`--backends FILE`: the real members, from outside the LB (the LB is no witness for
itself). Either HOST:PORT one per line, or an Ansible INI inventory whose hosts give their
address as `ansible_host` (else their name) and their HTTP port as `http_port` (or the
variable `--port-var` names); Ansible's own `host:port` is the SSH port, never used."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from stackscope.discover.found import Member, Origin, safe
from stackscope.files import FileRefused, read_text
from stackscope.kinds import Invalid, parse_address

MAX_BYTES = 1024 * 1024


class BackendsError(Exception):
    """FILE:LINE: what is wrong (terminal-safe)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        where = f"{os.path.basename(file)}:{line}" if line else os.path.basename(file)
        super().__init__(safe(f"--backends {where}: {message}"))


def split_spec(spec: str) -> tuple[str, str | None]:
    """`inventory.ini:GROUP` -> (path, GROUP); a path that exists as written wins."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, _, group = spec.rpartition(":")
    return path, group or None


def read(
    spec: str, port_var: str = "http_port", pools: tuple[str, ...] = ()
) -> tuple[str, dict[str | None, tuple[Member, ...]]]:
    """(path, {group: members}); a plain list, or the group FILE:GROUP names, is the group
    None; else the groups named like `pools` (only those hosts must have a port)."""
    path, group = split_spec(spec)
    try:
        text = read_text(path, MAX_BYTES, errors="replace")
    except FileRefused as exc:
        raise BackendsError(path, 0, exc.problem) from None
    except OSError as exc:
        raise BackendsError(path, 0, exc.strerror or str(exc)) from None
    if re.search(r"^\s*\[[^\]]+\]\s*$", text, re.M):
        names, members_of = _inventory(path, text, port_var)
        if group is not None:
            if group not in names:
                raise BackendsError(path, 0, f"no group '{group}' (groups: {', '.join(sorted(names)) or 'none'})")
            return path, {None: members_of(group)}
        return path, {name: members_of(name) for name in pools if name in names}
    if group is not None:
        raise BackendsError(path, 0, f"':{group}' names a group, but the file is no INI inventory")
    return path, {None: _plain(path, text)}


def _plain(path: str, text: str) -> tuple[Member, ...]:
    members = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            address = parse_address(line)
        except Invalid as exc:
            raise BackendsError(path, number, f"'{line}': {exc.message} (write HOST:PORT)") from None
        if address.port is None:
            raise BackendsError(path, number, f"'{line}' has no port (write HOST:PORT)")
        members.append(Member(safe(line), safe(address.host), address.port, Origin.of(path, number)))
    if not members:
        raise BackendsError(path, 0, "no HOST:PORT line")
    return tuple(members)


def _inventory(path: str, text: str, port_var: str) -> tuple[set[str], Callable[[str], tuple[Member, ...]]]:
    hosts: dict[str, list[tuple[str, dict[str, str], int]]] = {}
    children: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, str]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        head = re.fullmatch(r"\[([^\]:]+)(?::(\w+))?\]", line)
        if head:
            section, kind = head.group(1), head.group(2) or "hosts"
            continue
        words = line.split()
        if kind == "children":
            children.setdefault(section, []).append(words[0])
        elif kind == "vars":
            key, _, value = line.partition("=")
            group_vars.setdefault(section, {})[key.strip()] = value.strip().strip("'\"")
        else:
            variables = {}
            for word in words[1:]:
                key, eq, value = word.partition("=")
                if not eq:
                    raise BackendsError(path, number, f"'{word}' is not KEY=VALUE")
                variables[key] = value.strip("'\"")
            hosts.setdefault(section, []).append((words[0], variables, number))

    def members(group: str, depth: int = 0) -> list[Member]:
        if depth > 20:
            raise BackendsError(path, 0, f"group '{group}': its children nest too deep (a loop?)")
        out = []
        for name, variables, number in hosts.get(group, []):
            merged = {**group_vars.get(group, {}), **variables}
            if re.search(r"\[\w+:\w+\]", name):
                raise BackendsError(path, number, f"host range '{name}' is not expanded: list the hosts")
            host = merged.get("ansible_host") or name.rsplit(":", 1)[0]  # host:port is the SSH port
            port = merged.get(port_var)
            if port is None or not port.isdigit() or not 0 < int(port) < 65536:
                raise BackendsError(
                    path, number, f"host '{name}' has no {port_var}=PORT (Ansible's host:port is the SSH port)"
                )
            out.append(Member(safe(name.rsplit(":", 1)[0]), safe(host), int(port), Origin.of(path, number)))
        for child in children.get(group, []):
            out += members(child, depth + 1)
        return out

    return set(hosts) | set(children), lambda group: tuple(members(group))
