"""Typed params: the repository's params.yaml parses; every kind of mistake is one line that names
the file, the key, what was wrong (and what is valid)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tensorcost.params import ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[2]
GOOD = yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_repository_params_parse_and_presets_resolve():
    p = load_params(REPO / "params.yaml")
    assert "host" in p.targets and p.host.target == "auto"
    family, params = p.model_spec("lightgbm_reg")
    assert family == "lightgbm" and params["objective"] == "regression" and params["num_leaves"] == 31  # from its base
    assert p.model_spec("attention_concat")[1]["fusion"] == "concat"
    family, params = p.model_spec("ensemble")
    assert family == "ensemble" and [m["name"] for m in params["members"]] == ["lightgbm_reg", "lightgbm_rank", "attention"]
    assert params["members"][0] == {"name": "lightgbm_reg", "family": "lightgbm", "params": p.model_spec("lightgbm_reg")[1], "weight": 1.0}


def _with(path: str, value):
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

BAD = [
    ("host.programs_per_task", -1, "host.programs_per_task: Input should be greater than or equal to 0"),
    ("host.tasks", "12", "host.tasks: Input should be a valid integer"),
    ("measure.number", 0, "measure.number: Input should be greater than or equal to 1"),
    ("models.attention.epochs", -1, "models.attention: epochs: Input should be greater than or equal to 1"),
    ("models.attention.fusion", "bogus", "fusion: Input should be 'film' or 'concat'"),
    ("models.lightgbm_rank.deterministic", "no", "deterministic: Input should be a valid boolean"),
    ("models.lightgbm_rank.num_leafs", 3, "num_leafs: unknown key"),
    ("models.ensemble.members", ["lightgbm_reg", "nope"], "models: unknown preset 'nope'"),
    ("models.ensemble.members", ["lightgbm_reg", "ensemble"], "models.ensemble: members: 'ensemble' is itself an ensemble"),
    ("models.ensemble.members", "lightgbm_reg", "members: a list of model presets"),
    ("models.ensemble.members", ["lightgbm_reg", {"preset": "attention", "weight": "x"}], "each is a preset name or {preset: <name>, weight: <number>}"),
    ("models.ensemble.members", ["lightgbm_reg", "tvm_xgb"], "member family 'tvm_xgb' reads"),
    ("models.attention.n_heads", 3, "d_model 32 must be a multiple of n_heads 3"),
    ("split.strategy", "by_hardware", "split.strategy: Input should be 'within_task', 'by_task', 'by_network' or 'by_family'"),
    ("split.test_families", ["cnn"], "unknown architecture families ['cnn']"),
    ("split.test_fraction", 1.5, "split.test_fraction: Input should be less than 1"),
    ("targets", {}, "targets: needs at least one target"),
    ("targets", ["host"], "targets: Input should be a valid dictionary"),
    ("targets", {"host": "data/raw/host", "cpu-avx2-t1": "x.parquet"}, "'cpu-avx2-t1' is not a target id"),
    ("targets", {"host": "data/raw/elsewhere"}, "the host slot's records are data/raw/host"),
    ("targets", {"host": "data/raw/host", "zen5-2c.avx2-t1": "../../etc/passwd"}, "must be a path inside the repository"),
    ("train.models", ["lightgbm_reg", "xgb"], "train.models names ['xgb'], which `models` does not define"),
    ("train.targets", ["zen9-2c.avx2-t1"], "train.targets ['zen9-2c.avx2-t1'] are not in `targets`"),
    ("transfer.pooled", ["lightgbm_reg", "gbm"], "transfer.pooled names ['gbm'], which `models` does not define"),
    ("transfer.confidence", 1.0, "transfer.confidence: Input should be less than 1"),
    ("train.models", [], "train.models: List should have at least 1 item"),
    ("train.candidate_metrics", [], "train.candidate_metrics: List should have at least 1 item"),
    ("train.pool_platforms", "yes", "train.pool_platforms: Input should be a valid boolean"),
    ("split.test_families", [], "split.test_families: List should have at least 1 item"),
    ("registry.experiment", "", "the experiment is empty"),
    ("tune.max_trials_global", 0, "tune.max_trials_global: Input should be greater than or equal to 1"),
    ("evaluate.splits", ["nope"], "evaluate.splits.0: Input should be"),
    ("surprise", {"a": 1}, "surprise: unknown key"),
    ("tune.colour", "red", "tune.colour: unknown key"),
    ("targets", _DELETE, "targets: Field required"),
    # a YAML typo is an error, not a coercion (the audit found '3' for 3 and true for 1 accepted)
    ("measure.repeat", "3", "measure.repeat: Input should be a valid integer"),
    ("measure.number", True, "measure.number: Input should be a valid integer"),
    ("tune.max_tasks", "3", "tune.max_tasks: Input should be a valid integer"),
    ("models.attention.epochs", "8", "epochs: Input should be a valid integer"),
    ("models.lightgbm_rank.num_boost_round", True, "num_boost_round: Input should be a valid integer"),
    ("prune.slot", "zen9-2c.avx2-t1", "prune.slot 'zen9-2c.avx2-t1' is not in `targets`"),
    ("prune.strategies", ["topk"], "prune.strategies.0: Input should be 'random', 'random_tasks', 'attention_loss', 'kcenter' or 'uncertainty'"),
    ("prune.percents", [0], "prune.percents.0: Input should be greater than or equal to 1"),
    ("prune.scout", "lightgbm_rank", "prune.scout 'lightgbm_rank' is a lightgbm preset; it must be of a family with program embeddings"),
    ("prune.models", ["xgb"], "prune.models names ['xgb'], which `models` does not define"),
    ("prune.alias_prefix", "Pruned!", "is not a valid alias"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[b[0] + "=" + repr(b[1])[:20] for b in BAD])
def test_a_bad_value_is_one_line_naming_file_and_key(path, value, message):
    with pytest.raises(ParamsError) as exc:
        parse_params(_with(path, value), Path("params.yaml"))
    text = str(exc.value)
    assert text.startswith("params.yaml: ") and "\n" not in text
    assert message in text, text


def test_unreadable_files_are_one_line(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("targets: [host\nhost: {")
    with pytest.raises(ParamsError, match=r"params.yaml:\d+: not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_bytes(b"targets:\n  host: data/raw/\x00host\n")  # a reader error spans lines
    with pytest.raises(ParamsError, match="not valid YAML") as exc:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(exc.value)
    (tmp_path / "p2.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(tmp_path / "p2.yaml")


@pytest.mark.parametrize("text,expect", [
    ("targets:\n  host: data/raw/host\ntargets:\n  host: data/raw/host\n", "key 'targets' is given twice"),
    ("a: &x [1, 2]\nb: *x\n", "YAML alias *x is not allowed"),
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "is not allowed"),
])
def test_yaml_that_would_mislead_or_explode_is_one_line(tmp_path, text, expect):
    from tensorcost.params import ParamsError, load_params

    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "params.yaml")
    msg = str(err.value)
    assert expect in msg and len(msg.splitlines()) == 1 and len(msg) < 400, msg


def test_a_params_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    from tensorcost.params import MAX_PARAMS_BYTES, ParamsError, load_params

    (tmp_path / "params.yaml").write_text("# padding\n" * (MAX_PARAMS_BYTES // 10 + 10))
    with pytest.raises(ParamsError, match="a params file is at most"):
        load_params(tmp_path / "params.yaml")
