"""scripts/install re-runs `pip install -e .`: setuptools printed a 12-line "Editable
installation … Please be careful with folders in your working directory" warning on every
run (issue 21). Its cause: without `package-dir`, setuptools cannot tell the flat layout is
safe for a .pth file and installs an import hook, and says so. pyproject.toml now maps the
package root to the checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_pyproject_maps_the_package_root_to_the_checkout():
    text = (ROOT / "pyproject.toml").read_text()
    setuptools = text.split("[tool.setuptools]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^package-dir\s*=\s*\{\s*""\s*=\s*"\."\s*\}', setuptools, re.M), setuptools


def _setuptools_version() -> tuple[int, ...]:
    try:
        import setuptools
    except ImportError:
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", setuptools.__version__)[:2])


@pytest.mark.skipif(_setuptools_version() < (77,), reason="pyproject.toml needs setuptools>=77 to build")
def test_an_editable_build_says_nothing_about_folders(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "stackscope", tmp_path / "stackscope", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "out").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "from setuptools import build_meta; print(build_meta.build_editable('out'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Please be careful with folders" not in done.stdout + done.stderr
