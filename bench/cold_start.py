#!/usr/bin/env python3
"""Cold start and big-layout load, in CPU seconds of one process (user + system), which a
busy machine disturbs far less than wall time; medians of interleaved runs.

- cold `stackscope check` of one http check (a loopback server answering at once), next to
  `python -c pass` and `python -c 'import asyncio, ssl, yaml'` on the same interpreter;
  target (issue 22): ≤ 0.12 s CPU and ≤ 6.5× `python -c pass`;
- the modules that run imports that the layout does not need (dnspython, stackscope.lb,
  psutil, rich, textual): target none;
- `load_layout` of a generated 10,000-check layout (half http, half tcp), in process
  (time.process_time), and `stackscope lint` of it cold; target: load ≤ 0.2 s CPU.

Run: python bench/cold_start.py [--runs 9] [--checks 10000] [--root OTHER_TREE] [--installed]
Everything listens on and probes 127.0.0.1 only; every loop here is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_http import loopback_http  # noqa: E402  (bench/ is on the path when run as a script)

UNNEEDED = ("dns", "stackscope.lb", "psutil", "rich", "textual")


def child_cpu(command: list[str], env: dict[str, str], cwd: str) -> float:
    """CPU seconds (user + system) of one run of `command`, which must succeed. Run from
    `cwd` (not this tree: `python -m` puts the working directory first on sys.path)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stdout.decode()}{done.stderr.decode()}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def one_check_layout(port: int) -> str:
    return (
        f"name: one\nlayers:\n  - name: web\n    role: backend\n    checks:\n      - http: http://127.0.0.1:{port}/\n"
    )


def big_layout(n: int, port: int) -> str:
    lines = ["name: big", "interval: 10s", "timeout: 5s", "layers:"]
    per_layer = max(1, n // 10)
    for start in range(0, n, per_layer):
        lines += [f"  - name: Pool {start // per_layer}", "    role: backend", "    checks:"]
        for i in range(start, min(n, start + per_layer)):
            if i % 2:
                lines.append(f"      - {{http: 'http://127.0.0.1:{port}/?c={i}', name: c{i}, expect_status: 200}}")
            else:
                lines.append(f"      - tcp: 127.0.0.1:{10000 + i % 50000}\n        name: t{i}")
    return "\n".join(lines) + "\n"


LOAD = """
import gc, json, sys, time
from stackscope.layout import load_layout
from stackscope.probes import spec_for
spec_for("http"), spec_for("tcp")  # imported before the clock starts: this measures the load
gc.collect()
started = time.process_time()
layout = load_layout(sys.argv[1], require_env=False)
print(json.dumps(time.process_time() - started))
"""

MODULES = """
import json, sys
from stackscope.cli import main
try:
    main(["check", sys.argv[1], "--format", "json"])
finally:
    sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--checks", type=int, default=10000)
    parser.add_argument("--root", default=str(ROOT), help="the stackscope tree to measure (to compare)")
    parser.add_argument("--installed", action="store_true", help="also a non-editable installed copy of --root")
    args = parser.parse_args()
    installed_env: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(args.root)}
    py = sys.executable
    with loopback_http(delay=0.0) as port, tempfile.TemporaryDirectory() as tmp:
        one, big = Path(tmp, "one.yaml"), Path(tmp, "big.yaml")
        one.write_text(one_check_layout(port))
        big.write_text(big_layout(args.checks, port))
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import asyncio, ssl, yaml'": [py, "-c", "import asyncio, ssl, yaml"],
            "stackscope check (1 http check)": [py, "-m", "stackscope", "check", str(one)],
            "stackscope check --format json": [py, "-m", "stackscope", "check", str(one), "--format", "json"],
        }
        if args.installed:
            # a built, non-editable copy (pip install --target: a wheel's files, compiled),
            # imported ahead of the tree's editable hook by PYTHONPATH; dependencies from
            # this interpreter's environment
            copy = Path(tmp, "installed")
            subprocess.run(
                [
                    py,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-deps",
                    "--target",
                    str(copy),
                    args.root,
                ],
                check=True,
                capture_output=True,
            )
            installed_env = {**os.environ, "PYTHONPATH": str(copy)}
            commands["stackscope check --format json (installed copy)"] = [
                py,
                "-m",
                "stackscope",
                "check",
                str(one),
                "--format",
                "json",
            ]
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved: a burst of load elsewhere hits every command alike
            for name, command in commands.items():
                cpu[name].append(child_cpu(command, installed_env if "installed" in name else env, tmp))
        floor = statistics.median(cpu["python -c pass"])
        print(f"python {sys.version.split()[0]}; {args.runs} runs each, interleaved; load {os.getloadavg()[0]:.2f}")
        for name, runs in cpu.items():
            median = statistics.median(runs)
            target = ""
            if name.startswith("stackscope check"):
                absolute = "ok" if median <= 0.12 else "over"
                relative = "ok" if median <= 6.5 * floor else "over"
                target = f"  (targets: ≤ 0.120 s {absolute}; ≤ 6.5× python {relative})"
            print(
                f"  {name:40} CPU median {median:.3f} s  min {min(runs):.3f} s  {median / floor:5.1f}× python{target}"
            )

        done = subprocess.run([py, "-c", MODULES, str(one)], capture_output=True, text=True, env=env, cwd=tmp)
        modules = json.loads(done.stderr[done.stderr.index("[") :])
        extra = sorted(
            {m.split(".")[0] if not m.startswith("stackscope") else m for m in modules if m.startswith(UNNEEDED)}
        )
        print(f"  modules a one-http-check `check` does not need, imported: {extra or 'none'}  (target: none)")

        loads = []
        lints = []
        for _ in range(max(3, args.runs // 2)):
            out = subprocess.run(
                [py, "-c", LOAD, str(big)], capture_output=True, text=True, env=env, check=True, cwd=tmp
            )
            loads.append(json.loads(out.stdout))
            lints.append(child_cpu([py, "-m", "stackscope", "lint", str(big)], env, tmp))
        load = statistics.median(loads)
        ok = "ok" if load <= 0.2 else "over"
        print(
            f"  load_layout, {args.checks} checks ({big.stat().st_size // 1024} KiB)   CPU median {load:.3f} s  "
            f"min {min(loads):.3f} s  (target ≤ 0.200 s: {ok})"
        )
        print(f"  stackscope lint of it, cold               CPU median {statistics.median(lints):.3f} s  (was 0.86 s)")


if __name__ == "__main__":
    main()
