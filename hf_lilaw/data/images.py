"""Image classification sets from the Hub: CIFAR-10/100, MNIST and the MedMNIST v2 2D sets (Fashion-MNIST: `fashion_mnist`)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from .registry import DatasetLoader, register_dataset
from .splits import finish_splits


def _normalise_image_split(
    split: Dataset, *, image: str, label: str, num_classes: int | ClassLabel, keep: Sequence[str] = ()
) -> Dataset:
    split = split.select_columns([image, label, *keep])
    if image != "image":
        split = split.rename_column(image, "image")
    if label != "label":
        split = split.rename_column(label, "label")
    if not isinstance(split.features["image"], Image):
        split = split.cast_column("image", Image())
    if not isinstance(split.features["label"], ClassLabel):
        classes = num_classes if isinstance(num_classes, ClassLabel) else ClassLabel(num_classes=num_classes)
        if classes.names != [str(i) for i in range(classes.num_classes)]:  # string labels: names → ids
            split = split.map(lambda row: {"label": classes.str2int(str(row["label"]))})
        split = split.cast_column("label", classes)
    return split


def load_image_dataset(
    path: str,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    meta_fraction: float = 0.15,
    seed: int = 0,
    test_fraction: float = 0.2,
    **load_kwargs: Any,
) -> DatasetDict:
    """Any single-label image classification set `datasets.load_dataset` reads — a Hub id such as
    ``"AI-Lab-Makerere/beans"`` or a local folder (class sub-folders, or parquet/arrow files) — with the
    ``image``/``label``/``sample_id`` columns and ``train``/``meta``/``test`` splits of the registered sets.

    The image column is the split's one `datasets.Image` column and the label column its one `ClassLabel`
    column (else one named ``label`` or ``labels``) unless named. Labels without a `ClassLabel` get one: integer
    ids keep their values, other values become classes in sorted order. A set without a ``test`` split has one
    carved (``test_fraction``, seeded and stratified like the meta split); other splits (e.g. ``validation``)
    are kept as they come.
    """
    raw = datasets.load_dataset(path, **load_kwargs)
    if not isinstance(raw, DatasetDict) or "train" not in raw:
        raise ValueError(
            f"{path!r} loaded as {type(raw).__name__} with splits {list(getattr(raw, 'keys', list)())}: an image set "
            "needs a 'train' split; pass split names the loader understands (e.g. data_files={'train': ..., "
            "'test': ...})."
        )
    features = raw["train"].features
    image = image_column or _one_column(path, features, lambda f: isinstance(f, Image), "image", "an Image")
    label = label_column or _one_column(
        path, features, lambda f: isinstance(f, ClassLabel), "label", "a ClassLabel", fallback=("label", "labels")
    )
    for name, split in raw.items():
        missing = [c for c in (image, label) if c not in split.column_names]
        if missing:
            raise ValueError(
                f"The {name!r} split of {path!r} has no column {missing[0]!r} (columns: {split.column_names}); pass "
                "image_column= / label_column= (the example's --image_column / --label_column)."
            )
    classes = features[label]
    if not isinstance(classes, ClassLabel):
        values = sorted({v for split in raw.values() for v in split[label]}, key=lambda v: (str(type(v)), v))
        if any(v is None for v in values):
            raise ValueError(f"The {label!r} column of {path!r} has missing labels (None): drop those rows first.")
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            if values[0] < 0:
                raise ValueError(f"The {label!r} column of {path!r} holds negative ids ({values[0]}): map them to 0..n-1.")
            classes = ClassLabel(num_classes=int(values[-1]) + 1)
        else:
            classes = ClassLabel(names=sorted(str(v) for v in values))
    normalised = DatasetDict(
        {name: _normalise_image_split(split, image=image, label=label, num_classes=classes) for name, split in raw.items()}
    )
    return finish_splits(normalised, meta_fraction=meta_fraction, seed=seed, test_fraction=test_fraction)


def _one_column(path, features, is_kind, default, kind, fallback=()) -> str:
    found = [name for name, feature in features.items() if is_kind(feature)]
    if len(found) == 1:
        return found[0]
    if not found:
        named = [name for name in (default, *fallback) if name in features]
        if named:
            return named[0]
    argument = f"{default}_column"
    raise ValueError(
        f"{path!r}'s train split has {len(found) or 'no'} column{'s' if len(found) != 1 else ''} of {kind} feature"
        f"{': ' + str(found) if found else ''} (columns: {list(features)}): pass {argument}= (the example's "
        f"--{argument}) to say which one holds the {default}."
    )


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
        return finish_splits(normalised, meta_fraction=meta_fraction, seed=seed)

    loader.__doc__ = f"`{repo}` from the Hub (image column {image!r}, label {label!r}, {num_classes} classes)."
    return loader


register_dataset("cifar10")(_hub_image_loader("uoft-cs/cifar10", image="img", label="label", num_classes=10))
# coarse_label (the 20 superclasses) is kept for users; hf_lilaw.noise's "cifar100" instance rules use the same table.
register_dataset("cifar100")(
    _hub_image_loader("uoft-cs/cifar100", image="img", label="fine_label", num_classes=100, keep=("coarse_label",))
)
register_dataset("mnist")(_hub_image_loader("ylecun/mnist", image="image", label="label", num_classes=10))

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
    return finish_splits(DatasetDict(splits), meta_fraction=meta_fraction, seed=seed)


for _flag in MEDMNIST_NUM_CLASSES:
    register_dataset(_flag)(functools.partial(load_medmnist, _flag))
