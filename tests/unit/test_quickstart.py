"""The README's quick start, run as written (issue 21: its web server's access log wrote
over the dashboard, and nothing said what to do when port 8080 is taken).

The commands are taken from the README's block; the port is changed with the README's
own recipe for a taken port (so the recipe is tested too, and the test never depends on
8080 being free). `scripts/install` (done by the test environment) and the dashboard
line (a full-screen app) are left out; between starting the server and the first check
the test waits for the port (a person typing does)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT
from tests.servers.base import free_port

QUICK_START = "## Quick start on your own stack"


def _block() -> tuple[list[str], str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(QUICK_START, 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```sh\n")[1:]]
    block = next(b for b in blocks if "http.server" in b)  # the by-hand start (init's block comes first)
    recipe = re.search(r"`(sed '[^`]+)`", section)
    assert recipe, "the quick start says how to change the port"
    return [line for line in block.splitlines() if line.strip()], recipe.group(1)


def test_the_quick_start_runs_as_written_on_another_port(tmp_path):
    commands, recipe = _block()
    port = str(free_port())
    recipe = recipe.replace("8081", port).replace("quickstart-" + port, str(tmp_path / "quickstart"))
    layout = str(tmp_path / "quickstart.yaml")
    script = ["set -e", f"cd {ROOT}", recipe]
    for line in commands:
        if line.startswith("scripts/install") or "# the dashboard" in line:
            continue
        line = line.replace("8080", port).replace("layouts/quickstart.yaml", layout)
        line = re.sub(r"^stackscope ", f"{sys.executable} -m stackscope ", line)
        script.append(line)
        if "http.server" in line:  # wait for it to listen, with a deadline
            script.append(
                f'{sys.executable} -c "import socket,time; d=time.time()+20\n'
                "while time.time()<d:\n"
                " try: socket.create_connection(('127.0.0.1', {port}), 0.2).close(); break\n"
                ' except OSError: time.sleep(0.05)"'.format(port=port)
            )
    assert any("http.server" in line and ">/dev/null 2>&1 &" in line for line in commands), commands
    assert commands[-1].startswith("kill %1")
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All layers healthy (2 checks)" in done.stdout
    assert '"status": "ok"' in done.stdout or '"status":"ok"' in done.stdout
    # the server said nothing: no access log ("GET / HTTP/1.1" 200) on the terminal
    assert '"GET / HTTP/1.' not in done.stdout + done.stderr, done.stdout + done.stderr
