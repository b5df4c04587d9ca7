"""The command line that runs this stackscope's code in a fresh interpreter.

`python -m module` (and `-c`) puts the current directory first on sys.path, so a
`stackscope/` directory, or a `runpy.py`, in whatever directory the operator started from
(/tmp, a shared checkout) would be imported in place of ours: code of someone else's
making run as the operator. The command here clears that entry before importing anything
that is not built in, then puts this tree's root first, so the child runs the code the
parent runs (an editable checkout, an installed copy, a bench's `--root`), never the
current directory's. Python 3.11's -P does the first half, but 3.10 has no -P.
"""

from __future__ import annotations

import os
import sys

# `import sys` finds a built-in module: no path is searched before the current
# directory's entry ('' for -c) is removed.
_BOOT = (
    "import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p]; "
    "module = sys.argv[2]; sys.argv[:] = [module, *sys.argv[3:]]; "
    "import runpy; runpy.run_module(module, run_name='__main__', alter_sys=True)"
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_command(module: str, *args: str) -> list[str]:
    """argv running `module` (as `python -m` would, `args` its arguments) with this
    interpreter and this tree's code, whatever the current directory holds."""
    return [sys.executable, "-c", _BOOT, ROOT, module, *args]
