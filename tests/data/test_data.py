"""Data loaders and transforms, all offline: Hub paths run against monkeypatched loaders."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Image
from PIL import Image as PILImage
from transformers import ViTImageProcessor, default_data_collator

from hf_lilaw import data
from hf_lilaw.data import (
    finish_splits,
    image_transforms,
    load_classification_dataset,
    load_digits_images,
    load_synthetic_adult,
    load_synthetic_ecg,
    vector_transform,
    with_meta_split,
)


@pytest.fixture(scope="module")
def digits() -> DatasetDict:
    return load_digits_images(seed=0)


def _counts(split: Dataset) -> Counter:
    return Counter(split["label"][:])


def test_digits_split_sizes_and_columns(digits):
    assert set(digits) == {"train", "meta", "test"}
    # 1,797 images: ceil(0.2 · 1797) = 360 test, ceil(0.15 · 1437) = 216 meta
    assert {k: len(v) for k, v in digits.items()} == {"train": 1221, "meta": 216, "test": 360}
    assert isinstance(digits["train"].features["image"], Image)
    assert digits["train"].features["label"].names == [str(d) for d in range(10)]
    first = digits["train"][0]["image"]
    assert first.size == (8, 8) and first.mode == "L"


def test_digits_meta_is_stratified_and_disjoint(digits):
    train, meta, test = (digits[k] for k in ("train", "meta", "test"))
    pool = _counts(train) + _counts(meta)
    for label, total in pool.items():
        assert abs(_counts(meta)[label] - 0.15 * total) <= 1
    full = pool + _counts(test)
    for label, total in full.items():
        assert abs(_counts(test)[label] - 0.2 * total) <= 1
    ids = [set(split["sample_id"]) for split in (train, meta, test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert set().union(*ids) == set(range(1797))


def test_digits_test_split_ignores_meta_fraction(digits):
    other = load_digits_images(seed=0, meta_fraction=0.3, size=16, rgb=True)
    assert other["test"]["sample_id"] == digits["test"]["sample_id"]
    assert len(other["meta"]) == 432  # ceil(0.3 · 1437)
    image = other["train"][0]["image"]
    assert image.size == (16, 16) and image.mode == "RGB"


def test_synthetic_ecg_is_imbalanced_seeded_and_learnable():
    ecg = load_synthetic_ecg(num_samples=600, seed=3)
    again = load_synthetic_ecg(num_samples=600, seed=3)
    assert ecg["meta"]["series"] == again["meta"]["series"]
    assert {k: len(v) for k, v in ecg.items()} == {"train": 408, "meta": 72, "test": 120}
    counts = _counts(ecg["train"]) + _counts(ecg["meta"]) + _counts(ecg["test"])
    # the last class's share (2.88) is short of 8: 8 each first, the other 560 by the ECG5000 shares (class 0 takes
    # the rounding rest)
    assert [counts[k] for k in range(5)] == [338, 205, 18, 29, 10]
    assert all(len(_counts(ecg[k])) == 5 for k in ("train", "meta", "test"))
    train = np.asarray(ecg["train"]["series"])
    assert train.shape == (408, 140)
    np.testing.assert_allclose(train.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(1), 1, atol=1e-4)
    # distinct class shapes: nearest class mean already separates them
    labels = np.asarray(ecg["train"]["label"])
    centroids = np.stack([train[labels == k].mean(0) for k in range(5)])
    test = np.asarray(ecg["test"]["series"])
    predicted = ((test[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == np.asarray(ecg["test"]["label"])).mean() > 0.9


def test_synthetic_ecg_gives_every_class_the_minimum_first_and_each_split_sees_it():
    ecg = load_synthetic_ecg(num_samples=40, length=32, seed=0)  # the old code took class 0's share down to 2
    counts = _counts(ecg["train"]) + _counts(ecg["meta"]) + _counts(ecg["test"])
    assert [counts[k] for k in range(5)] == [8] * 5
    assert all(len(_counts(ecg[k])) == 5 for k in ("train", "meta", "test"))
    # sizes whose shares all reach the minimum keep the counts they had (the example's default)
    default = load_synthetic_ecg(num_samples=2000, length=32, seed=0)
    counts = sum((_counts(default[k]) for k in ("train", "meta", "test")), Counter())
    assert [counts[k] for k in range(5)] == [1170, 706, 38, 77, 9]
    with pytest.raises(ValueError, match=r"at least 8 per class \(40 for 5 classes\), got 30"):
        load_synthetic_ecg(num_samples=30, seed=0)


def test_synthetic_adult_has_group_gap():
    adult = load_synthetic_adult(num_samples=2000, seed=0)
    assert {k: len(v) for k, v in adult.items()} == {"train": 1360, "meta": 240, "test": 400}
    assert adult["train"].features["sex"].names == ["Female", "Male"]
    assert adult["train"].features["label"].names == ["<=50K", ">50K"]
    pool = datasets.concatenate_datasets([adult["train"], adult["meta"]])
    x = np.asarray(pool["features"])
    assert x.shape[1] == 6  # 4 standardised numeric + one-hot sex
    np.testing.assert_allclose(x[:, :4].mean(0), 0, atol=1e-5)  # encoder fit on train + meta only
    np.testing.assert_array_equal(x[:, 5], np.asarray(pool["sex"]))
    y, sex = np.asarray(pool["label"]), np.asarray(pool["sex"])
    assert y[sex == 1].mean() - y[sex == 0].mean() > 0.1


def _guard_sees_only_test(splits: DatasetDict) -> None:
    from hf_lilaw import add_input_noise, add_label_noise

    for name, split in splits.items():
        assert split.split == name
        part = split.select(range(min(len(split), 20)))
        if name == "test":
            with pytest.raises(ValueError, match="Refusing to add noise to the test split"):
                add_label_noise(part, noise_type="uniform", rate=0.4, seed=0)
        else:
            assert add_label_noise(part, noise_type="uniform", rate=0.4, seed=0)["is_noisy"].count(True) == 8
    if "test" in splits and "series" in splits["test"].column_names:
        with pytest.raises(ValueError, match="Refusing to add noise to the test split"):
            add_input_noise(splits["test"], noise_type="ts_covariate", rate=0.4, seed=0)


def test_offline_loaders_name_their_splits_so_test_noise_is_refused(digits):
    """from_dict and select leave Dataset.split None, so add_label_noise used to flip these test labels."""
    for splits in (
        digits,
        load_synthetic_ecg(num_samples=200, seed=0),
        load_synthetic_adult(num_samples=200, seed=0),
        data.with_meta_split(DatasetDict(train=digits["train"], validation=digits["test"]), seed=0),
    ):
        _guard_sees_only_test(splits)
    # the rows are those of the unnamed splits
    again = load_digits_images(seed=0)
    assert {k: v["sample_id"][:] for k, v in again.items()} == {k: v["sample_id"][:] for k, v in digits.items()}
    transformed = digits["train"].with_transform(lambda b: {"double": [2 * y for y in b["label"]]})
    meta = data.with_meta_split(DatasetDict(train=transformed), seed=0)["meta"]
    plain = data.with_meta_split(DatasetDict(train=digits["train"]), seed=0)["meta"]
    assert meta.split == "meta" and meta[0] == {"double": 2 * plain[0]["label"]}


def test_meta_seed_carves_the_meta_split_again_and_keeps_the_rest(digits):
    moved = load_classification_dataset("digits", seed=0, meta_seed=1)
    assert moved["test"]["sample_id"] == digits["test"]["sample_id"]  # the test carve follows seed, not meta_seed
    pool = sorted(digits["train"]["sample_id"][:] + digits["meta"]["sample_id"][:])
    assert sorted(moved["train"]["sample_id"][:] + moved["meta"]["sample_id"][:]) == pool
    assert len(moved["meta"]) == len(digits["meta"]) and moved["meta"]["sample_id"] != digits["meta"]["sample_id"]
    assert {k: str(v.split) for k, v in moved.items()} == {"train": "train", "meta": "meta", "test": "test"}
    again = load_classification_dataset("digits", seed=0, meta_seed=0, meta_fraction=0.3)
    assert again["meta"]["sample_id"] == load_digits_images(seed=0, meta_fraction=0.3)["meta"]["sample_id"]


# ----------------------------------------------------------------------------- Hub paths, faked


def _fake_images(n: int, num_classes: int, *, image: str, label: str, extra: dict | None = None) -> Dataset:
    rng = np.random.default_rng(n)
    images = [PILImage.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)) for _ in range(n)]
    return Dataset.from_dict({image: images, label: [i % num_classes for i in range(n)], **(extra or {})})


@pytest.mark.parametrize(
    ("name", "repo", "image", "label", "num_classes"),
    [
        ("cifar10", "uoft-cs/cifar10", "img", "label", 10),
        ("cifar100", "uoft-cs/cifar100", "img", "fine_label", 100),
        ("mnist", "ylecun/mnist", "image", "label", 10),
    ],
)
def test_hub_image_loaders_normalise_columns(monkeypatch, name, repo, image, label, num_classes):
    calls = []
    extra = {"coarse_label": [0] * 40} if name == "cifar100" else {"unused": ["x"] * 40}
    fake = DatasetDict(
        train=_fake_images(40, 4, image=image, label=label, extra=extra),
        test=_fake_images(10, 4, image=image, label=label, extra={k: v[:10] for k, v in extra.items()}),
    )

    def fake_load_dataset(path, *args, **kwargs):
        calls.append((path, kwargs))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = load_classification_dataset(name, seed=0, cache_dir="somewhere")
    assert calls == [(repo, {"cache_dir": "somewhere"})]
    expected = (
        ["image", "label", "coarse_label", "sample_id"] if name == "cifar100" else ["image", "label", "sample_id"]
    )
    assert out["train"].column_names == expected
    assert out["train"].features["label"] == ClassLabel(num_classes=num_classes)
    assert isinstance(out["test"].features["image"], Image)
    assert (len(out["train"]), len(out["meta"])) == (34, 6)
    assert sorted(Counter(out["meta"]["label"]).values()) == [1, 1, 2, 2]  # 15 % of 10 per class, ±1
    # test untouched: same rows, same order
    assert out["test"]["label"] == fake["test"][label]
    assert out["test"]["sample_id"] == list(range(10))


def test_medmnist_reads_the_npz(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 72), ("val", 9), ("test", 18)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 9).reshape(n, 1)
    path = tmp_path / "pathmnist.npz"
    np.savez(path, **arrays)
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs["repo_type"]))
        return str(path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    out = load_classification_dataset("pathmnist")
    assert calls == [("albertvillanova/medmnist-v2", "data/pathmnist.npz", "dataset")]
    assert {k: len(v) for k, v in out.items()} == {"train": 61, "meta": 11, "validation": 9, "test": 18}
    assert out["train"].features["label"] == ClassLabel(num_classes=9)
    assert out["test"]["label"] == list(np.arange(18) % 9)
    np.testing.assert_array_equal(np.asarray(out["test"][3]["image"]), arrays["test_images"][3])


def _write_ucr(path, labels, rng):
    rows = np.column_stack([labels, rng.normal(size=(len(labels), 140))])
    np.savetxt(path, rows, delimiter="\t", fmt="%.6f")
    return rows


def test_ecg5000_reads_ucr_tsv(tmp_path):
    rng = np.random.default_rng(0)
    _write_ucr(tmp_path / "ECG5000_TRAIN.tsv", np.repeat(np.arange(1, 6), 8), rng)
    test_rows = _write_ucr(tmp_path / "ECG5000_TEST.tsv", np.tile(np.arange(1, 6), 2), rng)
    out = load_classification_dataset("ecg5000", data_dir=tmp_path, cache_dir=str(tmp_path / "cache"))
    assert {k: len(v) for k, v in out.items()} == {"train": 34, "meta": 6, "test": 10}
    assert out["test"]["label"] == [0, 1, 2, 3, 4] * 2
    assert out["test"].features["label"].names[0] == "normal"
    np.testing.assert_allclose(np.asarray(out["test"]["series"]), test_rows[:, 1:], atol=1e-6)


def test_ecg5000_refuses_labels_outside_1_to_5(tmp_path):
    rng = np.random.default_rng(0)
    _write_ucr(tmp_path / "ECG5000_TRAIN.tsv", np.repeat(np.arange(0, 5), 8), rng)  # a 0-based copy
    _write_ucr(tmp_path / "ECG5000_TEST.tsv", np.tile(np.arange(1, 6), 2), rng)
    found = r"ECG5000_TRAIN\.tsv: .* classes 1\.\.5 .*found \[0\.0, 1\.0, 2\.0, 3\.0, 4\.0\]\. .*add 1"
    with pytest.raises(ValueError, match=found):
        load_classification_dataset("ecg5000", data_dir=tmp_path, cache_dir=str(tmp_path / "cache"))


def test_ecg5000_without_files_says_what_to_pass():
    with pytest.raises(ValueError, match="data_dir="):
        load_classification_dataset("ecg5000")


def test_adult_encodes_and_keeps_groups(monkeypatch):
    n = 60
    rng = np.random.default_rng(0)
    raw = {
        "age": rng.integers(17, 90, n).tolist(),
        "workclass": [" Private", " ?"] * (n // 2),
        "fnlwgt": rng.integers(1000, 10000, n).tolist(),
        "education": ["HS-grad"] * n,
        "education.num": rng.integers(1, 16, n).tolist(),
        "marital.status": ["Never-married", "Divorced", "Married"] * (n // 3),
        "occupation": ["Sales"] * n,
        "relationship": ["Husband"] * n,
        "race": ["White", "Black", "Other"] * (n // 3),
        "sex": [" Male", "Female"] * (n // 2),
        "capital.gain": [0] * n,
        "capital.loss": [0] * n,
        "hours.per.week": rng.integers(1, 99, n).tolist(),
        "native.country": ["United-States"] * n,
        "income": ["<=50K", "<=50K", ">50K."] * (n // 3),
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: DatasetDict(train=Dataset.from_dict(raw)))
    out = load_classification_dataset("adult", seed=0)
    assert {k: len(v) for k, v in out.items()} == {"train": 40, "meta": 8, "test": 12}
    assert out["train"].column_names == ["features", "label", "sex", "race", "sample_id"]
    assert out["train"].features["sex"].names == ["Female", "Male"]
    assert out["train"].features["race"].names == ["Black", "Other", "White"]
    # 5 numeric + workclass 2 + marital 3 + occupation 1 + relationship 1 + race 3 + sex 2 + country 1
    assert len(out["train"][0]["features"]) == 18
    pool = datasets.concatenate_datasets([out["train"], out["meta"], out["test"]])
    order = np.argsort(pool["sample_id"][:])
    assert np.asarray(pool["label"][:])[order].tolist() == [0, 0, 1] * (n // 3)
    assert np.asarray(pool["sex"][:])[order].tolist() == [1, 0] * (n // 2)
    # another encoding of the income column turned every row into class 0 (<=50K) without a word
    for values in ([0, 1], ["small", "large"]):
        other = {**raw, "income": values * (n // 2)}
        monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: DatasetDict(train=Dataset.from_dict(other)))
        with pytest.raises(ValueError, match=r"'income' column holds .*not only '>50K' / '<=50K'"):
            load_classification_dataset("adult", seed=0)
    renamed = {("class" if k == "income" else k): v for k, v in raw.items()}
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: DatasetDict(train=Dataset.from_dict(renamed)))
    with pytest.raises(ValueError, match=r"train split has no 'income' column"):
        load_classification_dataset("adult", seed=0)


def test_registered_names_load_in_any_spelling(monkeypatch):
    from hf_lilaw.data import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # registrations stay in this test
    whole = DatasetDict(train=Dataset.from_dict({"label": [0]}))
    data.register_dataset("myorg/noisy_digits")(lambda *, meta_fraction, seed: whole)
    data.register_dataset("family/")(lambda member, *, meta_fraction, seed: DatasetDict(train=Dataset.from_dict({"m": [member]})))
    # a name holding "/" was read as a family and refused, while the error listed it among the choices
    assert data.load_classification_dataset("MyOrg/Noisy-Digits") is whole
    assert data.load_classification_dataset("Family/ArrowHead")["train"]["m"] == ["ArrowHead"]  # member as typed
    with pytest.raises(ValueError, match="names no set after the '/'"):
        data.load_classification_dataset("family/")


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="digits"):
        load_classification_dataset("imagenet")


# ----------------------------------------------------------------------------- transforms


@pytest.fixture()
def tiny_images() -> Dataset:
    images = [PILImage.fromarray(np.full((8, 8), v, dtype=np.uint8), mode="L") for v in (255, 0, 128, 64)]
    return Dataset.from_dict(
        {"image": images, "label": [0, 1, 2, 3], "is_noisy": [False, True, False, False], "sample_id": [7, 8, 9, 10]}
    )


def test_image_transforms_with_a_local_processor(tiny_images):
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    evaluation = tiny_images.with_transform(image_transforms(processor, train=False))
    row = evaluation[0]
    assert row["pixel_values"].shape == (3, 32, 32)
    torch.testing.assert_close(row["pixel_values"], torch.ones(3, 32, 32))  # (1 − 0.5) / 0.5
    torch.testing.assert_close(evaluation[1]["pixel_values"], -torch.ones(3, 32, 32))
    assert (row["labels"], row["sample_id"], evaluation[1]["is_noisy"]) == (0, 7, True)
    batch = default_data_collator([evaluation[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    assert batch["labels"].tolist() == [0, 1, 2, 3]

    training = tiny_images.with_transform(image_transforms(processor, train=True))
    pixels = training[0]["pixel_values"]
    assert pixels.shape == (3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1


def test_image_transforms_with_a_timm_model(tiny_images):
    import timm

    model = timm.create_model("test_vit", pretrained=False, num_classes=4)
    for train in (False, True):
        row = tiny_images.with_transform(image_transforms(model, train=train))[0]
        assert row["pixel_values"].shape == (3, 160, 160)
        assert row["labels"] == 0


def test_image_transforms_rejects_a_bare_model():
    with pytest.raises(ValueError, match="processor"):
        image_transforms(torch.nn.Linear(2, 2), train=False)


def test_vector_transform_feeds_the_collator():
    ecg = load_synthetic_ecg(num_samples=60, length=32, seed=0)["train"]
    ecg = ecg.with_transform(vector_transform())
    batch = default_data_collator([ecg[i] for i in range(5)])
    assert batch["input_values"].shape == (5, 32) and batch["input_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long
    assert "sample_id" in batch
    assert data.PASSTHROUGH_COLUMNS == ("sample_id", "is_noisy", "clean_label")


def test_splits_find_a_labels_column_as_the_test_carve_does():
    # the test carve found 'labels', then the meta carve raised "Columns ['label'] not in the dataset"
    rows = Dataset.from_dict({"x": list(range(40)), "labels": [0, 1, 1, 1] * 10})
    out = finish_splits(DatasetDict(train=rows), meta_fraction=0.25, seed=0, test_fraction=0.25)
    assert {name: len(split) for name, split in out.items()} == {"train": 22, "meta": 8, "test": 10}
    for split in out.values():  # stratified: a quarter of each split is class 0, to within one row
        assert abs(split["labels"].count(0) - len(split) / 4) < 1
    ids = [set(split["sample_id"]) for split in out.values()]
    assert set.union(*ids) == set(range(40)) and sum(map(len, ids)) == 40  # disjoint, every row kept
    meta = with_meta_split(DatasetDict(train=rows), meta_fraction=0.25, seed=0)["meta"]
    assert len(meta) == 10 and meta["labels"].count(0) in (2, 3)
