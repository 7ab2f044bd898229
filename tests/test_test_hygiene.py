"""The test suite's own layout: helpers are shared through conftest.py and helper modules, never test modules.

A test module that imports another ties the two together (and collects again any test
function it imports), and code that edits sys.path makes imports depend on which module
ran first; pyproject.toml's `pythonpath` is the one place that adds folders (bench/, scripts/).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _parsed(pattern: str) -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for path in sorted(TESTS.glob(pattern))}


def _imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) for every import in `tree`, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


def _sys_path_uses(tree: ast.Module) -> list[int]:
    """Lines that touch `sys.path`, as an attribute or as `from sys import path`."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_no_test_module_imports_another_test_module():
    offenders = [f"tests/{name}:{line} imports {module}"
                 for name, tree in _parsed("test_*.py").items()
                 for line, module in _imported_modules(tree)
                 if module.split(".")[0].startswith("test_")]
    assert not offenders, (
        "a test module imports another test module; move the shared helper into tests/conftest.py "
        "(fixtures) or a helper module such as tests/fake_sweep.py:\n" + "\n".join(offenders))


def test_no_test_code_edits_sys_path():
    offenders = [f"tests/{name}:{line}" for name, tree in _parsed("*.py").items() for line in _sys_path_uses(tree)]
    assert not offenders, (
        "test code touches sys.path; add the folder to `pythonpath` under [tool.pytest.ini_options] "
        "in pyproject.toml instead:\n" + "\n".join(offenders))


def test_the_checks_catch_what_they_forbid():
    tree = ast.parse("import sys\nsys.path.insert(0, 'x')\nfrom test_aggregate import fake_result\n")
    assert _sys_path_uses(tree) == [2]
    assert (3, "test_aggregate") in _imported_modules(tree)
