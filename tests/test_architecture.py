"""The import graph of core/ and explorer/, read from the source (ast): no import circle, at module level or
inside functions, and core never depends on explorer (not by import, not by loading a file by path).

Layers (docs/CONTRACT.md): an import may only go down. An edge is drawn to the module an import names
(``from core import io`` -> ``core.io``; ``from core.io import load_idx`` -> ``core.io``); the parent packages'
``__init__`` that Python runs on the way are not edges (else every submodule would circle with its package).
Imports under ``if TYPE_CHECKING:`` are never run and are not edges.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "explorer")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom, at any depth (functions, methods, try blocks), except under TYPE_CHECKING."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif _is_lazy_import(node):  # lazy_module("core._kernels") imports core._kernels at first use
            yield ast.Import(names=[ast.alias(name=node.args[0].value)], lineno=node.lineno)
        stack.extend(ast.iter_child_nodes(node))


def _is_lazy_import(node: ast.AST) -> bool:
    """A call ``lazy_module("pkg.module")`` (core._lazy): an import, deferred."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy_module"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _resolve(module: str, node) -> set[str]:
    """Project modules named by one import statement of `module`."""
    is_pkg = MODULES[module].name == "__init__.py"
    out = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
        return out
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] not in PACKAGES:
        return out
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if sub in MODULES:
            out.add(sub)
        elif target in MODULES:
            out.add(target)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            for target in _resolve(module, node):
                if target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _describe(graph, comp) -> str:
    members = set(comp)
    return "; ".join(f"{a} -> {b} (line {line})" for a in comp for b, line in sorted(graph[a].items())
                     if b in members)


def test_the_graph_is_read():
    graph = import_graph()
    assert "core.measure" in graph["core.cli.measure"]  # a function-level import is an edge
    assert "core.io" in graph["core.reading"]
    assert "core.perturb" in graph["explorer.studio"]
    assert "core._kernels" in graph["core.resample"]  # lazy_module("core._kernels") is an edge too


def test_cycle_finder_finds_a_function_level_circle():
    assert cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_circles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(_describe(graph, c) for c in found)


def test_core_never_imports_explorer():
    graph = import_graph()
    bad = [f"{m} -> {t} (line {line})" for m, edges in graph.items() if m.split(".")[0] == "core"
           for t, line in edges.items() if t.split(".")[0] == "explorer"]
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "core"))
def test_core_loads_no_module_by_file_path(module):
    """A hidden dependency: core loading a module from a file path (as serve once loaded explorer/limits.py)."""
    tree = ast.parse(MODULES[module].read_text())
    calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr in ("spec_from_file_location", "SourceFileLoader")]
    assert not calls, f"{module}: loads a module by path at line(s) {calls}"


if __name__ == "__main__":  # python tests/test_architecture.py: print the circles and every core -> explorer edge
    g = import_graph()
    for comp in cycles(g):
        print("circle:", _describe(g, comp))
