"""Every result the package writes goes through safeio's atomic writers (issue 28 item 1): a
direct `write_text`, `savefig`, `to_parquet`, `np.save`, `pq.write_table` or `open(.., "w")` onto
a final path would leave half a file after a kill or a full disk. Writes onto the temporary path
that `atomic_output` / `atomic_folder` yield are fine; the few places that write scratch files or
files that are never results are listed with the reason."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tensorcost"

# file (relative to the package) -> why its direct writes are not results
ALLOWED = {
    "safeio.py": "the atomic writers themselves",
    "records/importer.py": "the importer's spool and temp output, renamed into place on success (tested by tests/records)",
    "features/store.py": "writes into a partial folder that is renamed whole on success",
    "synthetic_tenset.py": "writes into a temporary folder that is renamed whole on success",
    "services/ssh_remote.py": "configuration of a local sshd under the stack's state folder, not results",
    "services/mlflow_server.py": "PostgreSQL configuration under the stack's state folder, not results",
    "services/stack.py": "the stack's env file, rewritten whole by `services up`",
    "models/ddp_train.py": "the spec file is scratch input for the torchrun workers",
    "models/lightgbm_dask_bins.py": "a scratch file of bin bounds for the Dask workers",
    "models/attention.py": "torch.save into the temporary folder of CostModel.save",
    "models/lightgbm_model.py": "save_model into the temporary folder of CostModel.save",
    "models/tvm_xgb.py": "save_model into the temporary folder of CostModel.save",
}

WRITE_METHODS = {"write_text", "write_bytes", "savefig", "to_parquet", "to_csv", "save_model"}


def _tmp_names(func: ast.AST) -> set[str]:
    """Names bound by `with atomic_output(..) as x` / `atomic_folder` / `scratch_file` (a spool
    removed at the block's end) inside `func`."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) in ("atomic_output", "atomic_folder", "scratch_file") \
                        and isinstance(item.optional_vars, ast.Name):
                    names.add(item.optional_vars.id)
    return names


def _base_name(expr: ast.AST) -> str | None:
    """`tmp` for `tmp`, `tmp / "x"`, `str(tmp)`, `Path(tmp)`."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.BinOp):
        return _base_name(expr.left)
    if isinstance(expr, ast.Call) and expr.args and getattr(expr.func, "id", "") in ("str", "Path"):
        return _base_name(expr.args[0])
    return None


def direct_writes(source: str) -> list[tuple[int, str]]:
    """(line, call) of writes in `source` not aimed at an atomic writer's temporary path."""
    tree = ast.parse(source)
    found = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] or [tree]
    seen: set[int] = set()
    for scope in scopes:
        tmp = _tmp_names(scope)
        # a parameter is the caller's path: `_save_weights(self, directory)` writes where it is told
        params = {a.arg for a in scope.args.args} if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else set()
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or id(node) in seen:
                continue
            target, what = None, None
            f = node.func
            if isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "safeio":
                continue  # safeio.write_text(path, text): the atomic writer
            if isinstance(f, ast.Attribute) and f.attr in WRITE_METHODS:
                what = f.attr
                target = node.args[0] if f.attr in ("savefig", "to_parquet", "to_csv", "save_model") and node.args else f.value
            elif isinstance(f, ast.Attribute) and f.attr in ("write_table", "save") and getattr(f.value, "id", "") in ("pq", "np") and len(node.args) >= 2:
                what, target = f"{f.value.id}.{f.attr}", node.args[1] if f.attr == "write_table" else node.args[0]
            elif isinstance(f, ast.Attribute) and f.attr == "ParquetWriter":
                what, target = "ParquetWriter", node.args[0] if node.args else None
            elif isinstance(f, ast.Name) and f.id == "open" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and "w" in str(node.args[1].value):
                what, target = "open(w)", node.args[0]
            if what is None:
                continue
            seen.add(id(node))
            base = _base_name(target) if target is not None else None
            if base is not None and (base in tmp or base in params and what not in ("write_text", "savefig")):
                continue
            found.append((node.lineno, what))
    return sorted(set(found))


def test_every_result_write_is_atomic():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        hits = direct_writes(path.read_text())
        if hits:
            offenders[rel] = hits
    assert not offenders, f"direct writes onto final paths (use safeio.atomic_output / write_text, or list the file in ALLOWED with why): {offenders}"


def test_the_check_sees_a_direct_write():
    src = "def f(out):\n    out.write_text('x')\n\ndef g(p):\n    import numpy as np\n    np.save(p / 'a.npy', 1)\n"
    assert direct_writes(src) == [(2, "write_text")]
    bad = "def h():\n    open('x.csv', 'w')\n    Path('y').write_text('1')\n"
    assert [w for _, w in direct_writes(bad)] == ["open(w)", "write_text"]
    ok = "def k(out):\n    with atomic_output(out) as tmp:\n        tmp.write_text('x')\n        fig.savefig(tmp)\n"
    assert direct_writes(ok) == []


def test_allowed_files_exist():
    missing = [f for f in ALLOWED if not (PACKAGE / f).exists()]
    assert not missing, f"ALLOWED names files that are gone: {missing}"
