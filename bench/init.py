"""Seconds from `stackscope init` to a first verdict, tool time only: a generated
haproxy.cfg with 10 frontends and 10 pools of 20 members (nothing listens: every probe is
refused at once, so the time measured is init's and check's own). Target: under 2 s.

    PYTHONPATH=. python bench/init.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def config(frontends: int = 10, members: int = 20) -> str:
    lines = ["global", "    stats socket /nonexistent/admin.sock level admin", "defaults", "    mode http"]
    for f in range(frontends):
        lines += [f"frontend web{f}", f"    bind 127.0.0.1:{20000 + f}", f"    default_backend pool{f}"]
    for p in range(frontends):
        lines += [f"backend pool{p}", "    option httpchk GET /health"]
        lines += [f"    server s{m} 127.0.0.{2 + p}:{30000 + m} check" for m in range(members)]
    return "\n".join(lines) + "\n"


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        cfg, layout = Path(tmp) / "haproxy.cfg", Path(tmp) / "layout.yaml"
        cfg.write_text(config())
        started = time.perf_counter()
        init = subprocess.run(
            [sys.executable, "-m", "stackscope", "init", str(cfg), "-o", str(layout)],
            env=env,
            capture_output=True,
            text=True,
        )
        after_init = time.perf_counter()
        check = subprocess.run(
            [sys.executable, "-m", "stackscope", "check", str(layout)], env=env, capture_output=True, text=True
        )
        done = time.perf_counter()
    assert init.returncode == 0, init.stderr
    verdict = next((line for line in check.stdout.splitlines() if "verdict" in line.lower()), check.stdout[:80])
    print(
        f"init: {after_init - started:.2f} s  check (first verdict, exit {check.returncode}): "
        f"{done - after_init:.2f} s  total: {done - started:.2f} s (target < 2 s)"
    )
    print(f"  {verdict.strip()[:120]}")


if __name__ == "__main__":
    main()
