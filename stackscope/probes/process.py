"""`process`: is the program running here, how many, how heavy, listening where?

For when stackscope runs on the LB or app host itself (or on the bastion: is the bastion
itself the problem?). psutil calls block, so they run in a thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import psutil

from stackscope.kinds import CheckSpec, Integer, Invalid, Kind, Number, ParseContext, describe, option
from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import Deadline, ProbeFailure, result

CPU_SAMPLE = 0.2  # seconds over which CPU % is measured


class ProcessName(Kind):
    hint = "a process name, e.g. haproxy"

    def parse(self, value, ctx: ParseContext) -> str:
        if not isinstance(value, str) or not value.strip() or "/" in value.strip(" /"):
            raise Invalid(f"expected a process name, got {describe(value)}", "write the program's name, e.g. haproxy")
        return value.strip()

    def json_schema(self) -> dict:
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class ProcessOptions:
    min: int = option(Integer(minimum=1), 1, "Fewer running processes than this is CRIT.")
    cpu_warn: float = option(Number(minimum=0), 90.0, "Warn when the processes together use more CPU % (of one core).")
    rss_warn_mb: float | None = option(Number(minimum=0), None, "Warn when their memory (RSS, MiB) is above this.")


def _matches(proc: psutil.Process, name: str) -> bool:
    try:
        if proc.name() == name:
            return True
        cmdline = proc.cmdline()
        return bool(cmdline) and os.path.basename(cmdline[0]) == name
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _own_pids() -> set[int]:
    """This process and its children running the same program: `process: python` must not
    count stackscope itself (or its workers). Other programs it started stay counted: a
    daemon launched from the shell stackscope runs in is still that daemon."""
    me = psutil.Process()
    own = {me.pid}
    try:
        exe = me.exe()
        for child in me.children(recursive=True):
            try:
                if child.exe() == exe:
                    own.add(child.pid)
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return own


def _sample(name: str) -> dict:
    own = _own_pids()
    procs = [p for p in psutil.process_iter(["pid"]) if p.pid not in own and _matches(p, name)]
    for proc in procs:
        try:
            proc.cpu_percent(None)  # first call primes the counter
        except psutil.Error:
            pass
    time.sleep(CPU_SAMPLE)  # the measurement window, in a worker thread
    cpu, rss, ports, pids, hidden = 0.0, 0, set(), [], 0
    for proc in procs:
        try:
            with proc.oneshot():
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                pids.append(proc.pid)
                try:
                    for conn in proc.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN and conn.laddr:
                            ports.add(f"{conn.laddr.ip}:{conn.laddr.port}")
                except psutil.AccessDenied:
                    hidden += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            pids.append(proc.pid)
            hidden += 1
    return {
        "count": len(pids),
        "pids": sorted(pids)[:20],
        "cpu_percent": round(cpu, 1),
        "rss_mb": round(rss / 1024 / 1024, 1),
        "listening": sorted(ports),
        "ports_hidden": hidden,
    }


async def probe(check, ctx) -> Result:
    options: ProcessOptions = check.options
    deadline = Deadline(check.timeout)
    name = check.address
    facts = await asyncio.to_thread(_sample, name)
    latency = deadline.elapsed_ms()
    count = facts["count"]
    if count < options.min:
        raise ProbeFailure(
            ErrorKind.STATE,
            f"{count} {name} process{'es' if count != 1 else ''} running here (at least {options.min} expected)",
            key_fact=f"{count} running",
            facts=facts,
        )
    listening = ", ".join(facts["listening"][:4])
    if facts["ports_hidden"]:  # another user's process: its sockets are not ours to read
        unreadable = (
            f"listening ports of {facts['ports_hidden']} process{'es' if facts['ports_hidden'] != 1 else ''} "
            "not readable (access denied: run as its user or root)"
        )
        listening = f"{listening}; {unreadable}" if listening else unreadable
    listening = listening or "no listening ports seen"
    summary = f"{count} {name} running, CPU {facts['cpu_percent']:.0f}%, RSS {facts['rss_mb']:.0f} MiB, {listening}"
    if facts["cpu_percent"] > options.cpu_warn:
        return result(
            check,
            Status.WARN,
            f"{summary} — CPU above {options.cpu_warn:g}%",
            latency_ms=latency,
            key_fact=f"cpu {facts['cpu_percent']:.0f}%",
            facts=facts,
            kind=ErrorKind.RESOURCE,
        )
    if options.rss_warn_mb is not None and facts["rss_mb"] > options.rss_warn_mb:
        return result(
            check,
            Status.WARN,
            f"{summary} — memory above {options.rss_warn_mb:g} MiB",
            latency_ms=latency,
            key_fact=f"{facts['rss_mb']:.0f} MiB",
            facts=facts,
            kind=ErrorKind.RESOURCE,
        )
    return result(check, Status.OK, summary, latency_ms=latency, key_fact=f"{count} running", facts=facts)


SPEC = CheckSpec(
    key="process",
    doc="Is a program running on this host: count, CPU, memory, listening ports (psutil).",
    target=ProcessName(),
    options=ProcessOptions,
    probe=probe,
    example="- process: haproxy\n  min: 1",
)
