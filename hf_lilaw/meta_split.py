"""The meta (validation) split LiLAW carves off a training set when the user gives none."""

from __future__ import annotations

import logging

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

from .columns import LABEL_COLUMNS

logger = logging.getLogger(__name__)

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


def column_array(dataset: datasets.Dataset, column: str | None = None) -> np.ndarray:
    """A column (default: the label column) as a NumPy array, read without running any user transform."""
    column = column or find_label_column(dataset)
    # One batched read: column access row by row is ~10 s per 20k rows.
    return np.asarray(dataset.with_format("numpy", columns=[column])[:][column])


def split_meta_set(
    dataset: datasets.Dataset, *, fraction: float, seed: int, label_column: str | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Seeded, class-stratified split of ``dataset`` into ``(train, meta)``.

    Both parts keep the input's row order and format (transforms included); no data is copied.
    Falls back to an unstratified split, with a warning, when a class has a single sample.

    Args:
        dataset: the training set.
        fraction: share of rows that go to the meta set, in ``(0, 1)``.
        seed: seed of the split.
        label_column: the label column; found automatically when ``None``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    labels = column_array(dataset, label_column)
    indices = np.arange(len(labels))
    try:
        train_idx, meta_idx = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as err:
        logger.warning("Meta split not stratified (%s); splitting uniformly at random instead.", err)
        train_idx, meta_idx = train_test_split(indices, test_size=fraction, random_state=seed)
    return dataset.select(np.sort(train_idx)), dataset.select(np.sort(meta_idx))
