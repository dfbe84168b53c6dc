"""load_ucr against aeon's own arrays, on the sets aeon bundles (offline)."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
from datasets import ClassLabel

from hf_lilaw.data import available_datasets, load_classification_dataset, load_ucr, vector_transform

aeon_datasets = pytest.importorskip("aeon.datasets")


@pytest.fixture(scope="module")
def arrowhead_aeon():
    train = aeon_datasets.load_classification("ArrowHead", split="train")
    test = aeon_datasets.load_classification("ArrowHead", split="test")
    return train, test


@pytest.fixture(scope="module")
def arrowhead_raw():
    return load_ucr("ArrowHead", z_normalise=False, seed=0)


def test_arrowhead_matches_aeon(arrowhead_raw, arrowhead_aeon):
    (x_train, y_train), (x_test, y_test) = arrowhead_aeon
    assert x_train.shape == (36, 1, 251) and x_test.shape == (175, 1, 251)
    out = arrowhead_raw
    assert set(out) == {"train", "meta", "test"}
    assert {k: len(v) for k, v in out.items()} == {"train": 30, "meta": 6, "test": 175}  # ceil(0.15 · 36) = 6
    assert out["test"].features["label"] == ClassLabel(names=["0", "1", "2"])
    assert out["test"].column_names == ["series", "label", "sample_id"]
    # test split untouched, in file order: values (float32) and labels as aeon reads them
    test_series = np.asarray(out["test"]["series"][:])
    assert test_series.shape == (175, 251)
    np.testing.assert_array_equal(test_series, x_test[:, 0].astype(np.float32))
    np.testing.assert_allclose(test_series[0, :3], x_test[0, 0, :3], rtol=1e-6)
    assert out["test"]["label"][:] == [int(v) for v in y_test]
    # train + meta are the archive's training split, class counts kept
    ids = sorted(out["train"]["sample_id"][:] + out["meta"]["sample_id"][:])
    assert ids == list(range(36))
    counts = Counter(out["train"]["label"][:]) + Counter(out["meta"]["label"][:])
    assert counts == Counter(int(v) for v in y_train)
    first = out["train"]["sample_id"][:][0]
    np.testing.assert_array_equal(out["train"]["series"][:][0], x_train[first, 0].astype(np.float32))


def test_default_z_normalises_each_series(arrowhead_aeon):
    (_, _), (x_test, _) = arrowhead_aeon
    out = load_classification_dataset("ucr/ArrowHead", seed=0)
    series = np.asarray(out["test"]["series"][:], dtype=np.float64)
    np.testing.assert_allclose(series.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(series.std(1), 1, atol=1e-5)
    x = x_test[:, 0]
    expected = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    np.testing.assert_allclose(series, expected, atol=1e-5)


def test_multivariate_is_time_first_and_feeds_the_collator():
    from transformers import default_data_collator

    x_test, _ = aeon_datasets.load_classification("BasicMotions", split="test")
    out = load_ucr("basicmotions", z_normalise=False)  # archive names are matched case-insensitively
    assert out["test"].features["label"].names == ["Standing", "Running", "Walking", "Badminton"]
    series = np.asarray(out["test"]["series"][:])
    assert series.shape == (40, 100, 6)  # (cases, steps, channels); aeon is (cases, channels, steps)
    np.testing.assert_array_equal(series, x_test.transpose(0, 2, 1).astype(np.float32))
    batch = default_data_collator([out["test"].with_transform(vector_transform())[i] for i in range(3)])
    assert batch["input_values"].shape == (3, 100, 6)


def test_archive_equal_length_version_and_resampling(arrowhead_aeon):
    vowels = load_ucr("JapaneseVowels", z_normalise=False)  # the archive's equal-length (_eq) files
    assert np.asarray(vowels["test"]["series"][:]).shape == (370, 25, 12)
    (_, _), (x_test, _) = arrowhead_aeon
    short = np.asarray(load_ucr("ArrowHead", z_normalise=False, length=51)["test"]["series"][:])
    grid = np.linspace(0, 250, 51)  # every 5th step: resampling hits the original samples
    np.testing.assert_allclose(short, x_test[:, 0, ::5], rtol=1e-6)
    assert np.allclose(grid, np.arange(0, 251, 5))


def _write_ts(path, rows, labels):
    header = ["@problemName Toy", "@timeStamps false", "@missing false", "@univariate true",
              "@equalLength false", "@classLabel true low high", "@data"]  # fmt: skip
    body = [",".join(str(v) for v in row) + f":{label}" for row, label in zip(rows, labels, strict=True)]
    path.write_text("\n".join(header + body) + "\n")


def test_unequal_lengths_from_extract_path(tmp_path):
    (tmp_path / "Toy").mkdir()
    rows = [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [1.0, 3.0, 5.0, 7.0, 9.0]] * 4
    labels = ["low", "high", "low"] * 4
    for split in ("TRAIN", "TEST"):
        _write_ts(tmp_path / "Toy" / f"Toy_{split}.ts", rows, labels)
    native = load_ucr("Toy", extract_path=tmp_path, z_normalise=False, meta_fraction=0.25)
    assert native["test"].features["label"].names == ["low", "high"]
    assert native["test"]["series"][:3] == rows[:3] and native["test"]["label"][:3] == [0, 1, 0]
    fixed = load_ucr("Toy", extract_path=tmp_path, z_normalise=False, length=3, meta_fraction=0.25)
    assert fixed["test"]["series"][:3] == [[0.0, 1.5, 3.0], [4.0, 5.0, 6.0], [1.0, 5.0, 9.0]]


def test_test_split_is_named_so_noise_is_refused(arrowhead_raw):
    from hf_lilaw import add_input_noise, add_label_noise

    assert {k: str(v.split) for k, v in arrowhead_raw.items()} == {"train": "train", "meta": "meta", "test": "test"}
    with pytest.raises(ValueError, match="Refusing to add noise to the test split"):
        add_label_noise(arrowhead_raw["test"], noise_type="uniform", rate=0.4, seed=0)
    with pytest.raises(ValueError, match="Refusing to add noise to the test split"):
        add_input_noise(arrowhead_raw["test"], noise_type="ts_covariate", rate=0.4, seed=0)
    assert sum(add_label_noise(arrowhead_raw["train"], noise_type="uniform", rate=0.4, seed=0)["is_noisy"]) > 0

def test_meta_seed_gives_the_meta_carve_of_that_seed():
    """load_ucr's seed seeds only the meta carve: carving again at meta_seed must give the loader's carve at it."""
    moved = load_classification_dataset("ucr/ItalyPowerDemand", seed=0, meta_seed=2, meta_fraction=0.3)
    direct = load_classification_dataset("ucr/ItalyPowerDemand", seed=2, meta_fraction=0.3)
    for split in ("train", "meta", "test"):
        assert moved[split]["sample_id"] == direct[split]["sample_id"]
        assert moved[split]["label"] == direct[split]["label"] and moved[split]["series"] == direct[split]["series"]

def test_unknown_set_and_registry_errors():
    assert "ucr/" in available_datasets()
    with pytest.raises(ValueError, match=r"Unknown UCR/UEA classification set 'ArrowHeads'.*ArrowHead"):
        load_ucr("ArrowHeads")
    with pytest.raises(ValueError, match="names no set"):
        load_classification_dataset("ucr/")
    with pytest.raises(ValueError, match="length must be"):
        load_ucr("ArrowHead", length=1)


def test_missing_aeon_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'hf_lilaw\[timeseries\]'"):
        load_ucr("ArrowHead")


def test_class_names_and_order_are_the_archive_headers():
    """aeon lowercases class values and reads PickupGestureWiimoteZ's _eq file, which declares 1 10 2 ... 9."""
    pickup = load_ucr("PickupGestureWiimoteZ", seed=0)
    assert pickup["test"].features["label"].names == [str(k) for k in range(1, 11)]
    _, y_test = aeon_datasets.load_classification("PickupGestureWiimoteZ", split="test", load_equal_length=True)
    assert pickup["test"]["label"][:] == [int(v) - 1 for v in y_test]
    motions = load_ucr("BasicMotions", seed=0)
    assert motions["test"].features["label"].names == ["Standing", "Running", "Walking", "Badminton"]
    _, y_test = aeon_datasets.load_classification("BasicMotions", split="test")
    names = [n.lower() for n in motions["test"].features["label"].names]
    assert motions["test"]["label"][:] == [names.index(str(v).lower()) for v in y_test]
    # the recorded UCR benchmark's set keeps its label indices
    italy = load_ucr("ItalyPowerDemand", seed=0)
    _, y_test = aeon_datasets.load_classification("ItalyPowerDemand", split="test")
    assert italy["test"].features["label"].names == ["1", "2"]
    assert italy["test"]["label"][:] == [int(v) - 1 for v in y_test]


def test_ucr_2018_tsv_files_from_extract_path(tmp_path):
    """The UCR 2018 archive ships .tsv files only (class first, no header; shorter series NaN-padded at the end): they
    were unreadable (an unknown set, or aeon downloading over them); classes go in numeric order, "2" before "10"."""
    (tmp_path / "Toy").mkdir()
    labels = [10, 2, -1, 2, 10, -1] * 3
    rows = [[float(k), k + 1.0, k + 2.0, k + 3.0] for k in range(len(labels))]
    lines = [
        "\t".join([str(y), *(str(v) for v in row[: 3 if k == 1 else 4])] + (["NaN"] if k == 1 else []))
        for k, (y, row) in enumerate(zip(labels, rows, strict=True))
    ]
    for split in ("TRAIN", "TEST"):
        (tmp_path / "Toy" / f"Toy_{split}.tsv").write_text("\n".join(lines) + "\n")
    out = load_ucr("Toy", extract_path=tmp_path, z_normalise=False, meta_fraction=0.34)
    assert out["test"].features["label"].names == ["-1", "2", "10"]
    assert out["test"]["label"][:] == [{-1: 0, 2: 1, 10: 2}[y] for y in labels]
    assert out["test"]["series"][:3] == [rows[0], rows[1][:3], rows[2]]


def test_extract_path_files_spelled_otherwise_than_the_archive_are_read(tmp_path):
    """A user's copy named ``italypowerdemand/italypowerdemand_TRAIN.ts`` was resolved to the archive's spelling,
    which aeon then downloaded into extract_path (offline: a Zenodo error), never reading the user's files."""
    import shutil
    from importlib import resources
    from pathlib import Path

    bundled = Path(str(resources.files("aeon.datasets") / "data" / "ItalyPowerDemand"))
    own = tmp_path / "italypowerdemand"
    own.mkdir()
    shutil.copy(bundled / "ItalyPowerDemand_TEST.ts", own / "italypowerdemand_TEST.ts")
    lines = (bundled / "ItalyPowerDemand_TRAIN.ts").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("@data")) + 1
    (own / "italypowerdemand_TRAIN.ts").write_text("\n".join(lines[: start + 20]) + "\n")  # 20 of its 67 rows
    out = load_ucr("italypowerdemand", extract_path=tmp_path, seed=0)
    assert len(out["train"]) + len(out["meta"]) == 20 and len(out["test"]) == 1029
    assert out["test"].features["label"].names == ["1", "2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["italypowerdemand"]  # nothing downloaded beside it
