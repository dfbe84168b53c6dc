"""Label and input validation shared by the trainer families: one place for every "is this data usable?" check.

Every check raises a ``ValueError`` that says what was wrong and how to fix it, so bad data fails before the
first training step. The checks read whole columns of a `datasets.Dataset` in one batched read (no user
transform runs); the labels of other data sets are checked in every batch the trainer reads, before the step that
uses it (`hf_lilaw.core.validation.check_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import logging
import re

import datasets
import numpy as np
import torch

from ..functional.losses import IGNORE_INDEX
from .columns import LABEL_COLUMNS, column_array, find_label_column

logger = logging.getLogger(__name__)

__all__ = [
    "check_class_labels",
    "check_class_names",
    "check_finite_columns",
    "check_label_feature",
    "check_single_label_model",
    "dataset_labels",
]


def check_label_feature(dataset: Any, *, name: str) -> None:
    """The label column of a `datasets` set must hold one integer class index per row (by its features)."""
    features = getattr(dataset, "features", None)
    if not isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)) or not features:
        return
    column = next((c for c in LABEL_COLUMNS if c in features), None)
    if column is None:
        return
    feature = features[column]
    if isinstance(feature, datasets.Value) and not feature.dtype.startswith(("int", "uint")):
        raise ValueError(
            f"{name}'s '{column}' column has dtype {feature.dtype}; single-label classification needs integer class "
            f"indices. Cast it, e.g. dataset.cast_column('{column}', datasets.ClassLabel(num_classes=K))."
        )
    if not isinstance(feature, (datasets.Value, datasets.ClassLabel)):
        raise ValueError(
            f"{name}'s '{column}' column holds {type(feature).__name__} values (multi-label?); the trainer handles "
            "single-label classification: give one integer class index per sample."
        )


def check_class_names(model: Any, dataset: Any, *, name: str) -> None:
    """The model's class names (``config.id2label``) must be the training set's ``ClassLabel`` names, index by index.

    A saved model names its outputs by ``id2label``; trained on a ``ClassLabel`` in another order it would name
    every prediction wrongly. The same names in another order are refused; other names only warned about (they
    may be the same classes spelt differently). Default names (``LABEL_0``, …) and sets without ``ClassLabel``
    names are not checked.
    """
    features = getattr(dataset, "features", None)
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not features or not id2label:
        return
    column = next((c for c in LABEL_COLUMNS if c in features), None)
    feature = features[column] if column is not None else None
    if not isinstance(feature, datasets.ClassLabel) or len(id2label) != feature.num_classes:
        return
    model_names = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(feature.num_classes)]
    if all(re.fullmatch(r"LABEL_\d+", label) for label in model_names) or model_names == list(feature.names):
        return
    fix = (
        f"Give the model the data's names, e.g. model.config.id2label = dict(enumerate(names)); "
        f"model.config.label2id = {{n: i for i, n in enumerate(names)}} with names = {name}.features['{column}'].names, "
        "or build the model with id2label/label2id from them."
    )
    message = (
        f"The model's class names (config.id2label) are {model_names}, but {name}'s '{column}' ClassLabel names its "
        f"classes {list(feature.names)}: trained on these labels, the saved model would name its outputs wrongly."
    )
    if sorted(model_names) == sorted(feature.names):
        raise ValueError(f"{message} {fix}")
    logger.warning("%s %s", message, fix)


def dataset_labels(dataset: Any, *, name: str, read_rows: bool = False) -> np.ndarray | None:
    """All labels of ``dataset`` as an array, or ``None`` when they cannot be read up front.

    A `datasets.Dataset` is read as one column. Another map-style set is read row by row only with
    ``read_rows=True`` (a small side set); streamed sets give ``None``.
    """
    if isinstance(dataset, datasets.Dataset):
        return column_array(dataset, find_label_column(dataset))
    if not read_rows or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        return None
    rows = [dataset[i] for i in range(len(dataset))]
    column = next((c for c in LABEL_COLUMNS if rows and isinstance(rows[0], Mapping) and c in rows[0]), None)
    if column is None:
        raise ValueError(f"{name} examples carry no label: give them one of the keys {', '.join(LABEL_COLUMNS)}.")
    return np.asarray([np.asarray(row[column]) for row in rows])


def check_class_labels(labels: np.ndarray | torch.Tensor, *, num_classes: int, name: str, fix: str | None = None) -> None:
    """Labels must be integer class indices of shape ``(n,)`` in ``[0, num_classes)``; ``-100`` marks a skipped row.

    Args:
        labels: the labels (any device; one host sync for a tensor).
        num_classes: the width of the model's logits.
        name: the data set, for the message.
        fix: how to fix an out-of-range label; a generic hint when ``None``.
    """
    if isinstance(labels, torch.Tensor):
        floating, shape = labels.is_floating_point(), tuple(labels.shape)
        dtype = labels.dtype
    else:
        labels = np.asarray(labels)
        floating, shape, dtype = not np.issubdtype(labels.dtype, np.integer), labels.shape, labels.dtype
    if floating or len(shape) != 1:
        raise ValueError(
            f"{name} labels must be integer class indices of shape (batch,), got dtype {dtype} and shape {shape}. "
            "Cast the label column to int (ClassLabel); multi-label and regression targets are not supported."
        )
    labelled = labels[labels != IGNORE_INDEX]
    if not len(labelled):
        return
    low, high = int(labelled.min()), int(labelled.max())
    if num_classes == 1 and low >= 0 and high <= 1:
        raise ValueError(
            f"{name} has binary labels but the model has one output unit. Single-label classification needs one "
            "logit per class: use 2 outputs (num_labels=2, or a final nn.Linear(..., 2)) with labels 0 and 1."
        )
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} has labels in [{low}, {high}] but the model outputs {num_classes} classes: labels must lie in "
            f"[0, {num_classes}) (or be -100 to ignore a row). "
            + (fix or "Fix the labels, or build the model with one output per class (num_labels).")
        )


def check_single_label_model(model: Any) -> None:
    """Refuse a model whose config is set up for regression, multi-label classification or one output unit."""
    config = getattr(model, "config", None)
    problem_type = getattr(config, "problem_type", None)
    num_labels = getattr(config, "num_labels", None)
    if problem_type in ("regression", "multi_label_classification") or num_labels == 1:
        raise ValueError(
            f"The trainer handles single-label classification, but the model is set up for "
            f"{problem_type or 'regression (num_labels=1)'}. Use problem_type='single_label_classification' with "
            "one output per class (num_labels >= 2; for binary labels use 2 outputs) and integer class labels, "
            "or train with transformers.Trainer."
        )


def _holds_floats(feature: Any) -> bool:
    if isinstance(feature, datasets.Value):
        return feature.dtype.startswith(("float", "double", "half"))
    if isinstance(feature, (datasets.Array2D, datasets.Array3D, datasets.Array4D, datasets.Array5D)):
        return feature.dtype.startswith(("float", "double", "half"))
    inner = getattr(feature, "feature", None)  # Sequence / List / LargeList
    return inner is not None and _holds_floats(inner)


def check_finite_columns(dataset: Any, *, name: str, max_chunk_bytes: int = 64 * 2**20) -> None:
    """Every floating-point column of a `datasets.Dataset` must be finite in every row.

    Each column is read in chunks of about ``max_chunk_bytes`` (no user transform runs), so a large set is
    checked without holding a whole column in memory. Other data sets are checked batch by batch where the
    trainer reads them (`hf_lilaw.core.validation`).
    """
    if not isinstance(dataset, datasets.Dataset) or not len(dataset):
        return
    for column, feature in dataset.features.items():
        if not _holds_floats(feature):
            continue
        reader = dataset.with_format("numpy", columns=[column])
        first = np.asarray(reader[0][column])
        chunk = max(1, max_chunk_bytes // max(first.nbytes, 1))
        bad_rows = []
        for start in range(0, len(dataset), chunk):
            values = np.asarray(reader[start : start + chunk][column])
            if values.dtype == object:  # ragged rows
                bad = np.array([not np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values])
            else:
                bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            bad_rows.append(start + np.flatnonzero(bad))
        rows = np.concatenate(bad_rows)
        if len(rows):
            raise ValueError(
                f"{name} has {len(rows)} of {len(dataset)} rows with non-finite values (NaN or inf) in column "
                f"'{column}' (first rows: {rows[:5].tolist()}). Drop or repair them before training, e.g. "
                f"dataset.filter(lambda row: numpy.isfinite(row['{column}']).all())."
            )
