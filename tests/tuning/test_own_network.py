"""A user's own network: loaded from a Python file or an ONNX file, registered with its
architecture family, tuned and scored with the registry's model (the README's lines, run as
written)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tensorcost.errors import UserError
from tensorcost.user_network import load_network, parse_shape

REPO = Path(__file__).resolve().parents[2]

MODULE = "from torch import nn\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())\ndef helper():\n    return 1\n"


def _onnx_file(path: Path, shape=(1, 3, 16, 16)) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype("float32"), "W")
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("text,dims", [("1,3,224,224", (1, 3, 224, 224)), ("1x3x8x8", (1, 3, 8, 8)), (" 8 , 256", (8, 256))])
def test_shapes_parse(text, dims):
    assert parse_shape(text) == dims


@pytest.mark.parametrize("text", ["", "1;3", "1,,3", "0,3", "-1,3", "a,b", "1,3,"])
def test_bad_shapes_are_one_line_errors(text):
    with pytest.raises(UserError, match="--input-shape"):
        parse_shape(text)


def test_python_network_mistakes_are_said_before_anything_slow(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(MODULE)
    with pytest.raises(UserError, match=r"no function 'buidl' \(functions there: build, helper\)"):
        load_network(f"{f}:buidl", "1,3,8,8")
    with pytest.raises(UserError, match="give --input-shape"):
        load_network(f"{f}:build")
    with pytest.raises(UserError, match="does not exist"):
        load_network(f"{tmp_path / 'nope.py'}:build", "1,3,8,8")
    with pytest.raises(UserError, match="did you mean resnet18-b1-224"):
        load_network("resnet18-b1-22")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(UserError, match="importing it failed: ModuleNotFoundError"):
        load_network(f"{tmp_path / 'broken.py'}:build", "1,3,8,8")
    (tmp_path / "notmod.py").write_text("def build():\n    return 3\n")
    spec = load_network(f"{tmp_path / 'notmod.py'}:build", "1,3,8,8")
    with pytest.raises(UserError, match=r"returned int, not a torch.nn.Module"):
        spec.build()


def test_a_registered_network_has_its_architecture_family(tmp_path):
    from tensorcost import zoo

    f = tmp_path / "mynet.py"
    f.write_text(MODULE)
    spec = load_network(f"{f}:build", "1,3,8,8", architecture="resnet")
    assert spec.name == "mynet" and zoo.get_network("mynet") is spec and zoo.architecture_family("mynet") == "resnet"
    assert type(spec.build()).__name__ == "Sequential"
    with pytest.raises(UserError, match="already a zoo network"):
        zoo.register_network(zoo.NetworkSpec("resnet18-b1-224", "x", lambda: None, (1,)))
    for bad in ("../x", "a/b", "x\n", ""):
        with pytest.raises(UserError):
            zoo.register_network(zoo.NetworkSpec(bad, "x", lambda: None, (1,)))


def test_onnx_shapes_come_from_the_file(tmp_path):
    f = _onnx_file(tmp_path / "small.onnx")
    spec = load_network(str(f))
    assert spec.kind == "onnx" and spec.input_shape == (1, 3, 16, 16) and spec.input_name == "x"
    with pytest.raises(UserError, match=r"is \(1, 3, 16, 16\), not --input-shape"):
        load_network(str(f), "1,3,8,8")
    open_dims = _onnx_file(tmp_path / "open.onnx", shape=("N", 3, 16, 16))
    with pytest.raises(UserError, match="open dimensions; give --input-shape"):
        load_network(str(open_dims))
    assert load_network(str(open_dims), "2,3,16,16").input_shape == (2, 3, 16, 16)
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(UserError, match="not a readable ONNX model"):
        load_network(str(tmp_path / "bad.onnx"))


def test_both_kinds_convert_to_relax_tasks(tmp_path):
    pytest.importorskip("tvm")
    import tvm.s_tir.meta_schedule as ms

    from tensorcost.collect import network_to_relax
    from tensorcost.hardware import resolve_target
    from tensorcost.tvm_support import tvm_target

    target = tvm_target(resolve_target("auto"))
    (tmp_path / "convnet.py").write_text(MODULE)
    for spec in (load_network(str(_onnx_file(tmp_path / "small.onnx"))), load_network(f"{tmp_path / 'convnet.py'}:build", "1,3,16,16")):
        names = [t.task_name for t in ms.relax_integration.extract_tasks(network_to_relax(spec, target), target)]
        assert any("conv2d" in n for n in names), (spec.name, names)
    wrong = load_network(f"{tmp_path / 'convnet.py'}:build", "1,4,16,16", name="convnet_wrong")
    with pytest.raises(UserError, match=r"convnet_wrong with input \(1, 4, 16, 16\): torch.export"):
        network_to_relax(wrong, target)


def _readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- doctest: {marker} -->\n```bash\n(.*?)```", text, re.S)
    assert m, f"README has no `doctest: {marker}` bash block"
    return m.group(1)


def _register_model_for_this_machine(tmp_path) -> str:
    """A small LightGBM on real featurized bundled records, registered as this machine's candidate."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tensorcost import dataset, registry
    from tensorcost.evaluation import ModelSpec
    from tensorcost.features import FEATURE_SCHEMA_VERSION, FeatureTable, featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.tuning import this_machine_target

    hw = this_machine_target()
    source = "zen5-2c.avx2-t1"
    table = dataset.bundled_tables([source], REPO / dataset.BUNDLED_DIR)[source]
    tasks = sorted(set(table.column("task_id").to_pylist()))[:6]
    table = table.filter(pc.is_in(table["task_id"], value_set=pa.array(tasks)))
    frame = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES, slot=hw.id)
    data = FeatureTable(frame, hw.id)
    model = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 30, "num_threads": 1}).create(data, target=hw.id)
    model.fit(data)
    model.save(tmp_path / "m")
    registry.log_and_register(tmp_path / "m", hw.id, experiment="t", run_name="m", params={}, metrics={},
                              tags={"target": hw.id, "feature_schema": FEATURE_SCHEMA_VERSION, "validation": "passed"}, alias=registry.CANDIDATE)
    return hw.id


@pytest.mark.slow
def test_the_readme_own_network_lines_run_as_written(tmp_path, mlflow_store):
    """README "Tuning your own network": its bash block, literally, in a folder with the
    project's .venv, against a registry holding this machine's model (no champion yet: the
    candidate is used, and the first line says so)."""
    target = _register_model_for_this_machine(tmp_path)
    work = tmp_path / "user"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", _readme_block("own-network")], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert f"tensorcost-{target}" in out and "candidate" in out
    import json

    tune = json.loads((work / "tune-report.json").read_text())
    assert tune["target"] == target and set(tune["cost_models"]) == {"tensorcost", "tvm_xgb"}
    ours = tune["cost_models"]["tensorcost"]
    assert ours["budget"]["scheduler"] == "round-robin" and len(ours["tasks_tuned"]) == ours["tasks_in_network"] >= 2
    assert all(v["best_latency_s"] is not None for v in ours["per_task"].values())  # every task measured: the budget was spread
    assert 0 < tune["summary"]["tensorcost_network_ms"] and 0 < tune["summary"]["tvm_xgb_network_ms"]
    score = json.loads((work / "score-report.json").read_text())
    assert score["records"] >= 8 and list(score["models"]) == [f"candidate (v1)"]
    m = score["models"]["candidate (v1)"]
    assert 0 <= m["pca"] <= 1 and 0 <= score["random"]["top1"] <= 1
    assert "TVM's XGBoost: no feature store" in out  # outside a repository: said, not invented
