"""dvc.yaml declares the code each stage runs: a change to any of it makes `dvc repro` re-run the
stage (issue 30 item 2: `train` once depended on models/ alone and reported stale results)."""

from __future__ import annotations

import re

import yaml

from codegraph import PACKAGE_DIR, ROOT, function_closure, module_file

STAGES_PY = PACKAGE_DIR / "stages.py"
CLI_PY = PACKAGE_DIR / "cli.py"


def _cli_stage_functions() -> dict[str, str]:
    """{`tensorcost stage` command: the stages.py function it runs}, from cli.py's table."""
    from tensorcost.cli import STAGE_COMMANDS

    return {command: function for command, (function, _, _) in STAGE_COMMANDS.items()}


def _stage_function(cmd: str) -> str:
    m = re.fullmatch(r"tensorcost stage ([a-z-]+)(?: .*)?", cmd.strip())
    assert m, f"dvc.yaml: a stage command that is not `tensorcost stage <name>`: {cmd!r}"
    functions = _cli_stage_functions()
    assert m.group(1) in functions, f"dvc.yaml runs `tensorcost stage {m.group(1)}`, which cli.py does not define"
    return functions[m.group(1)]


def _covered(path, deps: list[str]) -> bool:
    rel = path.resolve().relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def _deps(stage: dict) -> list[str]:
    body = stage.get("do", stage)
    return [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]


def test_every_stage_lists_the_code_it_runs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        func = _stage_function(stage.get("do", stage)["cmd"])
        files = {module_file(m) for m in function_closure(STAGES_PY, func)} | {CLI_PY}
        files.discard(None)
        assert STAGES_PY in files and len(files) > 3, name  # the graph found the stage's code
        lacking = sorted(f.relative_to(ROOT).as_posix() for f in files if not _covered(f, _deps(stage)))
        if lacking:
            missing[name] = lacking
    assert not missing, f"dvc.yaml stages that do not list code they run: {missing}"


def test_the_closure_follows_lazy_imports():
    """The check above is only as good as the graph: an import inside a function counts."""
    mods = function_closure(STAGES_PY, "train")
    assert "tensorcost.registry" in mods and "tensorcost.evaluation" in mods
    assert "tensorcost.models.distributed" in mods  # imported only inside a helper train calls (lazy: Dask)
    # and a family loaded by name from models/__init__'s table
    from codegraph import closure

    assert "tensorcost.models.attention" in closure({"tensorcost.models"})
