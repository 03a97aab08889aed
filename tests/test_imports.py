"""No import cycles inside the simulator and workload packages, counting every import
(at module level, inside functions, and under TYPE_CHECKING), and the policy layer
never imports the simulator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    """module -> modules of ``package`` it imports (``package`` is dotted, e.g. muxsim.sim)."""
    folder = ROOT / Path(*package.split("."))
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        name = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from .x import y
                    target = base.split(".")[0] if base else None
                    if target is None:
                        deps |= {a.name for a in node.names if a.name in modules}
                        continue
                    deps.add(target)
                elif base == package:
                    deps |= {a.name for a in node.names if a.name in modules} or {"__init__"}
                elif base.startswith(package + "."):
                    deps.add(base[len(package) + 1:].split(".")[0])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(package + "."):
                        deps.add(a.name[len(package) + 1:].split(".")[0])
        graph[name] = {d for d in deps if d != name and d in modules}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["muxsim.sim", "muxsim.workload", "muxsim.policy"])
def test_no_import_cycle(package):
    graph = _imports(package)
    assert len(graph) > 3
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_policies_do_not_depend_on_the_simulator():
    # an executor calls the same policy code: it must not drag the simulator in
    for path in (ROOT / "muxsim" / "policy").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n == "muxsim.sim" or n.startswith("muxsim.sim.") for n in names), path.name
