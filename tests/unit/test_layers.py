"""The test tree is organised by layer, and every test module says where it runs.

tests/conftest.py deselects what a module's backends leave out; these checks read
the sources, so a module that forgot its declaration fails here on every backend
instead of quietly running nowhere (or everywhere).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shopsite.databases import BACKENDS

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

TESTS = Path(__file__).resolve().parents[1]
LAYERS = {"unit", "service", "integration", "system"}


def module_paths() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _backends_call(node: ast.AST) -> ast.Call | None:
    """The `pytest.mark.backends(...)` call inside a pytestmark value, if any."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "backends":
            return call
    return None


def declared_backends(module: Path) -> tuple[str, ...] | None:
    tree = ast.parse(module.read_text(), filename=str(module))
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in statement.targets
        ):
            call = _backends_call(statement.value)
            if call is None:
                return None
            return tuple(arg.value for arg in call.args if isinstance(arg, ast.Constant))
    return None


def test_tests_live_in_the_four_layers():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == LAYERS
    assert not [p.name for p in TESTS.glob("test_*.py")], "test modules belong in a layer folder"


def test_every_test_module_declares_its_backends():
    modules = module_paths()
    assert len(modules) > 40  # the walk found the suite, not an empty folder
    undeclared = [str(m.relative_to(TESTS)) for m in modules if not declared_backends(m)]
    assert undeclared == [], "add pytestmark = pytest.mark.backends(...) to these modules"


def test_declared_backends_are_known():
    unknown = {
        str(m.relative_to(TESTS)): sorted(set(names) - set(BACKENDS))
        for m in module_paths()
        if (names := declared_backends(m)) and set(names) - set(BACKENDS)
    }
    assert unknown == {}


def test_a_module_without_a_declaration_is_reported(tmp_path: Path):
    module = tmp_path / "test_forgotten.py"
    module.write_text("import pytest\n\npytestmark = pytest.mark.django_db\n\n\ndef test_x():\n    pass\n")
    assert declared_backends(module) is None
    module.write_text('import pytest\n\npytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]\n')
    assert declared_backends(module) == ("sqlite",)
