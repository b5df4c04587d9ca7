#!/usr/bin/env python3
"""stackscope's http probing side by side with prometheus-blackbox-exporter (issue 22).

Both probe the same C loopback target (loopback_target.c; it answers every request 200
after 50 ms) with N concurrent http checks, in interleaved rounds (which side goes first
alternates), and the medians over the repeats are printed beside issue 22's targets:
CPU per probe ≤ 0.5× blackbox's; round wall ≤ 1.0× blackbox's at 1000 probes and ≤ 2.5 s
at 10,000; median reported latency within 10 % of the target's 50 ms; peak RSS.

A blackbox round: a driver process (not billed to blackbox) sends N concurrent
`GET /probe?module=http_2xx&target=…` and reads each answer's probe_success and
probe_duration_seconds; blackbox's CPU is its utime+stime from /proc before and after. A
stackscope round: `Engine.run_round()` on layout_text(N) as the CLI runs it (fd limit
raised, memory settled), CPU of this process and its worker processes. Each side has one
uncounted warm-up round per size.

Run: python bench/versus_blackbox.py [--sizes 1000,10000] [--repeats 5] [--root OTHER_TREE]
[--loop asyncio|uvloop|auto] (the stackscope side's event loop, worker processes included;
auto: the one `stackscope watch` picks, stackscope/eventloop.py).
Everything listens on and probes 127.0.0.1 only; every loop here is bounded, every
process started here is killed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))

from loopback_http import c_loopback_http  # noqa: E402  (bench/ is on the path when run as a script)
from probe_round import cpu_seconds, layout_text  # noqa: E402

from tests.servers.base import Process, free_port, require_binary, wait_until  # noqa: E402

TRUTH_MS = 50.0  # the target's delay
TICK = os.sysconf("SC_CLK_TCK")
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: []
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""

# The blackbox side's client: N concurrent HTTP/1.0 GETs (so blackbox answers unchunked and
# closes), one connection each, on uvloop when it is importable (this process's CPU is
# printed, not billed to either side). Prints one JSON line.
DRIVER = r"""
import asyncio, json, re, resource, sys, time, urllib.parse
bb_port, target_port, n, bound = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
SUCCESS = re.compile(rb"^probe_success (\S+)", re.M)
DURATION = re.compile(rb"^probe_duration_seconds (\S+)", re.M)

class Client(asyncio.Protocol):
    def __init__(self, request, done):
        self.request, self.done, self.chunks = request, done, []
    def connection_made(self, transport):
        transport.write(self.request)
    def data_received(self, data):
        self.chunks.append(data)
    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result((time.perf_counter(), b"".join(self.chunks)))

async def one(loop, i):
    target = urllib.parse.quote(f"http://127.0.0.1:{target_port}/?c={i}", safe="")
    request = (f"GET /probe?module=http_2xx&target={target} HTTP/1.0\r\nHost: 127.0.0.1:{bb_port}\r\n\r\n").encode()
    done = loop.create_future()
    await loop.create_connection(lambda: Client(request, done), "127.0.0.1", bb_port)
    return await done

async def main():
    loop = asyncio.get_running_loop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime  # the round's, without the interpreter's start
    started = time.perf_counter()
    tasks = [loop.create_task(one(loop, i)) for i in range(n)]
    finished, pending = await asyncio.wait(tasks, timeout=bound)
    for task in pending:
        task.cancel()
    last, durations, failed_durations, success, failed, errors = started, [], [], 0, 0, {}
    for task in finished:
        if task.exception() is not None:
            kind = type(task.exception()).__name__ + ": " + str(task.exception())[:80]
            errors[kind] = errors.get(kind, 0) + 1
            continue
        ended, body = task.result()
        last = max(last, ended)
        ok, took = SUCCESS.search(body), DURATION.search(body)
        if ok is None or took is None:
            errors["no probe metrics in the answer"] = errors.get("no probe metrics in the answer", 0) + 1
            continue
        durations.append(float(took.group(1)))
        if float(ok.group(1)) == 1:
            success += 1
        else:
            failed += 1
            failed_durations.append(float(took.group(1)))
    if pending:
        errors[f"no answer within {bound:.0f} s"] = len(pending)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": last - started, "durations": durations, "success": success, "failed": failed,
                      "failed_durations": failed_durations, "errors": errors, "cpu": usage.ru_utime + usage.ru_stime - cpu}))

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def proc_times(pid: int) -> tuple[float, float]:
    """utime and stime of a process, in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # fields 14 and 15; index 0 is field 3


def proc_cpu(pid: int) -> float:
    return sum(proc_times(pid))


def proc_status(pid: int, key: str) -> str:
    """One line's value from /proc/<pid>/status ('' when absent)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def fd_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as handle:
        for line in handle:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft if soft == hard else f"{soft}/{hard}"
    return "?"


def start_blackbox(workdir: Path) -> tuple[Process, int]:
    """blackbox_exporter as `nobody` when run as root, from `workdir`; ready when /-/healthy answers."""
    binary = require_binary("prometheus-blackbox-exporter", "blackbox_exporter")
    workdir.chmod(0o755)  # readable by the unprivileged server
    config = workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    config.chmod(0o644)
    port = free_port()
    process = Process("blackbox", workdir)
    process.spawn(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        user="nobody",
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=1.0) as answer:
                return answer.status == 200
        except OSError:
            return False

    wait_until(healthy, 20, "blackbox_exporter", process.died)
    return process, port


def blackbox_round(pid: int, bb_port: int, target_port: int, n: int) -> dict:
    """One round of N concurrent /probe requests; the driver's figures plus blackbox's CPU."""
    bound = 60.0
    cpu = proc_cpu(pid)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(bb_port), str(target_port), str(n), str(bound)],
        capture_output=True,
        text=True,
        timeout=bound + 30,
    )
    used = proc_cpu(pid) - cpu
    if done.returncode != 0:
        raise SystemExit(f"the blackbox driver failed: {done.stderr.strip()[-2000:]}")
    figures = json.loads(done.stdout)
    figures["bb_cpu"] = used
    return figures


def log_summary(path: Path, skip: int) -> str:
    """What blackbox logged (at warn and above) past the first `skip` bytes: line count and
    the first line, cut short and reduced to printable ASCII (server text, not ours)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(skip)
            lines = handle.read(1 << 20).splitlines()
    except OSError:
        return ""
    if not lines:
        return ""
    first = "".join(ch if " " <= ch <= "~" else "?" for ch in lines[0][:300].decode("ascii", "replace"))
    emfile = sum(b"too many open files" in line for line in lines)
    return f"{len(lines)} lines ({emfile} 'too many open files'), first: {first}"


def new_loop(kind: str, checks: int) -> tuple[asyncio.AbstractEventLoop, str]:
    """The loop `stackscope watch` would run these checks on (`auto`), or the one asked for.
    STACKSCOPE_LOOP is set to match, so the worker processes of a sharded round follow."""
    if kind != "auto":
        os.environ["STACKSCOPE_LOOP"] = kind
    try:
        from stackscope import eventloop
    except ImportError:  # a tree from before eventloop.py: its own choice was asyncio
        return asyncio.new_event_loop(), "asyncio"
    if eventloop.wanted(checks, long_running=True):
        try:
            import uvloop

            return uvloop.new_event_loop(), "uvloop"
        except ImportError:
            if kind == "uvloop":
                raise SystemExit("--loop uvloop: uvloop is not importable with this Python") from None
    return asyncio.new_event_loop(), "asyncio"


def worker_pids() -> list[int]:
    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "stackscope.worker" in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.Error:
            pass
    return pids


def kib(text: str) -> float:
    return float(text.split()[0]) if text else 0.0


def stackscope_round(loop: asyncio.AbstractEventLoop, engine) -> dict:
    from stackscope.model import Status

    started, cpu = time.perf_counter(), cpu_seconds()
    snapshot = loop.run_until_complete(engine.run_round())
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    results = list(snapshot.results.values())
    bad = [r for r in results if r.status is not Status.OK]
    workers_kib = 0.0
    for pid in worker_pids():
        try:
            workers_kib += kib(proc_status(pid, "VmHWM"))
        except OSError:
            pass
    return {
        "wall": wall,
        "cpu": used,
        "latency": statistics.median(r.latency_ms or 0.0 for r in results),
        "latency_p90": quantile([r.latency_ms or 0.0 for r in results], 0.9),
        "failed": len(bad),
        "example": bad[0].detail if bad else "",
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + workers_kib,
        "workers": len(worker_pids()),
    }


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pct(latency_ms: float) -> str:
    return f"{(latency_ms - TRUTH_MS) / TRUTH_MS * 100:+.0f} %"


def report(
    n: int, repeats: int, bb: list[dict], ss: list[dict], bb_rss_mb: float, target_cpu: list, blackbox_log: str
) -> None:
    med = statistics.median
    bb_cpu = med(r["bb_cpu"] for r in bb) / n * 1e6
    ss_cpu = med(r["cpu"] for r in ss) / n * 1e6
    bb_wall, ss_wall = med(r["wall"] for r in bb), med(r["wall"] for r in ss)
    bb_lat = med(statistics.median(r["durations"]) * 1000 if r["durations"] else float("nan") for r in bb)
    ss_lat = med(r["latency"] for r in ss)
    bb_p90 = med(quantile(r["durations"], 0.9) * 1000 for r in bb)
    ss_p90 = med(r["latency_p90"] for r in ss)
    ss_rss = max(r["rss_kib"] for r in ss) / 1024
    bb_failed = sum(r["failed"] for r in bb)
    bb_errors: dict[str, int] = {}
    for r in bb:
        for kind, count in r["errors"].items():
            bb_errors[kind] = bb_errors.get(kind, 0) + count
    ss_failed = sum(r["failed"] for r in ss)
    failed_durations = [d for r in bb for d in r["failed_durations"]]
    failed_duration = statistics.median(failed_durations) if failed_durations else float("nan")
    wall_target = "≤ 1.0× blackbox" if n < 10000 else f"≤ 2.5 s ({'met' if ss_wall <= 2.5 else 'NOT met'})"
    cpu_ratio = ss_cpu / bb_cpu if bb_cpu else float("inf")
    wall_ratio = ss_wall / bb_wall if bb_wall else float("inf")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"\n{n} probes, {repeats} rounds each (medians; one warm-up round each not counted)")
    print(f"  {'':<22}{'blackbox':>12}{'stackscope':>12}{'ratio':>9}   target")
    print(
        f"  {'CPU per probe':<22}{bb_cpu:>9.0f} µs{ss_cpu:>9.0f} µs{cpu_ratio:>8.2f}×   ≤ 0.5× ({verdict(cpu_ratio <= 0.5)})"
    )
    wall_ok = wall_ratio <= 1.0 if n < 10000 else ss_wall <= 2.5
    print(
        f"  {'round wall':<22}{bb_wall:>10.3f} s{ss_wall:>10.3f} s{wall_ratio:>8.2f}×   {wall_target}"
        + (f" ({verdict(wall_ok)})" if n < 10000 else "")
    )
    lat_ok = abs(ss_lat - TRUTH_MS) <= TRUTH_MS * 0.1
    print(
        f"  {'latency median':<22}{bb_lat:>9.1f} ms{ss_lat:>9.1f} ms{'':>9}   within 10 % of {TRUTH_MS:.0f} ms: "
        f"blackbox {pct(bb_lat)}, stackscope {pct(ss_lat)} ({verdict(lat_ok)})"
    )
    print(f"  {'latency p90':<22}{bb_p90:>9.1f} ms{ss_p90:>9.1f} ms")
    print(
        f"  {'peak RSS':<22}{bb_rss_mb:>9.1f} MB{ss_rss:>9.1f} MB{ss_rss / bb_rss_mb:>8.2f}×   "
        f"(blackbox VmHWM; stackscope this process + {ss[-1]['workers']} workers' VmHWM)"
    )
    print(
        f"  failures: blackbox {bb_failed} probe_success=0 of {n * repeats}"
        + (f" (their probe_duration median {failed_duration:.2f} s)" if bb_failed else "")
        + (f", driver errors {bb_errors}" if bb_errors else "")
        + f"; stackscope {ss_failed} of {n * repeats}"
        + (f" (e.g. {next(r['example'] for r in ss if r['example'])})" if ss_failed else "")
    )
    print(
        f"  also: blackbox driver CPU {med(r['cpu'] for r in bb) / n * 1e6:.0f} µs/probe (not billed); "
        f"target {med(u for u, _ in target_cpu) / n * 1e6:.1f} µs user + {med(k for _, k in target_cpu) / n * 1e6:.1f} "
        "µs system per request (the system part is the kernel's loopback TCP: accept, segments, close)"
    )
    if blackbox_log:
        print(f"  blackbox log: {blackbox_log}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT), help="the stackscope tree to measure (to compare)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "auto"), default="auto")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(f"--sizes: a comma-separated list of numbers, not {args.sizes!r}") from None
    if args.repeats < 1 or any(n < 1 for n in sizes):
        raise SystemExit("--sizes and --repeats must be at least 1")
    sys.path.insert(0, str(args.root))  # the tree measured
    from stackscope.engine import Engine, raise_fd_limit, settle_memory
    from stackscope.layout import parse_layout

    raise_fd_limit()  # as the CLI does
    loop, loop_name = new_loop(args.loop, max(sizes))
    asyncio.set_event_loop(loop)
    workdir = Path(tempfile.mkdtemp(prefix="versus-blackbox-"))
    blackbox: Process | None = None
    try:
        with c_loopback_http(delay=TRUTH_MS / 1000, lifetime=3600) as target_port:
            target = next((c for c in psutil.Process().children() if "loopback_target" in " ".join(c.cmdline())), None)
            blackbox, bb_port = start_blackbox(workdir)
            bb_pid = blackbox.proc.pid
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            print(
                f"target: 127.0.0.1:{target_port} ({'C' if target else 'Python'}), answers after {TRUTH_MS:.0f} ms; "
                f"blackbox_exporter 127.0.0.1:{bb_port} (pid {bb_pid}); stackscope on {loop_name}, "
                f"python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}"
            )
            print(
                f"fd limits: blackbox {fd_limit(bb_pid)}, stackscope {fd_limit(os.getpid())}, "
                f"target {fd_limit(target.pid) if target else '?'}, driver raises to {hard} (hard)"
            )
            if max(sizes) * 2 + 16 > hard:
                print(
                    f"note: at {max(sizes)} probes blackbox holds ~{max(sizes) * 2} sockets (one from the driver and "
                    f"one to the target per probe) against a hard limit of {hard} per process: expect it to be short"
                )
            seen = 0  # bytes of blackbox's log already summarised
            for index, n in enumerate(sizes):
                engine = Engine(parse_layout(layout_text(n, target_port)))
                settle_memory()
                try:
                    blackbox_round(bb_pid, bb_port, target_port, n)  # warm-up, not counted
                    loop.run_until_complete(engine.run_round())
                    bb, ss, target_cpu = [], [], []
                    for repeat in range(args.repeats):
                        before = proc_times(target.pid) if target else (0.0, 0.0)
                        if (repeat + index) % 2 == 0:
                            bb.append(blackbox_round(bb_pid, bb_port, target_port, n))
                            ss.append(stackscope_round(loop, engine))
                        else:
                            ss.append(stackscope_round(loop, engine))
                            bb.append(blackbox_round(bb_pid, bb_port, target_port, n))
                        after = proc_times(target.pid) if target else (0.0, 0.0)
                        target_cpu.append(tuple((a - b) / 2 for a, b in zip(after, before)))  # two sides' requests
                finally:
                    loop.run_until_complete(engine.aclose())
                bb_rss_mb = kib(proc_status(bb_pid, "VmHWM")) / 1024
                report(n, args.repeats, bb, ss, bb_rss_mb, target_cpu, log_summary(blackbox.log_path, seen))
                seen = blackbox.log_path.stat().st_size if blackbox.log_path.exists() else 0
            print("\n(peak RSS is each process's peak so far: a larger size after a smaller one includes it)")
    finally:
        if blackbox is not None:
            blackbox.stop()
        loop.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
