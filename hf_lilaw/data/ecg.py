"""ECG5000 heartbeats: the UCR archive files, and a seeded synthetic stand-in shaped like them (offline)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .registry import register_dataset
from .splits import finish_splits

# ECG5000 class shares (2,919 / 1,767 / 96 / 194 / 24 of 5,000 beats).
_ECG5000_SHARES = (0.5838, 0.3534, 0.0192, 0.0388, 0.0048)
ECG5000_CLASS_NAMES = ("normal", "r_on_t_pvc", "pvc", "sp_or_eb", "unclassified")
# The fewest samples per class with which the seeded stratified test (20 %) and meta (15 %) carves each keep one.
_MIN_PER_CLASS = 8


def _ecg_template(k: int, num_classes: int, t: np.ndarray) -> np.ndarray:
    """A P wave, a QRS complex whose place, width and sign depend on the class, and a T wave."""

    def bump(center: float, width: float, amp: float) -> np.ndarray:
        return amp * np.exp(-0.5 * ((t - center) / width) ** 2)

    qrs = 0.25 + 0.35 * k / max(num_classes - 1, 1)
    sign = 1.0 if k % 2 == 0 else -1.0
    width = 0.015 + 0.02 * (k % 3)
    return (
        bump(0.1, 0.03, 0.15)
        + sign * bump(qrs, width, 1.0)
        - bump(qrs + 0.04, 0.012, 0.3)
        + bump(qrs + 0.3, 0.06, 0.25 * (1 + k % 3))
    )


@register_dataset("synthetic_ecg")
def load_synthetic_ecg(
    *,
    num_samples: int = 5000,
    length: int = 140,
    num_classes: int = 5,
    noise_std: float = 0.15,
    test_fraction: float = 0.2,
    meta_fraction: float = 0.15,
    seed: int = 0,
) -> DatasetDict:
    """A seeded, class-imbalanced heartbeat-like set shaped like ECG5000 (5 classes, 140 steps).

    Each class has its own waveform (P wave, QRS complex at a class-specific place, width and polarity,
    T wave); each sample adds a random shift of up to ±5 steps, amplitude jitter, baseline wander and
    Gaussian noise, then is z-normalised like the UCR series. Class shares follow ECG5000 for 5 classes
    and halve from class to class otherwise. Every class gets at least 8 samples, so that at the default
    ``test_fraction`` and ``meta_fraction`` each of ``train``, ``meta`` and ``test`` sees it: where a class's share
    falls short, every class gets the 8 first and the rest is spread by the shares.
    """
    if num_classes < 2 or length < 16:
        raise ValueError("Need num_classes >= 2 and length >= 16.")
    if num_samples < _MIN_PER_CLASS * num_classes:
        raise ValueError(
            f"num_samples must be at least {_MIN_PER_CLASS} per class ({_MIN_PER_CLASS * num_classes} for "
            f"{num_classes} classes), got {num_samples}."
        )
    rng = np.random.default_rng(seed)
    shares = np.asarray(_ECG5000_SHARES if num_classes == 5 else 0.5 ** np.arange(num_classes))
    shares = shares / shares.sum()
    counts = np.floor(shares * num_samples).astype(int)
    if counts.min() < _MIN_PER_CLASS:
        counts = _MIN_PER_CLASS + np.floor(shares * (num_samples - _MIN_PER_CLASS * num_classes)).astype(int)
    counts[0] += num_samples - counts.sum()
    labels = rng.permutation(np.repeat(np.arange(num_classes), counts))

    t = np.linspace(0.0, 1.0, length)
    templates = np.stack([_ecg_template(k, num_classes, t) for k in range(num_classes)])
    series = templates[labels] * rng.normal(1.0, 0.15, (num_samples, 1))
    shifts = rng.integers(-5, 6, num_samples)
    series = np.stack([np.roll(s, d) for s, d in zip(series, shifts, strict=True)])
    phase = rng.uniform(0, 2 * np.pi, (num_samples, 1))
    series += 0.1 * np.sin(2 * np.pi * t + phase) + rng.normal(0.0, noise_std, series.shape)
    series = (series - series.mean(1, keepdims=True)) / series.std(1, keepdims=True)

    names = list(ECG5000_CLASS_NAMES) if num_classes == 5 else [f"class_{k}" for k in range(num_classes)]
    features = Features({"series": List(Value("float32")), "label": ClassLabel(names=names)})
    train = Dataset.from_dict(
        {"series": series.astype(np.float32).tolist(), "label": labels.tolist()}, features=features
    )
    return finish_splits(DatasetDict(train=train), meta_fraction=meta_fraction, seed=seed, test_fraction=test_fraction)


@register_dataset("ecg5000")
def load_ecg5000(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    data_files: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    meta_fraction: float = 0.15,
    seed: int = 0,
    **load_kwargs: Any,
) -> DatasetDict:
    """ECG5000 from the UCR archive (500 train / 4,500 test beats of 140 steps, 5 classes).

    Reads the archive's text files with `datasets`' csv builder: one row per series, the class 1..5 in
    the first column (mapped to 0..4), no header. The UCR 2018 ``.tsv`` files are tab separated; the
    ``.txt`` files of timeseriesclassification.com are whitespace separated (picked automatically).
    The official split is kept: ``test`` untouched, ``meta`` carved from the 500 training beats.

    Args:
        data_dir: Folder or URL holding ``ECG5000_TRAIN.tsv`` and ``ECG5000_TEST.tsv``.
        data_files: ``{"train": ..., "test": ...}`` paths or URLs instead of ``data_dir``.
        delimiter: Column separator; ``"\\t"`` for ``.tsv`` files, runs of whitespace otherwise.
        **load_kwargs: Passed to `datasets.load_dataset` (e.g. ``cache_dir``).
    """
    if data_files is None:
        if data_dir is None:
            raise ValueError(
                "ECG5000 is read from the UCR archive files: download them "
                "(www.cs.ucr.edu/~eamonn/time_series_data_2018) and pass "
                "data_dir=<folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv>, or "
                "data_files={'train': ..., 'test': ...}; for an offline stand-in use 'synthetic_ecg'."
            )
        base = str(data_dir).rstrip("/")
        data_files = {"train": f"{base}/ECG5000_TRAIN.tsv", "test": f"{base}/ECG5000_TEST.tsv"}
    if delimiter is None:
        delimiter = "\t" if str(data_files["train"]).endswith(".tsv") else r"\s+"
    length = 140
    steps = [f"t{i}" for i in range(length)]
    raw = datasets.load_dataset(
        "csv", data_files=dict(data_files), delimiter=delimiter, column_names=["target", *steps], **load_kwargs
    )
    for split, rows in raw.items():
        found = np.unique(rows["target"])
        if not np.isin(found, np.arange(1, 6)).all():
            raise ValueError(
                f"{data_files[split]}: ECG5000's first column must hold the classes 1..5 (the UCR archive's), found "
                f"{found.tolist()[:10]}. Map the file's labels to 1..5 (a 0-based copy: add 1) before loading."
            )
    features = Features({"series": List(Value("float32")), "label": ClassLabel(names=list(ECG5000_CLASS_NAMES))})

    def to_series(batch: dict[str, list]) -> dict[str, list]:
        values = np.stack([np.asarray(batch[c], dtype=np.float32) for c in steps], axis=1)
        return {"series": values.tolist(), "label": (np.rint(batch["target"]).astype(int) - 1).tolist()}

    normalised = raw.map(to_series, batched=True, remove_columns=raw["train"].column_names, features=features)
    return finish_splits(normalised, meta_fraction=meta_fraction, seed=seed)
