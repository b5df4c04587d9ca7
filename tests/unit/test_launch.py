"""A child interpreter runs this tree's code, never what the current directory holds."""

from __future__ import annotations

import asyncio
import subprocess

from stackscope.engine import Engine
from stackscope.launch import python_command
from stackscope.model import Status
from tests.probe_helpers import layout_of


def _hostile_directory(tmp_path):
    """A directory an operator might start from (/tmp, a shared checkout) holding a
    `stackscope` package and a `runpy` module that leave a mark when imported."""
    mark = tmp_path / "imported"
    planted = f"open({str(mark)!r}, 'a').write(__name__ + '\\n')\n"
    package = tmp_path / "stackscope"
    package.mkdir()
    for name in ("__init__.py", "__main__.py", "worker_process.py", "cli.py"):
        (package / name).write_text(planted)
    (tmp_path / "runpy.py").write_text(planted)
    return mark


def test_a_command_from_a_hostile_directory_runs_this_stackscope(tmp_path):
    mark = _hostile_directory(tmp_path)
    done = subprocess.run(
        python_command("stackscope", "--help"), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "usage: stackscope" in done.stdout
    assert not mark.exists(), mark.read_text()


async def test_sharded_workers_started_from_a_hostile_directory_run_this_stackscope(tmp_path, monkeypatch):
    mark = _hostile_directory(tmp_path)
    monkeypatch.chdir(tmp_path)

    async def accept(reader, writer):
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lay = layout_of(
        [{"name": "L", "role": "other", "checks": [{"tcp": f"127.0.0.1:{port}", "name": f"t{i}"} for i in range(4)]}]
    )
    engine = Engine(lay, workers=2)
    try:
        snap = await engine.run_round()
    finally:
        await engine.aclose()
        server.close()
    assert [r.status for r in snap.results.values()] == [Status.OK] * 4, [r.detail for r in snap.results.values()]
    assert not mark.exists(), mark.read_text()
