"""Issue 30 item 4: the feature table carries its schema and names, so no function outside the
rooms that define, check or record them takes `feature_schema` / `feature_names` beside a table."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tensorcost"
# Where the names are rightly parameters: the models record them (their `create` contract), the
# features room makes them, validation checks a frame against them, the registry writes the model
# card's tag and checks a loaded model against the code's schema.
ALLOWED = ("models/", "features/", "validation.py", "registry/")
PARAMS = {"feature_schema", "feature_names"}


def test_no_function_outside_the_owning_rooms_takes_the_schema_beside_a_table():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                hit = PARAMS & {a.arg for a in args}
                if hit:
                    offenders.append(f"{rel}:{node.lineno} {node.name}({', '.join(sorted(hit))})")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in PARAMS:
                offenders.append(f"{rel}:{node.lineno} a field {node.target.id}")
    assert not offenders, "read the schema and names from the table (FeatureTable / StoreView .feature_schema, .feature_names):\n" + "\n".join(offenders)
