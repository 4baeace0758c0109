"""Issue 30 item 5: imports at module top, except where a heavy package is deliberately lazy.

A function may import only (a) a package of HEAVY or OPTIONAL, (b) a module of ours that loads
one of HEAVY when imported, (c) inside a `try` (a fallback), or (d) in cli.py, which imports
each command's rooms when the command runs: `tensorcost --help` costs 0.07 s there, against
0.6 s with every room at its top (`python -X importtime -c "import tensorcost.stages"`).
Everything else goes at the top of its module, where a reader sees what the module depends on.
"""

from __future__ import annotations

import ast

from codegraph import PACKAGE_DIR, _resolve, _tree, heavy_at_import, module_name

# Packages only some commands need, each over 0.25 s to import here (`/usr/bin/time python -c
# "import X"`, 2026-12-06: tvm ~29 s (stack-facts), great_expectations 3.2 s, xgboost 2.1 s,
# mlflow 1.7 s, sklearn 1.7 s, torch 1.5 s, lightgbm 1.5 s, matplotlib 0.6 s, dask 0.5 s, onnx 0.26 s).
HEAVY = frozenset({"tvm", "tvm_ffi", "great_expectations", "xgboost", "mlflow", "sklearn", "torch", "lightgbm", "matplotlib", "dask", "distributed", "onnx"})
# Packages a machine may lack (a GPU-only device image, the team stack's extras).
OPTIONAL = frozenset({"pynvml", "psycopg2", "asyncssh", "archspec"})
LAZY_MODULES = {"tensorcost.cli"}


def _in_try(node, parents) -> bool:
    p = parents.get(node)
    while p is not None and not isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if isinstance(p, (ast.Try, ast.ExceptHandler)):
            return True
        p = parents.get(p)
    return False


def test_function_level_imports_are_the_deliberately_lazy_ones():
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        here = module_name(path)
        if here in LAZY_MODULES:
            continue
        tree = _tree(path)
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(fn):
                if not isinstance(n, (ast.Import, ast.ImportFrom)) or _in_try(n, parents):
                    continue
                ours = _resolve(n, here, path.name == "__init__.py")
                if ours:
                    if not any(heavy_at_import(m, HEAVY) for m in ours):
                        offenders.append(f"{path.relative_to(PACKAGE_DIR)}:{n.lineno} imports {sorted(ours)}, which load no heavy package")
                    continue
                root = (n.names[0].name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0]
                if root not in HEAVY | OPTIONAL:
                    offenders.append(f"{path.relative_to(PACKAGE_DIR)}:{n.lineno} imports {root} inside a function")
    assert not offenders, "move these imports to the module's top:\n" + "\n".join(offenders)


def test_the_heavy_packages_stay_out_of_the_light_rooms():
    """What every command loads (the stages, the registry, params, features) imports no heavy
    package at its top: a `tensorcost` command pays for TVM or torch only when it uses them."""
    for module in ("tensorcost.stages", "tensorcost.registry", "tensorcost.params", "tensorcost.features", "tensorcost.evaluation",
                   "tensorcost.tuning", "tensorcost.validation", "tensorcost.models"):
        assert heavy_at_import(module, HEAVY) is None, (module, heavy_at_import(module, HEAVY))
