"""The library's shape: layers that only import downwards (the order below, also in fa3d/__init__.py),
no import cycles, and a one-line job at the top of every module."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fa3d"

#: fa3d's layers from the bottom: a module may import from its own layer and the ones below, never above.
#: A name covers the module and everything under it; the longest name that matches decides.
LAYERS = [
    ("conventions and helpers", ["fa3d.files", "fa3d.env", "fa3d.precision", "fa3d.checkpoint", "fa3d.distributed",
                                 "fa3d.data.schemes", "fa3d.data.pose", "fa3d.data.item"]),
    ("data", ["fa3d.data"]),
    ("heatmaps", ["fa3d.heatmaps"]),
    ("models and losses", ["fa3d.models"]),
    ("training and evaluation", ["fa3d.schedules", "fa3d.runs", "fa3d.train", "fa3d.metrics", "fa3d.predict",
                                 "fa3d.evaluate"]),
    ("app", ["fa3d.app"]),
    ("course", ["fa3d.course"]),
    ("command line", ["fa3d.cli", "fa3d.__main__"]),
]


def modules(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """fa3d modules that ``path`` imports anywhere (module level or inside functions)."""
    name = module_name(path, package)
    anchor_of = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fa3d"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = anchor_of.split(".")[: len(anchor_of.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "fa3d":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}   # "from . import viz" imports a module
    known = {module_name(p, package) for p in modules(package)}
    return {m for m in found if m in known and m != name}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the fa3d modules it imports, leaving out a module's own ancestors (``from . import x``
    names the package too) and the root package fa3d (its version and its lazy ``fa3d.FaceAligner``)."""
    graph = {module_name(p, package): imports_of(p, package) for p in modules(package)}
    return {m: {d for d in deps if d != "fa3d" and not m.startswith(d + ".")} for m, deps in graph.items()
            if m != "fa3d"}


def layer_of(module: str) -> int:
    matches = [(len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def wrong_way_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
            for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_are_resolved():
    graph = import_graph()
    assert "fa3d.models.cascade" in graph["fa3d.models.losses"]
    assert "fa3d.heatmaps" in graph["fa3d.models.cascade"]
    assert "fa3d.course.viz" in graph["fa3d.course.report"]


def test_every_module_is_in_a_layer():
    for module in import_graph():
        layer_of(module)


def test_layers_only_import_downwards():
    assert wrong_way_imports(import_graph()) == []


def test_a_planted_wrong_way_import_is_caught(tmp_path):
    """A copy of fa3d whose heatmaps module (a low layer) imports the app: the check must name it."""
    copy = tmp_path / "fa3d"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    heatmaps = copy / "heatmaps.py"
    heatmaps.write_text(heatmaps.read_text() + "\n\ndef _planted():\n    from .app.aligner import FaceAligner\n")
    found = wrong_way_imports(import_graph(copy))
    assert found == ["fa3d.heatmaps (heatmaps) imports fa3d.app.aligner (app)"]


def test_no_import_cycle_inside_fa3d():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("path", modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_says_its_job(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    if path.name != "__main__.py":
        assert doc and doc.splitlines()[0].strip(), f"{path}: no module docstring stating its job"


@pytest.mark.parametrize("old", ["fa3d.detect", "fa3d.pretrained", "fa3d.viz", "fa3d.losses"])
def test_a_moved_module_names_its_new_place(old):
    import importlib

    import fa3d
    with pytest.raises(ImportError, match=f"{old} has moved: import {fa3d.MOVED[old].split()[0]}"):
        importlib.import_module(old)
    assert importlib.import_module(fa3d.MOVED[old].split()[0])
