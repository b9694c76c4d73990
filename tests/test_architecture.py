"""The package's shape, checked from the source: no import circle anywhere in sitegen/, figures never
reach back into directives, the builder never imports torch or jax, and no module grows past a screenful
of screens (600 lines).

Imports are read with ``ast`` (nothing is imported), at every depth (an import inside a function is
still a dependency), except those under ``if TYPE_CHECKING:``, which exist for annotations only.
``from package import name`` counts as importing ``package.name`` when that is a module. A module's
implicit import of its parent packages is not an edge (every submodule has it).
"""
from __future__ import annotations

import ast
import re
import functools
from pathlib import Path

import sitegen

ROOT = Path(sitegen.__file__).resolve().parent
MAX_LINES = 600


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The sitegen modules ``name`` imports at run time."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
        visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != name}


@functools.lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_sitegen():
    found = cycles(graph())
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between top-level parts of sitegen (``sitegen.serve.http`` -> ``serve``); the
    package's own ``__init__`` (a lazy door to the notebook) and ``__main__`` stand outside."""
    def top(name):
        return name.split(".")[1] if name.count(".") else None

    out: dict[str, set[str]] = {}
    for name, targets in edges.items():
        if top(name) in (None, "__main__"):
            continue
        out.setdefault(top(name), set()).update(t for t in map(top, targets) if t and t != top(name))
    return out


def test_no_circle_between_the_parts_either():
    # e.g. markdown dispatches to directives, so directives reach Markdown through the page context
    found = cycles(packages(graph()))
    assert found == [], "circles between parts of sitegen: " + "; ".join(" <-> ".join(c) for c in found)


def test_figures_never_import_directives_and_the_builder_never_imports_torch_or_jax():
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("sitegen.figures"):
            assert not any(t.startswith("sitegen.directives") for t in targets), (name, targets)
    for path in [*ROOT.glob("*.py"), *ROOT.glob("*/*.py")]:
        if path.stem in ("trace", "provenance_hook") or "trace" in path.parts:
            continue  # imported by experiments, not by the builder
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("torch", "jax") for n in names), path


def test_the_notebook_and_the_preview_sit_on_top_of_the_builder_never_under_it():
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("sitegen.notebook"):
            assert not targets & {"sitegen.build", "sitegen.render", "sitegen.cli"}, (name, targets)
            assert not any(t.startswith("sitegen.serve") for t in targets), (name, targets)
        if not name.startswith(("sitegen.serve", "sitegen.cli")):
            assert not any(t.startswith("sitegen.serve") for t in targets), (name, targets)


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_architecture_md_lists_what_each_part_imports():
    """ARCHITECTURE.md's table is drawn from the code; a part importing one it does not list fails here
    (add it to the table's last column, or do not import it)."""
    text = (ROOT.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    actual = packages(graph())
    listed: dict[str, set[str]] = {}
    for row in text.splitlines():
        cells = row.split("|")
        if len(cells) != 5 or not cells[1].strip().startswith("`"):
            continue
        parts = [p.strip("/") for p in re.findall(r"`([^`]+)`", cells[1])]
        allowed = {p.strip("/") for p in re.findall(r"`([^`]+)`", cells[3])}
        for part in parts:
            listed[part] = allowed
    assert set(actual) <= set(listed), f"parts missing from ARCHITECTURE.md: {sorted(set(actual) - set(listed))}"
    for part, targets in actual.items():
        extra = targets - listed[part] - {"errors"}
        assert not extra, f"ARCHITECTURE.md says {part} imports {sorted(listed[part])}, but it also imports {sorted(extra)}"
