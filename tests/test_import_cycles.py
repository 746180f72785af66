"""No import cycle: the module-level import graph of ertrain and ertheory is acyclic and layered, and every
module imports on its own in a fresh interpreter state."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ertheory", "ertrain")


@functools.cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the two packages: dotted name -> (file, is a package)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported (not in functions, not under TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for st in body:
            if isinstance(st, ast.Import | ast.ImportFrom):
                found.append(st)
            elif isinstance(st, ast.If):
                visit(st.orelse if _is_type_checking(st.test) else st.body + st.orelse)
            elif isinstance(st, ast.Try):
                visit(st.body + [s for h in st.handlers for s in h.body] + st.orelse + st.finalbody)
            elif isinstance(st, ast.ClassDef | ast.With):
                visit(st.body)

    visit(tree.body)
    return found


def _graph(statements: Callable[[ast.Module], list[ast.Import | ast.ImportFrom]]) -> dict[str, set[str]]:
    """Module -> the modules of the two packages it imports by ``statements`` (exact names, no parents)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        targets: set[str] = set()
        for st in statements(ast.parse(path.read_text())):
            if isinstance(st, ast.Import):
                targets |= {a.name for a in st.names if a.name in mods}
                continue
            module = st.module or ""
            if st.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                module = ".".join(base[: len(base) - (st.level - 1)] + ([module] if module else []))
            for alias in st.names:
                targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in mods else module)
        graph[name] = {t for t in targets if t in mods} - {name}
    return graph


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the two packages it imports at module level (exact names, no parents)."""
    return _graph(module_level_imports)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_by_hand() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_graph_sees_module_level_imports_only() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nimport ertrain.config\nif TYPE_CHECKING:\n"
                     "    from ertrain.trainer import Trainer\ndef f():\n    import ertrain.methods\n"
                     "try:\n    from ertrain import data\nexcept ImportError:\n    pass\n")
    names = [getattr(st, "module", None) or st.names[0].name for st in module_level_imports(tree)]
    assert names == ["typing", "ertrain.config", "ertrain"]


def test_module_level_import_graph_is_acyclic() -> None:
    graph = import_graph()
    assert len(graph) > 60 and "ertrain.methods.dst" in graph
    assert find_cycle(graph) is None, find_cycle(graph)


def test_layering() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("ertheory"):
            assert not any(t.startswith("ertrain") for t in targets), (name, targets)
        if name.startswith("ertrain.methods"):
            assert "ertrain.trainer" not in targets and "ertrain.runner" not in targets, (name, targets)
    assert not {t for t in graph["ertrain.config"] if t.startswith(("ertrain.methods", "ertrain.trainer"))}
    assert "ertrain.methods.imp" not in graph["ertrain.methods.dst"]


IMPORT_ALONE = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k.split(".")[0] in ("ertrain", "ertheory")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=3)
print(json.dumps(failures))
"""


@pytest.mark.slow
def test_every_module_imports_alone() -> None:
    """Each module imported first into a state without any ertrain/ertheory module (one process, cleared per module)."""
    names = sorted(modules())
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALONE, json.dumps(names)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failures == {}, failures


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ertrain.config", "ertrain.methods.dst"])
def test_key_modules_import_in_a_fresh_interpreter(name: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, module-level, function-local or under TYPE_CHECKING alike."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def full_graph() -> dict[str, set[str]]:
    """Like :func:`import_graph` but with function-local and type-only imports counted too (a cycle they form
    is a cycle all the same, only hidden)."""
    return _graph(all_imports)


def test_no_cycle_hides_behind_local_or_type_only_imports() -> None:
    """config -> method registry <- methods -> optim -> trainer: one way, even counting every import."""
    graph = full_graph()
    assert "ertrain.method_registry" in graph["ertrain.config"]
    assert "ertrain.config" not in graph["ertrain.recipes"] | graph["ertrain.method_registry"]
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_library_never_imports_the_studies() -> None:
    for name, (path, _) in modules().items():
        for st in all_imports(ast.parse(path.read_text())):
            names = [a.name for a in st.names] if isinstance(st, ast.Import) else [st.module or ""]
            assert not any(n.split(".")[0] == "studies" for n in names), (name, names)
    assert not (ROOT / "ertrain" / "study").exists()
