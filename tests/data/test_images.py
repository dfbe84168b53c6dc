"""Any image set by Hub id or local folder (`load_image_dataset`), through `load_classification_dataset`'s names."""

from __future__ import annotations

import datasets
import numpy as np
import PIL.Image
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Image

from hf_lilaw.data import load_classification_dataset, load_image_dataset


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def test_a_local_class_folder_set_loads_with_its_class_names_and_a_carved_test_split(tmp_path):
    # train/<class>/*.png only: datasets' imagefolder names the classes by folder; the test split is carved
    for i in range(10):
        _png(tmp_path / "train" / "cat" / f"c{i}.png", 10 + i)
        _png(tmp_path / "train" / "dog" / f"d{i}.png", 100 + i)
    splits = load_classification_dataset(str(tmp_path), seed=0, meta_fraction=0.2, test_fraction=0.2)
    assert sorted(splits) == ["meta", "test", "train"]
    assert [len(splits[s]) for s in ("train", "meta", "test")] == [12, 4, 4]
    assert splits["train"].features["label"].names == ["cat", "dog"]
    for split in splits.values():  # each row's label is its folder's class: cats were drawn < 100
        for row in split:
            assert (np.asarray(row["image"])[0, 0, 0] >= 100) == (row["label"] == 1)
    ids = [i for s in splits.values() for i in s["sample_id"]]
    assert sorted(ids) == list(range(20))


def test_string_labels_without_a_classlabel_become_sorted_classes_and_columns_are_found(tmp_path):
    # a beans-like set: path column, Image column, string labels under "labels"; train and test files
    rng = np.random.default_rng(0)
    names = ["healthy", "angular_leaf_spot", "bean_rust"]

    def split(n, offset):
        labels = [names[i % 3] for i in range(n)]
        images = [PIL.Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)) for _ in range(n)]
        columns = {"image_file_path": [f"{offset + i}.jpg" for i in range(n)], "image": images, "labels": labels}
        features = datasets.Features({"image_file_path": datasets.Value("string"), "image": Image(), "labels": datasets.Value("string")})
        return Dataset.from_dict(columns, features=features)

    for name, part in {"train": split(30, 0), "test": split(9, 100)}.items():
        part.to_parquet(str(tmp_path / f"{name}.parquet"))
    splits = load_classification_dataset(str(tmp_path), seed=1, meta_fraction=0.2)
    assert splits["train"].features["label"].names == sorted(names)
    assert isinstance(splits["test"].features["image"], Image)
    assert splits["test"]["label"] == [sorted(names).index(names[i % 3]) for i in range(9)]
    assert splits["train"].column_names == ["image", "label", "sample_id"]


def test_two_classlabel_columns_are_refused_naming_label_column_and_the_chosen_one_is_used(monkeypatch):
    raw = Dataset.from_dict(
        {"img": [PIL.Image.new("RGB", (2, 2))] * 20, "fine": [i % 4 for i in range(20)], "coarse": [i % 2 for i in range(20)]},
        features=datasets.Features({"img": Image(), "fine": ClassLabel(num_classes=4), "coarse": ClassLabel(num_classes=2)}),
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: DatasetDict(train=raw, test=raw))
    with pytest.raises(ValueError, match=r"2 columns of a ClassLabel feature: \['fine', 'coarse'\].*pass label_column="):
        load_image_dataset("org/set")
    splits = load_classification_dataset("org/set", label_column="coarse", seed=0)
    assert splits["test"]["label"] == [i % 2 for i in range(20)]
    assert splits["test"].features["label"].num_classes == 2


def test_unknown_names_without_a_slash_still_name_the_registered_sets():
    with pytest.raises(ValueError, match=r"Unknown data set 'cifar1O'.*'digits'.*Hub id \('org/name'\)"):
        load_classification_dataset("cifar1O")
