"""edgekit's modules import each other one way only: no import circles.

Every import counts, the ones inside functions and under ``TYPE_CHECKING`` too: a circle hidden
in a function still means two modules that cannot be understood, tested or moved apart. Read
with :mod:`ast` only, so nothing of edgekit is imported (or run) to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"



def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (a package is its __init__.py)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _stem(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, str]]:
    """(imported edgekit module, line, source text) for every import statement in one module."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = _stem(name, path.name == "__init__.py", node)
            # "from . import x" names the submodule x when there is one, else a name in the package
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem
                       for alias in node.names]
        else:
            continue
        resolved = set()
        for target in targets:
            while target and target not in modules:  # "import edgekit.a.b" where b is a name; numpy: ""
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        found.extend((target, node.lineno, lines[node.lineno - 1].strip()) for target in sorted(resolved))
    return found


def _graph() -> dict[str, list[tuple[str, int, str]]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, list[tuple[str, int, str]]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _, _ in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(circle: frozenset[str], graph: dict[str, list[tuple[str, int, str]]]) -> str:
    ties = [f"  {name} line {line} -> {target}: {text}"
            for name in sorted(circle) for target, line, text in graph[name] if target in circle]
    return f"circle of {', '.join(sorted(circle))}:\n" + "\n".join(ties)


def test_reader_resolves_relative_and_submodule_imports():
    graph = _graph()
    detector = {target for target, _, _ in graph["edgekit.detector"]}
    assert {"edgekit.decoders", "edgekit.postprocess", "edgekit.errors"} <= detector  # "from . import decoders"
    assert "edgekit" not in detector
    cli = {target for target, _, _ in graph["edgekit.cli"]}
    assert "edgekit" in cli  # "from . import __version__" names the package itself


def test_circles_are_found():
    graph = {"a": [("b", 1, "import b")], "b": [("c", 1, "import c")], "c": [("a", 1, "import a")], "d": []}
    assert _circles(graph) == [frozenset("abc")]


def test_no_import_circles():
    graph = _graph()
    circles = _circles(graph)
    assert not circles, "edgekit modules import each other in a circle; make the dependency one-way:\n" + \
        "\n".join(_describe(c, graph) for c in circles)
