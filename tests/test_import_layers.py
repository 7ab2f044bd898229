"""The package's layout holds: imports run one way, counting imports inside functions too.

- no import cycle between modules;
- the top level holds the flow (cli, trial, plan, ...) and the leaves (errors, hashing, ...); a
  subpackage imports leaves and other subpackages, never the flow, and the subpackages import one
  another one way (no arrow back up between folders);
- a leaf imports only leaves;
- no module imports another's private (`_name`) definitions;
- TensorFlow and Keras are imported only in `training/` and by the augmentation that preparation
  applies (`data/augment`); `tensorflow_datasets` only by the tfds source (`data/sources`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "job" / "samplesize"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


LEAVES = {"errors", "hashing", "jsonsafe", "json_records", "text", "backbones", "summary", "collection_summary",
          "plot_layout"}
FOLDERS = {"config", "data", "training", "curves", "report", "storage"}
# Third-party packages that only these modules may import (TensorFlow's import costs seconds).
HEAVY_IMPORTS = {
    "tensorflow": ("training.", "data.augment"),
    "keras": ("training.", "data.augment"),
    "tensorflow_datasets": ("data.sources",),
}


def _imports(path: Path, package: list[str], paths: dict[str, Path]):
    """(target module, imported name) for each package-internal import in `path`, and its absolute imports."""
    internal, external = [], []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
            for alias in node.names:
                full = ".".join(base + [alias.name])
                internal.append((full, None) if full in paths else (".".join(base), alias.name))
        elif isinstance(node, ast.ImportFrom):
            external.append(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            external += [alias.name.split(".")[0] for alias in node.names]
    return internal, external


def _package_of(name: str, path: Path) -> list[str]:
    return name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module's package-internal imports (relative imports, wherever they stand in the file)."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        internal, _ = _imports(path, _package_of(name, path), paths)
        graph[name] = {t for t, _ in internal if t in paths and t not in (name, "")}
    return graph


def private_imports(root: Path = PACKAGE) -> list[str]:
    """`module: from target import _name` for every private name imported from another module."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    found = []
    for name, path in paths.items():
        internal, _ = _imports(path, _package_of(name, path), paths)
        found += [f"{name}: from {t} import {n}" for t, n in internal
                  if n and n.startswith("_") and not n.startswith("__") and t != name]
    return sorted(found)


def heavy_imports(root: Path = PACKAGE) -> list[str]:
    """`module imports package` for each TensorFlow-family import outside the modules allowed it."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    found = []
    for name, path in paths.items():
        _, external = _imports(path, _package_of(name, path), paths)
        for package in sorted(set(external) & set(HEAVY_IMPORTS)):
            if not name.startswith(HEAVY_IMPORTS[package]):
                found.append(f"{name} imports {package}")
    return found


def folder(name: str) -> str:
    """The layer a module belongs to: its subpackage, or the module itself at the top."""
    return name.split(".")[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a subpackage up to the flow, and from a leaf to anything but a leaf."""
    bad = []
    for name, targets in graph.items():
        for t in sorted(targets):
            if folder(name) in FOLDERS and folder(t) not in FOLDERS | LEAVES and t != "":
                bad.append(f"{name} -> {t} (a subpackage imports the flow)")
            if name in LEAVES and t not in LEAVES:
                bad.append(f"{name} -> {t} (a leaf imports more than leaves)")
    return bad


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports between subpackages, one arrow per pair of folders."""
    out: dict[str, set[str]] = {f: set() for f in FOLDERS}
    for name, targets in graph.items():
        if folder(name) in FOLDERS:
            out[folder(name)] |= {folder(t) for t in targets if folder(t) in FOLDERS and folder(t) != folder(name)}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop, as the path that closes it (depth-first search)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_check_finds_a_loop_through_an_import_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from .b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import g\n")
    (tmp_path / "c.py").write_text("from . import a\n")
    graph = import_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b", "a"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"cli", "storage", "storage.gcs", "config"} <= set(graph), "the package was not found"
    assert "storage.base" in graph["storage.gcs"]
    loops = cycles(graph)
    assert not loops, "import loops (break them so that imports run one way):\n" + "\n".join(" -> ".join(c) for c in loops)


def test_the_layer_check_finds_an_arrow_back_up_and_a_private_import(tmp_path):
    (tmp_path / "trial.py").write_text("")
    (tmp_path / "errors.py").write_text("from .data import x\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("")
    (tmp_path / "data" / "x.py").write_text("def f():\n    from ..trial import _run\n    import keras\n")
    graph = import_graph(tmp_path)
    assert layer_violations(graph) == ["errors -> data.x (a leaf imports more than leaves)",
                                       "data.x -> trial (a subpackage imports the flow)"]
    assert private_imports(tmp_path) == ["data.x: from trial import _run"]
    assert heavy_imports(tmp_path) == ["data.x imports keras"]


def test_subpackages_never_import_the_flow_and_leaves_only_leaves():
    bad = layer_violations(import_graph())
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(bad)


def test_no_arrow_runs_back_up_between_subpackages():
    graph = folder_graph(import_graph())
    assert set(graph) == FOLDERS
    loops = cycles(graph)
    assert not loops, "subpackages that import each other:\n" + "\n".join(" -> ".join(c) for c in loops)


def test_no_module_imports_another_modules_private_names():
    found = private_imports()
    assert not found, "make these public or move them where they are used:\n" + "\n".join(found)


def test_tensorflow_is_imported_only_inside_training():
    found = heavy_imports()
    assert not found, "TensorFlow imports outside training/ (plan, aggregate, report and --help must not pay):\n" + \
        "\n".join(found)
