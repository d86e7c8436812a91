"""The package's shape holds: no import cycles, dependencies pointing one way, small modules.

These read the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "saywho"
MAX_LINES = 500

# Layers, lowest first: a module may import its own layer and those below, never above.
# server -> jobs -> longform / speakers -> pipeline -> stages -> ground (docs/architecture.md).
LAYERS: dict[str, int] = {
    "types": 0, "errors": 0, "settings": 0, "progress": 0, "serialize": 0, "runtime": 0, "db": 0,
    "audio": 1, "models": 1,
    "asr": 2, "diarization": 2, "tts": 2,
    "pipeline": 3, "assemble": 3, "formats": 3,
    "longform": 4, "speakers": 4, "streaming": 4,
    "evaluation": 5, "jobs": 5,
    "server": 6, "wyoming": 6, "cli": 7, "__main__": 7, "__init__": 7,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Imports that run when the module is imported (not under TYPE_CHECKING, not in functions)."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _targets(node: ast.ImportFrom | ast.Import) -> list[str]:
    """The saywho modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "saywho"]
    if node.level or not node.module or node.module.split(".")[0] != "saywho":
        return []
    out = []
    for a in node.names:
        sub = f"{node.module}.{a.name}"
        out.append(sub if sub in MODULES else node.module)
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node in _top_level_imports(tree) for t in _targets(node) if t in MODULES and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # ``saywho`` itself: __version__ and lazy wrappers, imported for the version
    return LAYERS[parts[1]]


def test_every_module_belongs_to_a_layer() -> None:
    unknown = sorted({m.split(".")[1] for m in MODULES if "." in m and m.split(".")[1] not in LAYERS})
    assert not unknown, f"add these to LAYERS (and to docs/architecture.md): {unknown}"


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_dependencies_point_one_way() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(upward))


def test_no_module_is_over_500_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_saywho_imports_inside_functions_say_why() -> None:
    """Imports of saywho modules belong at the top; one inside a function needs a reason
    on its line (``# lazy: ...``), e.g. an optional dependency or a command's start-up time."""
    unexplained = []
    for _name, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        top_lines = {n.lineno for n in _top_level_imports(tree)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in top_lines and _targets(node):
                if isinstance(node, ast.ImportFrom) and _in_type_checking(tree, node):
                    continue
                if not any("# lazy:" in line for line in lines[node.lineno - 1: node.end_lineno]):
                    unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not unexplained, "imports inside functions without '# lazy: reason':\n" + "\n".join(unexplained)


def _in_type_checking(tree: ast.Module, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node) and any(child is target for child in ast.walk(node)):
            return True
    return False


@pytest.mark.parametrize("broken", ["cycle", "upward"])
def test_the_checks_catch_what_they_guard(broken: str) -> None:
    graph = {"saywho.a": {"saywho.b"}, "saywho.b": {"saywho.a"}} if broken == "cycle" else {}
    if broken == "cycle":
        assert _cycles(graph) == [["saywho.a", "saywho.b"]]
    else:
        assert _layer("saywho.server.app") > _layer("saywho.jobs.store") > _layer("saywho.types")
