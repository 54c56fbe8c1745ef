"""The house's rules, read from the code: no import circle, no import back up the layers, one owner per format.

The layer order below is the one place it is written in code; docs/development.md explains it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import w2v2bench

PACKAGE = Path(w2v2bench.__file__).parent
TESTS = Path(__file__).parent

# top layer first; a module may import from its own layer or any layer below it, never from one above
LAYERS = [
    ("command lines", ["cli", "api", "callbacks", "__main__", "*.__main__", "score", "synth", "random_model"]),
    ("steps and tools", ["harness", "settings", "pipeline", "summary", "rescore", "nightly", "backends", "decoders",
                         "export", "compare", "convert", "testing"]),
    ("sources, model, run folders", ["data", "model", "resume", "distributed", "history", "table", "analysis"]),
    ("file formats and metrics", ["results", "metrics"]),
    ("foundation", ["errors", "files", "provenance", "hub", "config", "ctc", "align", ""]),
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = ("w2v2bench", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _skipped(node: ast.If) -> bool:
    """`if TYPE_CHECKING:`: it never runs (every other import counts, in functions and `__main__` blocks too)."""
    return ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imports(module: str) -> set[str]:
    """Every package module `module` imports, at any depth of its code (function-level imports included)."""
    path = MODULES[module]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _skipped(node):
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names if a.name.split(".")[0] == "w2v2bench")

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "w2v2bench":
                return
            for alias in node.names:  # `from . import x` imports the submodule x when there is one
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)

    Visitor().visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports(m) for m in MODULES}


def layer(module: str) -> int:
    """The index in LAYERS of the longest pattern that names `module` (a pattern names a module and its submodules)."""
    name = module.removeprefix("w2v2bench").removeprefix(".")
    best, where = -1, None
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            regex = re.escape(pattern).replace(r"\*", r"[\w.]+")
            if pattern == "" or re.fullmatch(rf"{regex}(\..+)?", name):
                if len(pattern) > best:
                    best, where = len(pattern), index
    assert where is not None, f"{module} is in no layer: add it to LAYERS (tests/test_structure.py) and docs"
    return where


def test_every_import_is_found():
    # the reader above sees the imports the package has (a reader that found nothing would pass everything below)
    assert "w2v2bench.results" in GRAPH["w2v2bench.analysis"]
    assert "w2v2bench.metrics.edits" in GRAPH["w2v2bench.results"]
    assert "w2v2bench.hub" in GRAPH["w2v2bench.decoders.lm"]  # a function-level import
    assert "w2v2bench.cli.score" in GRAPH["w2v2bench.score"]  # inside `if __name__ == "__main__":`


def test_no_import_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circle = path[path.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_no_import_runs_back_up_the_layers():
    upward = [
        f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer(target) < layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_layers_are_the_ones_the_docs_give():
    docs = (PACKAGE.parents[1] / "docs" / "development.md").read_text()
    for name, patterns in LAYERS:
        assert name in docs, f"docs/development.md does not name the layer {name!r}"
        for pattern in filter(None, patterns):
            assert f"`{pattern}`" in docs, f"docs/development.md does not place `{pattern}` in a layer"


def test_one_schema_version_for_the_run_files():
    defined = [
        f"{m}:{n.lineno}"
        for m, p in MODULES.items()
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SCHEMA_VERSION" for t in n.targets)
    ]
    assert [d.split(":")[0] for d in defined] == ["w2v2bench.results"], defined


def test_library_modules_run_nothing_as_a_script():
    # a module runs as a script only in cli/, as a package's __main__.py, or as one of the old spellings at the top
    # (score.py, synth.py, random_model.py), whose whole body is `if __name__ == "__main__":` forwarding to cli/
    shims = {"w2v2bench.score", "w2v2bench.synth", "w2v2bench.random_model"}
    for module, path in MODULES.items():
        if module.startswith("w2v2bench.cli") or module.endswith("__main__"):
            continue
        tree = ast.parse(path.read_text())
        scripts = [n for n in tree.body if isinstance(n, ast.If) and "__name__" in ast.unparse(n.test)]
        if module not in shims:
            assert not scripts, f"{module} runs as a script: move that to cli/ (or tools/)"
            continue
        (block,) = scripts
        body = [ast.unparse(n) for n in block.body]
        assert [type(n) for n in tree.body] == [ast.Expr, ast.If], module  # a docstring, then the block
        assert re.fullmatch(r"from \.cli\.\w+ import main", body[0]) and body[1:] == ["raise SystemExit(main())"], body
    for main in (p for m, p in MODULES.items() if m.endswith(".__main__") and m != "w2v2bench.__main__"):
        body = [ast.unparse(n) for n in ast.parse(main.read_text()).body[1:]]
        assert re.fullmatch(r"from \.\.cli\.\w+ import main", body[0]) and body[1:] == ["raise SystemExit(main())"], (
            main
        )


def test_no_test_module_imports_another():
    crossing = []
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            names = [(node.module or "").split(".")[-1]] + ([a.name for a in node.names] if node.module is None else [])
            if (node.level or (node.module or "").startswith("tests.")) and any(n.startswith("test_") for n in names):
                crossing.append(f"{path.relative_to(TESTS)}: from {'.' * node.level}{node.module or ''} import ...")
    assert not crossing, "shared test code belongs in tests/helpers/:\n" + "\n".join(crossing)


def test_exit_statuses_come_from_one_table():
    # errors.Exit is the one table: no command exits with a bare number, no module keeps its own EXIT_ constants
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.startswith("EXIT_")
                for target in node.targets
                for t in ([target] if isinstance(target, ast.Name) else getattr(target, "elts", []))
            ):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("sys.exit", "SystemExit")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
            if (
                module.startswith("w2v2bench.cli")
                and isinstance(node, ast.Return)
                and isinstance(node.value, ast.Constant)
            ):
                if isinstance(node.value.value, int) and not isinstance(node.value.value, bool):
                    found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "use errors.Exit:\n" + "\n".join(found)
