"""The package's shape: layers import only downward, no import circles, one public API, one
exception tree.

Read from the source (AST), imports inside functions included: a lazy import up the layers is
still a dependency. Imports under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import jupyter_envs
from jupyter_envs.errors import EnvsError

PACKAGE = Path(jupyter_envs.__file__).parent

# Low to high. A module may import its own layer and those below it, never one above.
LAYERS = ["foundation", "spec", "engines", "facade", "clients", "frontends", "top"]
FOUNDATION = {"jupyter_envs.errors", "jupyter_envs.events", "jupyter_envs._version"}
TOP = {"jupyter_envs", "jupyter_envs._actions"}
# What only front-ends may import (nothing below them runs a web server or needs IPython).
FRONTEND_ONLY = ("tornado", "IPython", "ipywidgets", "jupyter_server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer index of a module of the package."""
    if module in FOUNDATION:
        return LAYERS.index("foundation")
    if module in TOP:
        return LAYERS.index("top")
    folder = module.split(".")[1]
    assert folder in LAYERS, f"{module} is in no layer: put it in one of {LAYERS[1:-1]}"
    return LAYERS.index(folder)


def _runtime_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _lazy_targets(tree: ast.Module, package: str) -> set[str]:
    """The modules a package's ``_LAZY`` table (PEP 562 lazy names) imports on first use."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            for value in ast.literal_eval(node.value).values():
                found.add(package + value if value.startswith(".") else f"{package}.{value}")
    return found


def imports(module: str, path: Path | None = None) -> tuple[set[str], set[str]]:
    """(modules of the package, top-level names of other packages) that ``module`` imports."""
    path = path or MODULES[module]
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    inside: set[str] = _lazy_targets(tree, module) if is_pkg else set()
    outside: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name.startswith("jupyter_envs") else outside).add(alias.name)
            continue
        if node.level == 0:
            base = node.module or ""
            if not base.startswith("jupyter_envs"):
                outside.add(base)
                continue
        else:
            here = module.split(".") if is_pkg else module.split(".")[:-1]
            here = here[: len(here) - (node.level - 1)]
            base = ".".join(here + ([node.module] if node.module else []))
        # "from . import name" imports a submodule when there is one by that name.
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            inside.add(sub if sub in MODULES else base)
    return {m for m in inside if m in MODULES}, {m.split(".")[0] for m in outside}


GRAPH = {m: imports(m)[0] for m in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} ({LAYERS[layer(module)]}) imports {target} ({LAYERS[layer(target)]})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_only_front_ends_import_web_servers_or_ipython() -> None:
    wrong = [
        f"{module} imports {name}"
        for module in MODULES
        if layer(module) < LAYERS.index("frontends")
        for name in sorted(imports(module)[1])
        if name in FRONTEND_ONLY
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target == node:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            connect(module)
    assert not circles, f"import circles: {circles}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checks above are not vacuous: lazy and in-function imports are edges, and an upward
    one in a spec module would be seen."""
    assert "jupyter_envs.spec._environment" in GRAPH["jupyter_envs.spec"]  # via _LAZY
    assert "jupyter_envs.facade.manager" in GRAPH["jupyter_envs._actions"]  # inside methods
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..facade.manager import get_manager\n")
    (found, _) = imports("jupyter_envs.spec.bad", bad)
    assert found == {"jupyter_envs.facade.manager"}
    assert layer("jupyter_envs.facade.manager") > layer("jupyter_envs.spec.bad")


PUBLIC_API = [
    "ApiError",
    "BackendUnavailableError",
    "BuildCancelledError",
    "BuildError",
    "BuildResult",
    "Builder",
    "CancelToken",
    "CondaDependencies",
    "ConflictError",
    "Container",
    "DockerSection",
    "EnvManager",
    "Environment",
    "EnvsError",
    "KernelLaunchError",
    "KernelStartError",
    "LockNotHonouredError",
    "LogLine",
    "NotFoundError",
    "Progress",
    "PythonNotFoundError",
    "PythonSection",
    "ReadOnlyStoreError",
    "RegistryError",
    "Resources",
    "SpecError",
    "SpecTooLargeError",
    "StoreError",
    "UsageError",
    "Workspace",
    "__version__",
    "load_ipython_extension",
    "panel",
]


def test_public_api_is_pinned() -> None:
    assert sorted(jupyter_envs.__all__) == sorted(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(jupyter_envs, name) is not None, name


def test_every_exception_is_in_the_one_tree() -> None:
    """Each exception class the package defines derives from EnvsError and lives in errors.py."""
    strays = []
    for module in MODULES:
        for name, obj in vars(importlib.import_module(module)).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module
                and (module != "jupyter_envs.errors" or not issubclass(obj, EnvsError))
            ):
                strays.append(f"{module}.{name}")
    assert not strays, f"exceptions outside jupyter_envs.errors / EnvsError: {strays}"


def test_every_benchmark_imports() -> None:
    """Benchmarks are not run by the suite; a moved module must still not break them."""
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        importlib.import_module(f"benchmarks.{path.stem}")
