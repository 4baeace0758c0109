"""The cross-feature attention model: shapes, masking, loss, a tiny real training run, artifacts."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tensorcost.features import FLAT_PROGRAM_DIM, TOKEN_DIM, FeatureTable, tokenize_trace, workload_features
from tensorcost.models import FeatureSchemaMismatch, load_model
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.features.program import ANN_KEYS, VOCAB
from tensorcost.features.table import table_from_traces
from tensorcost.models.attention import N_WORKLOAD, AttentionCostModel, ProgramBatch, batch_from_table, lambdarank_loss, ranking_loss


N_HARDWARE = len(HARDWARE_FEATURE_NAMES)
SLOTS = len(VOCAB) + len(ANN_KEYS)  # where a token's numbers start


def _synthetic(n_tasks=6, per_task=24, seed=0, max_len=16):
    """Token sequences whose 3rd slot of the first token drives latency; two hardware contexts."""
    rng = np.random.default_rng(seed)
    n = n_tasks * per_task
    lengths = rng.integers(4, max_len + 1, n)
    tokens = np.zeros((n, max_len, TOKEN_DIM), np.float32)
    for i, k in enumerate(lengths):  # real token rows: one-hot kind, one-hot annotation key, numbers
        tokens[i, np.arange(k), rng.integers(0, len(VOCAB), k)] = 1.0
        tokens[i, np.arange(k), len(VOCAB) + rng.integers(0, len(ANN_KEYS), k)] = 1.0
        tokens[i, :k, SLOTS:] = rng.random((k, TOKEN_DIM - SLOTS))
    workload = rng.random((n, N_WORKLOAD)).astype(np.float32)
    hardware = np.repeat(rng.random((2, N_HARDWARE)), n // 2, axis=0).astype(np.float32)
    groups = np.repeat([f"t{i}" for i in range(n_tasks)], per_task)
    latency = 0.2 + tokens[:, 0, SLOTS + 2]
    labels = np.empty(n, np.float32)
    for g in np.unique(groups):
        m = groups == g
        labels[m] = latency[m].min() / latency[m]
    return ProgramBatch(tokens, lengths.astype(np.int64), workload, hardware), labels, groups, latency


def _table(batch: ProgramBatch, groups, latency) -> FeatureTable:
    """The feature table whose rows are these programs (what the model's contract takes)."""
    import pandas as pd

    from tensorcost.features import per_task_labels

    n = len(batch)
    frame = pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n)], "task_id": list(groups), "program_id": [f"p{i}" for i in range(n)], "slot": ["cpu-test"] * n, "target": ["cpu-test"] * n,
        "task_weight": np.ones(n, np.int32), "networks": ['{"n": 1}'] * n, "latency_s": latency, "label": per_task_labels(groups, latency),
        "flat": list(np.concatenate([batch.program, batch.workload, batch.hardware], axis=1).astype(np.float32)),
        "n_tokens": batch.lengths, "tokens": [batch.tokens[i, :k].reshape(-1) for i, k in enumerate(batch.lengths)],
    })
    return FeatureTable(frame, "cpu-test")


def _model(**kw):
    params = dict(d_model=16, n_heads=2, n_layers=1, max_len=16, epochs=6, lr=5e-3, groups_per_batch=4, programs_per_group=24, dropout=0.0, threads=1)
    params.update(kw)
    return AttentionCostModel.create("cpu-test", "tc-feat-1", **params)


def test_table_and_batch_agree():
    batch, _, groups, latency = _synthetic()
    again = batch_from_table(_table(batch, groups, latency), 16)
    np.testing.assert_array_equal(again.tokens, batch.tokens)
    np.testing.assert_array_equal(again.workload, batch.workload)
    np.testing.assert_array_equal(again.hardware, batch.hardware)


def test_lambdarank_loss_prefers_the_right_order():
    labels = torch.tensor([[1.0, 0.5, 0.2]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    good = lambdarank_loss(torch.tensor([[3.0, 2.0, 1.0]]), labels, valid)
    bad = lambdarank_loss(torch.tensor([[1.0, 2.0, 3.0]]), labels, valid)
    assert float(good) < float(bad)
    # padding entries take no part: adding a padded slot with any score changes nothing
    padded = lambdarank_loss(torch.tensor([[3.0, 2.0, 1.0, 99.0]]), torch.tensor([[1.0, 0.5, 0.2, 1.0]]), torch.tensor([[True, True, True, False]]))
    assert float(padded) == pytest.approx(float(good))


def test_shapes_and_padding_mask():
    batch, labels, groups, latency = _synthetic()
    model = _model(epochs=1)
    model.fit(_table(batch, groups, latency))
    scores = model.predict(_table(batch, groups, latency))
    assert scores.shape == (len(batch),) and np.isfinite(scores).all()
    # Garbage in padded positions must not change a program's score.
    noisy = ProgramBatch(batch.tokens.copy(), batch.lengths, batch.workload, batch.hardware)
    for i, k in enumerate(batch.lengths):
        noisy.tokens[i, k:] = 7.0
    np.testing.assert_allclose(model.predict_batch(noisy), scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss,min_pca", [("ranknet", 0.85), ("hybrid", 0.75), ("lambdarank", 0.6)])
def test_tiny_training_lowers_the_loss_and_ranks_better_than_chance(loss, min_pca):
    from tensorcost.metrics import pairwise_comparison_accuracy

    batch, labels, groups, latency = _synthetic()
    model = _model(epochs=25, loss=loss)
    table = _table(batch, groups, latency)
    losses = model.fit(table)[f"train_{loss}_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert pairwise_comparison_accuracy(groups, model.predict(table), latency) > min_pca


def test_warm_start_fine_tunes_at_the_finetune_rate_for_enough_steps():
    batch, labels, groups, latency = _synthetic()
    model = _model(epochs=2, finetune_epochs=1, finetune_steps=10, finetune_lr=1e-4)
    table = _table(batch, groups, latency)
    model.fit(table)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    curves = model.fit(table.take(np.arange(48)), warm_start=True)  # 2 groups: one step an epoch
    assert len(curves["train_ranknet_loss"]) == 10  # at least finetune_steps steps, however small the data
    after = model.module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # without warm_start the same call trains from scratch (cfg.epochs epochs)
    assert len(model.fit(table.take(np.arange(48)))["train_ranknet_loss"]) == 2


def test_ranking_losses_weigh_pairs_as_documented():
    labels = torch.tensor([[1.0, 0.5, 0.02, 0.01]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    # only the pair of the two slow programs is mis-ordered
    scores = torch.tensor([[4.0, 3.0, 1.0, 2.0]])
    ranknet = float(ranking_loss(scores, labels, valid, "ranknet"))
    lambdarank = float(ranking_loss(scores, labels, valid, "lambdarank"))
    # RankNet counts that pair like any other (PCA does); LambdaRank hardly at all (no NDCG at stake)
    fixed = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert ranknet - float(ranking_loss(fixed, labels, valid, "ranknet")) > 0.1
    assert lambdarank - float(ranking_loss(fixed, labels, valid, "lambdarank")) < 0.05
    assert float(ranking_loss(scores, labels, valid, "hybrid")) > 0
    with pytest.raises(ValueError, match="unknown ranking loss"):
        ranking_loss(scores, labels, valid, "listnet")


def test_steps_per_epoch_counts_chunks_with_pairs():
    model = _model(programs_per_group=4, groups_per_batch=2)
    # groups of 9 (chunks 4, 4, 1: the single is dropped), 5 (4, 1) and 2 (2): 4 chunks, 2 steps
    groups = ["a"] * 9 + ["b"] * 5 + ["c"] * 2
    assert model.steps_per_epoch(groups) == 2


def test_program_features_feed_the_head_and_travel_with_the_model(tmp_path):
    batch, labels, groups, latency = _synthetic()
    rng = np.random.default_rng(1)
    batch.program = rng.random((len(batch), FLAT_PROGRAM_DIM)).astype(np.float32)
    model = _model(epochs=2, program_features=True)
    model.fit(_table(batch, groups, latency))
    scores = model.predict_batch(batch)
    other = batch.take(np.arange(len(batch)))
    other.program = batch.program[::-1].copy()
    assert not np.allclose(model.predict_batch(other), scores)  # the program summary changes the score
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", expected_feature_schema="tc-feat-1")
    np.testing.assert_allclose(loaded.predict(_table(batch, groups, latency)), scores, rtol=1e-6)


def test_deterministic_given_a_seed():
    batch, labels, groups, latency = _synthetic()
    table = _table(batch, groups, latency)
    a, b = _model(epochs=2), _model(epochs=2)
    a.fit(table)
    b.fit(table)
    np.testing.assert_array_equal(a.predict(table), b.predict(table))


def test_artifact_roundtrip_and_schema_check(tmp_path):
    batch, labels, groups, latency = _synthetic()
    table = _table(batch, groups, latency)
    model = _model(epochs=1)
    model.fit(table)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["metadata.json", "weights.pt"]
    loaded = load_model(tmp_path / "m", expected_feature_schema="tc-feat-1")
    np.testing.assert_allclose(loaded.predict(table), model.predict(table), rtol=1e-6)
    with pytest.raises(FeatureSchemaMismatch, match="tc-feat-9"):
        load_model(tmp_path / "m", expected_feature_schema="tc-feat-9")


def test_batch_from_a_real_trace():
    trace = '[[["GetSBlock",[],["C","main"],["b0"]],["GetLoops",["b0"],[],["l1","l2"]]],[]]'
    tokens, decisions = tokenize_trace(trace)
    wl = workload_features("conv2d", [[1, 2], [3, 4]], 100.0, 50.0)
    table = table_from_traces([trace], wl, list(range(N_HARDWARE)))
    b = batch_from_table(table, max_len=8)
    assert b.tokens.shape == (1, 8, TOKEN_DIM) and b.lengths.tolist() == [2]
    np.testing.assert_array_equal(b.tokens[0, :2], tokens)
    np.testing.assert_allclose(b.workload[0], wl, rtol=1e-6)
    np.testing.assert_allclose(b.hardware[0], list(range(N_HARDWARE)))
    assert b.program.shape == (1, FLAT_PROGRAM_DIM)
    with pytest.raises(ValueError, match="flat feature vectors have"):
        batch_from_table(table_from_traces([trace], wl, []), max_len=8)  # no hardware features


def test_a_model_refuses_programs_with_another_hardware_description():
    batch, labels, groups, latency = _synthetic()
    model = _model(epochs=1)
    model.fit(_table(batch, groups, latency))
    narrower = ProgramBatch(batch.tokens, batch.lengths, batch.workload, batch.hardware[:, :-1])
    with pytest.raises(ValueError, match=f"trained on {N_HARDWARE} hardware features"):
        model.predict_batch(narrower)


def test_group_relative_program_features_ignore_a_task_wide_shift():
    # the program summary enters as each program's deviation from its task's mean: shifting one
    # task's summaries by a constant (an operator whose absolute values no training task had)
    # leaves its scores unchanged; the plain model's scores move
    batch, _, groups, latency = _synthetic()
    rng = np.random.default_rng(3)
    batch.program = rng.random((len(batch), batch.program.shape[1])).astype(np.float32)
    table = _table(batch, groups, latency)
    shifted_batch = ProgramBatch(batch.tokens, batch.lengths, batch.workload, batch.hardware, batch.program + np.where(np.asarray(groups) == "t0", 7.0, 0.0)[:, None].astype(np.float32))
    shifted = _table(shifted_batch, groups, latency)
    t0 = np.asarray(groups) == "t0"
    rel = _model(group_relative=True, epochs=2)
    rel.fit(table)
    np.testing.assert_allclose(rel.predict(shifted)[t0], rel.predict(table)[t0], rtol=1e-5, atol=1e-6)
    plain = _model(epochs=2)
    plain.fit(table)
    assert not np.allclose(plain.predict(shifted)[t0], plain.predict(table)[t0], atol=1e-4)
