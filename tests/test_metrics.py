"""Classification and fairness metrics on hand-made logits, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasets import ClassLabel, Dataset
from transformers import EvalPrediction

from hf_lilaw.metrics import compute_classification_metrics, fairness_metrics, make_fairness_compute_metrics


# Six classes so that top-5 is not trivially 1; the true label ranks 1st, 2nd, 6th and 5th.
LOGITS = np.array(
    [
        [5.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        [3.0, 2.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
    ]
)
LABELS = np.array([0, 1, 0, 4])


def _mann_whitney_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """AUROC as the share of (positive, negative) pairs ranked right, ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    return float(((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean())


def test_multiclass_metrics_exact():
    out = compute_classification_metrics(EvalPrediction(predictions=LOGITS, label_ids=LABELS))
    assert set(out) == {"accuracy", "top5_accuracy", "roc_auc"}
    assert out["accuracy"] == 0.25
    assert out["top5_accuracy"] == 0.75
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
    # classes 0, 1 and 4 are present; absent classes are left out of the macro mean
    expected = np.mean([_mann_whitney_auc(probs[:, c], LABELS == c) for c in (0, 1, 4)])
    assert out["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert out["roc_auc"] == pytest.approx((2 / 4 + 3 / 3 + 1 / 3) / 3)  # pairs ranked right, per class


def test_binary_metrics_exact():
    # positive-class probabilities 0.1, 0.6, 0.4, 0.9 for labels 0, 0, 1, 1: 3 of 4 pairs ranked right
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    logits = np.stack([np.zeros(4), np.log(p1 / (1 - p1))], axis=1)
    out = compute_classification_metrics((logits, np.array([0, 0, 1, 1])))
    assert out == pytest.approx({"accuracy": 0.5, "roc_auc": 0.75})  # no top-5 for two classes


def test_all_classes_present_matches_sklearn_ovr():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 4)), np.arange(50) % 4
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = compute_classification_metrics((logits, labels))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert "top5_accuracy" not in out  # four classes: top-5 would be 1 by construction


def test_ignored_labels_and_tuple_predictions():
    logits = np.vstack([LOGITS, [[0, 0, 0, 0, 0, 9.0]]])
    out = compute_classification_metrics(EvalPrediction(predictions=(logits, None), label_ids=np.append(LABELS, -100)))
    assert (out["accuracy"], out["top5_accuracy"]) == (0.25, 0.75)


@pytest.mark.parametrize(("num_classes", "has_top5"), [(2, False), (5, False), (6, True), (10, True)])
def test_top5_only_above_five_classes(num_classes, has_top5):
    rng = np.random.default_rng(num_classes)
    logits, labels = rng.normal(size=(40, num_classes)), np.arange(40) % num_classes
    out = compute_classification_metrics((logits, labels))
    assert list(out) == (["accuracy", "top5_accuracy", "roc_auc"] if has_top5 else ["accuracy", "roc_auc"])
    if has_top5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        assert out["top5_accuracy"] == np.mean((top5 == labels[:, None]).any(1))


def test_one_class_present_gives_nan_auroc_quietly(caplog):
    out = compute_classification_metrics((LOGITS, np.zeros(4, dtype=int)))
    assert out["accuracy"] == 0.75 and math.isnan(out["roc_auc"])
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_fairness_metrics_hand_example():
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    preds = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    out = fairness_metrics(preds, labels, groups, group_names=["Female", "Male"])
    # group 0: accuracy 3/4, positive rate 3/4, TPR 1, FPR 1/2; group 1: accuracy 1/2, all rates 0
    assert out == {
        "accuracy_Female": 0.75,
        "accuracy_Male": 0.5,
        "accuracy_difference": 0.25,
        "demographic_parity_difference": 0.75,
        "equalized_odds_difference": 1.0,
    }
    multiclass = fairness_metrics([0, 2, 1], [0, 2, 2], ["a", "b", "b"])
    assert multiclass == {"accuracy_a": 1.0, "accuracy_b": 0.5, "accuracy_difference": 0.5}
    with pytest.raises(ValueError, match="one entry per sample"):
        fairness_metrics([0, 1], [0, 1, 1], [0, 0, 1])


def test_fairness_compute_metrics_reads_the_group_column():
    eval_dataset = Dataset.from_dict({"label": [1, 1, 0, 0, 1, 1, 0, 0], "sex": [0, 0, 0, 0, 1, 1, 1, 1]})
    eval_dataset = eval_dataset.cast_column("sex", ClassLabel(names=["Female", "Male"]))
    preds = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    logits = np.eye(2)[preds] * 3.0
    compute = make_fairness_compute_metrics(eval_dataset, group_column="sex")
    out = compute(EvalPrediction(predictions=logits, label_ids=np.asarray(eval_dataset["label"][:])))
    assert out["accuracy"] == 5 / 8
    assert (out["accuracy_Female"], out["accuracy_Male"]) == (0.75, 0.5)
    assert out["equalized_odds_difference"] == 1.0
    assert not math.isnan(out["roc_auc"])
    with pytest.raises(ValueError, match="eval_dataset"):
        compute(EvalPrediction(predictions=logits[:4], label_ids=np.zeros(4, dtype=int)))
    with pytest.raises(ValueError, match="no column"):
        make_fairness_compute_metrics(eval_dataset, group_column="race")


def test_evaluate_metric_equals_compute_classification_metrics():
    from hf_lilaw.metrics import load_classification_metric

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 60)
    labels[::9] = -100
    metric = load_classification_metric()
    for start in range(0, 60, 25):  # batches, as an evaluation loop adds them
        metric.add_batch(predictions=logits[start : start + 25], references=labels[start : start + 25])
    result = metric.compute()
    assert result == compute_classification_metrics((logits, labels))
    assert set(result) == {"accuracy", "top5_accuracy", "roc_auc"} and 0 < result["accuracy"] < 1
