"""One-run clean-and-retrain: flag likely label errors from the training run you already made, then drop or fix them.

::

    recorder = TrainingDynamicsRecorder()
    trainer = LiLAWTrainer(model=model, args=args, train_dataset=train, callbacks=[recorder])
    trainer.train()
    cleaned = clean_labels(train, action="prune", dynamics=recorder.dynamics, score="w_alpha")
    # or, with the model's predictions in the same table:
    cleaned = clean_labels(train, action="relabel", scores=trainer.score_samples(train))
    # then train a fresh model on `cleaned`

Detection reuses `find_label_issues` (W_α, AUM, EL2N, ... from `TrainingDynamics`; its automatic split, which
flags nothing when the scores show no second group, unless a threshold, count or fraction is given). Against cleanlab's pipeline (``cleanlab.filter.find_label_issues`` on
K-fold cross-validated probabilities, then prune and retrain), detection here costs **one** training run
instead of K: the scores come from the forward passes of the run itself, not from K models each trained
without the fold it scores. The price is that a model has seen the samples it scores, so a run long enough to
memorise the wrong labels blurs them; score from an early or middle epoch (``epoch=``) when training is long,
and prefer cleanlab's out-of-fold probabilities where K trainings are affordable.
"""

from __future__ import annotations

import warnings
from typing import Literal

import datasets
import numpy as np

from ..core.columns import (
    CLEAN_LABEL_COLUMN,
    NOISY_FLAG_COLUMN,
    SAMPLE_ID_COLUMN,
    column_array,
    find_label_column,
    unique_sample_ids,
)
from .label_issues import automatic_threshold, find_label_issues
from .scores import HARDNESS_SCORES, TrainingDynamics

CleaningAction = Literal["prune", "relabel"]

# Columns of `LiLAWTrainer.score_samples` where a high value means a clean label: negated for find_label_issues.
_CLEAN_WHEN_HIGH = ("w_alpha", "prob_label")
_SCORE_SAMPLES_COLUMNS = ("w_alpha", "w_beta", "w_delta", "w", "loss", "prob_label")


def clean_labels(
    dataset: datasets.Dataset,
    *,
    action: CleaningAction,
    dynamics: TrainingDynamics | None = None,
    scores: np.ndarray | datasets.Dataset | None = None,
    issues: np.ndarray | None = None,
    score: str = "w_alpha",
    epoch: int | None = None,
    predictions: np.ndarray | None = None,
    threshold: float | None = None,
    num_issues: int | None = None,
    frac_issues: float | None = None,
    max_fraction: float | None = None,
    expected_noise_rate: float | None = None,
) -> datasets.Dataset:
    """``dataset`` with its likely label errors dropped (``prune``) or replaced by the model's prediction (``relabel``).

    Which rows are flagged comes from exactly one of:

    - ``dynamics``: a `TrainingDynamics` (``TrainingDynamicsRecorder().dynamics`` after training) scored by
      ``score`` (a name in `HARDNESS_SCORES`: ``"w_alpha"``, ``"aum"``, ``"el2n"``, ``"forgetting"``, ...) at
      ``epoch``. Rows are matched to the record by their ``sample_id`` column, or by position when there is none
      (as the trainer numbers them).
    - ``scores``: either per-row scores (higher = more likely mislabelled, one per row of ``dataset``), or the
      table `LiLAWTrainer.score_samples` returns for ``dataset``, read at its ``score`` column (``w_alpha``,
      ``w_beta``, ``w_delta``, ``w``, ``loss`` or ``prob_label``; oriented for you), whose ``prediction`` column
      then serves ``relabel``.
    - ``issues``: a boolean mask you computed yourself (e.g. with cleanlab), one per row; it is the flag as given
      (``threshold``, ``num_issues``, ``frac_issues``, ``max_fraction`` and ``epoch`` are refused beside it).

    ``threshold``, ``num_issues``, ``frac_issues``, ``max_fraction`` choose how many to flag, as in
    `find_label_issues` (default: its automatic split, which flags nothing when the scores show one group). They
    count over the rows of ``dataset`` (its scored ones), whichever source the scores come from: with
    ``dynamics=`` and a data set holding only some of the recorded samples (filtered, or one part of a split),
    ``num_issues=10`` removes 10 of its rows, ``frac_issues=0.2`` a fifth of its scored rows, and the automatic split is
    made on its rows' scores. Rows with no score (NaN, e.g. the meta split) are never flagged.

    A warning is issued when more rows would be changed than the estimated noise: ``expected_noise_rate`` when you
    give it, otherwise the second group the scores show (`automatic_threshold`: the fraction above Otsu's cut
    when the scores are bimodal, 0 when they are not). With ``issues=`` there is no estimate unless you give it.

    Args:
        dataset: the training set the scores belong to, with its (noisy) label column.
        action: ``"prune"`` drops the flagged rows; ``"relabel"`` sets their label to ``predictions``.
        predictions: for ``relabel``: the model's predicted class per row (or its logits / probabilities, shape
            ``(rows, classes)``), in the dataset's row order, e.g. ``trainer.predict(dataset).predictions`` of an
            hf_lilaw trainer (a plain `transformers.Trainer` under ``train_sampling_strategy="group_by_length"``
            predicts in another order); not needed when ``scores`` is a ``score_samples`` table. Checked against the classes: the label column's ``ClassLabel``, or the
            number of logits.
        threshold, num_issues, frac_issues, max_fraction: how many rows to flag, as in `find_label_issues`.
        expected_noise_rate: the fraction of rows you expect to be mislabelled, for the warning above.

    Returns:
        A new `datasets.Dataset` (the input is untouched) to retrain on: for ``prune`` the unflagged rows in their
        order, for ``relabel`` every row, with the label column changed on the flagged rows only (and, where
        `add_label_noise`'s ``clean_label`` and ``is_noisy`` columns are present, ``is_noisy`` recomputed as
        ``label != clean_label``, so detection metrics and `realised_noise_rate` describe the cleaned labels).
    """
    if action not in ("prune", "relabel"):
        raise ValueError(f"action must be 'prune' (drop flagged rows) or 'relabel' (use the prediction), got {action!r}.")
    if not isinstance(dataset, datasets.Dataset):
        if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            fix = f"pass the split you trained on, e.g. dataset[{next(iter(dataset), 'train')!r}]"
        elif isinstance(dataset, datasets.IterableDataset):
            fix = "for a streamed set, materialise the training split first"
        else:  # e.g. a torch Dataset
            fix = "convert it, e.g. datasets.Dataset.from_list([dataset[i] for i in range(len(dataset))])"
        raise ValueError(
            f"clean_labels needs a datasets.Dataset (random access to its rows), got {type(dataset).__name__}; {fix}."
        )
    given = sum(source is not None for source in (dynamics, scores, issues))
    if given != 1:
        raise ValueError(
            "Pass exactly one of dynamics= (TrainingDynamicsRecorder().dynamics), scores= (per-row scores or "
            "LiLAWTrainer.score_samples(dataset)) or issues= (a boolean mask)."
        )
    if expected_noise_rate is not None and (isinstance(expected_noise_rate, bool) or not 0.0 <= expected_noise_rate <= 1.0):
        raise ValueError(f"expected_noise_rate must lie in [0, 1], got {expected_noise_rate!r} (a fraction of the rows).")
    label_column = find_label_column(dataset)
    rule = {"threshold": threshold, "num_issues": num_issues, "frac_issues": frac_issues, "max_fraction": max_fraction}
    n = len(dataset)
    values = None

    if issues is not None:
        chosen = [name for name, value in {**rule, "epoch": epoch}.items() if value is not None]
        if chosen:  # the mask is the flag: a count or threshold given beside it would be silently ignored
            raise ValueError(
                f"issues= is already the flag of each row, so {', '.join(f'{name}=' for name in chosen)} (for "
                "flagging by scores) would be ignored; leave it out, or pass scores= (or dynamics=) instead of "
                "issues= to flag by it."
            )
        flagged = np.asarray(issues)
        if flagged.dtype != bool or flagged.shape != (n,):
            raise ValueError(f"issues must be a boolean mask of shape ({n},), got dtype {flagged.dtype}, shape {flagged.shape}.")
    elif dynamics is not None:
        if score not in HARDNESS_SCORES:
            raise ValueError(f"Unknown score {score!r}; use one of {sorted(HARDNESS_SCORES)} or pass scores=.")
        rows = _record_rows(dataset, dynamics.num_samples)
        values = np.asarray(HARDNESS_SCORES[score](dynamics, epoch=epoch), dtype=np.float64)[rows]
        # Rank the rows passed, not the whole recording (a filtered set holds fewer): in sample-id order, so that
        # ties break as find_label_issues(dynamics=...) breaks them, whatever the rows' order in the data set.
        if n and np.isnan(values).all():
            raise ValueError(
                f"None of the data set's {n} rows has a {score!r} score in the dynamics (never trained on in the "
                "epochs used, e.g. the meta set LiLAWTrainer split off); pass the data set you gave the trainer."
            )
        order = np.argsort(rows, kind="stable")
        flagged = np.zeros(n, dtype=bool)
        if n:
            flagged[order] = find_label_issues(scores=values[order], **rule)
    else:
        if epoch is not None:
            raise ValueError("epoch= selects rows of dynamics=; with scores= compute them at the epoch you want.")
        if isinstance(scores, datasets.Dataset):
            if predictions is None and "prediction" in scores.column_names:
                predictions = column_array(scores, "prediction")
            scores = _oriented(scores, score)
        values = np.asarray(scores, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"scores must have one value per row of the data set, shape ({n},); got {values.shape}.")
        if n and np.isnan(values).all():
            raise ValueError(
                f"All {n} scores are NaN: none of the rows was scored (e.g. every label is -100), so there is "
                "nothing to rank; pass the scores of labelled rows, e.g. trainer.score_samples(dataset)."
            )
        flagged = find_label_issues(scores=values, **rule)
    counted = num_issues is not None or frac_issues is not None
    _warn_beyond_noise(flagged, values, expected_noise_rate, action, counted=counted)

    if action == "prune":
        return dataset.select(np.flatnonzero(~flagged))

    if predictions is None:
        raise ValueError(
            "relabel needs the model's predictions: pass predictions=trainer.predict(dataset).predictions, or "
            "scores=trainer.score_samples(dataset), which carries them."
        )
    feature = dataset.features[label_column]
    predicted = _predicted_classes(predictions, n, feature)
    labels = column_array(dataset, label_column)
    new_labels = np.where(flagged, predicted, labels).astype(labels.dtype)
    relabelled = dataset.remove_columns(label_column).add_column(label_column, new_labels.tolist(), feature=feature)
    if {CLEAN_LABEL_COLUMN, NOISY_FLAG_COLUMN} <= set(dataset.column_names):  # add_label_noise's bookkeeping
        still_noisy = new_labels != column_array(dataset, CLEAN_LABEL_COLUMN)
        flag_feature = dataset.features[NOISY_FLAG_COLUMN]
        relabelled = relabelled.remove_columns(NOISY_FLAG_COLUMN).add_column(
            NOISY_FLAG_COLUMN, still_noisy.tolist(), feature=flag_feature
        )
    return relabelled.select_columns(dataset.column_names)


def _warn_beyond_noise(
    flagged: np.ndarray, values: np.ndarray | None, expected_noise_rate: float | None, action: str, *, counted: bool
) -> None:
    """Warn when more rows are flagged than the noise estimate (given, or the second group in the scores). Where
    the user fixed the count (``num_issues=`` / ``frac_issues=``, ``counted``) the advice is about that count."""
    if expected_noise_rate is not None:
        estimate, source = expected_noise_rate, "the expected_noise_rate you gave"
    elif values is not None and not np.isnan(values).all():
        split = automatic_threshold(values)
        estimate = 0.0 if split.refused else split.upper_fraction
        if not split.refused:
            source = "the second group in the scores"
        elif counted:  # the refusal's own advice is to pass frac_issues=, which the user did
            source = "the scores' shape (the automatic split finds no second group in them)"
        else:
            source = f"the scores' shape ({split.reason})"
    else:
        return
    n = flagged.size if values is None else int((~np.isnan(values)).sum())
    if flagged.sum() > round(estimate * n):
        verb = "remove" if action == "prune" else "relabel"
        warnings.warn(
            f"clean_labels would {verb} {int(flagged.sum())} of {n} rows ({flagged.sum() / n:.1%}), more than the "
            f"estimated noise of {estimate:.1%} from {source}. "
            + ("Check that so many rows are mislabelled; pass expected_noise_rate= to state the rate you expect."
               if counted else
               "Check the threshold, or pass expected_noise_rate= or max_fraction= if you know the rate."),
            UserWarning,
            stacklevel=3,
        )


def _predicted_classes(predictions: np.ndarray, n: int, feature: object) -> np.ndarray:
    """Class ids from ``predictions`` (ids or per-class scores, or a model-output tuple whose first element they
    are), checked against the label column's classes."""
    if isinstance(predictions, tuple):  # trainer.predict(...).predictions of a model that also returns features
        predictions = predictions[0]
    predicted = np.asarray(predictions)
    num_classes = getattr(feature, "num_classes", None)
    if predicted.ndim == 2:
        if num_classes is not None and predicted.shape[1] != num_classes:
            raise ValueError(
                f"predictions have {predicted.shape[1]} columns of logits/probabilities, but the label column has "
                f"{num_classes} classes; pass the predictions of a model with one output per class."
            )
        num_classes = predicted.shape[1]
        predicted = predicted.argmax(axis=1)
    if predicted.shape != (n,):
        raise ValueError(f"predictions must have one class (or one row of logits) per row, {n}; got shape {np.shape(predictions)}.")
    if predicted.dtype.kind == "f" and not np.array_equal(predicted, np.round(predicted)):
        raise ValueError("predictions hold fractional values; pass class ids, or logits of shape (rows, classes).")
    bad = (predicted < 0) | (predicted >= num_classes if num_classes is not None else False)
    if bad.any():
        row, count = int(np.flatnonzero(bad)[0]), int(bad.sum())
        allowed = f"0..{num_classes - 1}" if num_classes is not None else "≥ 0"
        raise ValueError(
            f"predictions hold class {predicted[row].item():g} at row {row} ({count} row{'s' if count > 1 else ''} out "
            f"of range), but the classes are {allowed}; pass the model's predicted class ids or its logits."
        )
    return predicted.astype(np.int64)


def _record_rows(dataset: datasets.Dataset, num_recorded: int) -> np.ndarray:
    """Index into the recorded samples of each row of ``dataset``: its ``sample_id``, or its position."""
    if SAMPLE_ID_COLUMN in dataset.column_names:
        ids = unique_sample_ids(dataset, name="dataset", shared="one recorded score")
        if ids.size and (ids.min() < 0 or ids.max() >= num_recorded):
            raise ValueError(
                f"sample_id values reach {ids.max()} but the dynamics record {num_recorded} samples; pass the data set "
                "the recorder's trainer trained on."
            )
        return ids
    if len(dataset) != num_recorded:
        raise ValueError(
            f"The data set has {len(dataset)} rows and no sample_id column, but the dynamics record {num_recorded} "
            "samples; pass the data set the trainer trained on (it numbers rows by position)."
        )
    return np.arange(len(dataset))


def _oriented(table: datasets.Dataset, score: str) -> np.ndarray:
    """A `score_samples` column, negated where high means clean, so that higher = more likely mislabelled."""
    if score not in _SCORE_SAMPLES_COLUMNS or score not in table.column_names:
        raise ValueError(
            f"score={score!r} is not a column of the score_samples table; use one of {', '.join(_SCORE_SAMPLES_COLUMNS)}."
        )
    values = column_array(table, score).astype(np.float64)
    return -values if score in _CLEAN_WHEN_HIGH else values
