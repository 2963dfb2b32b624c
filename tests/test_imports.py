"""Imports point one way: no cycle among the modules of vaedemo and app.py, function-level imports included.

A cycle hidden by an import inside a function still ties two modules together (each needs the other to work) and
breaks as soon as someone moves that import to the top. The graph is read from the source with ``ast``, so every
import counts wherever it is written. Implicit imports of parent packages are not edges (Python runs a package's
``__init__`` before its submodules; that is not a dependency the code chose).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = sorted((ROOT / "vaedemo").rglob("*.py")) + [ROOT / "app.py"]
    return {module_name(p): p for p in files}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a project module (``vaedemo.nn.vae.AudioVAE`` -> the module)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]  # "from . import x" may name a submodule
            names.append(base)
        for n in names:
            target = _resolve(n, modules)
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "vaedemo.nn.vae" in graph["vaedemo.bundle"]  # top-level relative import
    assert "vaedemo.bundle" in graph["vaedemo"]  # function-level import in vaedemo/__init__.py
    assert "vaedemo.training.module" in graph["vaedemo.train"]  # function-level import in a CLI


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_never_imports_the_demo():
    graph = import_graph()
    library = [m for m in graph if m.startswith("vaedemo") and not m.startswith("vaedemo.demo")]
    for m in library:
        assert not any(t.startswith("vaedemo.demo") or t == "app" for t in graph[m]), m


def test_the_runtime_fetch_runs_as_a_module_without_runpys_warning():
    """`python -m vaedemo.demo.browser_runtime` (set-up's fetch of onnxruntime-web) imports the package vaedemo.demo
    first; where that had imported the module too, runpy warned of "unpredictable behaviour" on every set-up."""
    import subprocess
    import sys

    code = "import sys, vaedemo.demo; print('vaedemo.demo.browser_runtime' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.stdout.strip() == "False"
