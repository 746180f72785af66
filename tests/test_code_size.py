"""Size limits of the training loop and the methods: small functions, a Trainer that fits on a few screens."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
MAX_TRAINER_LINES = 250


def files() -> list[Path]:
    return [ROOT / "ertrain" / "trainer.py", *sorted((ROOT / "ertrain" / "methods").glob("*.py"))]


def long_functions(tree: ast.Module, limit: int) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function or method longer than ``limit`` lines (decorators excluded)."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > limit]


def test_long_functions_by_hand() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(5))
    tree = ast.parse(f"def short():\n    pass\n\nclass A:\n    def long(self):\n{body}\n")
    assert long_functions(tree, 5) == [("long", 6)]
    assert long_functions(tree, 6) == []


def test_no_function_over_the_limit() -> None:
    assert len(files()) >= 10
    found = {path.name: long_functions(ast.parse(path.read_text()), MAX_FUNCTION_LINES) for path in files()}
    assert not any(found.values()), {k: v for k, v in found.items() if v}


def test_trainer_under_the_limit() -> None:
    tree = ast.parse((ROOT / "ertrain" / "trainer.py").read_text())
    (trainer,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer"]
    assert trainer.end_lineno is not None
    assert trainer.end_lineno - trainer.lineno + 1 < MAX_TRAINER_LINES
