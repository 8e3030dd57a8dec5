"""The import graph of src/lamforge is the layering the README states, read from the code itself.

Every import counts, at the top of a module or inside a function (a lazy import kept for start-up time is still an
edge). A unit is a subpackage of lamforge (env, tasks, agent, ...) or a top-level module (schema, prompt, ...). A
unit may import only units of the layers before its own: no edge against the order, so no cycle between units.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lamforge"
README = ROOT / "README.md"
MARKER = "The import graph flows one way:"


def stated_layers() -> list[set[str]]:
    """The README's order: `a, b ← c ← d, e`, lowest layer first."""
    text = README.read_text()
    assert MARKER in text, f"the README's Architecture section must state the order after {MARKER!r}"
    order = re.match(r"\s*`([^`]+)`", text.split(MARKER, 1)[1])  # may wrap onto the next line
    assert order, f"the order after {MARKER!r} must be in backquotes"
    return [{unit.strip() for unit in layer.split(",")} for layer in order.group(1).split("←")]


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lamforge"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) of every lamforge import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from lamforge import schema` or `from lamforge.tasks import lo_files` may import a submodule: kept as
            # a candidate (`lamforge.schema.Action` too, whose unit is its module's; module_graph keeps only modules)
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*"]
    return [(line, module) for line, module in found if module.startswith("lamforge.")]


def edges() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, where) for every import between two different units."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(module_name(path))
        for line, module in imports(path):
            target = unit_of(module)
            if target != source:
                out.append((source, target, f"{path.relative_to(ROOT)}:{line} imports {module}"))
    return out


def module_graph() -> dict[str, set[str]]:
    """Module -> the lamforge modules it imports (a package's __init__ counts as the package's module)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for _, m in imports(path) if m in paths and m != name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop (Tarjan's strongly connected
    components, iterative); a module alone in its group is left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_module_imports_itself_around_a_loop():
    assert cycles(module_graph()) == [], "modules that import each other around a loop"


def test_the_loop_finder_finds_loops():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"c"}}) == []  # a module importing itself is not a loop between two


def test_every_unit_has_a_place_in_the_stated_order():
    layers = stated_layers()
    placed = set().union(*layers)
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")} - {"lamforge"}
    assert units - placed == set(), f"units the README's order does not place: {sorted(units - placed)}"
    assert placed - units == set(), f"the README's order names units that do not exist: {sorted(placed - units)}"
    assert sum(len(layer) for layer in layers) == len(placed), "a unit is named twice in the README's order"


def test_imports_follow_the_stated_order():
    layer = {unit: i for i, units in enumerate(stated_layers()) for unit in units}
    against = [where for source, target, where in edges()
               if target in layer and source in layer and layer[target] >= layer[source]]
    assert not against, "imports against the README's order (a unit may import only earlier layers):\n" + \
        "\n".join(against)


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path):
    # The checks above are only as good as the reader: an import inside a function must count.
    module = tmp_path / "lamforge" / "agent" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from lamforge.train import sft\n    from ..data import collect\n"
                      "    from lamforge import pipeline\n")
    found = [m for _, m in imports(module, tmp_path / "lamforge")]
    assert found == ["lamforge.train", "lamforge.train.sft", "lamforge.data", "lamforge.data.collect",
                     "lamforge.pipeline"]
