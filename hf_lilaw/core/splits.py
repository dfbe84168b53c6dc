"""Seeded, class-stratified splits (the meta or clean set a trainer carves off a training set)."""

from __future__ import annotations

import logging

import datasets
import numpy as np

from .columns import column_array

logger = logging.getLogger(__name__)


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
    from sklearn.model_selection import train_test_split  # scikit-learn only when a split is made

    labels = column_array(dataset, label_column)
    indices = np.arange(len(labels))
    try:
        train_idx, meta_idx = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as err:
        logger.warning("Meta split not stratified (%s); splitting uniformly at random instead.", err)
        train_idx, meta_idx = train_test_split(indices, test_size=fraction, random_state=seed)
    return dataset.select(np.sort(train_idx)), dataset.select(np.sort(meta_idx))
