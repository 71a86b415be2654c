"""Imports point one way. Every import of every module of vidpipe_core, vidpipe_dagster and
vidpipe_emulator (at the top, under TYPE_CHECKING and inside functions alike: an import a
function makes is an arrow too) forms a graph with no cycle; vidpipe_core imports no Dagster;
one module holds every use of Dagster's private API; and vidpipe_dagster imports lazily only
where that is a measured start-up win. Read from the source (ast), nothing is imported."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vidpipe_core", "vidpipe_dagster", "vidpipe_emulator")

# Imports inside functions in vidpipe_dagster, each a measured start-up win (the figure is on the
# import's line). The CLI is not listed: its commands import what they need so that `vidpipe
# --help` imports no Dagster (tests/test_cli_startup.py); LAZY_EXEMPT names its modules that do
# (each must still import inside a function: the others, such as `exits`, import at the top).
LAZY_IMPORTS = {
    ("vidpipe_dagster", "vidpipe_dagster.definitions"),  # `vidpipe --help` imports the package
    ("vidpipe_dagster.runner", "vidpipe_dagster.jobs"),  # `vidpipe list` / `status` run no job
    ("vidpipe_dagster.celery_executor", "celery"),  # celery, kombu, dagster_celery: the celery executor's
    ("vidpipe_dagster.celery_executor", "kombu"),
    ("vidpipe_dagster.celery_executor", "dagster_celery"),
}
LAZY_EXEMPT = {
    "vidpipe_dagster.cli",  # `main` reads VIDPIPE_DEBUG / VIDPIPE_VERBOSE with pydantic
    "vidpipe_dagster.cli.admin",  # `worker`: celery, kombu, the definitions; `migrate`: the database
    "vidpipe_dagster.cli.base",  # the version, the services and ffmpeg, only for a command that uses them
    "vidpipe_dagster.cli.logs",  # a failed run's Dagster log (the runner)
    "vidpipe_dagster.cli.progress",  # the runner
    "vidpipe_dagster.cli.projects",  # the runner, status and the database
    "vidpipe_dagster.cli.running",  # the runner, status and the steps
    "vidpipe_dagster.cli.scrub",  # the google-genai SDK's redaction, only when there is an error
}

PRIVATE_DOOR = "vidpipe_dagster/internals.py"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported: one of ours, or an outside package's top-level name
    line: int
    local: bool  # inside a function (not at module level nor under `if TYPE_CHECKING:`)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _ours(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest module of ours that ``name`` is or is inside of."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [_ours(n, modules) or n.partition(".")[0] for n in names]
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found.append(submodule if submodule in modules else (_ours(base, modules) or base.partition(".")[0]))
    return found


def _imports(modules: dict[str, Path]) -> list[Import]:
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top = set()
        for node in tree.body:
            top.add(id(node))
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                top.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py", modules):
                    if target != module:
                        found.append(Import(module, target, node.lineno, id(node) not in top))
    return found


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                if len(component) > 1:
                    circles.append(frozenset(component))
    return circles


def _graph(imports: list[Import], modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.target in modules:
            graph[imp.source].add(imp.target)
    return graph


def _describe(circle: frozenset[str], imports: list[Import], modules: dict[str, Path]) -> str:
    arrows = sorted(
        {
            f"{modules[i.source].relative_to(ROOT)}:{i.line} -> {i.target}"
            for i in imports
            if i.source in circle and i.target in circle
        }
    )
    return f"{sorted(circle)}:\n  " + "\n  ".join(arrows)


def test_the_packages_have_no_import_circle():
    modules = _modules()
    imports = _imports(modules)
    circles = [_describe(c, imports, modules) for c in _circles(_graph(imports, modules))]
    assert not circles, "import circles (move the shared names into a leaf module):\n" + "\n".join(circles)


def test_the_graph_sees_circles_made_by_imports_inside_functions(tmp_path):
    """The walk itself: two modules that import each other only inside functions are a circle."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (tmp_path / "pkg" / "b.py").write_text("from . import c\n\ndef g():\n    from pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("import os\n")
    modules = {
        "pkg": tmp_path / "pkg/__init__.py",
        **{f"pkg.{n}": tmp_path / f"pkg/{n}.py" for n in "abc"},
    }
    imports = _imports(modules)
    assert {(i.source, i.target, i.local) for i in imports} == {
        ("pkg.a", "pkg.b", True),
        ("pkg.b", "pkg.c", False),
        ("pkg.b", "pkg.a", True),
        ("pkg.c", "os", False),
    }
    assert _circles(_graph(imports, modules)) == [frozenset({"pkg.a", "pkg.b"})]


def test_the_core_imports_no_dagster():
    modules = _modules()
    found = [
        f"{modules[i.source].relative_to(ROOT)}:{i.line} imports {i.target}"
        for i in _imports(modules)
        if i.source.startswith("vidpipe_core") and i.target.partition(".")[0].startswith("dagster")
    ]
    assert not found, found


def test_dagsters_private_api_is_used_in_one_module():
    """What `grep -rn "dagster\\._" vidpipe_*` finds: every file that names Dagster's private API."""
    users = sorted(
        str(p.relative_to(ROOT))
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and "dagster._" in p.read_text(errors="replace")
    )
    assert users == [PRIVATE_DOOR]


def test_the_cli_is_exempt_only_where_it_imports_lazily():
    """Each module of LAZY_EXEMPT exists and still imports inside a function (else, delete its entry)."""
    modules = _modules()
    lazy = {i.source for i in _imports(modules) if i.local}
    assert LAZY_EXEMPT <= set(modules), f"no such module: {LAZY_EXEMPT - set(modules)}"
    assert not LAZY_EXEMPT - lazy, f"no import inside a function any more, delete them from LAZY_EXEMPT: {LAZY_EXEMPT - lazy}"


def test_vidpipe_dagster_imports_lazily_only_where_it_was_measured():
    modules = _modules()
    lazy = {
        (i.source, i.target.partition(".")[0] if i.target not in modules else i.target): i
        for i in _imports(modules)
        if i.local and i.source.startswith("vidpipe_dagster") and i.source not in LAZY_EXEMPT
    }
    unmeasured = sorted(
        f"{modules[i.source].relative_to(ROOT)}:{i.line} {i.target}" for k, i in lazy.items() if k not in LAZY_IMPORTS
    )
    assert not unmeasured, f"imports inside functions: move them to the top of the module: {unmeasured}"
    assert not LAZY_IMPORTS - set(lazy), f"no longer lazy, delete them from LAZY_IMPORTS: {LAZY_IMPORTS - set(lazy)}"
