"""The package's import graph read from its source (AST, nothing imported): which of its files a
DVC stage runs, and which rooms import which (tests of dvc.yaml and docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "tensorcost"
PACKAGE = "tensorcost"


def module_file(module: str) -> Path | None:
    """tensorcost.a.b -> its .py file (a package's __init__.py); None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".c")):  # .c: a C extension's source
        if f.is_file():
            return f
    return None


def module_name(path: Path) -> str:
    rel = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom | ast.Import, here: str, is_package: bool) -> set[str]:
    """The package modules an import statement loads (a `from X import y` whose y is a module too)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if mod.split(".")[0] != PACKAGE:
        return set()
    out = {mod}
    for a in node.names:
        if module_file(f"{mod}.{a.name}") is not None:
            out.add(f"{mod}.{a.name}")
    return out


def with_parents(module: str) -> set[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def family_modules(path: Path) -> set[str]:
    """Modules a package loads by name from a `FAMILIES = {"family": "module:Class"}` table
    (models/__init__.py imports a family on first use: no import statement to read)."""
    out: set[str] = set()
    for n in _tree(path).body:
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILIES" for t in n.targets):
            for v in ast.literal_eval(n.value).values():
                out.add(f"{module_name(path)}.{v.split(':')[0]}")
    return out


def imports_in(path: Path, node: ast.AST | None = None) -> set[str]:
    """Package modules imported anywhere under `node` (default: the whole file, with its
    family table)."""
    here, is_pkg = module_name(path), path.name == "__init__.py"
    out: set[str] = set() if node is not None else family_modules(path)
    for n in ast.walk(node if node is not None else _tree(path)):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= _resolve(n, here, is_pkg)
    return {m for m in out if module_file(m) is not None}


def top_level_imports(path: Path) -> set[str]:
    here, is_pkg = module_name(path), path.name == "__init__.py"
    out: set[str] = set()
    for n in _tree(path).body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= _resolve(n, here, is_pkg)
    return {m for m in out if module_file(m) is not None}


def _reach(modules: set[str], imports) -> set[str]:
    """`modules` and every package module reached from them through `imports(file)`,
    transitively, with parent packages."""
    todo = set().union(*(with_parents(m) for m in modules)) if modules else set()
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        f = module_file(m)
        if f is None or f.suffix != ".py":
            continue
        for dep in imports(f):
            todo |= with_parents(dep) - seen
    return seen


def closure(modules: set[str]) -> set[str]:
    """Every package module `modules` may run: their imports anywhere in their files (lazy
    imports count: they run when the code path does), transitively, with parent packages."""
    return _reach(modules, imports_in)


def function_closure(path: Path, name: str) -> set[str]:
    """The modules a top-level function of `path` runs: its own imports, those of the module-level
    helpers it calls (transitively), the file's top-level imports, then `closure`."""
    defs = {n.name: n for n in _tree(path).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    todo, seen, mods = [name], set(), {module_name(path)} | top_level_imports(path)
    while todo:
        f = todo.pop()
        if f in seen or f not in defs:
            continue
        seen.add(f)
        mods |= imports_in(path, defs[f])
        todo += [c.func.id for c in ast.walk(defs[f]) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in defs]
    return closure(mods)


def third_party_at_top(path: Path) -> set[str]:
    """Top-level package names a file imports when it is imported (module body, top-level try)."""
    out: set[str] = set()
    stack = list(_tree(path).body)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Try):
            stack += n.body + n.orelse + n.finalbody + [s for h in n.handlers for s in h.body]
        elif isinstance(n, ast.Import):
            out |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and not n.level and n.module:
            out.add(n.module.split(".")[0])
    return out - {PACKAGE}


@lru_cache(maxsize=None)
def heavy_at_import(module: str, heavy: frozenset[str]) -> str | None:
    """A package of `heavy` that importing `module` loads (through its top-level imports and
    theirs), or None."""
    for m in sorted(_reach({module}, top_level_imports)):
        f = module_file(m)
        hit = sorted(third_party_at_top(f) & heavy) if f is not None and f.suffix == ".py" else []
        if hit:
            return hit[0]
    return None
