"""sitegen.trace as a package: each module one concern, small, documented, with no import circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sitegen

PACKAGE = Path(sitegen.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """The sitegen modules a file imports (``from sitegen.trace import table`` counts as the submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sitegen"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sitegen"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                as_file = PACKAGE.parent / (sub.replace(".", "/") + ".py")
                found.add(sub if as_file.exists() else node.module)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_trace_module_is_documented_and_under_600_lines():
    files = sorted((PACKAGE / "trace").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
        assert text.count("\n") <= 600, f"{path.name} has {text.count(chr(10))} lines"


def test_no_import_circle_inside_the_trace_package():
    graph = {_module_name(p): {m for m in _imports(p, "sitegen.trace") if m.startswith("sitegen.trace.")}
             for p in (PACKAGE / "trace").glob("*.py")}
    graph["sitegen.trace"] = set()   # the package's own __init__ only re-exports
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import circle: {' -> '.join(stack + [nxt])}"
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_public_names_import_without_torch_or_jax():
    code = ("import sys\nfrom sitegen.trace import Tracer, element_names, pytree_name\n"
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(sys.modules)\n"
            "t = Tracer(); t.record(0, {'w': [1.0, 2.0]}); assert len(t.frame()) == 2")
    subprocess.run([sys.executable, "-c", code], check=True)
