"""Metrics for `Trainer(compute_metrics=...)`: the paper's top-1, top-5 and AUROC, and group fairness.

Computed offline with scikit-learn, one code path (no Hub lookups), also as an `evaluate` metric
(`load_classification_metric`). Top-5 accuracy is reported only for tasks with more than five classes: with five
or fewer it is 1.0 by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score, top_k_accuracy_score

logger = logging.getLogger(__name__)


__all__ = ["compute_classification_metrics", "fairness_metrics", "load_classification_metric", "make_fairness_compute_metrics"]

_LABEL_COLUMNS = ("label", "labels", "label_ids")
"""`hf_lilaw.core.columns.LABEL_COLUMNS`, repeated here: metrics imports nothing from the package (a leaf)."""


def _is_batch_list(labels: Any) -> bool:
    """Whether ``labels`` is a list of per-batch label arrays (``TrainingArguments(eval_do_concat_batches=False)``)
    rather than one array (or a plain list of integer labels)."""
    return isinstance(labels, (list, tuple)) and len(labels) > 0 and all(np.ndim(b) >= 1 for b in labels)


def _logits_of(predictions: Any) -> Any:
    """The logits from a model output: the first element of a tuple (models that also return hidden states),
    whose first element holds rows; a plain list of rows (a nested list of logits) is the logits themselves."""
    if isinstance(predictions, (tuple, list)) and len(predictions) and np.ndim(predictions[0]) >= 2:
        return predictions[0]
    return predictions


def _gather(eval_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """All logits and labels (ignored rows kept) from an `EvalPrediction` or a ``(predictions, labels)`` pair.

    Accepts concatenated arrays (the Trainer's default) and, with ``eval_do_concat_batches=False``, lists of
    per-batch arrays, which are concatenated here. In both cases the logits may be the first element of a
    model-output tuple ``(logits, hidden_states, ...)``.
    """
    if hasattr(eval_pred, "predictions"):
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
    else:
        predictions, labels = eval_pred[0], eval_pred[1]
    if _is_batch_list(labels):  # one entry per evaluation batch
        if not isinstance(predictions, (tuple, list)) or len(predictions) != len(labels):
            raise ValueError(
                f"label_ids is a list of {len(labels)} per-batch arrays, so predictions must be a list of as many "
                f"per-batch logits, got {type(predictions).__name__}"
                + (f" of length {len(predictions)}." if isinstance(predictions, (tuple, list)) else ".")
            )
        predictions = np.concatenate([np.asarray(_logits_of(p), dtype=np.float64) for p in predictions])
        labels = np.concatenate([np.asarray(b) for b in labels])
    else:
        predictions = _logits_of(predictions)
    logits, labels = np.asarray(predictions, dtype=np.float64), np.asarray(labels)
    if labels.dtype.kind == "f":  # float class ids (0.0, 1.0) are fine; casting 0.6 to int would score it as 0
        fractional = ~np.isfinite(labels) | (labels != np.round(labels))
        if fractional.any():
            raise ValueError(
                f"{int(fractional.sum())} of the {labels.size} labels scored are not class indices (values "
                f"{np.unique(labels[fractional])[:5].tolist()}): these metrics score a classifier's logits against "
                "integer class labels, and would have truncated them to classes. Score regression or soft-label "
                "targets with other metrics; give a row without a label -100."
            )
    labels = labels.astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:  # a column of labels, (N, 1)
        labels = labels[:, 0]
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Expected logits of shape (N, num_classes) and N labels, got {logits.shape} and {labels.shape}; "
            "pass the classifier's logits (Trainer does this with prediction_loss_only=False)."
        )
    return logits, labels


def _unpack(eval_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels from an `EvalPrediction` or a ``(predictions, labels)`` pair, ignored (-100) rows dropped."""
    logits, labels = _gather(eval_pred)
    keep = labels != -100
    return logits[keep], labels[keep]


def finite_ranks(logits: np.ndarray) -> np.ndarray:
    """``logits`` (or any scores) in float64 with ``-inf`` / ``+inf`` (a masked class, an fp16 overflow) replaced
    by values just below / above every finite one: the same order in every row, and arithmetic without NaN."""
    z = np.asarray(logits, dtype=np.float64).copy()
    finite = z[np.isfinite(z)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    z[z == -np.inf], z[z == np.inf] = low - 1.0, high + 1.0
    return z


def _one_vs_rest_log_odds(logits: np.ndarray) -> np.ndarray:
    """``log p_c − log(1 − p_c)`` of the softmax, per row and class, computed from the logits in float64 as
    ``x_c − logsumexp_{j≠c} x_j``: it orders rows as ``p_c`` does, but never rounds to a tie where ``p_c`` reaches
    exactly 1.0 (a top-2 logit margin over about 17 in float32, 37 in float64). A ``-inf`` logit (a masked class)
    is a probability of 0, as in the softmax's limit; a ``+inf`` one (an overflow) takes the row's whole
    probability, shared with the row's other ``+inf`` classes. Infinite log-odds (``p_c`` of 0 or 1) are then
    placed just below / above every finite one, in the same order."""
    z = np.asarray(logits, dtype=np.float64).copy()
    overflowed = np.isposinf(z).any(1)
    z[overflowed] = np.where(np.isposinf(z[overflowed]), 0.0, -np.inf)
    z[np.isneginf(z).all(1)] = 0.0  # a row with every class masked says nothing: read as uniform
    rows = np.arange(len(z))
    top = z.argmax(1)
    first = z[rows, top]
    exp_first = np.exp(z - first[:, None])  # the top class's own term is 1, every other at most 1 (0 if masked)
    with np.errstate(divide="ignore"):  # log 0: a class against only masked ones, or the top class's own entry
        others = first[:, None] + np.log(exp_first.sum(1, keepdims=True) - exp_first)
        if z.shape[1] > 1:
            rest = z.copy()
            rest[rows, top] = -np.inf
            second = rest.max(1)
            shift = np.where(np.isneginf(second), 0.0, second)  # every other class masked: log 0 below, p_top = 1
            others[rows, top] = shift + np.log(np.exp(rest - shift[:, None]).sum(1))  # the top class: without it
    with np.errstate(invalid="ignore"):
        return finite_ranks(z - others)


def _roc_auc(logits: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest AUROC; classes absent from ``labels`` are left out of the mean (NaN if < 2 present).
    Ranked by `_one_vs_rest_log_odds`, the order of the softmax probabilities without their rounding to 1.0."""
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    scores = _one_vs_rest_log_odds(logits)
    if logits.shape[1] == 2:
        return float(roc_auc_score(labels, scores[:, 1]))
    # macro one-vs-rest is the unweighted mean of the per-class binary AUROCs
    onehot = labels[:, None] == present[None, :]
    return float(roc_auc_score(onehot, scores[:, present], average="macro"))


def _classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    num_classes = logits.shape[1]
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        values = sorted({int(v) for v in labels[outside]})[:5]
        raise ValueError(
            f"{int(outside.sum())} of the {len(labels)} labels scored lie outside the model's {num_classes} classes "
            f"(values {values}): they would count as wrong predictions, and a negative one would index the last "
            "class's scores. Mark rows without a label -100 (the value Trainer's losses and these metrics ignore; "
            "datasets' ClassLabel uses -1), or fix the labels or the model's num_labels."
        )
    diverged = int(np.isnan(logits).any(axis=1).sum())
    if len(labels) == 0 or diverged:
        # Undefined: every row ignored, or a diverged model's NaN logits (whose argmax is an arbitrary class and
        # which scikit-learn's ranking refuses): NaN under the usual keys rather than a number or a crash mid-run.
        if diverged:
            logger.warning(
                "%d of the %d rows scored have NaN logits (the model diverged): every metric is NaN. Lower the "
                "learning rate, or clip gradients (max_grad_norm).", diverged, len(labels),
            )  # fmt: skip
        top5 = {"top5_accuracy": float("nan")} if num_classes > 5 else {}
        return {"accuracy": float("nan"), **top5, "roc_auc": float("nan")}
    out = {"accuracy": float(accuracy_score(labels, logits.argmax(1)))}
    if num_classes > 5:  # ranked by the logits: the softmax's order, without its rounding to ties at 1.0
        scores = finite_ranks(logits)
        out["top5_accuracy"] = float(top_k_accuracy_score(labels, scores, k=5, labels=np.arange(num_classes)))
    out["roc_auc"] = _roc_auc(logits, labels)
    return out


def compute_classification_metrics(eval_pred: Any) -> dict[str, float]:
    """Top-1 accuracy, top-5 accuracy and macro AUROC from logits; pass as `Trainer(compute_metrics=...)`.

    ``top5_accuracy`` is left out for five classes or fewer, where it would be 1.0 by construction.
    ``roc_auc`` is one-vs-rest on softmax probabilities, macro-averaged (the positive class's AUROC for
    two classes); classes missing from the labels are left out, NaN when fewer than two are present. It ranks
    rows by each probability's log-odds, computed from the logits, so that probabilities rounded to exactly 1.0
    by a very confident model do not tie. Rows labelled -100 are ignored; when every row is, all metrics are NaN;
    any other label outside the model's classes (such as `datasets`' -1 for "no label") raises a ValueError.

    Args:
        eval_pred: A `transformers.EvalPrediction` or a ``(logits, labels)`` pair.

    Returns:
        ``{"accuracy", "top5_accuracy", "roc_auc"}`` as floats (no ``top5_accuracy`` for <= 5 classes).
    """
    logits, labels = _unpack(eval_pred)
    return _classification_metrics(logits, labels)


def load_classification_metric(**kwargs: Any) -> Any:
    """`compute_classification_metrics` as an `evaluate` metric (``add_batch`` / ``compute``, distributed
    evaluation as `evaluate` does it), loaded from the module file shipped in this package: no Hub access.

    Args:
        kwargs: passed to `evaluate.load` (e.g. ``experiment_id``, ``num_process``, ``process_id``).

    Returns:
        An `evaluate.EvaluationModule` whose ``compute(predictions=logits, references=labels)`` returns what
        `compute_classification_metrics` returns for the same rows.
    """
    import evaluate  # slow to import; only this function needs it

    path = Path(__file__).resolve().parent / "evaluate_modules" / "lilaw_classification.py"
    return evaluate.load(str(path), **kwargs)


def fairness_metrics(
    predictions: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    *,
    group_names: Sequence[str] | Mapping[Any, str] | None = None,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Per-group accuracy and, for a binary task (classes 0 and 1, 1 positive), group-fairness gaps.

    Args:
        predictions: Predicted class per sample.
        labels: True class per sample; rows labelled -100 are left out.
        groups: Group value per sample.
        group_names: Names for the group values (a mapping, or a sequence indexed by the group value).
        num_classes: The number of classes the model outputs (``logits.shape[1]``). The task is binary iff it is
            2. Pass it whenever you know it: without it the task is taken to be binary when the labels and
            predictions present are all 0 or 1, which is wrong for an evaluation slice of a multi-class task
            that happens to hold only classes 0 and 1.

    Returns:
        ``accuracy_<group>`` for each group and ``accuracy_difference`` (largest minus smallest); for binary
        tasks also ``demographic_parity_difference`` (spread of the groups' positive-prediction rates) and
        ``equalized_odds_difference`` (the larger of the spreads of true- and false-positive rates, as in
        fairlearn). Groups without positives (negatives) are left out of the TPR (FPR) spread; the differences
        are NaN when there are no samples. The differences are lower-is-better: as ``metric_for_best_model`` they
        need ``greater_is_better=False`` (the trainers refuse them without it).
    """
    predictions, labels, groups = np.asarray(predictions), np.asarray(labels), np.asarray(groups)
    if not len(predictions) == len(labels) == len(groups):
        raise ValueError(
            f"predictions, labels and groups must have one entry per sample, got {len(predictions)}, "
            f"{len(labels)} and {len(groups)}."
        )
    if predictions.ndim != 1 or (predictions.dtype.kind == "f" and not np.all(predictions == np.round(predictions))):
        raise ValueError(
            f"predictions must be one class id per sample, e.g. logits.argmax(-1); got shape {predictions.shape}, "
            f"dtype {predictions.dtype} (logits or probabilities?)."
        )
    keep = labels != -100  # ignored rows, as in compute_classification_metrics
    predictions, labels, groups = predictions[keep], labels[keep], groups[keep]
    values = np.unique(groups)
    if group_names is not None:
        known = set(group_names) if isinstance(group_names, Mapping) else set(range(len(group_names)))
        unnamed = [g for g in values.tolist() if g not in known]
        if unnamed:  # a sequence indexed by -1 named the missing value after the last group
            raise ValueError(
                f"groups hold {unnamed}, which group_names does not name (-1 is datasets' missing ClassLabel value): "
                "fill or filter those rows, or name every group."
            )

    def name(group: Any) -> str:
        if group_names is None:
            return str(group)
        return str(group_names[group] if isinstance(group_names, Mapping) else group_names[int(group)])

    masks = {g: groups == g for g in values}
    accuracy = {g: float(np.mean(predictions[m] == labels[m])) for g, m in masks.items()}
    out = {f"accuracy_{name(g)}": a for g, a in accuracy.items()}
    out["accuracy_difference"] = max(accuracy.values()) - min(accuracy.values()) if accuracy else float("nan")
    present = set(np.unique(labels).tolist()) | set(np.unique(predictions).tolist())
    if num_classes is None:
        binary = present <= {0, 1}
    else:
        binary = num_classes == 2
        if not present <= set(range(num_classes)):
            raise ValueError(
                f"num_classes={num_classes}, but labels/predictions hold {sorted(present - set(range(num_classes)))}."
            )
    if binary:
        positive = predictions == 1

        def spread(rates: list[float]) -> float:
            rates = [r for r in rates if not np.isnan(r)]
            return max(rates) - min(rates) if rates else float("nan")

        def rate(mask: np.ndarray) -> float:
            return float(positive[mask].mean()) if mask.any() else float("nan")

        out["demographic_parity_difference"] = spread([rate(m) for m in masks.values()])
        tpr = spread([rate(m & (labels == 1)) for m in masks.values()])
        fpr = spread([rate(m & (labels == 0)) for m in masks.values()])
        out["equalized_odds_difference"] = float("nan") if np.isnan([tpr, fpr]).all() else float(np.nanmax([tpr, fpr]))
    return out


def make_fairness_compute_metrics(eval_dataset: Any, *, group_column: str = "sex") -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` that adds `fairness_metrics` by ``group_column`` to the classification metrics.

    The groups are read once from ``eval_dataset`` (the same dataset you pass to the Trainer as ``eval_dataset``)
    and matched to the predictions by position, so evaluation must keep the dataset's row order. Its labels are
    read too, and each call checks that the labels it receives are the dataset's labels in order: a ValueError
    when they are not (e.g. `transformers.Trainer` under ``train_sampling_strategy="group_by_length"``, which
    evaluates in length-grouped order; hf_lilaw's trainers evaluate in order). A reordering that leaves the label sequence unchanged cannot be seen. `ClassLabel`
    group columns are reported by their names (``accuracy_Female``, ...).
    """
    if group_column not in eval_dataset.column_names:
        raise ValueError(f"eval_dataset has no column {group_column!r} (columns: {eval_dataset.column_names}).")
    label_column = next((c for c in _LABEL_COLUMNS if c in eval_dataset.column_names), None)
    if label_column is None:
        raise ValueError(
            f"eval_dataset has no label column (looked for {', '.join(_LABEL_COLUMNS)}; it has "
            f"{eval_dataset.column_names}), which the check of the row order needs: rename the column holding the "
            "class index to 'label'."
        )
    # read as stored: a transform or format that leaves these columns out of the rows must not hide them here
    stored = eval_dataset.with_format("numpy", columns=[group_column, label_column])[:]
    groups, expected_labels = np.asarray(stored[group_column]), np.asarray(stored[label_column]).astype(np.int64)
    feature = eval_dataset.features[group_column]
    group_names = getattr(feature, "names", None)
    if group_names is not None and (groups < 0).any():
        raise ValueError(
            f"eval_dataset's {group_column!r} is -1 (datasets' missing ClassLabel value) in {int((groups < 0).sum())} "
            f"rows, e.g. row {int(np.flatnonzero(groups < 0)[0])}: those rows belong to no group. Fill or filter them."
        )

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = _gather(eval_pred)  # also accepts per-batch lists (eval_do_concat_batches=False)
        if len(labels) != len(groups):
            raise ValueError(
                f"Got {len(labels)} predictions but {len(groups)} group values; build compute_metrics from "
                "the dataset passed as eval_dataset (one builder per eval dataset)."
            )
        if not np.array_equal(labels, expected_labels):
            moved = int((labels != expected_labels).sum())
            raise ValueError(
                f"The labels evaluation passed to compute_metrics differ from eval_dataset's {label_column!r} column "
                f"at {moved} of {len(labels)} rows, so its rows came in another order (or from another dataset) and "
                "the groups would be matched to the wrong predictions. transformers.Trainer evaluates in "
                "length-grouped order under train_sampling_strategy='group_by_length' (hf_lilaw's trainers do not), "
                "and any trainer out of order with dataloader_in_order=False and workers: keep the order (an "
                "hf_lilaw trainer, another train_sampling_strategy, dataloader_in_order=True), and build "
                "compute_metrics from the dataset passed as eval_dataset."
            )
        keep = labels != -100
        logits, kept_labels, kept_groups = logits[keep], labels[keep], groups[keep]
        # binary or not is the model's number of classes, not the label values this evaluation set happens to hold
        fairness = fairness_metrics(
            logits.argmax(1), kept_labels, kept_groups, group_names=group_names, num_classes=logits.shape[1]
        )
        if np.isnan(logits).any():  # a diverged model's argmax is arbitrary: its gaps are as undefined as its accuracy
            fairness = dict.fromkeys(fairness, float("nan"))
        return {**_classification_metrics(logits, kept_labels), **fairness}

    return compute_metrics
