"""The import graph of the project's own modules keeps its layers (DESIGN.md, Layout and the
component contract): no circle of imports; the config layer stands on nothing else in infra/;
the program imports none of its users; the workloads, which their images carry alone, import
nothing from outside workloads/; the policy rules import the standard library alone.

The graph is read from the files with `ast`, every import counted wherever it stands (inside a
function, or under `if TYPE_CHECKING:`, where a circle hides from the interpreter but not from
a reader).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The project's own top-level folders whose imports form the graph (tests/ stands above all).
PACKAGES = ("infra", "mlops", "workloads", "policy", "benchmarks")
# The stack config and what it stands on: its value rules, the profiles, the container sizes,
# the cron rule it checks schedules with and the pins its defaults come from.
CONFIG_LAYER = frozenset(
    {
        "infra.config",
        "infra.configtypes",
        "infra.profiles",
        "infra.sizes",
        "infra.cron",
        "infra.versions",
    }
)
# What the Pulumi program must not stand on: the command, the workloads, the tests, the benchmarks.
ABOVE_THE_PROGRAM = frozenset({"mlops", "workloads", "tests", "benchmarks"})
# workloads/Dockerfile copies workloads/ alone into the images.
OUTSIDE_THE_IMAGES = frozenset({"infra", "mlops", "tests", "benchmarks", "policy"})
POLICY_RULES = "policy.rules"


@dataclass(frozen=True)
class Edge:
    """One module importing another (or a package's names), at a line of its file."""

    source: str
    target: str
    where: str
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        names = f": {', '.join(self.names)}" if self.names else ""
        return f"{self.where} {self.source} -> {self.target}{names}"


@dataclass(frozen=True)
class Graph:
    modules: dict[str, Path]
    edges: tuple[Edge, ...]


def top(name: str) -> str:
    return name.partition(".")[0]


def read(root: Path) -> Graph:
    """Every module under PACKAGES (dotted name -> file) and every import in them."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    edges = [edge for module in modules for edge in _imports(root, module, modules)]
    return Graph(modules, tuple(edges))


def _imports(root: Path, module: str, modules: dict[str, Path]) -> list[Edge]:
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            edges += [Edge(module, _resolve(a.name, path, modules), where) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package, path, modules)
            names = [alias.name for alias in node.names]
            # `from infra import kube` imports the module infra.kube; other names are the base's.
            edges += [Edge(module, f"{base}.{n}", where) for n in names if f"{base}.{n}" in modules]
            rest = tuple(n for n in names if f"{base}.{n}" not in modules)
            if rest:
                edges.append(Edge(module, base, where, rest))
    return edges


def _absolute(node: ast.ImportFrom, package: str, path: Path, modules: dict[str, Path]) -> str:
    if node.level == 0:
        return _resolve(node.module or "", path, modules)
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _resolve(name: str, path: Path, modules: dict[str, Path]) -> str:
    """A folder without __init__.py runs as scripts (the policy pack): its directory comes first
    on sys.path, so a sibling file wins over any other module of that name."""
    sibling = path.parent / f"{top(name)}.py"
    if not (path.parent / "__init__.py").exists() and sibling.exists():
        return next(m for m, p in modules.items() if p == sibling) + name[len(top(name)) :]
    return name


def circles(graph: Graph) -> list[str]:
    """Each set of modules that import one another round a circle, with the edges inside it."""
    inside = {e.source: set[str]() for e in graph.edges}
    for edge in graph.edges:
        if edge.target in graph.modules:
            inside[edge.source].add(edge.target)
    found = []
    for component in _strongly_connected(inside):
        if len(component) > 1 or any(m in inside.get(m, ()) for m in component):
            tying = [
                f"  {e}" for e in graph.edges if e.source in component and e.target in component
            ]
            found.append("\n".join([f"circle of {', '.join(sorted(component))}:", *tying]))
    return found


def _strongly_connected(successors: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(successors.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            start = stack.index(node)
            found.append(frozenset(stack[start:]))
            del stack[start:]

    for node in sorted(successors):
        if node not in index:
            visit(node)
    return found


def config_layer_reaching_up(graph: Graph) -> list[str]:
    return [
        f"{e} (the config layer imports nothing else from infra)"
        for e in graph.edges
        if e.source in CONFIG_LAYER and top(e.target) == "infra" and e.target not in CONFIG_LAYER
    ]


def program_importing_its_users(graph: Graph) -> list[str]:
    return [
        f"{e} (infra imports nothing from {', '.join(sorted(ABOVE_THE_PROGRAM))})"
        for e in graph.edges
        if top(e.source) == "infra" and top(e.target) in ABOVE_THE_PROGRAM
    ]


def workloads_reaching_out(graph: Graph) -> list[str]:
    return [
        f"{e} (the workload images carry workloads/ alone)"
        for e in graph.edges
        if top(e.source) == "workloads" and top(e.target) in OUTSIDE_THE_IMAGES
    ]


def policy_rules_beyond_stdlib(graph: Graph) -> list[str]:
    return [
        f"{e} (policy/rules.py imports the standard library alone)"
        for e in graph.edges
        if e.source == POLICY_RULES and top(e.target) not in sys.stdlib_module_names
    ]


@pytest.fixture(scope="module")
def project() -> Graph:
    return read(ROOT)


def test_the_graph_holds_every_layer_the_rules_name(project: Graph) -> None:
    # A renamed module would otherwise leave a rule with nothing to check.
    assert {*CONFIG_LAYER, POLICY_RULES} <= set(project.modules)
    assert {top(m) for m in project.modules} == set(PACKAGES)


def test_no_modules_import_each_other_round_a_circle(project: Graph) -> None:
    found = circles(project)
    assert not found, "\n".join(found)


def test_the_config_layer_imports_nothing_else_from_infra(project: Graph) -> None:
    found = config_layer_reaching_up(project)
    assert not found, "\n".join(found)


def test_the_program_imports_nothing_from_the_command_the_workloads_or_the_tests(
    project: Graph,
) -> None:
    found = program_importing_its_users(project)
    assert not found, "\n".join(found)


def test_the_workloads_import_nothing_from_outside_workloads(project: Graph) -> None:
    found = workloads_reaching_out(project)
    assert not found, "\n".join(found)


def test_the_policy_rules_import_the_standard_library_alone(project: Graph) -> None:
    found = policy_rules_beyond_stdlib(project)
    assert not found, "\n".join(found)


# One planted violation of each rule, in a tree of its own: what the rule must report.
PLANTS: list[tuple[Callable[[Graph], list[str]], dict[str, str], str]] = [
    (
        circles,
        {
            "infra/a.py": "from infra.b import B",
            "infra/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import infra.a",
        },
        "circle of infra.a, infra.b:\n"
        "  infra/a.py:1 infra.a -> infra.b: B\n"
        "  infra/b.py:3 infra.b -> infra.a",
    ),
    (
        config_layer_reaching_up,
        {"infra/profiles.py": "def size():\n    from . import kube", "infra/kube.py": ""},
        "infra/profiles.py:2 infra.profiles -> infra.kube "
        "(the config layer imports nothing else from infra)",
    ),
    (
        program_importing_its_users,
        {"infra/platform.py": "from tests.support import rendering"},
        "infra/platform.py:1 infra.platform -> tests.support: rendering "
        "(infra imports nothing from benchmarks, mlops, tests, workloads)",
    ),
    (
        workloads_reaching_out,
        {"workloads/serving/transformer.py": "from infra.components import kserve"},
        "workloads/serving/transformer.py:1 workloads.serving.transformer -> "
        "infra.components: kserve (the workload images carry workloads/ alone)",
    ),
    (
        policy_rules_beyond_stdlib,
        {"policy/rules.py": "import re\nimport helpers", "policy/helpers.py": ""},
        "policy/rules.py:2 policy.rules -> policy.helpers "
        "(policy/rules.py imports the standard library alone)",
    ),
]


@pytest.mark.parametrize(
    ("rule", "files", "report"), PLANTS, ids=[rule.__name__ for rule, _, _ in PLANTS]
)
def test_each_rule_reports_a_planted_violation_by_file_line_and_edge(
    tmp_path: Path, rule: Callable[[Graph], list[str]], files: dict[str, str], report: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    for package in ("infra", "workloads", "workloads/serving"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    assert rule(read(tmp_path)) == [report]
