"""The shape of the code, checked: which module may import which.

Read from the source (the AST), so that an import inside a function counts as much as
one at the top: both run. Imports under `if TYPE_CHECKING:` do not run and are ignored.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "stackscope"
UI = ("stackscope.tui", "stackscope.demo", "textual")
# The composition root: it may reach the UI, but only inside the command that runs it.
ENTRY_POINTS = ("stackscope.cli", "stackscope.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import that runs."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(nodes: list[ast.stmt] | list[ast.AST], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, top)
                continue
            if isinstance(node, ast.Import):
                found.extend((alias.name, top) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if _exists(candidate) else base, top))
            inner_top = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(list(ast.iter_child_nodes(node)), inner_top)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, True)
    return found


def _exists(module: str) -> bool:
    if not module.startswith("stackscope"):
        return False
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


GRAPH = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _is_ui(module: str) -> bool:
    return any(module == ui or module.startswith(ui + ".") for ui in UI)


def _own(module: str) -> bool:
    return module == "stackscope" or module.startswith("stackscope.")


CORE = sorted(m for m in GRAPH if not _is_ui(m) and m not in ENTRY_POINTS)


@pytest.mark.parametrize("module", CORE)
def test_the_core_never_imports_the_ui(module):
    reached = sorted({imported for imported, _ in GRAPH[module] if _is_ui(imported)})
    assert not reached, f"{module} imports {reached}: the core must not depend on the dashboard or the demo"


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_the_command_line_reaches_the_ui_only_inside_the_command_that_runs_it(module):
    at_top = sorted({imported for imported, top in GRAPH[module] if top and _is_ui(imported)})
    assert not at_top, f"{module} imports {at_top} at module level: `stackscope check` would pay for them"


def test_the_model_imports_nothing_else_of_the_project():
    own = sorted({imported for imported, _ in GRAPH["stackscope.model"] if _own(imported)})
    assert own == [], f"stackscope.model imports {own}: the data model must stand on its own"


def test_no_import_cycle_in_the_package():
    edges = {m: {i for i, _ in imports if i in GRAPH and i != m} for m, imports in GRAPH.items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_the_contract_sees_imports_inside_functions():
    """The checker itself: a cycle made only of function-level imports is still found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    cli_imports = {imported for imported, top in GRAPH["stackscope.cli"] if not top}
    assert any(_is_ui(imported) for imported in cli_imports), "the cli's lazy UI imports were not seen"


def test_http2_and_grpc_libraries_are_imported_only_by_the_modules_that_speak_them():
    """h2 (and its hpack) cost ~65 ms to import: a layout without a grpc check (or http2)
    must not pay for them, so only h2client.py imports them, and it is itself imported
    only inside functions. grpcio is a test server, never imported by stackscope."""
    allowed = {"stackscope.probes.h2client"}
    for module, imports in GRAPH.items():
        heavy = sorted({i for i, _ in imports if i.split(".")[0] in ("h2", "hpack", "hyperframe", "grpc")})
        if module not in allowed:
            assert not heavy, f"{module} imports {heavy}: only h2client.py may"
        at_top = sorted({i for i, top in imports if top and i == "stackscope.probes.h2client"})
        assert not at_top, f"{module} imports h2client at module level: every layout would pay for h2"


FORBIDDEN_IN_A_HTTP_CHECK = (
    "dns",
    "stackscope.lb",
    "rich",
    "textual",
    "psutil",
    "stackscope.tui",
    "stackscope.timeline",
)


def test_a_one_http_check_check_imports_only_what_http_needs(tmp_path):
    """`stackscope check` of a layout with one http check pays for no other check type's
    libraries (dnspython, the load-balancer parsers, psutil) nor for the dashboard's:
    the modules a real run imported, read from its sys.modules."""
    import json
    import subprocess
    import sys

    layout = tmp_path / "one.yaml"
    layout.write_text(  # port 9 (discard) on loopback: refused at once, the check fails fast
        "name: one\nlayers:\n  - name: web\n    role: backend\n    checks:\n      - http: http://127.0.0.1:9/\n"
    )
    dump = tmp_path / "modules.json"
    script = (
        "import json, sys\n"
        "from stackscope.cli import main\n"
        "try:\n"
        f"    main(['check', {str(layout)!r}, '--format', 'json'])\n"
        "finally:\n"
        f"    open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
    )
    root = str(PACKAGE.parent)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert dump.exists(), done.stderr
    assert '"status"' in done.stdout, done.stdout + done.stderr  # it ran the check
    modules = json.loads(dump.read_text())
    reached = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_A_HTTP_CHECK))
    assert reached == [], f"a one-http-check `check` imported {reached}"
    assert "stackscope.probes.http" in modules  # the dump is of a run that probed


def test_only_the_classroom_imports_textual_serve_and_only_serve_imports_the_classroom():
    """textual-serve (and its aiohttp, jinja2) is an optional extra (`stackscope[serve]`):
    only classroom.py imports it, and classroom.py is imported only inside a function (the
    --serve path), so every other command runs, and starts as fast, without it."""
    for module, imports in GRAPH.items():
        web = sorted(
            {i for i, _ in imports if i.split(".")[0] in ("textual_serve", "aiohttp", "aiohttp_jinja2", "jinja2")}
        )
        if module != "stackscope.classroom":
            assert not web, f"{module} imports {web}: only stackscope/classroom.py may"
        at_top = sorted({i for i, top in imports if top and i == "stackscope.classroom"})
        assert not at_top, f"{module} imports the classroom at module level: textual-serve would be required"
    lazy = {i for i, top in GRAPH["stackscope.cli"] if not top}
    assert "stackscope.classroom" in lazy, "the cli's --serve no longer reaches the classroom"
