"""The library's shape: no import cycles, the CLI imported by no library module, short functions,
a one-line job at the top of every module, and train.py kept to the loop."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fa3d"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: Functions that are declarative tables and may be long (argparse's option list).
DECLARATIVE = {("cli.py", "build_parser")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """fa3d modules that ``path`` imports anywhere (module level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fa3d"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "fa3d":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}   # "from . import viz" imports a module
    known = {module_name(p) for p in MODULES}
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in MODULES}


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
    assert "fa3d.models.cascade" in graph["fa3d.models"]
    assert "fa3d.heatmaps" in graph["fa3d.models.cascade"]
    assert "fa3d.viz" in graph["fa3d.report"]


def test_no_import_cycle_inside_fa3d():
    # "from . import viz" names the package fa3d too; a module's own ancestors are not its jobs
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in import_graph().items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_library_module_imports_the_cli():
    users = [m for m, deps in import_graph().items() if "fa3d.cli" in deps and m != "fa3d.__main__"]
    assert users == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_says_its_job_and_has_no_long_function(path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    if path.name != "__main__.py":
        assert doc and doc.splitlines()[0].strip(), f"{path}: no module docstring stating its job"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 80 and (path.name, node.name) not in DECLARATIVE]
    assert not long, f"{path}: functions over 80 lines: {long}"


def test_train_py_is_the_loop_only():
    assert len((PACKAGE / "train.py").read_text().splitlines()) <= 300
