"""The import-layer check of `make check`: layers, cycles, and imports inside functions.

Every import of a project module counts, wherever it is written: at module level, under
`if TYPE_CHECKING:`, or inside a function. Importing `a.b.c` also runs `a` and `a.b`, so
it counts as an import of those packages too. The check fails when:

  1. a module imports one from a higher layer (LAYERS, lowest first; a module belongs to
     the longest prefix that names it, and may import its own layer and those below);
  2. the modules import each other in a cycle, type-only imports included;
  3. more than MAX_FUNCTION_IMPORTS project imports sit inside functions, or one of them
     has no comment saying why (on its line or the line above);
  4. a product module is longer than MAX_MODULE_LINES (small modules with one job: a
     module that outgrows it is asking to be split).

Written on `ast` rather than import-linter because rules 2 and 3 are not contracts that
tool has; the whole check is the ~150 lines below. `python scripts/check_imports.py
--graph` prints the module graph for reading.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. Each entry is a module prefix; a prefix may import its own layer and any
# layer listed before it.
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("identity",),
    ("observe",),
    ("agent.k8s",),
    ("agent.policy",),
    ("agent.datapath", "agent.store", "agent.sources", "agent.api", "agent.cni"),
    ("agent",),
    ("lab",),
    ("ui",),
    ("cli",),
]
PACKAGES = ("core", "identity", "observe", "agent", "lab", "ui", "cli")
MAX_FUNCTION_IMPORTS = 10
MAX_MODULE_LINES = 600


@dataclass(frozen=True)
class Import:
    source: str     # importing module
    target: str     # imported project module
    line: int
    in_function: bool
    commented: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "gen" in path.relative_to(ROOT).parts:
                continue   # generated protobuf code
            found[module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module `name` starts with (an attribute import names its module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, str(path))
    is_package = path.name == "__init__.py"
    out: list[Import] = []

    def commented(line: int) -> bool:
        here = lines[line - 1]
        above = lines[line - 2].strip() if line >= 2 else ""
        return "#" in here or above.startswith("#")

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in child.names] or [base]
            for name in names:
                target = _resolve(name, modules)
                if target is None or target == module:
                    continue
                # Importing a.b.c runs a and a.b first (except the packages this module
                # is in: they are running already).
                parts = target.split(".")
                for depth in range(1, len(parts) + 1):
                    ancestor = ".".join(parts[:depth])
                    implicit = depth < len(parts)
                    if ancestor not in modules or ancestor == module or (
                            implicit and module.startswith(ancestor + ".")):
                        continue
                    out.append(Import(module, ancestor, child.lineno, in_function,
                                      commented(child.lineno)))
            visit(child, inside)

    visit(tree, False)
    return out


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check() -> list[str]:
    modules = project_modules()
    all_imports = [imp for name, path in modules.items()
                   for imp in imports_of(name, path, modules)]
    problems: list[str] = []
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in sorted(set(all_imports), key=lambda i: (i.source, i.line, i.target)):
        edges[imp.source].add(imp.target)
        if layer_of(imp.target) > layer_of(imp.source):
            problems.append(f"{modules[imp.source].relative_to(ROOT)}:{imp.line}: layer break: "
                            f"{imp.source} imports {imp.target} (a higher layer)")
    for component in cycles(edges):
        problems.append("import cycle: " + " <-> ".join(component))
    in_function = sorted({(imp.source, imp.line, imp.commented) for imp in all_imports
                          if imp.in_function})
    for source, line, has_comment in in_function:
        if not has_comment:
            problems.append(f"{modules[source].relative_to(ROOT)}:{line}: import inside a "
                            "function without a comment saying why")
    for name, path in modules.items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines (at most "
                            f"{MAX_MODULE_LINES}): split it")
    if len(in_function) > MAX_FUNCTION_IMPORTS:
        where = ", ".join(f"{modules[s].relative_to(ROOT)}:{n}" for s, n, _ in in_function)
        problems.append(f"{len(in_function)} project imports inside functions (at most "
                        f"{MAX_FUNCTION_IMPORTS}): {where}")
    return problems


def main(argv: list[str]) -> int:
    if "--graph" in argv:
        modules = project_modules()
        for name, path in modules.items():
            targets = sorted({i.target for i in imports_of(name, path, modules)})
            print(f"{name}: {' '.join(targets)}")
        return 0
    problems = check()
    for problem in problems:
        print(problem)
    print(f"check_imports: {len(problems)} problem(s)" if problems else "check_imports: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
