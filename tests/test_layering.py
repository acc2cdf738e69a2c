"""brainlab's layers: data -> models/training -> analysis -> viz -> app, never backwards.

Every import of every module under ``brainlab/`` is read with ``ast`` (function-level
and ``TYPE_CHECKING`` imports included, since they run too), and the rules below are
checked on the resulting module graph, as is the absence of import cycles. Code the
registry names as ``"module:attribute"`` strings is imported by ``importlib`` on use,
which is how the top of the stack wires lower layers together without an import edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "brainlab"

# (importing layer, imported layers it must not touch); a layer is a module prefix.
FORBIDDEN = [
    ("brainlab.data", ("brainlab.models", "brainlab.analysis", "brainlab.training",
                       "brainlab.train_recipes", "brainlab.viz", "brainlab.checkpoints")),
    ("brainlab.models", ("brainlab.data", "brainlab.analysis", "brainlab.training",
                         "brainlab.train_recipes", "brainlab.checkpoints", "brainlab.viz",
                         "brainlab.registry")),
    ("brainlab.viz", ("brainlab.analysis", "brainlab.models", "brainlab.training")),
    ("brainlab.analysis", ("brainlab.training", "brainlab.train_recipes", "brainlab.viz")),
]
# Models are a leaf: besides their own package they may import only these.
MODELS_MAY_IMPORT = ("brainlab.config", "brainlab.errors", "brainlab.precision")
APP_MODULES = ("streamlit", "app", "app_pages", "pages")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The brainlab module ``name`` refers to (a submodule, or the package defining it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> list[tuple[str, int]]:
    """(imported name, line) for every import statement in ``module``, at any depth."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from brainlab.data import cache` imports the submodule brainlab.data.cache
            # (the package's __init__ runs first, as for any submodule: not counted).
            submodules = [f"{prefix}.{alias.name}" for alias in node.names
                          if f"{prefix}.{alias.name}" in MODULES]
            if len(submodules) < len(node.names):
                found.append((prefix, node.lineno))
            found += [(name, node.lineno) for name in submodules]
    return found


GRAPH = {module: sorted({target for name, _ in imports_of(module)
                         if name.startswith("brainlab")
                         and (target := _resolve(name)) and target != module})
         for module in MODULES}


def _in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_the_parser_sees_function_level_imports():
    # checkpoints imports model classes only on use; a parser that missed nested
    # imports would see no edge from evaluation to checkpoints either.
    assert "brainlab.checkpoints" in GRAPH["brainlab.analysis.evaluation"]
    assert "brainlab.registry" in GRAPH["brainlab.checkpoints"]
    assert len(MODULES) > 60


@pytest.mark.parametrize("layer,forbidden", FORBIDDEN, ids=[rule[0] for rule in FORBIDDEN])
def test_layer_does_not_import_higher_layers(layer, forbidden):
    offences = [f"{module}:{line} imports {name}"
                for module in MODULES if _in_layer(module, layer)
                for name, line in imports_of(module)
                if any(_in_layer(name, other) for other in forbidden)]
    assert not offences, "\n".join(offences)


def test_models_are_a_leaf():
    offences = [f"{module}:{line} imports {name}"
                for module in MODULES if _in_layer(module, "brainlab.models")
                for name, line in imports_of(module)
                if name.startswith("brainlab") and not _in_layer(name, "brainlab.models")
                and not any(_in_layer(name, allowed) for allowed in MODELS_MAY_IMPORT)]
    assert not offences, "\n".join(offences)


def test_checkpoints_import_no_model_module_at_import_time():
    tree = ast.parse(MODULES["brainlab.checkpoints"].read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not [n for n in names if _in_layer(n, "brainlab.models")], names


def test_nothing_in_brainlab_imports_streamlit_or_the_app():
    offences = [f"{module}:{line} imports {name}"
                for module in MODULES for name, line in imports_of(module)
                if any(_in_layer(name, app) for app in APP_MODULES)]
    assert not offences, "\n".join(offences)


def strongly_connected_components(graph: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative); components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.get(child, []))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [{"a", "b", "c"}]


def _cycles() -> list[frozenset[str]]:
    return [frozenset(c) for c in strongly_connected_components(GRAPH) if len(c) > 1]


def test_no_import_cycles_between_brainlab_modules():
    cycles = [sorted(c) for c in _cycles()]
    assert not cycles, f"import cycles: {cycles}"


def test_importing_every_brainlab_module_does_not_import_streamlit():
    program = (
        "import importlib, pkgutil, sys\n"
        "import brainlab\n"
        "names = [m.name for m in pkgutil.walk_packages(brainlab.__path__, 'brainlab.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.'))\n"
        "print(len(names), loaded[:3])\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 40  # really walked the package


def test_the_cli_lists_every_command_group():
    result = subprocess.run([sys.executable, "-m", "brainlab", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for command in ("cohort", "train", "evaluate", "probe", "interpolate", "compare", "bench"):
        assert command in result.stdout
