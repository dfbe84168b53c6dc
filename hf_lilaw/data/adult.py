"""The Adult income task with its sensitive attributes: UCI Adult from the Hub, a seeded synthetic
look-alike (offline), and the tabular encoding both share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from ..core.columns import SAMPLE_ID_COLUMN
from .registry import register_dataset
from .splits import with_meta_split


@register_dataset("synthetic_adult")
def load_synthetic_adult(
    *,
    num_samples: int = 4000,
    test_fraction: float = 0.2,
    meta_fraction: float = 0.15,
    seed: int = 0,
) -> DatasetDict:
    """A seeded, Adult-like income task with a binary sensitive attribute ``sex`` (0 female, 1 male).

    Columns drawn like the census: ``age``, ``education_num``, ``hours_per_week`` (men work ~5 h more),
    ``capital_gain`` (mostly zero) and ``sex`` (67 % male). The label ``>50K`` is a logistic draw from
    those, with a direct +1.1 logit for men, so the positive rate is about 30 % for men and 11 % for women
    (Adult: 31 % / 11 %): a model trained on it shows a demographic-parity gap to measure.
    ``features`` holds the standardised numeric columns and the one-hot ``sex``.
    """
    import pandas as pd
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    n = num_samples
    male = rng.random(n) < 0.67
    frame = pd.DataFrame(
        {
            "age": np.clip(rng.normal(39, 13, n), 17, 90).round(),
            "education_num": np.clip(rng.normal(10, 2.5, n), 1, 16).round(),
            "hours_per_week": np.clip(rng.normal(38 + 5 * male, 11, n), 1, 99).round(),
            "capital_gain": np.where(rng.random(n) < 0.08, rng.lognormal(8.5, 1.0, n), 0.0).round(),
            "sex": np.where(male, "Male", "Female"),
        }
    )
    logit = (
        -9.8
        + 0.045 * frame["age"]
        + 0.38 * frame["education_num"]
        + 0.045 * frame["hours_per_week"]
        + 1.1 * male
        + 1.5 * (frame["capital_gain"] > 5000)
    )
    frame["income"] = np.where(rng.random(n) < expit(logit), ">50K", "<=50K")
    encoded = _encode_tabular(
        {"train": frame},
        numeric=["age", "education_num", "hours_per_week", "capital_gain"],
        categorical=["sex"],
        groups=["sex"],
        test_fraction=test_fraction,
        seed=seed,
    )
    return with_meta_split(encoded, meta_fraction=meta_fraction, seed=seed)


_INCOME_LABELS = ClassLabel(names=["<=50K", ">50K"])
_GROUP_NAMES = {"sex": ["Female", "Male"]}


def _encode_tabular(
    frames: Mapping[str, Any],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    groups: Sequence[str],
    test_fraction: float,
    seed: int,
    label: str = "income",
) -> DatasetDict:
    """Frames with an ``income`` column → ``features``/``label``/group columns, encoder fit on train only."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frames = dict(frames)
    for name, frame in frames.items():
        if label not in frame.columns:
            raise ValueError(
                f"The {name} split has no {label!r} column (columns: {list(frame.columns)}): the Adult loader needs "
                "the census income column, '>50K' / '<=50K'."
            )
        y = frame[label].astype(str).str.strip().str.rstrip(".")  # adult.test writes ">50K."
        other = sorted(set(y) - {">50K", "<=50K"})
        if other:  # anything else would silently become class 0 (<=50K)
            raise ValueError(
                f"The {name} split's {label!r} column holds {other[:5]}, not only '>50K' / '<=50K': the Adult loader "
                "reads the census encoding. Map the column to those two strings first."
            )
        frames[name] = frame.assign(**{label: (y == ">50K").astype(int)}).reset_index(drop=True)
    if "test" not in frames:
        # split_meta_set's seeded, stratified carve, done on the frame so the encoder only ever sees train rows
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(
            frames["train"], test_size=test_fraction, stratify=frames["train"][label], random_state=seed
        )
        frames = {"train": train.sort_index(), "test": test.sort_index()}

    encoder = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(numeric)),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(categorical)),
        ]
    ).fit(frames["train"])
    group_features = {
        g: ClassLabel(names=_GROUP_NAMES.get(g) or sorted(set().union(*(f[g] for f in frames.values()))))
        for g in groups
    }
    features = Features({"features": List(Value("float32")), "label": _INCOME_LABELS, **group_features})
    out = {}
    for name, frame in frames.items():
        columns = {
            "features": encoder.transform(frame).astype(np.float32).tolist(),
            "label": frame[label].tolist(),
            **{g: [group_features[g].str2int(v) for v in frame[g]] for g in groups},
        }
        # sample_id is the row's position in the source split, also for the carved test split
        out[name] = Dataset.from_dict(columns, features=features).add_column(
            SAMPLE_ID_COLUMN, frame.index.to_numpy(dtype=np.int64)
        )
    return DatasetDict(out)


@register_dataset("adult")
def load_adult(
    *,
    repo: str = "scikit-learn/adult-census-income",
    test_fraction: float = 0.2,
    meta_fraction: float = 0.15,
    seed: int = 0,
    **load_kwargs: Any,
) -> DatasetDict:
    """UCI Adult (census income > 50K) from the Hub, encoded for an MLP, with ``sex`` and ``race`` kept as groups.

    Column names are normalised (``education.num`` / ``education-num`` → ``education_num``). ``fnlwgt``
    (a census sampling weight, not a trait of the person) and ``education`` (duplicated by
    ``education_num``) are dropped; numeric columns are standardised and categorical ones one-hot encoded,
    with the encoder fit on the training split only. The Hub set ships only ``adult.data``, so a seeded,
    stratified ``test_fraction`` is carved as ``test`` (a ``test`` split, if present, is used as is).
    """
    import pandas as pd

    raw = datasets.load_dataset(repo, **load_kwargs)
    frames = {}
    for name, split in raw.items():
        frame = split.to_pandas()
        frame.columns = [c.strip().lower().replace(".", "_").replace("-", "_").replace(" ", "_") for c in frame.columns]
        frames[name] = frame.apply(lambda col: col.str.strip() if pd.api.types.is_string_dtype(col) else col)
    encoded = _encode_tabular(
        frames,
        numeric=["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"],
        categorical=["workclass", "marital_status", "occupation", "relationship", "race", "sex", "native_country"],
        groups=["sex", "race"],
        test_fraction=test_fraction,
        seed=seed,
    )
    return with_meta_split(encoded, meta_fraction=meta_fraction, seed=seed)
