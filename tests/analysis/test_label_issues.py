import math

import numpy as np
import pytest

from hf_lilaw.analysis.dynamics import TrainingDynamics
from hf_lilaw.analysis.scores import aum
from hf_lilaw.analysis.label_issues import find_label_issues, label_issue_metrics, otsu_threshold

SCORES = np.array([0.1, 0.9, 0.2, 0.8, 0.15])  # two clear groups: {1, 3} high, {0, 2, 4} low


def dynamics() -> TrainingDynamics:
    """2 epochs × 4 samples; sample 2 is mislabelled (low W_α, negative margin), sample 3 never seen."""
    nan = math.nan
    rows = [[0.9, 0.8, 0.3, nan], [0.95, 0.85, 0.2, nan]]
    return TrainingDynamics(
        prob_label=rows, prob_max=rows, el2n=rows, loss=rows, correct=rows,
        margin=[[2.0, 1.0, -1.0, nan], [3.0, 2.0, 1.0, nan]],
        w_alpha=[[0.9, 0.9, 0.8, nan], [1.0, 1.0, 0.3, nan]],
        w_beta=rows, w_delta=rows,
    )


def test_mask_and_ranked_indices_agree():
    mask = find_label_issues(scores=SCORES)
    ranked = find_label_issues(scores=SCORES, return_indices_ranked_by="score")
    assert mask.dtype == bool and mask.tolist() == [False, True, False, True, False]
    assert ranked.tolist() == [1, 3]  # most likely wrong first
    assert sorted(ranked.tolist()) == np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"threshold": 0.5}, [1, 3]),
        ({"threshold": 0.12}, [1, 3, 2, 4]),
        ({"threshold": 0.9}, []),  # strictly above
        ({"num_issues": 1}, [1]),
        ({"num_issues": 0}, []),
        ({"num_issues": 10}, [1, 3, 2, 4, 0]),
        ({"frac_issues": 0.4}, [1, 3]),
        ({"frac_issues": 1.0}, [1, 3, 2, 4, 0]),
    ],
)
def test_selection_rules(options, expected):
    assert find_label_issues(scores=SCORES, return_indices_ranked_by="score", **options).tolist() == expected


def test_nan_scores_never_flagged_and_ties_keep_dataset_order():
    scores = np.array([np.nan, 1.0, 0.0, 1.0, np.nan])
    assert find_label_issues(scores=scores, return_indices_ranked_by="score", num_issues=5).tolist() == [1, 3, 2]
    # 0.4 of the 3 scored samples → 1
    assert find_label_issues(scores=scores, frac_issues=0.4).tolist() == [False, True, False, False, False]
    assert find_label_issues(scores=scores).tolist() == [False, True, False, True, False]


def test_otsu_threshold():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.0, 0.1, 300), rng.normal(1.0, 0.1, 200)])
    cut = otsu_threshold(scores)
    assert 0.3 < cut < 0.7
    assert find_label_issues(scores=scores).sum() == (scores > cut).sum() == 200
    assert otsu_threshold(np.full(4, 0.5)) == math.inf  # nothing to split: nothing flagged
    assert not find_label_issues(scores=np.full(4, 0.5)).any()
    assert otsu_threshold(np.array([1.0, np.nan, 0.0])) == 0.0


def test_from_dynamics_default_score_is_w_alpha():
    d = dynamics()
    assert find_label_issues(dynamics=d).tolist() == [False, False, True, False]
    # As of epoch 0, W_α hardly separates sample 2, but a one-of-three split still picks it.
    assert find_label_issues(dynamics=d, epoch=0, return_indices_ranked_by="score").tolist() == [2]
    assert find_label_issues(dynamics=d, score="aum", num_issues=1).tolist() == [False, False, True, False]
    np.testing.assert_array_equal(
        find_label_issues(dynamics=d, score="aum", epoch=0, threshold=0.0),
        find_label_issues(scores=aum(d, up_to_epoch=0), threshold=0.0),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of dynamics= .* or scores="),
        ({"scores": SCORES, "dynamics": "d"}, "exactly one of dynamics="),
        ({"dynamics": "d", "score": "cleanlab"}, r"Unknown score 'cleanlab'; use one of \[.*'w_alpha'"),
        ({"scores": SCORES, "return_indices_ranked_by": "self_confidence"}, "None for a boolean mask or 'score'"),
        ({"scores": SCORES, "threshold": 0.5, "num_issues": 2}, "at most one of .* got threshold, num_issues"),
        ({"scores": SCORES, "num_issues": -1}, "whole number"),
        ({"scores": SCORES, "num_issues": 0.3}, "use frac_issues="),
        ({"scores": SCORES, "frac_issues": 30}, "use num_issues="),
        ({"scores": SCORES, "threshold": math.nan}, "threshold is NaN"),
        ({"scores": SCORES, "epoch": 2}, "compute your scores= at the epoch"),
        ({"scores": SCORES[None]}, r"shape \(num_samples,\)"),
        ({"scores": np.full(3, np.nan)}, "Every score is NaN"),
    ],
)
def test_errors_say_what_to_pass(kwargs, message):
    if kwargs.get("dynamics") == "d":
        kwargs["dynamics"] = dynamics()
    with pytest.raises(ValueError, match=message):
        find_label_issues(**kwargs)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        find_label_issues(SCORES)  # type: ignore[misc]


def test_metrics_perfect_reversed_and_random():
    is_noisy = np.array([False] * 80 + [True] * 20)
    perfect = is_noisy.astype(float) + np.linspace(0, 0.5, 100)
    assert label_issue_metrics(perfect, is_noisy) == pytest.approx({"auroc": 1.0, "auprc": 1.0})
    assert label_issue_metrics(-perfect, is_noisy)["auroc"] == 0.0
    rng = np.random.default_rng(0)
    flags = rng.random(20_000) < 0.3
    random = label_issue_metrics(rng.random(20_000), flags)
    assert random["auroc"] == pytest.approx(0.5, abs=0.02)
    assert random["auprc"] == pytest.approx(flags.mean(), abs=0.02)  # chance level is the noise rate
    assert set(label_issue_metrics(perfect, is_noisy.astype(int))) == {"auroc", "auprc"}


def test_metrics_errors():
    flags = np.array([True, False, False])
    with pytest.raises(ValueError, match="swap the arguments"):
        label_issue_metrics(flags, np.array([0.9, 0.1, 0.2]))
    with pytest.raises(ValueError, match=r"~np.isnan\(scores\)"):
        label_issue_metrics(np.array([1.0, np.nan, 0.0]), flags)
    with pytest.raises(ValueError, match="single class"):
        label_issue_metrics(np.array([1.0, 0.0, 0.5]), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="equal length"):
        label_issue_metrics(np.array([1.0, 0.0]), flags)
