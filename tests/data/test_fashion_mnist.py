"""Fashion-MNIST: the IDX reader on small files written here, the real files when installed, the Hub fallback faked."""

from __future__ import annotations

import gzip
import struct
from collections import Counter

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

from hf_lilaw.data import (
    FASHION_MNIST_CLASS_NAMES,
    fashion_mnist_arrays,
    load_classification_dataset,
    load_fashion_mnist,
)
from hf_lilaw.data import fashion_mnist as fm

HUB_FEATURES = Features(
    {
        "image": Image(),
        "label": ClassLabel(
            names=["T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
        ),
    }
)  # fmt: skip
SYSTEM_FILES = fm._has_files(fm.FASHION_MNIST_SYSTEM_DIR)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write(directory, name: str, payload: bytes, *, gz: bool) -> None:
    if gz:
        (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
    else:
        (directory / name).write_bytes(payload)


def _small_set(directory, *, gz: bool, n_train: int = 40, n_test: int = 20):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        image_name, label_name = fm._FILES[split]
        _write(directory, image_name, _idx(images), gz=gz)
        _write(directory, label_name, _idx(labels), gz=gz)
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(fm.FASHION_MNIST_DIR_ENV, raising=False)


@pytest.mark.parametrize("gz", [True, False])
def test_load_reads_small_idx_files(tmp_path, gz):
    arrays = _small_set(tmp_path, gz=gz)
    out = load_fashion_mnist(data_dir=tmp_path)
    assert set(out) == {"train", "test"}
    for split, (images, labels) in arrays.items():
        assert out[split].features == HUB_FEATURES
        assert out[split]["label"] == labels.tolist()
        for row in (0, len(labels) - 1):
            image = out[split][row]["image"]
            assert image.mode == "L" and image.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(image), images[row])
    x_train, y_train, x_test, y_test = fashion_mnist_arrays(data_dir=tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_test, arrays["test"][1])
    assert (x_train.dtype, y_train.dtype, x_test.shape) == (np.uint8, np.int64, (20, 28, 28))


def test_environment_variable_names_the_directory(tmp_path, monkeypatch):
    arrays = _small_set(tmp_path, gz=True, n_train=30)
    monkeypatch.setenv(fm.FASHION_MNIST_DIR_ENV, str(tmp_path))
    np.testing.assert_array_equal(fashion_mnist_arrays()[1], arrays["train"][1])
    monkeypatch.setenv(fm.FASHION_MNIST_DIR_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=fm.FASHION_MNIST_DIR_ENV):
        load_fashion_mnist()


def test_registry_adds_meta_split_and_sample_ids(tmp_path):
    _small_set(tmp_path, gz=True, n_train=100)
    out = load_classification_dataset("fashion-mnist", data_dir=tmp_path, seed=0)
    assert {k: len(v) for k, v in out.items()} == {"train": 85, "meta": 15, "test": 20}
    assert Counter(out["train"]["label"]) + Counter(out["meta"]["label"]) == Counter({k: 10 for k in range(10)})
    assert sorted([*out["train"]["sample_id"], *out["meta"]["sample_id"]]) == list(range(100))
    assert list(out["test"]["sample_id"]) == list(range(20))

    from hf_lilaw import add_label_noise

    # IDX-built splits carry their names like the Hub's, so the test-split guard sees them
    assert {k: str(v.split) for k, v in out.items()} == {"train": "train", "meta": "meta", "test": "test"}
    assert str(load_fashion_mnist(data_dir=tmp_path)["test"].split) == "test"
    with pytest.raises(ValueError, match="Refusing to add noise to the test split"):
        add_label_noise(out["test"], noise_type="uniform", rate=0.4, seed=0)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", "not an IDX file"),
        (bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\x00\x00\x00\x00", "element type 0x0d"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 1), "truncated IDX header"),
        (_idx(np.zeros((2, 28, 28), np.uint8))[:-1], "truncated or corrupt"),
        (_idx(np.zeros((2, 28, 27), np.uint8)), r"N x 28 x 28 images, got shape \(2, 28, 27\)"),
    ],
)
def test_bad_image_files_are_refused(tmp_path, payload, match):
    _small_set(tmp_path, gz=False)
    _write(tmp_path, "train-images-idx3-ubyte", payload, gz=False)
    with pytest.raises(ValueError, match=match):
        fashion_mnist_arrays(data_dir=tmp_path)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros(39, np.uint8), "39 labels for the 40 images"),
        (np.full(40, 10, np.uint8), "label 10"),
        (np.zeros((40, 1), np.uint8), "1-D label array"),
    ],
)
def test_bad_label_files_are_refused(tmp_path, labels, match):
    _small_set(tmp_path, gz=True)
    _write(tmp_path, "train-labels-idx1-ubyte", _idx(labels), gz=True)
    with pytest.raises(ValueError, match=match):
        load_fashion_mnist(data_dir=tmp_path)


def test_missing_files_are_an_error_not_a_download(tmp_path, monkeypatch):
    _small_set(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(FileNotFoundError, match="data_dir=.*t10k-labels-idx1-ubyte"):
        load_fashion_mnist(data_dir=tmp_path)
    monkeypatch.setattr(fm, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist_arrays()


def test_hub_fallback_without_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "FASHION_MNIST_SYSTEM_DIR", tmp_path)  # empty: no files
    rng = np.random.default_rng(1)
    images = [PILImage.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L") for _ in range(12)]
    hub = DatasetDict(
        {
            split: Dataset.from_dict(
                {"image": images[:n], "label": list(range(n)), "extra": ["x"] * n},
                features=Features({**HUB_FEATURES, "extra": datasets.Value("string")}),
            )
            for split, n in (("train", 10), ("test", 5))
        }
    )
    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = load_fashion_mnist(cache_dir="somewhere", revision="abc")
    assert calls == [("zalando-datasets/fashion_mnist", {"cache_dir": "somewhere", "revision": "abc"})]
    assert {k: (len(v), v.features) for k, v in out.items()} == {"train": (10, HUB_FEATURES), "test": (5, HUB_FEATURES)}
    np.testing.assert_array_equal(np.asarray(out["train"][3]["image"]), np.asarray(images[3]))
    assert out["test"]["label"] == [0, 1, 2, 3, 4]


def test_class_names_are_the_hubs():
    assert list(FASHION_MNIST_CLASS_NAMES) == HUB_FEATURES["label"].names


@pytest.mark.skipif(not SYSTEM_FILES, reason="Debian package dataset-fashion-mnist not installed")
def test_real_files():
    x_train, y_train, x_test, y_test = fashion_mnist_arrays()
    assert (x_train.shape, x_test.shape) == ((60000, 28, 28), (10000, 28, 28))
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    # reference values of the published files
    assert (int(y_train[0]), int(x_train[0].sum(dtype=np.int64)), int(y_test[0])) == (9, 76247, 9)
    assert int(x_train.sum(dtype=np.int64)) == 3431114169
    # the full Dataset is built the same way: check it on a slice (PNG-encoding all 70,000 images is slow)
    part = fm._dataset_from_arrays(x_train[:20], y_train[:20], split="train")
    assert part.features == HUB_FEATURES
    np.testing.assert_array_equal(np.asarray(part[7]["image"]), x_train[7])
    assert part["label"] == y_train[:20].tolist()
