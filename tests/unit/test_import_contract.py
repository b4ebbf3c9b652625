"""The import contract (docs/architecture.md): the pure core imports no I/O module,
reconciler's modules import each other without cycles, and no import is placed inside a
function to hide a cycle. Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"

PURE_CORE = (
    "reconciler.planning",
    "reconciler.lifecycle",
    "reconciler.verdicts",
    "reconciler.selection",
    "reconciler.semverpick",
    "reconciler.tags",
    "reconciler.versions",
    "reconciler.ranges",
    "reconciler.freeze",
    "reconciler.model",
    "reconciler.templates",
    "reconciler.reconcile.report",
    "reconciler.verify.judge",
    "reconciler.gitoutput",
    "reconciler.reconcile.deadlines",
)
IO_MODULES = (
    "reconciler.gitrepo",
    "reconciler.gitauth",
    "reconciler.safepaths",
    "reconciler.records",
    "reconciler.environments",
    "reconciler.feeds",
    "reconciler.pullrequests",
    "reconciler.publish",
    "reconciler.notify",
    "reconciler.server",
    "reconciler.verify.probes",
    "reconciler.verify.runner",
    "git",
    "httpx",
    "subprocess",
    "socket",
)
"""What the pure core must not import. report.py reads previous records through
``package_changes``; that one exception is listed in ``ALLOWED``."""
ALLOWED = {("reconciler.reconcile.report", "reconciler.records")}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module, module: str, *, top_level: bool) -> Iterator[str]:
    """Imported module names; ``top_level``: only those run at import time (not in
    functions, not under ``if TYPE_CHECKING``)."""
    package = module if module in _PACKAGES else module.rpartition(".")[0]

    def walk(nodes: list[ast.stmt], in_function: bool) -> Iterator[tuple[str, bool]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, in_function
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    yield (candidate if candidate in _ALL else base), in_function
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(node.body, True)
            elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        if isinstance(child, ast.ExceptHandler):
                            yield from walk(child.body, in_function)
                    yield from walk(
                        [c for c in getattr(node, field, []) if isinstance(c, ast.stmt)],
                        in_function,
                    )

    for name, in_function in walk(tree.body, False):
        if not top_level or not in_function:
            yield name


MODULES = _modules()
_ALL = set(MODULES)
_PACKAGES = {name for name in MODULES if (PACKAGE.parent / name.replace(".", "/")).is_dir()}


def _graph(*, top_level: bool) -> dict[str, set[str]]:
    return {
        name: {i for i in _imports(tree, name, top_level=top_level) if i in _ALL and i != name}
        for name, tree in MODULES.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_of(importer: str, imported: str) -> bool:
    # `from reconciler.reconcile import drift` runs reconciler/reconcile/__init__.py
    # first; a package's own modules importing their package is how Python works.
    return importer.startswith(imported + ".")


def test_the_pure_core_imports_no_io_module() -> None:
    bad = []
    for module in PURE_CORE:
        for imported in _imports(MODULES[module], module, top_level=False):
            for io in IO_MODULES:
                hit = imported == io or imported.startswith(io + ".")
                if hit and (module, io) not in ALLOWED:
                    bad.append(f"{module} imports {imported}")
    assert bad == []


def test_there_are_no_import_cycles_even_counting_imports_inside_functions() -> None:
    graph = _graph(top_level=False)
    for importer, imported in list(graph.items()):
        graph[importer] = {i for i in imported if not _is_package_of(importer, i)}
    assert _cycle(graph) is None


def test_the_cycle_detector_finds_a_cycle() -> None:  # the test above can fail
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _declares_all(tree: ast.Module) -> bool:
    names = [t for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    return any(isinstance(t, ast.Name) and t.id == "__all__" for t in names)


def test_public_modules_declare_all() -> None:
    public = ["reconciler.publish", "reconciler.templates"]
    public += [n for n in MODULES if n.startswith("reconciler.reconcile")]
    assert [name for name in public if not _declares_all(MODULES[name])] == []
