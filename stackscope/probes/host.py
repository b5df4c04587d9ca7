"""`host: local`: the machine stackscope runs on: CPU, load, memory, disk, inodes, descriptors.

A bastion out of memory or disk makes every probe look slow or broken; this check says
so instead of letting the stack take the blame. Thresholds default to values an
operator would page on; each can be set per layout (warn below crit).

File descriptors are judged against the limit that bites: this process's open
descriptors against its soft RLIMIT_NOFILE (a probe round that runs out of them fails
with EMFILE long before the system-wide table fills). The system-wide figure
(/proc/sys/fs/file-nr) is reported as a fact only.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import psutil

from stackscope.kinds import CheckSpec, Choice, FilePath, Number, option
from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import Deadline, result

CPU_SAMPLE = 0.2


@dataclass(frozen=True)
class HostOptions:
    path: str = option(FilePath(must_exist=True), "/", "Filesystem whose disk use is checked.")
    cpu_warn: float = option(Number(minimum=0), 90.0, "CPU % (all cores) that warns.")
    cpu_crit: float = option(Number(minimum=0), 98.0, "CPU % that is critical.")
    load_warn: float = option(Number(minimum=0), 2.0, "1-minute load per core that warns.")
    load_crit: float = option(Number(minimum=0), 4.0, "1-minute load per core that is critical.")
    memory_warn: float = option(Number(minimum=0), 90.0, "Memory used % that warns.")
    memory_crit: float = option(Number(minimum=0), 97.0, "Memory used % that is critical.")
    disk_warn: float = option(Number(minimum=0), 85.0, "Disk used % that warns.")
    disk_crit: float = option(Number(minimum=0), 95.0, "Disk used % that is critical.")
    inode_warn: float = option(Number(minimum=0), 85.0, "Inodes used % on path that warns.")
    inode_crit: float = option(Number(minimum=0), 95.0, "Inodes used % that is critical.")
    fd_warn: float = option(
        Number(minimum=0), 80.0, "This process's open file descriptors, % of its soft limit (ulimit -n), that warns."
    )
    fd_crit: float = option(Number(minimum=0), 95.0, "Open file descriptors % of the soft limit that is critical.")


# (fact, warn option, crit option, how to say it); each warn must be below its crit
_MEASURES = (
    ("cpu_percent", "cpu_warn", "cpu_crit", "CPU {v:.0f}%"),
    ("load_per_core", "load_warn", "load_crit", "load {v:.2f} per core"),
    ("memory_percent", "memory_warn", "memory_crit", "memory {v:.0f}% used"),
    ("disk_percent", "disk_warn", "disk_crit", "disk {v:.0f}% used on {path}"),
    ("inode_percent", "inode_warn", "inode_crit", "inodes {v:.0f}% used on {path}"),
    ("fd_percent", "fd_warn", "fd_crit", "{open_fds} of {fd_limit} file descriptors open in this process ({v:.0f}%)"),
)


def _validate(target, options: HostOptions) -> list[tuple[str, str, str]]:
    """A warn at or above its crit would never warn: the check would jump from OK to CRIT."""
    problems = []
    for _, warn, crit, _ in _MEASURES:
        low, high = getattr(options, warn), getattr(options, crit)
        if low >= high:
            problems.append(
                (warn, f"{warn} ({low:g}) must be below {crit} ({high:g})", f"lower {warn} or raise {crit}")
            )
    return problems


def _process_fds() -> tuple[int, int | None] | None:
    """(open, soft limit) file descriptors of this process; the limit None when unlimited."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = None if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError, ValueError):
        limit = None
    try:
        count = psutil.Process().num_fds()
    except (AttributeError, psutil.Error):  # num_fds is POSIX only
        return None
    return count, limit


def _system_files() -> tuple[int, int] | None:
    """(allocated, maximum) file handles of the whole system (Linux), a fact only."""
    try:
        with open("/proc/sys/fs/file-nr") as handle:
            allocated, _, maximum = (int(x) for x in handle.read().split())
        return allocated, maximum
    except (OSError, ValueError):
        return None


def _sample(path: str) -> dict:
    cores = psutil.cpu_count() or 1
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    memory = psutil.virtual_memory()
    vfs = os.statvfs(path)  # one call for disk and inodes
    used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
    free = vfs.f_bavail * vfs.f_frsize  # what an unprivileged user may still write, as df shows
    facts = {
        "cpu_percent": psutil.cpu_percent(interval=CPU_SAMPLE),
        "cores": cores,
        "load1": round(load1, 2),
        "load_per_core": round(load1 / cores, 2),
        "memory_percent": memory.percent,
        "memory_available_mb": round(memory.available / 1024 / 1024),
        "disk_path": path,
        "disk_percent": round(100 * used / (used + free), 1) if used + free else 0.0,
        "disk_free_gb": round(free / 1024**3, 1),
    }
    if vfs.f_files:  # some filesystems (btrfs, many FUSE) report no inode count
        facts["inode_percent"] = round(100 * (vfs.f_files - vfs.f_ffree) / vfs.f_files, 2)
        facts["inodes_free"] = vfs.f_ffree
    fds = _process_fds()
    if fds:
        facts["open_fds"], facts["fd_limit"] = fds
        if fds[1]:
            facts["fd_percent"] = round(100 * fds[0] / fds[1], 2)
    system = _system_files()
    if system:
        facts["system_open_files"], facts["system_max_files"] = system
    return facts


async def probe(check, ctx) -> Result:
    options: HostOptions = check.options
    deadline = Deadline(check.timeout)
    facts = await asyncio.to_thread(_sample, options.path)
    status = Status.OK
    problems: list[str] = []
    for fact, warn, crit, words in _MEASURES:
        value = facts.get(fact)
        if value is None:
            continue
        text = words.format(v=value, path=options.path, open_fds=facts.get("open_fds"), fd_limit=facts.get("fd_limit"))
        if value >= getattr(options, crit):
            status = Status.CRIT
            problems.insert(0, f"{text} (critical at {getattr(options, crit):g})")
        elif value >= getattr(options, warn):
            status = Status.worst([status, Status.WARN])
            problems.append(f"{text} (warning at {getattr(options, warn):g})")
    summary = (
        f"CPU {facts['cpu_percent']:.0f}%, load {facts['load_per_core']:.2f}/core, memory "
        f"{facts['memory_percent']:.0f}%, disk {facts['disk_percent']:.0f}% on {options.path}"
    )
    latency = deadline.elapsed_ms()
    if problems:
        return result(
            check,
            status,
            "this host: " + "; ".join(problems),
            latency_ms=latency,
            key_fact=problems[0].split(" (")[0],
            facts=facts,
            kind=ErrorKind.RESOURCE,
        )
    return result(check, Status.OK, f"this host: {summary}", latency_ms=latency, key_fact="healthy", facts=facts)


SPEC = CheckSpec(
    key="host",
    doc="The machine stackscope runs on: CPU, load, memory, disk and inode use of a path, this process's open "
    "file descriptors.",
    target=Choice("local"),
    options=HostOptions,
    probe=probe,
    validate=_validate,
    example="- host: local\n  path: /var",
)
