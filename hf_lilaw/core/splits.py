"""Seeded, class-stratified splits (the meta or clean set a trainer carves off a training set)."""

from __future__ import annotations

import logging
import math

import datasets
import numpy as np

from ..functional.losses import IGNORE_INDEX
from .columns import column_array

logger = logging.getLogger(__name__)


def split_meta_set(
    dataset: datasets.Dataset, *, fraction: float, seed: int, label_column: str | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Seeded, class-stratified split of ``dataset`` into ``(train, meta)``.

    Both parts keep the input's row order and format (transforms included); no data is copied.
    Where scikit-learn cannot stratify (a class with a single sample, fewer meta or train rows than classes), or its
    split would leave a class no training row (a class of a few rows and ``fraction`` above 0.5), each class gives
    the floor or ceiling of its share instead, still seeded: per class, the meta split then holds the class's share
    of ``fraction`` to within one sample, like scikit-learn's stratified split, except that no class gives its last
    row (a class missing from ``train`` cannot be learned): a class that would is capped, and the other classes give
    the rows it keeps.
    Rows labelled ``-100`` (no label) all stay in ``train``: they carry no meta loss, so ``fraction`` is a share of
    the labelled rows.

    Args:
        dataset: the training set.
        fraction: share of rows that go to the meta set, in ``(0, 1)``.
        seed: seed of the split.
        label_column: the label column; found automatically when ``None``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    from sklearn.model_selection import train_test_split  # scikit-learn only when a split is made

    all_labels = column_array(dataset, label_column)
    unlabelled = all_labels == IGNORE_INDEX
    if unlabelled.all():
        raise ValueError(
            f"Cannot split a meta set off {len(all_labels)} rows that are all labelled {IGNORE_INDEX} (no label); "
            "pass a training set with labelled rows or a meta set of your own."
        )
    indices = np.flatnonzero(~unlabelled)
    labels = all_labels[indices]
    try:
        train_idx, meta_idx = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels)
        lost = np.setdiff1d(labels, all_labels[train_idx])
        if lost.size:  # it rounds each class's training share down: to 0 for a class of 2 when fraction > 0.5
            raise ValueError(f"its split leaves classes {lost.tolist()} without a training row")
    except ValueError as err:
        logger.warning("scikit-learn cannot stratify the meta split (%s); carving each class's share instead.", err)
        meta_idx = indices[_per_class_carve(labels, fraction=fraction, seed=seed)]
        train_idx = np.setdiff1d(indices, meta_idx)
    train_idx = np.concatenate([train_idx, np.flatnonzero(unlabelled)])
    return dataset.select(np.sort(train_idx)), dataset.select(np.sort(meta_idx))


def _per_class_carve(labels: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Meta rows: scikit-learn's meta size, each class giving the floor of its share and the largest remainders
    (ties broken by the seeded generator) one more, never a class's last row (the rest goes round the other classes
    in the same order); the rows within a class are drawn by the same generator."""
    total = math.ceil(fraction * len(labels))  # the size scikit-learn's split has
    if total >= len(labels):
        raise ValueError(
            f"Cannot split a meta set of {fraction:.0%} off {len(labels)} rows and keep any for training; "
            "pass more rows or a smaller fraction."
        )
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    if total > len(labels) - len(classes):
        raise ValueError(
            f"Cannot split a meta set of {fraction:.0%} ({total} rows) off {len(labels)} rows of {len(classes)} "
            "classes and keep a row of every class for training; pass more rows per class or a smaller fraction."
        )
    shares = counts * fraction
    take = np.floor(shares).astype(int)  # at most count - 1, as fraction < 1
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(classes))
    order = order[np.argsort(take[order] - shares[order], kind="stable")]  # largest remainder first
    while (missing := total - take.sum()) > 0:
        open_classes = order[take[order] < counts[order] - 1]
        take[open_classes[:missing]] += 1
    rows = [rng.choice(np.flatnonzero(inverse == k), size=take[k], replace=False) for k in range(len(classes))]
    return np.concatenate(rows).astype(int)
