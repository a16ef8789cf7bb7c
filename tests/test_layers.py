"""The architecture, checked: layers import only downward, no module imports
itself back through a cycle, the core needs only the standard library, and
``import jit`` stays cheap.

Every import in jit/ (backends/ and bench/ are jit.backends and jit.bench) counts: module-level,
function-level and ``TYPE_CHECKING`` ones, and ``importlib.import_module``
with a literal name.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

# Lowest first. A module may import modules of its own layer or of a lower one.
# The tools layer holds jit.tools, bench/ and the facade ``jit`` (jit/__init__.py),
# whose names are those of the layers below, loaded on first use.
LAYERS = ("jit.core", "jit.frontend", "jit.analysis", "jit.backends", "jit.runtime", ("jit.tools", "jit.bench", "jit"))
PACKAGES = ("jit",)
HEAVY = ("unicorn", "keystone", "capstone", "matplotlib", "rich", "elftools")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:  # jit/backends and jit/bench are symbolic links: follow them
        for folder, _, files in os.walk(REPO / package, followlinks=True):
            for name in sorted(files):
                path = Path(folder) / name
                if path.suffix == ".py" and "programs" not in path.relative_to(REPO).parts:
                    found[_module_name(path)] = path
    return dict(sorted(found.items()))


SOURCES = _sources()


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, wherever it stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # "from pkg import module" imports pkg.module
                if f"{name}.{alias.name}" in SOURCES:
                    yield node.lineno, f"{name}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.lineno, node.args[0].value


def _layer(module: str) -> int:
    if module in ("jit", "jit.__main__"):  # the facade and `python -m jit`
        return len(LAYERS) - 1
    for index, prefixes in enumerate(LAYERS):
        for prefix in (prefixes,) if isinstance(prefixes, str) else prefixes:
            if prefix != "jit" and (module == prefix or module.startswith(prefix + ".")):
                return index
    raise AssertionError(f"{module} belongs to no layer")


def _layer_name(module: str) -> str:
    layer = LAYERS[_layer(module)]
    return layer if isinstance(layer, str) else "tools"


def _facade_exports() -> set[str]:
    """The modules the facade loads its names from (its _EXPORTS table)."""
    tree = ast.parse(SOURCES["jit"].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
            return {value.value for value in node.value.values}  # type: ignore[attr-defined]
    raise AssertionError("jit/__init__.py has no _EXPORTS table")


def _project(name: str) -> str | None:
    """The project module an import names (its longest known prefix), if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in SOURCES:
            return candidate
        parts.pop()
    return None


GRAPH = {
    module: sorted({(line, target) for line, name in _imports(module, path) if (target := _project(name)) is not None})
    for module, path in SOURCES.items()
}
GRAPH["jit"] += [(0, module) for module in sorted(_facade_exports())]


def test_every_module_has_a_layer() -> None:
    for module in SOURCES:
        _layer(module)
    assert _facade_exports() <= SOURCES.keys()


def test_imports_only_go_down() -> None:
    upward = [
        f"{SOURCES[module].relative_to(REPO)}:{line} ({_layer_name(module)}) imports {target} ({_layer_name(target)})"
        for module, edges in GRAPH.items()
        for line, target in edges
        if _layer(target) > _layer(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    edges = {module: {target for _, target in targets if target != module} for module, targets in GRAPH.items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join((*cycle, cycle[0])) for cycle in cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_needs_only_the_standard_library() -> None:
    outside = [
        f"{SOURCES[module].relative_to(REPO)}:{line} imports {name}"
        for module, path in SOURCES.items()
        if _layer(module) == 0
        for line, name in _imports(module, path)
        if name.split(".")[0] not in sys.stdlib_module_names and not name.startswith("jit.core")
    ]
    assert not outside, "\n".join(outside)


def test_no_module_over_600_lines() -> None:
    long = {
        str(path.relative_to(REPO)): n for path in SOURCES.values() if (n := len(path.read_text().splitlines())) > 600
    }
    assert not long, long


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_import_jit_loads_no_heavy_library_and_no_layer() -> None:
    loaded = _loaded_after("import jit")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert not {m for m in loaded if m.startswith("jit.")}


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [("import jit.core.isa", "jit.core"), ("jit = __import__('jit'); jit.Program", "jit.frontend")],
)
def test_a_layer_loads_only_what_is_below_it(statement: str, allowed: str) -> None:
    loaded = {m for m in _loaded_after(statement) if m.startswith("jit.")}
    assert loaded and all(_layer(m) <= _layer(allowed) for m in loaded), sorted(loaded)


def test_the_public_names_resolve() -> None:
    import jit

    for name in jit.__all__:
        assert getattr(jit, name) is not None, name
    with pytest.raises(AttributeError):
        _ = jit.no_such_name
