"""Data sets for the examples, split like the LiLAW paper (§4.1), plus model-input transforms.

Every loader returns a `datasets.DatasetDict` with

- ``train``: the training data minus the meta split,
- ``meta``: a seeded, class-stratified split carved from the training data (15 % by default, paper A.11);
  LiLAW draws its validation batches from it,
- ``test``: the data set's own test split, untouched (sets without one get a seeded, stratified 20 % carve
  made *before* the meta carve),
- ``validation``: only where the source ships one (MedMNIST), untouched,

a ``label`` column of type `ClassLabel`, a ``sample_id`` column (the row's position in its source split,
so train and meta ids never collide), and one input column: ``image`` (`datasets.Image`), ``series``
(list of floats) or ``features`` (list of floats, tabular data already encoded).

Offline sets (no network): ``digits`` (scikit-learn's bundled 8×8 digits), ``synthetic_ecg`` and
``synthetic_adult`` (seeded NumPy generators). Hub sets: ``cifar10``, ``cifar100``, ``mnist``,
``fashion_mnist``, the MedMNIST v2 2D sets by their flags (``pathmnist``, ``dermamnist``, ...),
``ecg5000`` (UCR files you point to) and ``adult``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

from ..core.columns import BOOKKEEPING_COLUMNS, SAMPLE_ID_COLUMN, with_sample_id
from ..core.splits import split_meta_set

PASSTHROUGH_COLUMNS: tuple[str, ...] = BOOKKEEPING_COLUMNS
"""Columns the transforms below copy through unchanged when a dataset has them."""

DatasetLoader = Callable[..., DatasetDict]
_REGISTRY: dict[str, DatasetLoader] = {}


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------
def with_meta_split(
    dataset: DatasetDict, *, meta_fraction: float = 0.15, seed: int = 0, label_column: str = "label"
) -> DatasetDict:
    """Adds a ``meta`` split carved from ``train`` by `split_meta_set`; other splits are kept as they are.

    The carve is seeded and class-stratified: per class, the meta split holds the class's share of
    ``meta_fraction`` to within one sample. A ``sample_id`` column is added first to every split that lacks
    one, so meta rows stay traceable to their position in the original training split.
    """
    if "train" not in dataset:
        raise ValueError(f"Need a 'train' split to carve the meta split from, got {list(dataset)}.")
    if "meta" in dataset:
        raise ValueError("The dataset already has a 'meta' split; drop it or use it as it is.")
    dataset = DatasetDict({name: with_sample_id(split) for name, split in dataset.items()})
    train, meta = split_meta_set(dataset["train"], fraction=meta_fraction, seed=seed, label_column=label_column)
    others = {name: split for name, split in dataset.items() if name != "train"}
    return DatasetDict({"train": train, "meta": meta, **others})


def _finish(
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


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------
def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Registers a loader under ``name`` for `load_classification_dataset`.

    The loader takes ``meta_fraction`` and ``seed`` keywords (plus its own) and returns the finished
    `DatasetDict` (``train``/``meta``/``test``).
    """

    def decorator(loader: DatasetLoader) -> DatasetLoader:
        _REGISTRY[name] = loader
        return loader

    return decorator


def available_datasets() -> list[str]:
    """Names `load_classification_dataset` accepts."""
    return sorted(_REGISTRY)


def load_classification_dataset(name: str, *, meta_fraction: float = 0.15, seed: int = 0, **kwargs: Any) -> DatasetDict:
    """Loads a registered data set with ``train``/``meta``/``test`` splits built like the paper.

    Args:
        name: One of `available_datasets()`, e.g. ``"cifar100"`` or the offline ``"digits"``.
        meta_fraction: Share of the training split carved off as the meta split.
        seed: Seeds every split (and the generators of the synthetic sets).
        **kwargs: Passed to the loader: e.g. ``size=`` for ``digits``, ``data_dir=`` for ``ecg5000``,
            ``cache_dir=``/``revision=`` for Hub sets (forwarded to `datasets.load_dataset`).
    """
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"Unknown data set {name!r}; pick one of {available_datasets()} or register_dataset() yours.")
    return _REGISTRY[key](meta_fraction=meta_fraction, seed=seed, **kwargs)


# --------------------------------------------------------------------------------------------------
# Offline sets
# --------------------------------------------------------------------------------------------------
@register_dataset("digits")
def load_digits_images(
    *,
    size: int | None = None,
    rgb: bool = False,
    test_fraction: float = 0.2,
    meta_fraction: float = 0.15,
    seed: int = 0,
) -> DatasetDict:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes) as an ``image`` column.

    The set has no official test split: a seeded, stratified ``test_fraction`` is carved first.

    Args:
        size: Upscales the images (bilinear) to ``size``×``size``; the 8×8 originals when None.
        rgb: Stores 3-channel images (the grey value repeated) instead of mode ``"L"``.
    """
    from PIL import Image as PILImage
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = [PILImage.fromarray(p, mode="L") for p in pixels]
    if size is not None:
        images = [im.resize((size, size), PILImage.Resampling.BILINEAR) for im in images]
    if rgb:
        images = [im.convert("RGB") for im in images]
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    train = Dataset.from_dict({"image": images, "label": bunch.target.tolist()}, features=features)
    return _finish(DatasetDict(train=train), meta_fraction=meta_fraction, seed=seed, test_fraction=test_fraction)


# ECG5000 class shares (2,919 / 1,767 / 96 / 194 / 24 of 5,000 beats).
_ECG5000_SHARES = (0.5838, 0.3534, 0.0192, 0.0388, 0.0048)
ECG5000_CLASS_NAMES = ("normal", "r_on_t_pvc", "pvc", "sp_or_eb", "unclassified")


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
    and halve from class to class otherwise; every class gets at least 6 samples so each split sees it.
    """
    if num_classes < 2 or length < 16:
        raise ValueError("Need num_classes >= 2 and length >= 16.")
    if num_samples < 6 * num_classes:
        raise ValueError(f"num_samples must be at least 6 per class ({6 * num_classes}).")
    rng = np.random.default_rng(seed)
    shares = np.asarray(_ECG5000_SHARES if num_classes == 5 else 0.5 ** np.arange(num_classes))
    counts = np.maximum(np.floor(shares / shares.sum() * num_samples).astype(int), 6)
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
    return _finish(DatasetDict(train=train), meta_fraction=meta_fraction, seed=seed, test_fraction=test_fraction)


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
        y = frame[label].astype(str).str.strip().str.rstrip(".")  # adult.test writes ">50K."
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


# --------------------------------------------------------------------------------------------------
# Hub sets
# --------------------------------------------------------------------------------------------------
def _normalise_image_split(
    split: Dataset, *, image: str, label: str, num_classes: int, keep: Sequence[str] = ()
) -> Dataset:
    split = split.select_columns([image, label, *keep])
    if image != "image":
        split = split.rename_column(image, "image")
    if label != "label":
        split = split.rename_column(label, "label")
    if not isinstance(split.features["image"], Image):
        split = split.cast_column("image", Image())
    if not isinstance(split.features["label"], ClassLabel):
        split = split.cast_column("label", ClassLabel(num_classes=num_classes))
    return split


def _hub_image_loader(
    repo: str, *, image: str, label: str, num_classes: int, keep: Sequence[str] = ()
) -> DatasetLoader:
    def loader(*, meta_fraction: float = 0.15, seed: int = 0, **load_kwargs: Any) -> DatasetDict:
        raw = datasets.load_dataset(repo, **load_kwargs)
        normalised = DatasetDict(
            {
                name: _normalise_image_split(split, image=image, label=label, num_classes=num_classes, keep=keep)
                for name, split in raw.items()
            }
        )
        return _finish(normalised, meta_fraction=meta_fraction, seed=seed)

    loader.__doc__ = f"`{repo}` from the Hub (image column {image!r}, label {label!r}, {num_classes} classes)."
    return loader


register_dataset("cifar10")(_hub_image_loader("uoft-cs/cifar10", image="img", label="label", num_classes=10))
# coarse_label (the 20 superclasses) is kept: noise.py derives CIFAR-100 instance noise from it.
register_dataset("cifar100")(
    _hub_image_loader("uoft-cs/cifar100", image="img", label="fine_label", num_classes=100, keep=("coarse_label",))
)
register_dataset("mnist")(_hub_image_loader("ylecun/mnist", image="image", label="label", num_classes=10))
register_dataset("fashion_mnist")(
    _hub_image_loader("zalando-datasets/fashion_mnist", image="image", label="label", num_classes=10)
)

MEDMNIST_REPO = "albertvillanova/medmnist-v2"
# The ten multi-class/binary 2D sets of the paper (Table 2) plus RetinaMNIST (ordinal, used as 5 classes).
# ChestMNIST is multi-label and left out.
MEDMNIST_NUM_CLASSES = {
    "pathmnist": 9,
    "dermamnist": 7,
    "octmnist": 4,
    "pneumoniamnist": 2,
    "retinamnist": 5,
    "breastmnist": 2,
    "bloodmnist": 8,
    "tissuemnist": 8,
    "organamnist": 11,
    "organcmnist": 11,
    "organsmnist": 11,
}


def load_medmnist(
    flag: str,
    *,
    data_file: str | os.PathLike[str] | None = None,
    meta_fraction: float = 0.15,
    seed: int = 0,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """A MedMNIST v2 2D set (28×28) from the npz file the MedMNIST authors publish.

    `albertvillanova/medmnist-v2` stores one npz per set under ``data/<flag>.npz`` next to a loading
    script, which `datasets` no longer runs, so the npz is fetched with `huggingface_hub` and read with
    NumPy. The npz layout is MedMNIST's own: ``{train,val,test}_images`` (N×28×28 or N×28×28×3 uint8) and
    ``{train,val,test}_labels`` (N×1). The official ``val`` split is returned untouched as ``validation``
    (e.g. for early stopping); the meta split is carved from ``train`` like for every other set.

    Args:
        flag: The set's lower-case name, e.g. ``"pathmnist"``.
        data_file: A local npz (e.g. downloaded from zenodo via medmnist.com) instead of the Hub.
    """
    if flag not in MEDMNIST_NUM_CLASSES:
        raise ValueError(f"Unknown MedMNIST 2D set {flag!r}; pick one of {sorted(MEDMNIST_NUM_CLASSES)}.")
    if data_file is None:
        import huggingface_hub

        data_file = huggingface_hub.hf_hub_download(
            MEDMNIST_REPO, f"data/{flag}.npz", repo_type="dataset", revision=revision, cache_dir=cache_dir
        )
    arrays = np.load(data_file)
    features = Features({"image": Image(), "label": ClassLabel(num_classes=MEDMNIST_NUM_CLASSES[flag])})
    splits = {}
    for source, target in (("train", "train"), ("val", "validation"), ("test", "test")):
        labels = arrays[f"{source}_labels"].reshape(len(arrays[f"{source}_labels"]), -1)
        if labels.shape[1] != 1:
            raise ValueError(
                f"{flag} is multi-label ({labels.shape[1]} labels per image); only single-label sets are supported."
            )
        splits[target] = Dataset.from_dict(
            {"image": list(arrays[f"{source}_images"]), "label": labels[:, 0].astype(np.int64).tolist()},
            features=features,
        )
    return _finish(DatasetDict(splits), meta_fraction=meta_fraction, seed=seed)


for _flag in MEDMNIST_NUM_CLASSES:
    register_dataset(_flag)(functools.partial(load_medmnist, _flag))


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
    features = Features({"series": List(Value("float32")), "label": ClassLabel(names=list(ECG5000_CLASS_NAMES))})

    def to_series(batch: dict[str, list]) -> dict[str, list]:
        values = np.stack([np.asarray(batch[c], dtype=np.float32) for c in steps], axis=1)
        return {"series": values.tolist(), "label": (np.rint(batch["target"]).astype(int) - 1).tolist()}

    normalised = raw.map(to_series, batched=True, remove_columns=raw["train"].column_names, features=features)
    return _finish(normalised, meta_fraction=meta_fraction, seed=seed)


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


# --------------------------------------------------------------------------------------------------
# Model inputs
# --------------------------------------------------------------------------------------------------
def _passthrough(batch: Mapping[str, list], keep: Sequence[str]) -> dict[str, list]:
    return {c: batch[c] for c in keep if c in batch}


def _processor_size(processor: Any) -> tuple[int, int] | int:
    """Training crop size of an image processor: ``crop_size`` if it crops, else ``size``."""
    for attr in ("crop_size", "size"):
        size = getattr(processor, attr, None)
        if size is None or (attr == "crop_size" and not getattr(processor, "do_center_crop", False)):
            continue
        get = size.get if isinstance(size, Mapping) else lambda key, s=size: getattr(s, key, None)
        if get("height") and get("width"):
            return (int(get("height")), int(get("width")))
        if get("shortest_edge"):
            return int(get("shortest_edge"))
    raise ValueError(f"Cannot read an input size from {type(processor).__name__}; pass a processor with size=....")


def image_transforms(
    model_or_processor: Any,
    *,
    train: bool,
    image_column: str = "image",
    label_column: str = "label",
    keep_columns: Sequence[str] = PASSTHROUGH_COLUMNS,
) -> Callable[[dict[str, list]], dict[str, list]]:
    """Builds a batch transform for `Dataset.set_transform` that yields ``pixel_values`` and ``labels``.

    The preprocessing is the model's own: a transformers image processor (an instance, or a name/path for
    `AutoImageProcessor.from_pretrained`), or, for a timm model (also inside a transformers
    ``TimmWrapper`` model), timm's data config (`resolve_data_config` + `create_transform`). Evaluation
    uses the processor itself (timm: its eval transform); training adds the augmentation of the
    transformers image-classification example (random resized crop + horizontal flip, resized to the
    processor's size, normalised with its mean/std; timm: its training transform). Grey images are
    converted to RGB when the model expects three channels. ``keep_columns`` present in the batch are
    passed through (``sample_id``, ``is_noisy``, ``clean_label`` by default).

    Args:
        model_or_processor: An image processor, a Hub name or local path, a timm model, or a transformers
            model wrapping a timm model or saved with its processor.
        train: Training (augmented) or evaluation transform.
    """
    processor, timm_model = _resolve_preprocessing(model_or_processor)
    if timm_model is not None:
        from timm.data import create_transform, resolve_data_config

        config = resolve_data_config(model=timm_model)
        tv_transform = create_transform(**config, is_training=train)
        channels = config["input_size"][0]
        process = lambda images: [tv_transform(im) for im in images]  # noqa: E731
    else:
        mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
        channels = len(mean) if mean is not None and not np.isscalar(mean) else 3
        if train:
            from torchvision import transforms as T

            steps: list[Any] = [T.RandomResizedCrop(_processor_size(processor)), T.RandomHorizontalFlip(), T.ToTensor()]
            if getattr(processor, "do_normalize", True) and mean is not None:
                steps.append(T.Normalize(mean, std))
            tv_transform = T.Compose(steps)
            process = lambda images: [tv_transform(im) for im in images]  # noqa: E731
        else:
            process = lambda images: list(processor(images, return_tensors="pt")["pixel_values"])  # noqa: E731
    mode = "RGB" if channels == 3 else "L"

    def transform(batch: dict[str, list]) -> dict[str, list]:
        images = [im if im.mode == mode else im.convert(mode) for im in batch[image_column]]
        return {"pixel_values": process(images), "labels": batch[label_column], **_passthrough(batch, keep_columns)}

    return transform


def _resolve_preprocessing(obj: Any) -> tuple[Any, Any]:
    """Returns ``(image_processor, None)`` or ``(None, timm_model)``."""
    import torch

    if isinstance(obj, (str, os.PathLike)):
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(obj), None
    if isinstance(obj, torch.nn.Module):
        inner = getattr(obj, "timm_model", obj)
        if hasattr(inner, "pretrained_cfg"):
            return None, inner
        name = getattr(getattr(obj, "config", None), "name_or_path", "")
        if name:
            from transformers import AutoImageProcessor

            return AutoImageProcessor.from_pretrained(name), None
        raise ValueError(
            f"{type(obj).__name__} carries no image processor; pass its processor instead, "
            "e.g. image_transforms(ViTImageProcessor(size=...), train=...)."
        )
    if callable(obj) and hasattr(obj, "image_mean"):
        return obj, None
    raise TypeError(f"Expected an image processor, a model or a name, got {type(obj).__name__}.")


def vector_transform(
    *,
    input_column: str = "series",
    label_column: str = "label",
    keep_columns: Sequence[str] = PASSTHROUGH_COLUMNS,
) -> Callable[[dict[str, list]], dict[str, Any]]:
    """Batch transform for series (``series``) or encoded tabular rows (``features``) → ``input_values``.

    Use with `Dataset.set_transform`; the Trainer's default collator stacks the float tensors into
    ``(batch, length)`` for `StackedLSTMForTimeSeriesClassification` or ``(batch, features)`` for
    `MLPForTabularClassification`. All rows of one data set must have the same length.
    """
    import torch

    def transform(batch: dict[str, list]) -> dict[str, Any]:
        values = [torch.as_tensor(np.asarray(v, dtype=np.float32)) for v in batch[input_column]]
        return {"input_values": values, "labels": batch[label_column], **_passthrough(batch, keep_columns)}

    return transform
