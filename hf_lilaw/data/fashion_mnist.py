"""Fashion-MNIST from its original IDX files (offline), or from the Hub when no files are found."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, NamedSplit

from .registry import register_dataset
from .splits import finish_splits

FASHION_MNIST_REPO = "zalando-datasets/fashion_mnist"
FASHION_MNIST_DIR_ENV = "HF_LILAW_FASHION_MNIST_DIR"
# Where the Debian/Ubuntu package dataset-fashion-mnist installs the files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# Spelled as in the Hub set's ClassLabel, so both sources give identical features.
FASHION_MNIST_CLASS_NAMES = (
    "T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_FEATURES = Features({"image": Image(), "label": ClassLabel(names=list(FASHION_MNIST_CLASS_NAMES))})

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08


def _file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_files(directory: Path) -> bool:
    return all(_file(directory, name) is not None for names in _FILES.values() for name in names)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file of unsigned bytes (gzipped or not) into a uint8 array of the shape its header gives.

    Raises a ValueError naming the file when the magic number, the element type or the length is wrong.
    """
    path = Path(path)
    with path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: its magic number must start with two zero bytes.")
    if raw[2] != _IDX_UBYTE:
        raise ValueError(
            f"{path} holds IDX element type 0x{raw[2]:02x}; Fashion-MNIST files hold unsigned bytes (0x08)."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path} has a truncated IDX header ({ndim} dimensions, {len(raw)} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(
            f"{path} holds {len(raw) - header} data bytes, but its header announces shape {shape} "
            f"({int(np.prod(shape))} bytes); the file is truncated or corrupt: download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_name, label_name = _FILES[split]
    image_path, label_path = _file(directory, image_name), _file(directory, label_name)
    if image_path is None or label_path is None:
        missing = image_name if image_path is None else label_name
        raise FileNotFoundError(f"{directory} has no {missing} (or {missing}.gz), one of the Fashion-MNIST IDX files.")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path} must hold N x 28 x 28 images, got shape {images.shape}; is it an image file?")
    if labels.ndim != 1:
        raise ValueError(f"{label_path} must hold a 1-D label array, got shape {labels.shape}; is it a label file?")
    if len(labels) != len(images):
        raise ValueError(f"{label_path} holds {len(labels)} labels for the {len(images)} images of {image_path}.")
    if len(labels) and labels.max() >= 10:
        raise ValueError(f"{label_path} holds label {int(labels.max())}; Fashion-MNIST labels are 0..9.")
    return images, labels.astype(np.int64)


def _local_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The directory to read, or None for the Hub; an explicitly named directory must hold the files."""
    if data_dir is not None:
        source, directory = "data_dir", Path(data_dir)
    elif os.environ.get(FASHION_MNIST_DIR_ENV):
        source, directory = f"${FASHION_MNIST_DIR_ENV}", Path(os.environ[FASHION_MNIST_DIR_ENV])
    else:
        return FASHION_MNIST_SYSTEM_DIR if _has_files(FASHION_MNIST_SYSTEM_DIR) else None
    if not _has_files(directory):
        raise FileNotFoundError(
            f"{source}={str(directory)!r} does not hold the four Fashion-MNIST IDX files "
            f"({', '.join(name for names in _FILES.values() for name in names)}, each optionally .gz); "
            "point it to the directory that does."
        )
    return directory


def fashion_mnist_arrays(
    *, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as arrays, straight from the IDX files: ``(x_train, y_train, x_test, y_test)``.

    Images are uint8 ``N x 28 x 28``, labels int64; the files are found like `load_fashion_mnist` finds
    them, but there is no Hub fallback: without files this raises a FileNotFoundError saying where to get them.
    """
    directory = _local_dir(data_dir)
    if directory is None:
        raise FileNotFoundError(
            f"No Fashion-MNIST IDX files found: install the Debian/Ubuntu package dataset-fashion-mnist (files in "
            f"{FASHION_MNIST_SYSTEM_DIR}), or set ${FASHION_MNIST_DIR_ENV} or data_dir= to a directory holding them; "
            "load_fashion_mnist() can read the Hub copy instead."
        )
    (x_train, y_train), (x_test, y_test) = (_read_split(directory, split) for split in ("train", "test"))
    return x_train, y_train, x_test, y_test


def _dataset_from_arrays(images: np.ndarray, labels: np.ndarray, *, split: str) -> Dataset:
    # named like the Hub's splits, so the test-split guard of hf_lilaw.noise sees the test split
    return Dataset.from_dict(
        {"image": list(images), "label": labels.tolist()}, features=FASHION_MNIST_FEATURES, split=NamedSplit(split)
    )


def load_fashion_mnist(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
    revision: str | None = None,
) -> DatasetDict:
    """Fashion-MNIST (Zalando): ``train`` (60,000) and ``test`` (10,000) 28×28 grey images of 10 clothing classes.

    Reads the original IDX files (gzipped or not) from ``data_dir``, else from ``$HF_LILAW_FASHION_MNIST_DIR``,
    else from ``/usr/share/datasets/fashion-mnist`` when the Debian/Ubuntu package ``dataset-fashion-mnist``
    installed them there; with none of these, downloads ``zalando-datasets/fashion_mnist`` from the Hub. Both
    sources give the same columns and features: ``image`` (`datasets.Image`, mode ``"L"``) and ``label``
    (`ClassLabel` with the Hub's class names, `FASHION_MNIST_CLASS_NAMES`). Building the Dataset from the
    files encodes every image as PNG, which takes a few seconds; `fashion_mnist_arrays` skips that.

    Args:
        data_dir: A directory holding the four IDX files; an error, not a download, when they are missing.
        cache_dir: For the Hub download only (`datasets.load_dataset`'s ``cache_dir``).
        revision: For the Hub download only, the data set revision.
    """
    directory = _local_dir(data_dir)
    if directory is not None:
        return DatasetDict(
            {split: _dataset_from_arrays(*_read_split(directory, split), split=split) for split in _FILES}
        )
    raw = datasets.load_dataset(FASHION_MNIST_REPO, cache_dir=cache_dir, revision=revision)
    out = {}
    for split in _FILES:
        part = raw[split].select_columns(["image", "label"])
        out[split] = part if part.features == FASHION_MNIST_FEATURES else part.cast(FASHION_MNIST_FEATURES)
    return DatasetDict(out)


@register_dataset("fashion_mnist")
def _load_fashion_mnist_splits(*, meta_fraction: float = 0.15, seed: int = 0, **kwargs: Any) -> DatasetDict:
    """`load_fashion_mnist` (``data_dir=``, ``cache_dir=``, ``revision=``) with the meta split carved from train."""
    return finish_splits(load_fashion_mnist(**kwargs), meta_fraction=meta_fraction, seed=seed)
