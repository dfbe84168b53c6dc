"""The paper's splits (§4.1): a seeded, class-stratified ``meta`` split carved from ``train``, and a ``test``
carve for sources that ship none."""

from __future__ import annotations

import copy

from datasets import Dataset, DatasetDict, NamedSplit

from ..core.columns import with_sample_id
from ..core.splits import split_meta_set


def with_meta_split(
    dataset: DatasetDict, *, meta_fraction: float = 0.15, seed: int = 0, label_column: str | None = None
) -> DatasetDict:
    """Adds a ``meta`` split carved from ``train`` by `split_meta_set`; other splits keep their rows.

    The carve is seeded and class-stratified: per class, the meta split holds the class's share of
    ``meta_fraction`` to within one sample. A ``sample_id`` column is added first to every split that lacks
    one, so meta rows stay traceable to their position in the original training split. Every split is named
    after its key (`Dataset.split`), so `add_label_noise` and `add_input_noise` refuse ``test``.
    ``label_column`` is found automatically (``label``, ``labels`` or ``label_ids``) when None.
    """
    if "train" not in dataset:
        raise ValueError(f"Need a 'train' split to carve the meta split from, got {list(dataset)}.")
    if "meta" in dataset:
        raise ValueError("The dataset already has a 'meta' split; drop it or use it as it is.")
    dataset = DatasetDict({name: with_sample_id(split) for name, split in dataset.items()})
    train, meta = split_meta_set(dataset["train"], fraction=meta_fraction, seed=seed, label_column=label_column)
    others = {name: split for name, split in dataset.items() if name != "train"}
    splits = {"train": train, "meta": meta, **others}
    return DatasetDict({name: _named(split, name) for name, split in splits.items()})


def _named(split: Dataset, name: str) -> Dataset:
    """``split`` with `Dataset.split` set to ``name``: ``from_dict`` leaves it None and ``select`` keeps the parent's,
    yet the test-split guard of `hf_lilaw.noise` reads it."""
    if split.split is not None and str(split.split) == name:
        return split
    try:
        named_split = NamedSplit(name)
    except ValueError:  # a key datasets cannot take as a split name (e.g. "val-1") keeps the name it has
        return split
    named = copy.deepcopy(split)  # as datasets' own transforms copy: the Arrow tables are shared, not copied
    named._split = named_split  # datasets has no public setter
    return named


def finish_splits(
    dataset: DatasetDict, *, meta_fraction: float, seed: int, test_fraction: float | None = None
) -> DatasetDict:
    """Carves the test split when the source has none, then the meta split."""
    if "test" not in dataset:
        if test_fraction is None:
            raise ValueError("The source has no test split; pass test_fraction=... to carve one.")
        # the same seeded, class-stratified carve as the meta split
        train, test = split_meta_set(with_sample_id(dataset["train"]), fraction=test_fraction, seed=seed)
        dataset = DatasetDict({**dataset, "train": train, "test": test})
    return with_meta_split(dataset, meta_fraction=meta_fraction, seed=seed)
