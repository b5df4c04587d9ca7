"""`init --local`: the databases and caches listening on this host, from psutil's table
of listening sockets and the processes that own them. Credentials are never guessed: a
check that may need one gets a `password_env:` placeholder and a comment naming the
variable to export. Each service's own check, run once (the read-only requests `check`
makes), says what it is: PostgreSQL's server_version (once logged in), the MariaDB/MySQL
greeting, Redis's INFO; the process's path stands in for PostgreSQL when it asks for a
password."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import replace

from stackscope.discover.found import Origin, Service, safe

# process name -> (check type, password variable)
KNOWN = {
    "postgres": ("postgres", "PGPASSWORD"),
    "mariadbd": ("mysql", "MYSQL_PASSWORD"),
    "mysqld": ("mysql", "MYSQL_PASSWORD"),
    "mariadb": ("mysql", "MYSQL_PASSWORD"),
    "redis-server": ("redis", None),  # Redis usually runs without AUTH: a placeholder would break check
}
LBS = ("haproxy", "nginx", "apache2", "httpd", "caddy", "varnishd")


def _listening() -> list[tuple[str, int, int | None]]:
    import psutil

    found: list[tuple[str, int, int | None]] = []
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr:
                found.append((c.laddr.ip, c.laddr.port, c.pid))
    except psutil.AccessDenied:  # some systems: only our own processes' sockets
        for process in psutil.process_iter():
            try:
                for p in process.net_connections(kind="tcp"):
                    if p.status == psutil.CONN_LISTEN and p.laddr:
                        found.append((p.laddr.ip, p.laddr.port, process.pid))
            except (psutil.Error, OSError):
                continue
    return found


def _process(pid: int | None) -> tuple[str, str]:
    """(name, executable path) of the process; "" for what it does not let us see."""
    import psutil

    if pid is None:
        return "", ""
    try:
        process = psutil.Process(pid)
        name = process.name()
    except psutil.Error:
        return "", ""
    try:
        return name, process.exe()
    except psutil.Error:
        return name, ""


# Debian/Ubuntu's /usr/lib/postgresql/15/bin/postgres, PGDG's /usr/pgsql-15/bin/postgres
PG_PATH = re.compile(r"/(?:postgresql|pgsql)[-/](\d+(?:\.\d+)?)/")
EXE_TIMEOUT = 2.0  # seconds for `EXE --version`
VERSION = re.compile(r"\d+(?:\.\d+)*")


def short_version(kind: str, text: str) -> str:
    """The version that changes behaviour: PostgreSQL's major (9.6, 15), else major.minor."""
    found = VERSION.search(text or "")
    if found is None:
        return ""
    parts = found.group().split(".")
    if kind == "postgres" and int(parts[0]) >= 10:
        return parts[0]
    return ".".join(parts[:2])


def _asked(services: list[Service]) -> dict[str, dict]:
    """Each service's check run once: {address: facts of its result}."""
    from stackscope.discover import emit
    from stackscope.discover.live import probe_once
    from stackscope.layout import LayoutError, parse_layout

    plan = emit.Plan(name="local")
    # a password variable the operator has not exported: ask without it (the loader refuses an unset one)
    emit.plan_services(
        plan,
        [s if not s.password_env or s.password_env in os.environ else replace(s, password_env=None) for s in services],
    )
    address_of = {
        e.check["name"]: e.check[t]
        for layer in plan.layers
        for e in layer.entries
        for t in ("postgres", "mysql", "redis")
        if t in e.check
    }
    try:
        layout = parse_layout(emit.render(plan, ""), "<stackscope init --local>")  # its timeout bounds the round
    except (LayoutError, emit.InitBug):  # the layout itself will say what is wrong; only the versions are lost
        return {}
    name_of = {check.id: check.name for check in layout.checks()}

    snapshot = probe_once(layout)
    return {address_of.get(name_of.get(i, ""), ""): dict(r.facts or {}) for i, r in snapshot.results.items()}


def _exe_version(exe: str) -> str:
    """`EXE --version` (postgres, mariadbd, mysqld, redis-server all answer it and exit):
    the first line, or "" when there is no such binary or it does not answer in time."""
    if not os.path.isabs(exe) or not os.path.isfile(exe):
        return ""
    try:
        done = subprocess.run(
            [exe, "--version"], capture_output=True, timeout=EXE_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    first = done.stdout[:400].decode("utf-8", "replace").splitlines()
    return safe(first[0]) if first and done.returncode == 0 else ""


def _identify(service: Service, pid: int | None, name: str, exe: str, facts: dict) -> Service:
    """The service named and placed in its comment with its version; Redis that wants AUTH
    gets a placeholder too (as it needs one, not a guess)."""
    kind, password = service.type, service.password_env
    said = str(facts.get("server_version") or facts.get("version") or "")
    product = {"postgres": "postgres", "redis": "redis"}.get(kind, "")
    if kind == "mysql":
        product = "mariadb" if "mariadb" in (said + name).lower() else "mysql"
    version = short_version(kind, said)
    if not version and kind == "postgres":
        found = PG_PATH.search(exe)
        version = found.group(1) if found else ""
    if not version:  # the server did not say (a login refused, a host not allowed): ask its binary
        said = said or _exe_version(exe)
        version = short_version(kind, said)
    if kind == "redis" and facts.get("auth") == "required":
        password = "REDISCLI_AUTH"
    label = f"{product} {version}".strip()
    origin = Origin(safe(f"listening: {label} on {service.address} (pid {pid})"))
    return replace(service, origin=origin, password_env=password, name=safe(product))


def scan() -> tuple[list[Service], list[str]]:
    """(services found, notes for stderr)."""
    found: list[tuple[Service, int | None, str, str]] = []
    notes: list[str] = []
    seen: set[tuple[str, int]] = set()
    for ip, port, pid in sorted(_listening(), key=lambda item: (item[1], item[0])):
        name, exe = _process(pid)
        known = KNOWN.get(name.split(":")[0].strip())
        if ip in ("0.0.0.0", "::"):
            ip = "127.0.0.1"
        if ":" in ip and not ip.startswith("::ffff:"):
            continue  # the same service is almost always on IPv4 too; one check is enough
        ip = ip.removeprefix("::ffff:")
        if known is None:
            if name in LBS:
                notes.append(f"{name} listens on {ip}:{port}: give its config as a SOURCE to add its pools")
            continue
        if (ip, port) in seen:
            continue
        seen.add((ip, port))
        kind, password = known
        origin = Origin(safe(f"listening: {name} (pid {pid}) on {ip}:{port}"))
        found.append((Service(kind, safe(f"{ip}:{port}"), origin, password), pid, name, exe))
    if not found:
        notes.append("--local: no PostgreSQL, MariaDB/MySQL or Redis listening here (or their processes are hidden)")
        return [], notes
    facts = _asked([service for service, *_ in found])
    services = [_identify(service, pid, name, exe, facts.get(service.address, {})) for service, pid, name, exe in found]
    for service in services:
        if service.password_env:
            notes.append(
                f"{service.name} on {service.address}: export {service.password_env} if it needs a password "
                "(left as a placeholder)"
            )
    return services, notes
