"""Loading a model directory from a local path (no registry hash to protect it, issue 17): a
truncated or edited file is refused in one line before the family's parser or an allocation
sees it, never a crash (LightGBM aborts the process on some truncated files) or a silent load."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tensorcost.models import ModelFormatError, create_model, load_model
from tensorcost.models.base import METADATA_FILE, ModelMetadata, seal_metadata

NAMES = ["f0", "f1", "f2"]


def _rows(n=90, seed=0):
    from helpers import feature_table

    rng = np.random.default_rng(seed)
    x = rng.random((n, len(NAMES))).astype(np.float32)
    return feature_table(x, np.repeat(["a", "b", "c"], n // 3), 1e-3 * (1 + x[:, 0]))


@pytest.fixture(scope="module")
def lgb_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lgb")
    model = create_model("lightgbm", "t", "s", NAMES, num_boost_round=5, min_data_in_leaf=2, num_threads=1)
    model.fit(_rows())
    model.save(d)
    return d


def _copy(src, dst, keep_hashes: bool = False):
    """A copy of a model directory; without the weight hashes unless `keep_hashes` (a model saved
    before they existed), so that the family's own structure checks are what is tested."""
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    if not keep_hashes:
        meta = json.loads((dst / METADATA_FILE).read_text())
        meta.pop("files_sha256", None)
        (dst / METADATA_FILE).write_text(json.dumps(meta))
        seal_metadata(dst)
    return dst


def test_a_flipped_bit_in_the_weights_is_refused_by_the_recorded_hash(lgb_dir, tmp_path):
    # two bit flips the robustness audit found to abort the process inside LightGBM's parser
    assert json.loads((lgb_dir / METADATA_FILE).read_text())["files_sha256"].keys() == {"model.txt"}
    d = _copy(lgb_dir, tmp_path / "m", keep_hashes=True)
    data = bytearray((d / "model.txt").read_bytes())
    data[len(data) // 3] ^= 0x04
    (d / "model.txt").write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="does not match the sha256 recorded at save time"):
        load_model(d)
    meta = json.loads((d / METADATA_FILE).read_text())
    meta["files_sha256"] = {"../x": "0"}
    (d / METADATA_FILE).write_text(json.dumps(meta))
    seal_metadata(d)
    with pytest.raises(ModelFormatError, match="files_sha256 names"):
        load_model(d)


@pytest.mark.parametrize("frac", [0.05, 0.3, 0.5, 0.7, 0.9, 0.99, -1])
def test_truncated_lightgbm_model_is_refused_not_crashed(lgb_dir, tmp_path, frac):
    d = _copy(lgb_dir, tmp_path / "m")
    data = (d / "model.txt").read_bytes()
    (d / "model.txt").write_bytes(data[: len(data) - 1 if frac == -1 else int(len(data) * frac)])
    with pytest.raises(ModelFormatError, match="not a complete LightGBM model") as exc:
        load_model(d)
    assert "\n" not in str(exc.value)


def test_lightgbm_tree_sizes_and_feature_count_are_checked(lgb_dir, tmp_path):
    assert load_model(lgb_dir).family == "lightgbm"  # the intact file loads
    d = _copy(lgb_dir, tmp_path / "m")
    text = (d / "model.txt").read_text()
    sizes = text.split("tree_sizes=", 1)[1].split("\n", 1)[0]
    (d / "model.txt").write_text(text.replace(f"tree_sizes={sizes}", "tree_sizes=" + " ".join(["10"] * len(sizes.split()))))
    with pytest.raises(ModelFormatError, match="tree 1 is not where"):
        load_model(d)
    (d / "model.txt").write_text(text.replace(f"tree_sizes={sizes}", f"tree_sizes={sizes} 100"))
    with pytest.raises(ModelFormatError, match="tree"):
        load_model(d)
    (d / "model.txt").write_text(text)
    meta = json.loads((d / METADATA_FILE).read_text())
    meta["feature_names"] = NAMES + ["f3"]
    (d / METADATA_FILE).write_text(json.dumps(meta))
    seal_metadata(d)
    with pytest.raises(ModelFormatError, match="reads 3 features, the metadata names 4"):
        load_model(d)


def test_an_edited_metadata_file_is_refused_by_its_own_digest(lgb_dir, tmp_path):
    """The loader fuzz found attention models loading wrong after metadata.json edits the
    families' checks cannot see (issue 28 item 9): the metadata now carries its own sha256."""
    import shutil

    for i, edit in enumerate((lambda m: m.update(target="zen3-2c.avx2-t1"), lambda m: m["params"].update(learning_rate=0.5),
                              lambda m: m.pop("metadata_sha256"), lambda m: m.update(metadata_sha256="0" * 64))):
        d = tmp_path / f"m{i}"
        shutil.copytree(lgb_dir, d)
        meta = json.loads((d / METADATA_FILE).read_text())
        edit(meta)
        (d / METADATA_FILE).write_text(json.dumps(meta))
        with pytest.raises(ModelFormatError, match="metadata_sha256") as exc:
            load_model(d)
        assert str(d) in str(exc.value) and "\n" not in str(exc.value)
    d = tmp_path / "reformatted"  # the same fields, written another way: still the same metadata
    shutil.copytree(lgb_dir, d)
    (d / METADATA_FILE).write_text(json.dumps(json.loads((d / METADATA_FILE).read_text()), indent=4))
    assert load_model(d).metadata.target == load_model(lgb_dir).metadata.target


def test_missing_weights_file_is_one_line(lgb_dir, tmp_path):
    d = _copy(lgb_dir, tmp_path / "m")
    (d / "model.txt").unlink()
    with pytest.raises(ModelFormatError, match="model file model.txt is missing"):
        load_model(d)


def _xgb_dir(tmp_path):
    import xgboost as xgb

    from tensorcost.models.tvm_xgb import TVMXGBCostModel

    rng = np.random.default_rng(0)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(rng.random((50, 4)), rng.random(50)), num_boost_round=3)
    meta = ModelMetadata(family="tvm_xgb", feature_schema="s", target="t", objective="pack-sum-regression", feature_names=["a", "b", "c", "d"])
    TVMXGBCostModel(meta, booster).save(tmp_path / "saved")
    return _copy(tmp_path / "saved", tmp_path / "x")  # without the hashes: the structure checks are tested


def test_xgboost_json_is_checked_before_xgboost_parses_it(tmp_path):
    d = _xgb_dir(tmp_path)
    assert load_model(d).family == "tvm_xgb"
    path = d / "xgb_model.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="not a complete XGBoost JSON model"):
        load_model(d)
    doc = json.loads(data)
    del doc["learner"]["gradient_booster"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="gradient_booster"):
        load_model(d)
    doc = json.loads(data)
    doc["learner"]["gradient_booster"]["model"]["trees"].pop()
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="lists 2 trees, its header says 3"):
        load_model(d)



@pytest.mark.parametrize("edit,expect", [
    (lambda t: t["left_children"].__setitem__(next(i for i, c in enumerate(t["left_children"]) if c == -1), 0), "leaf marker"),  # a leaf gets one child: the root
    (lambda t: (t["left_children"].__setitem__(next(i for i, c in enumerate(t["left_children"]) if c == -1), 0),
                t["right_children"].__setitem__(next(i for i, c in enumerate(t["left_children"]) if c == 0), 0)), "reached twice"),  # a loop to the root
    (lambda t: t["right_children"].__setitem__(0, 10_000), "outside the tree"),
    (lambda t: t["base_weights"].pop(), "different lengths"),
    # what benchmarks/loader_fuzz.py found crashing XGBoost (SIGSEGV) behind recomputed hashes
    (lambda t: t["parents"].__setitem__(1, 1_000_000_000), "parents do not match"),
    (lambda t: t.__setitem__("id", 7), "its id says"),
    (lambda t: t["tree_param"].__setitem__("num_nodes", "99999999"), "does not describe its"),
    (lambda t: t["split_indices"].__setitem__(0, 99), "a split on a feature outside"),
])
def test_xgboost_trees_are_walked_before_xgboost_trusts_them(tmp_path, edit, expect):
    # A leaf pointing back at the root loaded and then killed the process (SIGSEGV) at predict.
    d = _xgb_dir(tmp_path)
    path = d / "xgb_model.json"
    doc = json.loads(path.read_bytes())
    edit(doc["learner"]["gradient_booster"]["model"]["trees"][0])
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match=expect):
        load_model(d)


ATT = {"epochs": 1, "d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 8}


@pytest.fixture
def att_dir(tmp_path, make_row):
    from tensorcost.features import FeatureTable, featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.records import to_table

    rows = [make_row(i, task_id=f"{t:016x}", latency=1e-4 * (1 + i)) for t in range(2) for i in range(8)]
    frame = featurize_table(to_table(rows), [1.0] * len(HARDWARE_FEATURE_NAMES), HARDWARE_FEATURE_NAMES)
    model = create_model("attention", "t", "s", frame.attrs["feature_names"], **ATT)
    model.fit(FeatureTable(frame, "t"))
    model.save(tmp_path / "att")
    return tmp_path / "att"


def _edit_meta(d, edit):
    meta = json.loads((d / METADATA_FILE).read_text())
    edit(meta)
    (d / METADATA_FILE).write_text(json.dumps(meta))
    seal_metadata(d)


@pytest.mark.parametrize("edit, expect", [
    (lambda m: m["params"].update(d_model=512, n_heads=8), "bytes of weights"),  # asks for far more than the file holds
    (lambda m: m["params"].update(n_layers=24), "bytes of weights"),
    (lambda m: m["params"].update(d_model=10**6), "d_model"),  # beyond the config's bounds
    (lambda m: m["extra"].update(n_hardware=10**9), "n_hardware"),
    (lambda m: m["extra"]["norm"].update(std=[0.0]), "norm.std"),
    (lambda m: m.update(params=[]), "wrong type"),
])
def test_attention_metadata_is_bounded_and_matched_to_the_weights(att_dir, tmp_path, monkeypatch, edit, expect):
    import tensorcost.models.attention as attention

    assert load_model(att_dir).family == "attention"
    d = _copy(att_dir, tmp_path / "m")
    _edit_meta(d, edit)
    real = attention._module
    built = []

    def module(cfg, n_hardware):  # record every real (non-meta) build
        import torch

        m = real(cfg, n_hardware)
        if next(m.parameters()).device != torch.device("meta"):
            built.append(cfg.d_model)
        return m

    monkeypatch.setattr(attention, "_module", module)
    with pytest.raises(ModelFormatError, match=expect):
        load_model(d)
    assert built == []  # refused before any real tensor was allocated


def test_truncated_attention_weights_are_refused(att_dir, tmp_path):
    d = _copy(att_dir, tmp_path / "m")
    data = (d / "weights.pt").read_bytes()
    for n in (100, len(data) // 2, len(data) - 10):
        (d / "weights.pt").write_bytes(data[:n])
        with pytest.raises(ModelFormatError, match="weights"):
            load_model(d)


def _edit_tree0(text: str, field: str, value) -> str:
    """Replace one field of the first tree, keeping every tree where tree_sizes says (the file a
    careful attacker, or a tool that recomputed the hashes, would write)."""
    head, rest = text.split("Tree=0\n", 1)
    block, after = rest.split("\n\n\n", 1)
    lines = [f"{field}={value(line.split('=', 1)[1]) if callable(value) else value}" if line.startswith(f"{field}=") else line for line in block.split("\n")]
    new_block = "Tree=0\n" + "\n".join(lines) + "\n\n\n"
    old_size = len(("Tree=0\n" + block + "\n\n\n").encode())
    sizes = head.split("tree_sizes=", 1)[1].split("\n", 1)[0].split()
    sizes[0] = str(int(sizes[0]) - old_size + len(new_block.encode()))
    head = head.replace("tree_sizes=" + head.split("tree_sizes=", 1)[1].split("\n", 1)[0], "tree_sizes=" + " ".join(sizes))
    return head + new_block + after


@pytest.mark.parametrize("field,value,why", [
    ("num_cat", "1", "num_cat 1"),
    ("leaf_value", lambda v: " ".join(v.split()[:-1]), "leaf_value holds"),
    ("num_leaves", "99999999", "num_leaves 99999999 out of range"),
    ("left_child", lambda v: " ".join(["40"] + v.split()[1:]), "is not a later internal node"),
    ("right_child", lambda v: " ".join(v.split()[:-1] + ["0"]), "is not a later internal node"),  # a child pointing back to the root
    ("split_feature", lambda v: " ".join(["7"] + v.split()[1:]), "a split on feature 7"),
])
def test_a_lightgbm_tree_edited_behind_its_hashes_is_refused_in_one_line(lgb_dir, tmp_path, field, value, why):
    """Edits that made LightGBM abort (SIGABRT), crash (SIGSEGV) or hang in predict when the
    hashes were recomputed after editing (issue 28): refused before LightGBM parses the file."""
    d = _copy(lgb_dir, tmp_path / "m")
    (d / "model.txt").write_text(_edit_tree0((d / "model.txt").read_text(), field, value))
    with pytest.raises(ModelFormatError) as err:
        load_model(d)
    assert why in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("edit,why", [
    (lambda t: re.sub(r"split_gain=\d", "split_gain=#", t, count=1), "tree line"),  # a flipped bit in a number aborted LightGBM (same length)
    (lambda t: t.replace("num_class=1", "num_class=3", 1), "num_class"),
    (lambda t: t.replace("feature_infos=", "feature_infos=[0:1] ", 1), "feature_infos"),
    (lambda t: t.replace("leaf_value=", "leaf_valve=", 1), "tree line|no leaf_value"),
])
def test_lightgbm_lines_outside_the_tree_arrays_are_checked_too(lgb_dir, tmp_path, edit, why):
    """benchmarks/loader_fuzz.py found flipped bits in split_gain / internal_value and header edits
    aborting LightGBM's parser behind recomputed hashes: every header and tree line is checked."""
    d = _copy(lgb_dir, tmp_path / "m")
    text = (d / "model.txt").read_text()
    (d / "model.txt").write_text(edit(text))
    with pytest.raises(ModelFormatError, match=why):
        load_model(d)


def test_the_parameters_section_is_not_given_to_lightgbm(lgb_dir, tmp_path):
    """The feature importances and parameters after the trees are informational: an edit there
    (the fuzz found `[objective: ...]` edits aborting the parser) no longer reaches LightGBM."""
    d = _copy(lgb_dir, tmp_path / "m")
    text = (d / "model.txt").read_text()
    (d / "model.txt").write_text(text.replace("[objective: ", "[objective: x", 1))
    assert np.array_equal(load_model(d).predict(_rows()), load_model(lgb_dir).predict(_rows()))


def test_a_loaded_model_saved_again_loads(lgb_dir, tmp_path):
    """The loader gives LightGBM the trees without the parameters section, so a loaded model saved
    again (a transfer blend's members, registered and pulled by the tune stage) has none: it must
    load, and predict as the original."""
    again = load_model(lgb_dir)
    again.save(tmp_path / "again")
    assert "end of parameters" not in (tmp_path / "again" / "model.txt").read_text()
    assert np.array_equal(load_model(tmp_path / "again").predict(_rows()), load_model(lgb_dir).predict(_rows()))
    data = (tmp_path / "again" / "model.txt").read_bytes()
    (tmp_path / "again" / "model.txt").write_bytes(data[:data.rfind(b"pandas_categorical:")])  # cut before its last line
    d = _copy(tmp_path / "again", tmp_path / "cut")
    with pytest.raises(ModelFormatError, match="truncated trailer"):
        load_model(d)
