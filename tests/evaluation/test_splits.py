"""Train/test split strategies: determinism, fractions, task disjointness, errors, alignment."""

from __future__ import annotations

import numpy as np
import pytest

from tensorcost.splits import ALL_STRATEGIES, STRATEGIES, SplitError, assign_test, hardware_split, network_family

HASHED = ("within_task", "by_task")  # strategies driven by the seed and fraction


def _rows(n_tasks: int = 20, per_task: int = 100):
    tasks = [f"task{t:02d}" for t in range(n_tasks) for _ in range(per_task)]
    progs = [f"prog{p:03d}" for _ in range(n_tasks) for p in range(per_task)]
    return tasks, progs


@pytest.mark.parametrize("strategy", HASHED)
def test_same_seed_same_assignment(strategy):
    tasks, progs = _rows()
    a = assign_test(strategy, tasks, progs, 0.2, seed=7)
    b = assign_test(strategy, tasks, progs, 0.2, seed=7)
    assert a.dtype == bool and a.shape == (len(tasks),)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("strategy", HASHED)
def test_different_seed_different_assignment(strategy):
    tasks, progs = _rows()
    a = assign_test(strategy, tasks, progs, 0.2, seed=1)
    b = assign_test(strategy, tasks, progs, 0.2, seed=2)
    assert (a != b).any()


def test_within_task_fraction_is_roughly_right():
    # 2000 rows, p = 0.2: expected 400 test rows, binomial sd = sqrt(2000*0.2*0.8) ~= 17.9;
    # +-0.05 (100 rows) is > 5 sd, and the hash is deterministic so this cannot flake.
    tasks, progs = _rows(20, 100)
    mask = assign_test("within_task", tasks, progs, 0.2, seed=0)
    assert len(mask) == 2000
    assert abs(mask.mean() - 0.2) < 0.05
    # every task keeps programs on both sides (100 programs, p=0.2: P(all one side) is ~1e-10)
    t = np.asarray(tasks)
    for task in set(tasks):
        m = mask[t == task]
        assert m.any() and not m.all()


def test_by_task_puts_no_task_on_both_sides():
    tasks, progs = _rows(20, 10)
    mask = assign_test("by_task", tasks, progs, 0.25, seed=3)
    t = np.asarray(tasks)
    test_tasks = set(t[mask])
    train_tasks = set(t[~mask])
    assert test_tasks and train_tasks
    assert not test_tasks & train_tasks
    # round(20 * 0.25) = 5 tasks held out
    assert len(test_tasks) == 5


def test_by_task_keeps_a_training_task():
    tasks = ["a", "a", "b", "b"]
    mask = assign_test("by_task", tasks, ["p0", "p1", "p0", "p1"], 0.75, seed=0)
    assert not mask.all()


def test_unknown_strategy_raises():
    with pytest.raises(SplitError, match="unknown split strategy") as exc:
        assign_test("random", ["a"], ["p"], 0.2, seed=0)
    # the message lists the valid strategies
    for s in HASHED:
        assert s in str(exc.value)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_fraction_raises(fraction):
    with pytest.raises(SplitError, match="test_fraction"):
        assign_test("within_task", ["a"], ["p"], fraction, seed=0)


def test_split_error_is_a_value_error():
    assert issubclass(SplitError, ValueError)


@pytest.mark.parametrize("strategy", HASHED)
def test_same_keys_same_side_regardless_of_row_order(strategy):
    # Records of two targets hold the same (task, program) keys in different orders and with
    # one target missing some rows: every key must fall on the same side in both.
    tasks, progs = _rows(10, 30)
    keys = list(zip(tasks, progs))
    mask1 = assign_test(strategy, tasks, progs, 0.3, seed=11)
    side1 = dict(zip(keys, mask1))

    rng = np.random.default_rng(0)
    perm = rng.permutation(len(keys))[: len(keys) - 17]  # shuffled and a subset
    keys2 = [keys[i] for i in perm]
    mask2 = assign_test(strategy, [k[0] for k in keys2], [k[1] for k in keys2], 0.3, seed=11)
    for key, m in zip(keys2, mask2):
        assert side1[key] == m


def test_strategies_listed():
    assert set(STRATEGIES) == {"within_task", "by_task", "by_network", "by_family", "by_hardware"}


def test_by_network_holds_out_every_task_of_held_out_networks():
    import json

    nets = [
        json.dumps({"resnet50-b1-112": 1}),                       # held out
        json.dumps({"resnet18-b1-112": 2, "resnet50-b1-112": 1}),  # shared with a held-out network -> test
        json.dumps({"resnet18-b1-112": 1}),                       # train
        json.dumps({"bert_base-b1-64": 12}),                      # held out (another family)
        json.dumps({"bert_tiny-b1-64": 2}),                       # train: bert_tiny is not bert_base
    ]
    mask = assign_test("by_network", ["t0", "t1", "t2", "t3", "t4"], ["p"] * 5, networks=nets, test_networks=("resnet50", "bert_base"))
    assert mask.tolist() == [True, True, False, True, False]
    assert network_family("resnext50_32x4d-b1-112") == "resnext50_32x4d"
    with pytest.raises(SplitError, match="networks"):
        assign_test("by_network", ["t0"], ["p"])


def test_by_family_holds_out_every_network_of_a_family_at_once():
    import json

    from tensorcost.zoo import ARCHITECTURE_FAMILIES, architecture_family

    nets = [
        json.dumps({"bert_tiny-b1-64": 2}),                       # transformer: held out with bert_base and vit
        json.dumps({"vit_tiny-b1-224": 1}),                       # transformer
        json.dumps({"resnet50-b1-112": 1}),                       # resnet: train (by_network would hold it out)
        json.dumps({"lstm_lm-b1-16": 16, "gru_lm-b1-16": 16}),    # rnn: held out
        json.dumps({"unet-b1-64": 1, "resnet18-b1-112": 1}),      # shared with a held-out family -> test
        json.dumps({"my_own_net-b1-1": 1}),                       # outside the zoo: its own family, train
    ]
    mask = assign_test("by_family", [f"t{i}" for i in range(6)], ["p"] * 6, networks=nets, test_families=("transformer", "rnn", "unet"))
    assert mask.tolist() == [True, True, False, True, True, False]
    assert architecture_family("resnext50_32x4d-b1-112") == "resnet" and architecture_family("my_own_net-b1-1") == "my_own_net"
    every = [n for nets in ARCHITECTURE_FAMILIES.values() for n in nets]
    assert len(every) == len(set(every))  # a network belongs to one family


def test_by_hardware_holds_out_one_target():
    mask = assign_test("by_hardware", ["t", "t", "u"], ["p", "q", "p"], targets=["A", "B", "A"], test_target="A")
    assert mask.tolist() == [True, False, True]
    with pytest.raises(SplitError, match="held-out target"):
        assign_test("by_hardware", ["t"], ["p"], targets=["A"])


def test_the_evaluation_set_id_names_the_split_and_the_data():
    from tensorcost.splits import evaluation_set_id

    a = evaluation_set_id("h1", "within_task", 0.2, 0)
    assert a == evaluation_set_id("h1", "within_task", 0.2, 0)  # a pruned variant's card names its unpruned test side alike
    assert len({a, evaluation_set_id("h2", "within_task", 0.2, 0), evaluation_set_id("h1", "by_task", 0.2, 0), evaluation_set_id("h1", "within_task", 0.3, 0),
                evaluation_set_id("h1", "within_task", 0.2, 1)}) == 5


def test_by_hardware_composed_with_a_split_tests_that_split_of_the_held_out_target_only():
    tasks = [f"t{i % 7}" for i in range(400)]
    programs = [f"p{i}" for i in range(400)]
    targets = ["A" if i % 2 else "B" for i in range(400)]
    inner = assign_test("within_task", tasks, programs, 0.3, seed=3)
    mask = assign_test("by_hardware+within_task", tasks, programs, 0.3, seed=3, targets=targets, test_target="A")
    held = np.array(targets) == "A"
    assert mask.tolist() == (held & inner).tolist()
    assert 0 < mask.sum() < held.sum()  # a part of A, nothing of B
    by_task = assign_test("by_hardware+by_task", tasks, programs, 0.3, seed=3, targets=targets, test_target="A")
    assert by_task.tolist() == (held & assign_test("by_task", tasks, programs, 0.3, seed=3)).tolist()
    with pytest.raises(SplitError, match="held-out target"):
        assign_test("by_hardware+within_task", tasks, programs, 0.3, seed=3, targets=targets)


def test_split_names_parse_and_a_typo_names_the_valid_ones():
    assert hardware_split("within_task") == (False, "within_task")
    assert hardware_split("by_hardware") == (True, None)
    assert hardware_split("by_hardware+by_family") == (True, "by_family")
    for bad in ("by_hardware+by_hardware", "by_hardware+", "by_famly", "by_hardware+by_famly"):
        with pytest.raises(SplitError, match="by_hardware\\+within_task"):
            hardware_split(bad)
    with pytest.raises(SplitError, match="unknown split strategy 'by_hardware\\+nope'"):
        assign_test("by_hardware+nope", ["t"], ["p"], targets=["A"], test_target="A")


def test_evaluate_params_accept_every_split_and_no_other():
    import typing

    from tensorcost.params import EvaluateParams

    literal = typing.get_args(EvaluateParams.model_fields["splits"].annotation)[0]
    assert set(typing.get_args(literal)) == set(ALL_STRATEGIES)
