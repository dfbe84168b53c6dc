"""Column names that hf_lilaw's data sets, noise injectors and trainers agree on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import datasets
import numpy as np

LABEL_COLUMNS = ("label", "labels", "label_ids")
"""Accepted names of the class-index column, in order of preference."""

SAMPLE_ID_COLUMN = "sample_id"
"""A row's stable identity: survives shuffling, splits and multiple processes (training dynamics use it)."""

CLEAN_LABEL_COLUMN = "clean_label"
NOISY_FLAG_COLUMN = "is_noisy"

BOOKKEEPING_COLUMNS = (SAMPLE_ID_COLUMN, NOISY_FLAG_COLUMN, CLEAN_LABEL_COLUMN)
"""Columns that travel with a batch for analysis but never reach the model's forward."""


def with_sample_id(dataset: datasets.Dataset) -> datasets.Dataset:
    """``dataset`` with a ``sample_id`` column (the row position) added, unless it has one already."""
    if SAMPLE_ID_COLUMN in dataset.column_names:
        return dataset
    return dataset.add_column(SAMPLE_ID_COLUMN, np.arange(len(dataset), dtype=np.int64))


def unique_sample_ids(dataset: datasets.Dataset, *, name: str, shared: str) -> np.ndarray:
    """``dataset``'s ``sample_id`` column, refused unless it holds one distinct whole number ≥ 0 per row.

    Args:
        name: the data set's name in the error (``"train_dataset"``).
        shared: what two rows with one id would share, for the error (``"one ELR target"``).
    """
    ids = column_array(dataset, SAMPLE_ID_COLUMN)
    if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
        raise ValueError(
            f"{name}'s '{SAMPLE_ID_COLUMN}' column must hold one integer per row, got {ids.dtype} of shape "
            f"{ids.shape}: remove the column and hf_lilaw numbers the rows by position."
        )
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name}'s '{SAMPLE_ID_COLUMN}' values must be >= 0, found {int(ids.min())}.")
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = int(values[np.argmax(counts > 1)])
        rows = np.flatnonzero(ids == repeated)[:2].tolist()
        raise ValueError(
            f"{name}'s '{SAMPLE_ID_COLUMN}' values repeat ({int((counts > 1).sum())} ids, e.g. {repeated} on rows "
            f"{rows[0]} and {rows[1]}): two rows would share {shared}. The loaders number rows within each split, so "
            f"splits joined together repeat ids: remove the column (`{name}.remove_columns('{SAMPLE_ID_COLUMN}')`) "
            "and hf_lilaw numbers the rows by position."
        )
    return ids.astype(np.int64)


def find_label_column(dataset: datasets.Dataset | datasets.IterableDataset) -> str:
    """The first of ``label``, ``labels``, ``label_ids`` that ``dataset`` has."""
    names = dataset.column_names or []
    for name in LABEL_COLUMNS:
        if name in names:
            return name
    raise ValueError(
        f"The data set has no label column (looked for {', '.join(LABEL_COLUMNS)}; it has {names}). "
        "Rename the column holding the class index to 'label'."
    )


def check_one_label_column(columns: Iterable[str], *, name: str) -> None:
    """Refuse a set whose examples reach the collator with more than one of ``label``, ``labels``, ``label_ids``.

    hf_lilaw reads the first of them (label checks, ELR's targets, the model card's noise rate) while Trainer's
    default collator trains on ``labels`` over ``label`` over ``label_ids``: two of them would be trained on one and
    checked on the other, silently.

    Args:
        columns: the columns that reach the collator (after ``remove_unused_columns``).
        name: the data set's name in the error (``"train_dataset"``).
    """
    present = [c for c in LABEL_COLUMNS if c in set(columns)]
    if len(present) < 2:
        return
    trained = next(c for c in ("labels", "label", "label_ids") if c in present)
    others = [c for c in present if c != trained]
    if present[0] == trained:
        ignored = " and ".join(map(repr, others))
        use = f"Trainer's default collator and hf_lilaw's label checks use {trained!r} and ignore {ignored}"
    else:
        use = f"Trainer's default collator trains on {trained!r} while hf_lilaw's label checks read {present[0]!r}"
    raise ValueError(
        f"{name} has the label columns {' and '.join(map(repr, present))}: {use}, so which one holds the labels is "
        f"ambiguous. Keep one label column: remove or rename the others, e.g. dataset.remove_columns({others!r}) "
        f"to train on {trained!r}."
    )


def has_transform(dataset: Any) -> bool:
    """Whether ``dataset`` is a `datasets.Dataset` read through a transform (``set_transform`` /
    ``with_transform``, which shows up as the format ``"custom"``): its rows are what the transform makes of them,
    possibly at random."""
    return isinstance(dataset, datasets.Dataset) and dataset.format.get("type") == "custom"


def column_array(dataset: datasets.Dataset, column: str | None = None) -> np.ndarray:
    """A column (default: the label column) as a NumPy array, read without running any user transform."""
    column = column or find_label_column(dataset)
    # One batched read of the column: reading it row by row is far slower.
    return np.asarray(dataset.with_format("numpy", columns=[column])[:][column])
