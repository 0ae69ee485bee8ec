"""The shape of the house: what `make lint`'s import contracts (pyproject.toml,
`[tool.importlinter]`) do not say.

The module import graph is read with grimp, the library import-linter is built
on; it sees every import, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "detectors")
MAX_DEPTH = 9
"""Modules on the longest chain of imports."""
MAX_FUNCTION_LINES = 60
HOT_LOOP = "streams/core/engine.py:PartitionEngine.ingest"
"""Deliberately inlined: state in locals, one pass per event (see its comment)."""
CLI = ROOT / "streams" / "cli"
"""Command handlers import their component when run, so `livewatch --help` and
every other command start without loading Faust, Kafka and the engine."""


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def longest_chain(graph: grimp.ImportGraph) -> list[str]:
    """The longest chain of imports; raises on a cycle."""
    chains: dict[str, tuple[str, ...]] = {}
    visiting: set[str] = set()

    def chain(module: str) -> tuple[str, ...]:
        if module in chains:
            return chains[module]
        if module in visiting:
            raise AssertionError(f"import cycle through {module}")
        visiting.add(module)
        below = [chain(m) for m in graph.find_modules_directly_imported_by(module)]
        visiting.discard(module)
        chains[module] = (module, *max(below, key=len, default=()))
        return chains[module]

    return list(max((chain(m) for m in graph.modules), key=len))


def test_no_import_cycles_and_a_shallow_graph(graph: grimp.ImportGraph) -> None:
    chain = longest_chain(graph)
    assert len(chain) <= MAX_DEPTH, " -> ".join(chain)


def test_streams_has_few_top_level_modules() -> None:
    modules = sorted(p.name for p in (ROOT / "streams").glob("*.py"))
    assert len(modules) <= 6, modules


def test_no_module_left_at_an_old_path() -> None:
    # Shims would keep the old flat layout alive: every module lives in its subpackage.
    assert sorted(p.name for p in (ROOT / "streams").glob("*.py")) == [
        "__init__.py",
        "settings.py",
    ]


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def test_functions_are_short() -> None:
    long = []
    for path in _sources():
        for name, node in _functions(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{name}"
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines >= MAX_FUNCTION_LINES and where != HOT_LOOP:
                long.append(f"{where} ({lines} lines)")
    assert not long


def test_imports_are_at_module_level_outside_the_cli() -> None:
    """No import inside a function or under TYPE_CHECKING to dodge the layer rules."""
    hidden = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno} TYPE_CHECKING")
        if CLI in path.parents:
            continue
        for _, function in _functions(tree):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hidden


def test_the_layout_finds_what_it_checks(graph: grimp.ImportGraph) -> None:
    # The checks above read the real tree: a graph of a handful of modules, or
    # no functions found, would make them pass vacuously.
    assert {"streams.core.engine", "streams.worker.app", "detectors.spam"} <= graph.modules
    assert len(longest_chain(graph)) >= 5
    assert sum(len(_functions(ast.parse(p.read_text()))) for p in _sources()) > 300
