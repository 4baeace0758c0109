"""promote trusts nothing it reads (issue 28, items 4 and 5): the version argument is canonical,
the tags the gates read are parsed and checked, the candidate's artifacts must hash to their
registered digest and load and predict in a child process, and a model registers and loads only
under its own target's name."""

from __future__ import annotations

import pytest

from helpers import register_small_lightgbm
from tensorcost import registry
from tensorcost.errors import UserError

TARGET = "testcpu-1c.avx2-t1"


def _register(tmp_path, name, fn=lambda y: y):
    return register_small_lightgbm(tmp_path, TARGET, name, fn)[0]


@pytest.mark.parametrize("version", [" 1", "01", "1.0", "-1", "one", "1\n"])
def test_a_version_argument_is_a_canonical_integer(mlflow_store, tmp_path, version):
    _register(tmp_path, "good")
    with pytest.raises(registry.RegistryError, match="a version is a positive integer"):
        registry.promote(TARGET, version)
    assert registry.get_version(TARGET, registry.CHAMPION) is None


@pytest.mark.parametrize("tag,value,why", [
    ("metric.pca", "0.9abc", "is not a number"),
    ("metric.pca", "inf", "not a finite number in [0, 1]"),
    ("metric.top5", "nan", "not a finite number in [0, 1]"),
    ("metric.top1", "1.5", "not a finite number in [0, 1]"),
    ("feature_schema", "", "lacks the tag(s) feature_schema"),
    ("target", "othercpu-1c.avx2-t1", "is a model of 'othercpu-1c.avx2-t1'"),
])
def test_tags_the_gates_read_are_checked(mlflow_store, tmp_path, tag, value, why):
    v = _register(tmp_path, "good")
    registry.set_tags(TARGET, v, {tag: value})
    res = registry.promote(TARGET, v)
    assert not res.promoted and why in res.reason, res.reason
    assert registry.get_version(TARGET, registry.CHAMPION) is None


def test_a_champion_with_untrustworthy_tags_is_not_compared_against(mlflow_store, tmp_path):
    first = _register(tmp_path, "first")
    assert registry.promote(TARGET, first).promoted
    registry.set_tags(TARGET, first, {"metric.pca": "-inf"})  # would let anything win
    second = _register(tmp_path, "second")
    res = registry.promote(TARGET, second)
    assert not res.promoted and "champion" in res.reason and registry.get_version(TARGET, registry.CHAMPION).version == first


def test_promote_refuses_artifacts_changed_after_registration(mlflow_store, tmp_path):
    v = _register(tmp_path, "good")
    files = [p for p in (tmp_path / "mlruns").rglob("model.txt")]
    assert files, "the artifact store holds the model file"
    with open(files[0], "ab") as f:
        f.write(b"\n")  # one byte: the file no longer hashes to the registered digest
    res = registry.promote(TARGET, v)
    assert not res.promoted and "sha256 mismatch" in res.reason
    assert registry.get_version(TARGET, registry.CHAMPION) is None


def test_promote_refuses_a_model_that_does_not_load_even_with_matching_hashes(mlflow_store, tmp_path):
    """A model registered broken (its hashes are of the broken file): the child process's probe
    refuses it; the CLI lives."""
    from tensorcost.models.lightgbm_model import LightGBMCostModel

    v = _register(tmp_path, "good")
    model, _ = registry.load_version(TARGET, v)
    out = tmp_path / "broken"
    model.save(out)
    text = (out / "model.txt").read_text()
    (out / "model.txt").write_text(text.replace("num_cat=0", "num_cat=1", 1))
    import json

    meta = json.loads((out / "metadata.json").read_text())
    meta.pop("files_sha256", None)  # a tool that rewrote the file and forgot nothing else
    (out / "metadata.json").write_text(json.dumps(meta))
    from tensorcost.models.base import seal_metadata

    seal_metadata(out)
    tags = registry.version_tags(TARGET, v)
    broken = registry.log_and_register(out, TARGET, experiment="test", run_name="broken", params={}, metrics={},
                                       tags={k: t for k, t in tags.items() if not k.startswith("artifact")})
    res = registry.promote(TARGET, broken)
    assert not res.promoted and "loading or scoring it" in res.reason, res.reason
    assert isinstance(model, LightGBMCostModel)


def test_a_model_registers_only_under_its_own_targets_name(mlflow_store, tmp_path):
    v = _register(tmp_path, "good")
    model, _ = registry.load_version(TARGET, v)
    model.save(tmp_path / "m")
    with pytest.raises(UserError, match="cannot be registered as tensorcost-othercpu-1c.avx2-t1"):
        registry.log_and_register(tmp_path / "m", "othercpu-1c.avx2-t1", experiment="test", run_name="x", params={}, metrics={}, tags={})
