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


def test_nested_lists_and_a_column_of_labels():
    # a (logits as nested lists, labels) pair lost all but the first row; labels of shape (N, 1) raised IndexError
    expected = compute_classification_metrics((LOGITS, LABELS))
    assert compute_classification_metrics((LOGITS.tolist(), LABELS.tolist())) == expected
    assert compute_classification_metrics((LOGITS, LABELS[:, None])) == expected
    assert compute_classification_metrics(((LOGITS, np.zeros((4, 7))), LABELS)) == expected  # (logits, hidden)


def test_ignored_labels_and_tuple_predictions():
    logits = np.vstack([LOGITS, [[0, 0, 0, 0, 0, 9.0]]])
    out = compute_classification_metrics(EvalPrediction(predictions=(logits, None), label_ids=np.append(LABELS, -100)))
    assert (out["accuracy"], out["top5_accuracy"]) == (0.25, 0.75)


def test_auroc_ranks_saturated_rows_as_their_logits_do():
    # Softmax probabilities reach exactly 1.0 once the top-2 margin passes about 37 in float64 (17 in float32),
    # tying rows the model ranks apart: class 0's AUROC from them was 0.5, the macro mean 0.75 instead of 1.
    margins = np.array([40.0, 42.0, 44.0, 46.0, 48.0, 50.0])
    logits = np.zeros((6, 6))
    logits[:, 0] = margins
    labels = np.array([1, 1, 1, 0, 0, 0])  # the class-0 rows are the three most confident for class 0
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    assert (shifted / shifted.sum(1, keepdims=True))[:, 0].min() == 1.0  # every row saturated
    out = compute_classification_metrics((logits, labels))
    assert out["roc_auc"] == 1.0  # class 0: 3 of 3 × 3 pairs right; class 1: the reverse order, also exact


def test_infinite_logits_keep_their_order():
    # A masked class at -inf (or an fp16 overflow) is ranked below (above) every finite logit, as by its softmax.
    masked = LOGITS.copy()
    masked[:, 5] = -np.inf
    out = compute_classification_metrics((masked, LABELS))
    probs = np.exp(masked) / np.exp(masked).sum(1, keepdims=True)
    expected = np.mean([_mann_whitney_auc(probs[:, c], LABELS == c) for c in (0, 1, 4)])
    assert out["roc_auc"] == pytest.approx(expected, abs=1e-12) and out["top5_accuracy"] == 1.0  # 5 classes left
    binary = np.array([[-np.inf, 1.0], [0.0, 2.0], [3.0, np.inf], [1.0, 0.0]])
    assert compute_classification_metrics((binary, np.array([0, 1, 1, 0])))["roc_auc"] == 0.625  # as p_1: 2.5 of 4 pairs


def test_a_class_masked_in_some_rows_only_keeps_the_softmax_order():
    # -inf stood in for "lowest finite logit - 1", which gave the masked class a share of the probability and
    # moved the first row (p0 0.731) below the second (p0 0.702) for class 0: AUROC 0.861 where the softmax gives 0.944.
    logits = np.array([[1.0, 0.0, -np.inf], [1.0, -0.5, -0.6], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0], [0.0, -0.5, 1.0]])
    labels = np.array([0, 1, 1, 2, 2])
    with np.errstate(divide="ignore"):
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # no two rows tie in any class
    expected = np.mean([_mann_whitney_auc(probs[:, c], labels == c) for c in range(3)])
    assert compute_classification_metrics((logits, labels))["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_labels_outside_the_classes_are_refused_naming_the_fix():
    # datasets' ClassLabel marks a missing label -1: it counted as a wrong prediction and indexed the last
    # class's probabilities in the AUROC; only -100 is ignored.
    with pytest.raises(ValueError, match=r"2 of the 5 labels scored lie outside the model's 6 classes \(values \[-1, 6\]\).*-100"):
        compute_classification_metrics((np.vstack([LOGITS, LOGITS[:1]]), np.array([0, -1, 0, 6, 1])))


def test_fractional_labels_are_refused_and_float_class_ids_scored():
    # Labels were cast to int: regression targets in [0, 1) scored against one logit gave accuracy 1.0, and
    # fractional labels were truncated to classes; NaN became a huge negative "class".
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    for labels in (np.array([0.6, 1.4, 0.9]), np.array([0.0, 1.0, np.nan])):
        with pytest.raises(ValueError, match=r"labels scored are not class indices"):
            compute_classification_metrics((logits, labels))
    with pytest.raises(ValueError, match=r"^3 of the 3 labels scored are not class indices \(values \[0.2, 0.5, 0.7\]\)"):
        compute_classification_metrics((np.zeros((3, 1)), np.array([0.2, 0.5, 0.7])))
    out = compute_classification_metrics((logits, np.array([0.0, 1.0, 1.0])))  # float class ids, as from pandas
    assert out == compute_classification_metrics((logits, np.array([0, 1, 1]))) and out["accuracy"] == pytest.approx(2 / 3)


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


def test_fairness_metrics_refuse_unnamed_groups_and_scores_and_leave_out_ignored_rows():
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    preds = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    # group -1 (a missing ClassLabel value) was named after the last group, hiding that group's accuracy
    with pytest.raises(ValueError, match=r"groups hold \[-1\], which group_names does not name"):
        fairness_metrics(preds, labels, np.r_[groups[:7], -1], group_names=["Female", "Male"])
    with pytest.raises(ValueError, match=r"groups hold \['x'\]"):
        fairness_metrics(preds, labels, ["a"] * 7 + ["x"], group_names={"a": "A"})
    # probabilities or logits were compared with the labels as if they were class ids
    for scores in (np.linspace(0.1, 0.9, 8), np.eye(2)[preds]):
        with pytest.raises(ValueError, match="predictions must be one class id per sample, e.g. logits.argmax"):
            fairness_metrics(scores, labels, groups)
    assert fairness_metrics(preds.astype(float), labels, groups) == fairness_metrics(preds, labels, groups)
    # -100 rows counted as wrong predictions and made the task non-binary (the gaps vanished)
    ignored = fairness_metrics(np.r_[preds, 1], np.r_[labels, -100], np.r_[groups, 0])
    assert ignored == fairness_metrics(preds, labels, groups) and "equalized_odds_difference" in ignored


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
    # a transform or format that leaves the group column out of the rows: a bare KeyError('sex') before
    hidden = eval_dataset.with_format("numpy", columns=["label"])
    assert make_fairness_compute_metrics(hidden, group_column="sex")(
        EvalPrediction(predictions=logits, label_ids=np.asarray(eval_dataset["label"][:]))) == out  # fmt: skip
    missing = eval_dataset.map(lambda row, i: {"sex": -1 if i == 5 else row["sex"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"'sex' is -1 \(datasets' missing ClassLabel value\) in 1 rows, e.g. row 5"):
        make_fairness_compute_metrics(missing, group_column="sex")


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


def _seven_class_eval(seed: int = 0):
    """Seven-class logits and labels with ignored (-100) rows, and uneven batch boundaries."""
    rng = np.random.default_rng(seed)
    logits, labels = rng.normal(size=(23, 7)), rng.integers(0, 7, 23)
    labels[::6] = -100
    return logits, labels, [0, 8, 16, 23]


def test_per_batch_lists_equal_concatenated_and_sklearn():
    # TrainingArguments(eval_do_concat_batches=False): predictions and label_ids are lists of per-batch arrays
    from sklearn.metrics import accuracy_score, roc_auc_score, top_k_accuracy_score

    logits, labels, cuts = _seven_class_eval()
    batches = list(zip(cuts[:-1], cuts[1:]))
    concatenated = compute_classification_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    label_batches = [labels[a:b] for a, b in batches]
    per_batch = EvalPrediction(predictions=[logits[a:b] for a, b in batches], label_ids=label_batches)
    # a model returning (logits, features): each batch's prediction is a tuple
    features = np.ones((len(labels), 3))
    per_batch_tuples = EvalPrediction(
        predictions=[(logits[a:b], features[a:b]) for a, b in batches], label_ids=label_batches
    )
    keep = labels != -100
    probs = np.exp(logits[keep]) / np.exp(logits[keep]).sum(1, keepdims=True)
    expected = {
        "accuracy": accuracy_score(labels[keep], logits[keep].argmax(1)),
        "top5_accuracy": top_k_accuracy_score(labels[keep], probs, k=5, labels=np.arange(7)),
        "roc_auc": roc_auc_score(labels[keep], probs, multi_class="ovr", average="macro", labels=np.arange(7)),
    }
    assert set(np.unique(labels[keep])) == set(range(7))  # all classes present: sklearn's macro OvR is comparable
    assert concatenated == pytest.approx(expected, abs=1e-12)
    assert compute_classification_metrics(per_batch) == concatenated
    assert compute_classification_metrics(per_batch_tuples) == concatenated
    assert compute_classification_metrics(([logits[a:b] for a, b in batches], label_batches)) == concatenated
    # concatenated batches from a model returning (logits, features) keep working, as do plain-list labels
    tuple_output = EvalPrediction(predictions=(logits, features), label_ids=labels)
    assert compute_classification_metrics(tuple_output) == concatenated
    assert compute_classification_metrics((logits, labels.tolist())) == concatenated


def test_fairness_compute_metrics_accepts_per_batch_lists():
    logits, labels, cuts = _seven_class_eval(1)
    eval_dataset = Dataset.from_dict({"label": labels.tolist(), "sex": (np.arange(len(labels)) % 2).tolist()})
    compute = make_fairness_compute_metrics(eval_dataset, group_column="sex")
    batches = list(zip(cuts[:-1], cuts[1:]))
    per_batch = EvalPrediction(
        predictions=[(logits[a:b], None) for a, b in batches], label_ids=[labels[a:b] for a, b in batches]
    )
    assert compute(per_batch) == compute(EvalPrediction(predictions=logits, label_ids=labels))


def test_trainer_without_batch_concatenation_matches_concatenated():
    import tempfile

    import torch
    from conftest import TinyNet
    from transformers import Trainer, TrainingArguments

    class FeatureNet(TinyNet):  # returns (logits, features): a tuple per batch
        def forward(self, x, labels=None):
            features = self.body(x)
            logits = self.head(features)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits, "features": features}

    rng = np.random.default_rng(0)
    labels = np.arange(30) % 7
    labels[::8] = -100
    eval_dataset = Dataset.from_dict({"x": rng.normal(size=(30, 8)).astype(np.float32), "label": labels})
    results = {}
    for concat in (True, False):
        args = TrainingArguments(
            output_dir=tempfile.mkdtemp(), per_device_eval_batch_size=8, report_to=[], disable_tqdm=True,
            eval_do_concat_batches=concat, use_cpu=True,
        )
        torch.manual_seed(0)
        trainer = Trainer(model=FeatureNet(num_classes=7), args=args, eval_dataset=eval_dataset,
                          compute_metrics=compute_classification_metrics)
        metrics = trainer.evaluate()
        results[concat] = {k: metrics[k] for k in ("eval_accuracy", "eval_top5_accuracy", "eval_roc_auc")}
    assert results[False] == pytest.approx(results[True], abs=1e-9)


def test_fairness_gaps_follow_the_models_number_of_classes():
    # three-class model; this evaluation set happens to hold only classes 0 and 1: no binary-only gaps
    eval_dataset = Dataset.from_dict({"label": [0, 1, 1, 0], "sex": ["a", "a", "b", "b"]})
    compute = make_fairness_compute_metrics(eval_dataset, group_column="sex")
    three = np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 0, 0], [3.0, 0, 0]])  # predicts 0, 1, 0, 0
    out = compute(EvalPrediction(predictions=three, label_ids=np.array([0, 1, 1, 0])))
    assert out["accuracy_difference"] == 0.5
    assert "demographic_parity_difference" not in out and "equalized_odds_difference" not in out
    # the same predictions from a two-class model do get them
    out = compute(EvalPrediction(predictions=three[:, :2], label_ids=np.array([0, 1, 1, 0])))
    assert (out["demographic_parity_difference"], out["equalized_odds_difference"]) == (0.5, 1.0)
    # fairness_metrics itself: num_classes decides; without it the values present do (backward compatible)
    preds, labels, groups = [0, 1, 0, 0], [0, 1, 1, 0], ["a", "a", "b", "b"]
    assert "equalized_odds_difference" not in fairness_metrics(preds, labels, groups, num_classes=3)
    assert "equalized_odds_difference" in fairness_metrics(preds, labels, groups, num_classes=2)
    assert "equalized_odds_difference" in fairness_metrics(preds, labels, groups)
    with pytest.raises(ValueError, match="num_classes=2"):
        fairness_metrics([0, 2], [0, 1], ["a", "b"], num_classes=2)


def test_fairness_compute_metrics_refuses_rows_in_another_order():
    """The groups are matched by position: labels that are not the dataset's, in its order, are refused."""
    labels = [1, 0, -100, 0, 1, 1, 0, 0]
    eval_dataset = Dataset.from_dict({"label": labels, "sex": [0, 0, 0, 0, 1, 1, 1, 1]})
    compute = make_fairness_compute_metrics(eval_dataset, group_column="sex")
    logits = np.eye(2)[[1, 1, 1, 0, 0, 0, 0, 0]] * 3.0
    out = compute(EvalPrediction(predictions=logits, label_ids=np.array(labels)))  # -100 rows as Trainer passes them
    assert (out["accuracy_0"], out["accuracy_1"]) == (2 / 3, 0.5)
    order = [4, 5, 6, 7, 0, 1, 2, 3]  # e.g. a length-grouped evaluation sampler
    with pytest.raises(ValueError) as refused:
        compute(EvalPrediction(predictions=logits[order], label_ids=np.array(labels)[order]))
    assert str(refused.value).startswith(
        "The labels evaluation passed to compute_metrics differ from eval_dataset's 'label' column at 4 of 8 rows"
    )
    assert "train_sampling_strategy='group_by_length'" in str(refused.value)
    with pytest.raises(ValueError, match="^eval_dataset has no label column"):
        make_fairness_compute_metrics(eval_dataset.rename_column("label", "target"), group_column="sex")
    from hf_lilaw import metrics
    from hf_lilaw.core.columns import LABEL_COLUMNS

    assert metrics._LABEL_COLUMNS == LABEL_COLUMNS  # the leaf's copy of the label column names


def test_all_rows_ignored_gives_nan_metrics():
    """An evaluation set labelled -100 throughout has no defined metric: NaN under the usual keys, no crash."""
    logits = np.random.default_rng(0).normal(size=(4, 7))
    out = compute_classification_metrics((logits, np.full(4, -100)))
    assert set(out) == {"accuracy", "top5_accuracy", "roc_auc"} and all(math.isnan(v) for v in out.values())
    eval_dataset = Dataset.from_dict({"label": [-100] * 4, "sex": [0, 0, 1, 1]})
    out = make_fairness_compute_metrics(eval_dataset, group_column="sex")((logits[:, :2], np.full(4, -100)))
    assert set(out) == {"accuracy", "roc_auc", "accuracy_difference", "demographic_parity_difference",
                        "equalized_odds_difference"}
    assert all(math.isnan(v) for v in out.values())


def test_a_diverged_models_nan_logits_give_nan_metrics(caplog):
    # NaN logits raised in scikit-learn's top-5 ranking (a crash after the examples' baseline had trained) and, with
    # 5 classes or fewer, gave an accuracy of argmax's arbitrary class (NaN counts as the largest value).
    logits = np.eye(4, 7) * 5
    logits[1, :] = np.nan
    with caplog.at_level("WARNING", logger="hf_lilaw.metrics"):
        out = compute_classification_metrics((logits, np.array([0, 1, 2, 3])))
    assert set(out) == {"accuracy", "top5_accuracy", "roc_auc"} and all(math.isnan(v) for v in out.values())
    assert "1 of the 4 rows scored have NaN logits (the model diverged)" in caplog.text
    few = np.array([[np.nan, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert all(math.isnan(v) for v in compute_classification_metrics((few, np.array([0, 1, 0, 1]))).values())
    eval_dataset = Dataset.from_dict({"label": [0, 1, 0, 1], "sex": [0, 0, 1, 1]})
    out = make_fairness_compute_metrics(eval_dataset, group_column="sex")((few, np.array([0, 1, 0, 1])))
    assert len(out) == 7 and all(math.isnan(v) for v in out.values())  # per-group accuracies and the gaps too
