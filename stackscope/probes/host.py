"""`host: local`: the machine stackscope runs on: CPU, load, memory, disk, descriptors.

A bastion out of memory or disk makes every probe look slow or broken; this check says
so instead of letting the stack take the blame. Thresholds default to values an
operator would page on; each can be set per layout.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import psutil

from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import Deadline, result
from stackscope.schema import Choice, CheckSpec, FilePath, Number, option

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
    fd_warn: float = option(Number(minimum=0), 80.0, "Open file descriptors, % of the system maximum, that warns.")
    fd_crit: float = option(Number(minimum=0), 95.0, "Open file descriptors % that is critical.")


def _open_files() -> tuple[int, int] | None:
    """(open, maximum) file descriptors of the whole system (Linux)."""
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
    disk = psutil.disk_usage(path)
    facts = {
        "cpu_percent": psutil.cpu_percent(interval=CPU_SAMPLE),
        "cores": cores,
        "load1": round(load1, 2),
        "load_per_core": round(load1 / cores, 2),
        "memory_percent": memory.percent,
        "memory_available_mb": round(memory.available / 1024 / 1024),
        "disk_path": path,
        "disk_percent": disk.percent,
        "disk_free_gb": round(disk.free / 1024 ** 3, 1),
    }
    files = _open_files()
    if files:
        facts["open_files"], facts["max_files"] = files
        facts["fd_percent"] = round(100 * files[0] / files[1], 2) if files[1] else 0.0
    return facts


# (fact, warn option, crit option, how to say it)
_MEASURES = (
    ("cpu_percent", "cpu_warn", "cpu_crit", "CPU {v:.0f}%"),
    ("load_per_core", "load_warn", "load_crit", "load {v:.2f} per core"),
    ("memory_percent", "memory_warn", "memory_crit", "memory {v:.0f}% used"),
    ("disk_percent", "disk_warn", "disk_crit", "disk {v:.0f}% used on {path}"),
    ("fd_percent", "fd_warn", "fd_crit", "{v:.0f}% of file descriptors open"),
)


async def probe(check, ctx) -> Result:
    options: HostOptions = check.options
    deadline = Deadline(check.timeout)
    facts = await asyncio.to_thread(_sample, options.path)
    status, problems = Status.OK, []
    for fact, warn, crit, words in _MEASURES:
        value = facts.get(fact)
        if value is None:
            continue
        text = words.format(v=value, path=options.path)
        if value >= getattr(options, crit):
            status = Status.CRIT
            problems.insert(0, f"{text} (critical at {getattr(options, crit):g})")
        elif value >= getattr(options, warn):
            status = Status.worst([status, Status.WARN])
            problems.append(f"{text} (warning at {getattr(options, warn):g})")
    summary = (f"CPU {facts['cpu_percent']:.0f}%, load {facts['load_per_core']:.2f}/core, memory "
               f"{facts['memory_percent']:.0f}%, disk {facts['disk_percent']:.0f}% on {options.path}")
    latency = deadline.elapsed_ms()
    if problems:
        return result(check, status, "this host: " + "; ".join(problems), latency_ms=latency,
                      key_fact=problems[0].split(" (")[0], facts=facts, kind=ErrorKind.RESOURCE)
    return result(check, Status.OK, f"this host: {summary}", latency_ms=latency, key_fact="healthy", facts=facts)


SPEC = CheckSpec(
    key="host",
    doc="The machine stackscope runs on: CPU, load, memory, disk use of a path, open file descriptors.",
    target=Choice("local"),
    options=HostOptions,
    probe=probe,
    example="- host: local\n  path: /var",
)
