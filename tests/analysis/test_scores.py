import math

import numpy as np
import pytest
import torch

from hf_lilaw.analysis.dynamics import TrainingDynamics
from hf_lilaw.analysis.scores import (
    HARDNESS_SCORES,
    aum,
    data_iq,
    data_maps,
    el2n,
    forgetting,
    lilaw_w,
    lilaw_w_alpha,
    lilaw_w_beta,
    lilaw_w_delta,
    loss,
)
from hf_lilaw.functional.statistics import per_sample_statistics

nan = math.nan


def toy() -> TrainingDynamics:
    """3 epochs × 4 samples. 0: clean, easy; 1: clean, forgotten once; 2: mislabelled; 3: unseen in epoch 1.

    Values are dyadic, so float32 storage is exact and the hand computations below are too.
    """
    return TrainingDynamics(
        prob_label=[[0.75, 0.25, 0.25, 0.5], [1.0, 0.5, 0.125, nan], [1.0, 0.75, 0.125, 0.75]],
        prob_max=[[0.75, 0.75, 0.75, 0.5], [1.0, 0.5, 0.875, nan], [1.0, 0.75, 0.875, 0.75]],
        margin=[[0.5, -0.5, -1.0, 0.0], [1.5, 0.5, -2.0, nan], [2.5, 1.0, -3.0, 1.0]],
        el2n=[[0.5, 1.0, 1.0, 0.5], [0.25, 0.5, 1.25, nan], [0.125, 0.25, 1.25, 0.25]],
        loss=[[0.5, 1.0, 2.0, 1.0], [0.25, 0.5, 3.0, nan], [0.0, 0.5, 4.0, 0.5]],
        correct=[[1, 1, 0, 1], [1, 0, 0, nan], [1, 1, 0, 0]],
        w_alpha=[[0.75, 0.5, 0.25, 0.75], [1.0, 0.75, 0.25, nan], [1.0, 1.0, 0.25, 1.0]],
        w_beta=[[0.25, 0.5, 0.75, 0.25], [0.125, 0.25, 0.75, nan], [0.125, 0.125, 0.75, 0.25]],
        w_delta=[[0.0, 0.25, 0.5, 0.0], [0.0, 0.0, 0.5, nan], [0.0, 0.0, 0.5, 0.0]],
    )


# ---- per_sample_statistics ----------------------------------------------------------------------


def test_statistics_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    stats = per_sample_statistics(logits, torch.tensor([0, 1]))
    s = torch.softmax(logits.double(), dim=1).numpy()
    assert stats["prob_label"].numpy() == pytest.approx([s[0, 0], s[1, 1]], rel=1e-6)
    assert stats["prob_max"].numpy() == pytest.approx([s[0, 0], s[1, 2]], rel=1e-6)
    assert stats["margin"].numpy() == pytest.approx([2.0, -2.0])
    assert stats["el2n"].numpy() == pytest.approx(
        [np.linalg.norm(s[0] - [1, 0, 0]), np.linalg.norm(s[1] - [0, 1, 0])], rel=1e-6
    )
    assert stats["loss"].numpy() == pytest.approx(-np.log([s[0, 0], s[1, 1]]), rel=1e-6)
    assert stats["correct"].tolist() == [1.0, 0.0]
    assert all(v.dtype == torch.float32 and v.shape == (2,) for v in stats.values())
    assert "w_alpha" not in stats


def test_statistics_weights_match_paper_table():
    # Table 5 of the LiLAW paper (docs/lilaw.md), α, β, δ = 9, 3, 7, label 0.
    probs = torch.tensor([[0.95, 0.05], [0.60, 0.40], [0.40, 0.60], [0.05, 0.95]])
    stats = per_sample_statistics(probs.log(), torch.zeros(4, dtype=torch.long), alpha=9.0, beta=3.0, delta=7.0)
    assert stats["w_alpha"].numpy() == pytest.approx([0.999, 0.992, 0.953, 0.378], abs=1e-3)
    assert stats["w_delta"].numpy() == pytest.approx([0.000, 0.002, 0.089, 0.835], abs=1e-3)
    assert stats["w_beta"].numpy() == pytest.approx([0.130, 0.231, 0.354, 0.690], abs=1e-3)


def test_statistics_float32_math_ignore_index_and_stability():
    logits = torch.tensor([[1000.0, 0.0], [0.0, 1.0], [5.0, -5.0]], dtype=torch.bfloat16, requires_grad=True)
    stats = per_sample_statistics(logits, torch.tensor([1, -100, 0]))
    assert all(v.dtype == torch.float32 and not v.requires_grad for v in stats.values())
    assert stats["loss"][0].item() == pytest.approx(1000.0)  # no overflow to inf
    assert stats["prob_label"][0].item() == 0.0
    assert all(math.isnan(v[1].item()) for v in stats.values())  # -100: not a training sample


def test_statistics_errors():
    with pytest.raises(ValueError, match="all of alpha, beta, delta"):
        per_sample_statistics(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), alpha=1.0)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        per_sample_statistics(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="num_classes"):
        per_sample_statistics(torch.zeros(3), torch.zeros(3, dtype=torch.long))


# ---- TrainingDynamics ---------------------------------------------------------------------------


def test_record_grows_rows_and_keeps_nan_for_unseen():
    dyn = TrainingDynamics.empty(5, weights=True)
    assert (dyn.num_epochs, dyn.num_samples) == (0, 5)
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    stats = per_sample_statistics(logits, torch.tensor([0, 0]), alpha=10.0, beta=2.0, delta=6.0)
    dyn.record(torch.tensor([3, 1]), stats, epoch=1)  # rows 0 and 1 appear at once
    assert dyn.num_epochs == 2
    assert np.isnan(dyn.prob_label[0]).all()
    assert dyn.correct[1].tolist()[1] == 0.0 and dyn.correct[1].tolist()[3] == 1.0
    assert np.isnan(dyn.w_alpha[1, [0, 2, 4]]).all()
    assert not hasattr(dyn, "grad_norm")  # GraNd needs per-sample gradients, which no recorder pays for


def test_record_errors():
    dyn = TrainingDynamics.empty(3, weights=False)
    stats = per_sample_statistics(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), alpha=1.0, beta=1.0, delta=1.0)
    with pytest.raises(ValueError, match="weights=True"):
        dyn.record([0, 1], stats, epoch=0)
    with pytest.raises(IndexError, match="dataset indices"):
        dyn.record([0, 3], {"loss": [1.0, 1.0]}, epoch=0)
    with pytest.raises(ValueError, match="Unknown statistic 'logits'"):
        dyn.record([0], {"logits": [1.0]}, epoch=0)
    with pytest.raises(ValueError, match="≥ 0"):
        dyn.record([0], {"loss": [1.0]}, epoch=-1)
    assert dyn.num_epochs == 0  # nothing half-written
    with pytest.raises(ValueError, match="shape"):
        fields = ("prob_label", "prob_max", "margin", "el2n", "loss")
        TrainingDynamics(**{f: np.zeros((2, 3)) for f in fields}, correct=np.zeros((2, 4)))


def test_from_logits_matches_per_sample_statistics_and_save_load(tmp_path):
    logits = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, -100])
    dyn = TrainingDynamics.from_logits(logits, labels, alpha=[10.0, 9.0], beta=2.0, delta=6.0)
    row1 = per_sample_statistics(logits[1], labels, alpha=9.0, beta=2.0, delta=6.0)
    np.testing.assert_allclose(dyn.w_alpha[1], row1["w_alpha"].numpy())
    np.testing.assert_allclose(dyn.margin[1], row1["margin"].numpy())
    assert np.isnan(dyn.loss[:, 3]).all()
    dyn.save(tmp_path / "dyn.npz")
    back = TrainingDynamics.load(tmp_path / "dyn.npz")
    np.testing.assert_array_equal(back.el2n, dyn.el2n)
    assert back.w_alpha is not None and back.num_epochs == dyn.num_epochs


# ---- scores by hand -----------------------------------------------------------------------------


def test_aum():
    assert aum(toy()) == pytest.approx([-1.5, -1 / 3, 2.0, -0.5])
    assert aum(toy(), up_to_epoch=0) == pytest.approx([-0.5, 0.5, 1.0, 0.0])
    assert aum(toy(), up_to_epoch=-2) == pytest.approx([-1.0, 0.0, 1.5, 0.0])


def test_el2n_snapshot_mean_and_squared():
    d = toy()
    assert el2n(d) == pytest.approx([0.125, 0.25, 1.25, 0.25])  # last epoch
    assert el2n(d, epoch=1) == pytest.approx([0.25, 0.5, 1.25, 0.5])  # sample 3 as of epoch 1: its epoch-0 value
    assert el2n(d, up_to_epoch=1) == pytest.approx([0.375, 0.75, 1.125, 0.5])
    assert el2n(d, epoch=0, squared=True) == pytest.approx([0.25, 1.0, 1.0, 0.25])
    with pytest.raises(ValueError, match="not both"):
        el2n(d, epoch=0, up_to_epoch=1)
    with pytest.raises(IndexError, match=r"use 0\.\.2 or -3\.\.-1"):
        el2n(d, epoch=3)


def test_forgetting_counts_never_learned_as_max():
    # 0: 1,1,1 → 0; 1: 1,0,1 → 1; 2: never correct → 3 (the epoch count); 3: 1,-,0 → 1 (unseen epoch skipped).
    assert forgetting(toy()).tolist() == [0.0, 1.0, 3.0, 1.0]
    assert forgetting(toy(), up_to_epoch=1).tolist() == [0.0, 1.0, 2.0, 0.0]


def test_data_maps():
    dm = data_maps(toy())
    assert dm.confidence == pytest.approx([11 / 12, 0.5, 1 / 6, 0.625])
    assert dm.variability == pytest.approx([math.sqrt(1 / 72), math.sqrt(1 / 24), math.sqrt(1 / 288), 0.125])
    assert dm.hardness == pytest.approx(-dm.confidence)


def test_data_iq():
    iq = data_iq(toy())
    assert iq.confidence == pytest.approx([11 / 12, 0.5, 1 / 6, 0.625])
    # mean p(1 − p): (3/16 + 0 + 0)/3, (3/16 + 1/4 + 3/16)/3, (3/16 + 7/64 + 7/64)/3, (1/4 + 3/16)/2
    assert iq.aleatoric == pytest.approx([1 / 16, 5 / 24, 13 / 96, 7 / 32])
    assert iq.group.tolist() == ["easy", "ambiguous", "hard", "ambiguous"]
    assert iq.hardness == pytest.approx([-11 / 12, -0.5, 1 - 1 / 6, -0.625])
    assert data_iq(toy(), confidence_threshold=0.1).group.tolist()[2] == "ambiguous"


def test_loss_and_lilaw_weights():
    d = toy()
    assert loss(d) == pytest.approx([0.25, 2 / 3, 3.0, 0.75])
    assert lilaw_w_alpha(d) == pytest.approx([-1.0, -1.0, -0.25, -1.0])
    assert lilaw_w_alpha(d, epoch=0) == pytest.approx([-0.75, -0.5, -0.25, -0.75])
    assert lilaw_w_alpha(d, up_to_epoch=1) == pytest.approx([-0.875, -0.625, -0.25, -0.75])
    assert lilaw_w_beta(d) == pytest.approx([0.125, 0.125, 0.75, 0.25])
    assert lilaw_w_delta(d, epoch=0) == pytest.approx([0.0, 0.25, 0.5, 0.0])
    assert lilaw_w(d) == pytest.approx([1.125, 1.125, 1.5, 1.25])


def test_unseen_samples_score_nan_without_warnings():
    d = toy()
    d.record([0, 1, 2], {"margin": [1.0, 1.0, 1.0], "correct": [1.0, 1.0, 1.0]}, epoch=3)
    with np.testing.assert_no_warnings():
        assert np.isnan(aum(d, up_to_epoch=3)).sum() == 0
        d2 = TrainingDynamics.empty(2, weights=False)
        d2.record([0], {"margin": [1.0], "correct": [0.0], "prob_label": [0.5]}, epoch=0)
        assert np.isnan(aum(d2)[1]) and np.isnan(forgetting(d2)[1]) and data_iq(d2).group[1] == "unseen"


def test_missing_fields_name_the_fix():
    d = TrainingDynamics.empty(2, weights=False)
    d.record([0, 1], {"loss": [1.0, 2.0]}, epoch=0)
    with pytest.raises(ValueError, match="weights=True"):
        lilaw_w_alpha(d)
    with pytest.raises(ValueError, match="record at least one epoch"):
        aum(TrainingDynamics.empty(2))


# ---- registry and orientation -------------------------------------------------------------------


def test_registry_epoch_means_as_of_that_epoch():
    d = toy()
    assert HARDNESS_SCORES["aum"](d, epoch=0) == pytest.approx(aum(d, up_to_epoch=0))
    assert HARDNESS_SCORES["w_alpha"](d, epoch=0) == pytest.approx(lilaw_w_alpha(d, epoch=0))
    assert HARDNESS_SCORES["data_iq"](d) == pytest.approx(data_iq(d).hardness)
    assert HARDNESS_SCORES["data_maps"](d) == pytest.approx(data_maps(d).hardness)


@pytest.mark.parametrize("name", sorted(HARDNESS_SCORES))
def test_mislabelled_sample_ranks_first(name):
    assert int(np.nanargmax(HARDNESS_SCORES[name](toy()))) == 2


@pytest.mark.parametrize("name", sorted(HARDNESS_SCORES))
def test_orientation_on_simulated_logits(name):
    # 6 samples, 3 classes, 4 epochs: clean samples' given-label logit grows; sample 5 is
    # mislabelled (given 0, the model learns its true class 2), sample 4 flips between wrong and right.
    e = torch.arange(1, 5, dtype=torch.float32)[:, None]
    logits = torch.zeros(4, 6, 3)
    for i, y in enumerate([0, 1, 2, 0, 1]):
        logits[:, i, y] = e[:, 0] * (1.0 + 0.1 * i)
    logits[:, 4, 1] = torch.tensor([-1.0, 2.0, -1.0, 2.0])
    logits[:, 5, 2] = e[:, 0]
    dyn = TrainingDynamics.from_logits(logits, torch.tensor([0, 1, 2, 0, 1, 0]), alpha=10.0, beta=2.0, delta=6.0)
    assert int(np.argmax(HARDNESS_SCORES[name](dyn))) == 5
