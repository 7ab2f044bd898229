"""Every module in job/ reads in one sitting: at most 450 lines, no function above cyclomatic complexity 15 (radon)."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

MAX_COMPLEXITY = 15
MAX_MODULE_LINES = 450
PACKAGE = Path(__file__).resolve().parents[1] / "job" / "samplesize"


def _functions(blocks):
    """Every function, method and nested function (closures too): radon nests them under their parent."""
    for block in blocks:
        if isinstance(block, Class):
            yield from _functions(block.methods)
            yield from _functions(block.inner_classes)
        elif isinstance(block, Function):
            yield block
            yield from _functions(block.closures)


def complex_functions(root: Path = PACKAGE, limit: int = MAX_COMPLEXITY) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for fn in _functions(cc_visit(path.read_text(encoding="utf-8"))):
            if fn.complexity > limit:
                found.append(f"{path.relative_to(root.parent)}:{fn.lineno} {fn.fullname} has complexity {fn.complexity}")
    return found


def test_the_check_sees_a_complex_function(tmp_path):
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(MAX_COMPLEXITY))
    (tmp_path / "m.py").write_text(f"def tangled(x):\n{branches}\n    return -1\n\n\ndef simple(x):\n    return x\n")
    assert complex_functions(tmp_path) == [f"{tmp_path.name}/m.py:1 tangled has complexity {MAX_COMPLEXITY + 1}"]


def test_no_function_in_the_package_is_too_complex():
    assert (PACKAGE / "cli.py").is_file(), f"the package is not at {PACKAGE}"
    found = complex_functions()
    assert not found, (
        f"split these by section until each is at most {MAX_COMPLEXITY} (radon cc -s job/samplesize):\n"
        + "\n".join(found)
    )


def long_modules(root: Path = PACKAGE, limit: int = MAX_MODULE_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > limit:
            found.append(f"{path.relative_to(root.parent)} has {lines} lines")
    return found


def test_the_check_sees_a_long_module(tmp_path):
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert long_modules(tmp_path) == [f"{tmp_path.name}/long.py has {MAX_MODULE_LINES + 1} lines"]


def test_no_module_in_the_package_is_too_long():
    found = long_modules()
    assert not found, f"split these by concern (a module per job, at most {MAX_MODULE_LINES} lines):\n" + "\n".join(found)
