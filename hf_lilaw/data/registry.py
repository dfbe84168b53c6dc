"""The registry of data set loaders behind `load_classification_dataset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from datasets import DatasetDict, concatenate_datasets

from ..core.columns import SAMPLE_ID_COLUMN
from .splits import with_meta_split

DatasetLoader = Callable[..., DatasetDict]
_REGISTRY: dict[str, DatasetLoader] = {}


def dataset_key(name: str) -> str:
    """The registry's spelling of a data set name (case and ``-`` / ``_`` ignored): ``"Fashion-MNIST"`` ->
    ``"fashion_mnist"``."""
    return name.lower().replace("-", "_")


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Registers a loader under ``name`` for `load_classification_dataset`.

    The loader takes ``meta_fraction`` and ``seed`` keywords (plus its own) and returns the finished
    `DatasetDict` (``train``/``meta``/``test``). Names are case-insensitive, ``-`` and ``_`` alike.

    A name ending in ``/`` registers a family of sets: ``"ucr/"`` makes ``"ucr/ArrowHead"`` call the loader
    with ``"ArrowHead"`` (as typed, case kept) as its first argument.
    """

    def decorator(loader: DatasetLoader) -> DatasetLoader:
        _REGISTRY[dataset_key(name)] = loader
        return loader

    return decorator


def available_datasets() -> list[str]:
    """Names `load_classification_dataset` accepts; a family such as ``"ucr/"`` takes a set name after the ``/``."""
    return sorted(_REGISTRY)


def load_classification_dataset(
    name: str, *, meta_fraction: float = 0.15, seed: int = 0, meta_seed: int | None = None, **kwargs: Any
) -> DatasetDict:
    """Loads a registered data set with ``train``/``meta``/``test`` splits built like the paper.

    Args:
        name: One of `available_datasets()`, e.g. ``"cifar100"``, the offline ``"digits"``, or a family
            member such as ``"ucr/ArrowHead"``; any other Hub id (``"org/name"``) or local folder is read as an
            image set by `load_image_dataset` (its ``image_column=`` / ``label_column=`` through ``kwargs``).
        meta_fraction: Share of the training split carved off as the meta split.
        seed: Seeds every split (and the generators of the synthetic sets).
        meta_seed: Seeds the meta carve alone: the meta split is carved again from the loader's training split
            (``train`` and ``meta`` together), every other split and the data kept; None (or ``seed``) keeps the
            loader's carve.
        **kwargs: Passed to the loader: e.g. ``size=`` for ``digits``, ``data_dir=`` for ``ecg5000``,
            ``cache_dir=``/``revision=`` for Hub sets (forwarded to `datasets.load_dataset`).
    """
    splits = _load(name, meta_fraction=meta_fraction, seed=seed, **kwargs)
    if meta_seed is None or meta_seed == seed:
        return splits
    # train and meta in sample_id order are the training split the loader carved, so meta_seed == seed would
    # give the loader's carve again
    pool = concatenate_datasets([splits["train"], splits["meta"]]).sort(SAMPLE_ID_COLUMN)
    others = {split: part for split, part in splits.items() if split not in ("train", "meta")}
    return with_meta_split(DatasetDict(train=pool, **others), meta_fraction=meta_fraction, seed=meta_seed)


def _load(name: str, *, meta_fraction: float, seed: int, **kwargs: Any) -> DatasetDict:
    if dataset_key(name) in _REGISTRY and not name.endswith("/"):  # a name registered whole, e.g. "org/set"
        return _REGISTRY[dataset_key(name)](meta_fraction=meta_fraction, seed=seed, **kwargs)
    family, slash, member = name.partition("/")
    key = dataset_key(family) + slash
    if key not in _REGISTRY:
        if slash or os.path.isdir(name):  # a Hub id ("org/name") or a local folder: read as an image set
            from .images import load_image_dataset

            return load_image_dataset(name, meta_fraction=meta_fraction, seed=seed, **kwargs)
        raise ValueError(
            f"Unknown data set {name!r}; pick one of {available_datasets()}, give an image set's Hub id ('org/name') "
            "or local folder, or register_dataset() yours."
        )
    if slash:
        if not member:
            raise ValueError(f"{name!r} names no set after the '/'; e.g. 'ucr/ArrowHead'.")
        return _REGISTRY[key](member, meta_fraction=meta_fraction, seed=seed, **kwargs)
    return _REGISTRY[key](meta_fraction=meta_fraction, seed=seed, **kwargs)
