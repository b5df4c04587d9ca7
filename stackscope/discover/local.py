"""`init --local`: the databases and caches listening on this host, from psutil's table
of listening sockets and the processes that own them. Credentials are never guessed: a
check that may need one gets a `password_env:` placeholder and a comment naming the
variable to export."""

from __future__ import annotations

from stackscope.discover.found import Origin, Service, safe

# process name -> (check type, password variable, version-aware defaults)
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


def _process_name(pid: int | None) -> str:
    import psutil

    if pid is None:
        return ""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def scan() -> tuple[list[Service], list[str]]:
    """(services found, notes for stderr)."""
    services: list[Service] = []
    notes: list[str] = []
    seen: set[tuple[str, int]] = set()
    for ip, port, pid in sorted(_listening(), key=lambda item: (item[1], item[0])):
        name = _process_name(pid)
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
        services.append(Service(kind, safe(f"{ip}:{port}"), origin, password))
        if password:
            notes.append(f"{kind} on {ip}:{port}: export {password} if it needs a password (left as a placeholder)")
    if not services:
        notes.append("--local: no PostgreSQL, MariaDB/MySQL or Redis listening here (or their processes are hidden)")
    return services, notes
