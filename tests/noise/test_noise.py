import io
import sys
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from datasets import Array2D, Array3D, ClassLabel, Dataset, DatasetDict, Features, Image, List, Value, load_from_disk
from PIL import Image as PILImage

from hf_lilaw.noise import (
    CIFAR100_COARSE_LABELS,
    IMAGE_NOISE_TYPES,
    INPUT_NOISE_TYPES,
    LABEL_NOISE_TYPES,
    NOISE_TYPES,
    PAIR_FLIP_MAPS,
    RULE_MAPS,
    TIME_SERIES_NOISE_TYPES,
    add_input_noise,
    add_label_noise,
    noisy_labels,
    pair_flip_partners,
    random_transition_matrix,
    realised_noise_rate,
)
from hf_lilaw.noise.sampling import STREAM_PER_ROW

ALWAYS_CHANGING = ("uniform", "pair_flip", "random_transition", "adjacent")


@pytest.fixture(autouse=True)
def _quiet_progress_bars():
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _labels(n, k, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


def _label_ds(n=40, k=4, split=None, classlabel=True):
    y = _labels(n, k).tolist()
    label = ClassLabel(names=[f"c{i}" for i in range(k)]) if classlabel else Value("int64")
    features = Features({"text": Value("string"), "label": label})
    return Dataset.from_dict({"text": [f"row {i}" for i in range(n)], "label": y}, features=features, split=split)


def _rgb_images(n, size=8, seed=0):
    # Values in [40, 215] so covariate noise cannot be a no-op and no image is black.
    return [np.random.default_rng(seed + i).integers(40, 216, (size, size, 3), dtype=np.uint8) for i in range(n)]


def _image_ds(arrays, mode=None):
    images = [PILImage.fromarray(a if mode is None else a[..., 0]) for a in arrays]  # HxW uint8 -> "L"
    features = Features({"image": Image(), "label": ClassLabel(num_classes=3)})
    return Dataset.from_dict({"image": images, "label": [i % 3 for i in range(len(arrays))]}, features=features)


def _pixels(ds, column="image"):
    return [np.asarray(row[column]) for row in ds]


# ----------------------------------------------------------------------------- constants


def test_type_tuples_partition_noise_types():
    assert LABEL_NOISE_TYPES == ("uniform", "pair_flip", "random_transition", "adjacent", "rule_map", "noise_matrix")
    assert INPUT_NOISE_TYPES == IMAGE_NOISE_TYPES + TIME_SERIES_NOISE_TYPES
    assert NOISE_TYPES == LABEL_NOISE_TYPES + INPUT_NOISE_TYPES
    assert set(RULE_MAPS) == {"mnist", "fashion_mnist", "cifar10", "cifar100"}
    assert set(PAIR_FLIP_MAPS) == {"mnist", "digits", "fashion_mnist", "cifar10"}


def test_cifar100_table_has_20_superclasses_of_5():
    assert len(CIFAR100_COARSE_LABELS) == 100
    assert Counter(CIFAR100_COARSE_LABELS) == {c: 5 for c in range(20)}
    # Spot checks against the published table: apple, aquarium_fish, baby, bear, worm.
    assert [CIFAR100_COARSE_LABELS[i] for i in (0, 1, 2, 3, 99)] == [4, 1, 14, 8, 13]


# ----------------------------------------------------------------------------- label noise on arrays


@pytest.mark.parametrize("noise_type", ALWAYS_CHANGING)
@pytest.mark.parametrize(("n", "rate"), [(97, 0.0), (97, 0.2), (97, 0.45), (101, 0.5), (50, 1.0)])
def test_exact_hit_count(noise_type, n, rate):
    y = _labels(n, 5)
    out = noisy_labels(y, noise_type=noise_type, rate=rate, seed=3, num_classes=5)
    assert out.dtype == np.int64 and out.shape == y.shape
    assert int((out != y).sum()) == round(rate * n)


def test_rule_map_hit_count_when_every_class_has_a_rule():
    y = _labels(99, 3)
    out = noisy_labels(y, noise_type="rule_map", rate=0.3, seed=0, rules={0: [1], 1: [2], 2: [0]}, num_classes=3)
    assert int((out != y).sum()) == round(0.3 * 99)
    assert np.array_equal(out[out != y], (y[out != y] + 1) % 3)


def test_uniform_never_keeps_label_and_covers_other_classes():
    k = 5
    y = np.repeat(np.arange(k), 400)
    out = noisy_labels(y, noise_type="uniform", rate=1.0, seed=0, num_classes=k)
    assert (out != y).all()
    for c in range(k):
        counts = Counter(out[y == c].tolist())
        assert set(counts) == set(range(k)) - {c}
        assert min(counts.values()) > 60  # ~100 expected each


def test_uniform_keep_original_draw_is_hcat_behaviour():
    y = np.repeat(np.arange(4), 500)
    out = noisy_labels(y, noise_type="uniform", rate=1.0, seed=0, keep_original_draw=True, num_classes=4)
    assert set(out[y == 0].tolist()) == {0, 1, 2, 3}
    # Realised rate p * (K-1) / K = 0.75.
    assert abs((out != y).mean() - 0.75) < 0.04


def test_random_transition_matrix_fixed_per_seed_with_zero_diagonal():
    m = random_transition_matrix(6, seed=7)
    assert m.shape == (6, 6)
    assert np.all(np.diag(m) == 0)
    assert np.allclose(m.sum(axis=1), 1)
    assert np.array_equal(m, random_transition_matrix(6, seed=7))
    assert not np.allclose(m, random_transition_matrix(6, seed=8))
    # Rows are not all uniform, i.e. really asymmetric.
    assert np.ptp(m[~np.eye(6, dtype=bool)]) > 0.1


def test_random_transition_draws_follow_the_seeded_rows():
    k = 4
    y = np.repeat(np.arange(k), 5000)
    out = noisy_labels(y, noise_type="random_transition", rate=1.0, seed=11, num_classes=k)
    m = random_transition_matrix(k, seed=11)
    empirical = np.array([np.bincount(out[y == c], minlength=k) / 5000 for c in range(k)])
    assert np.all(np.diag(empirical) == 0)
    assert np.abs(empirical - m).max() < 0.03
    # The rows depend on the seed only, not on N or the rate.
    y_small = np.repeat(np.arange(k), 3000)
    small = noisy_labels(y_small, noise_type="random_transition", rate=1.0, seed=11, num_classes=k)
    small_emp = np.array([np.bincount(small[y_small == c], minlength=k) / 3000 for c in range(k)])
    assert np.abs(small_emp - m).max() < 0.04


def test_adjacent_moves_one_step_either_way():
    k = 6
    y = np.repeat(np.arange(k), 300)
    out = noisy_labels(y, noise_type="adjacent", rate=1.0, seed=2, num_classes=k)
    step = (out - y) % k
    assert set(step.tolist()) == {1, k - 1}
    assert abs((step == 1).mean() - 0.5) < 0.05
    assert set(out[y == 0].tolist()) == {1, 5}  # wraps around
    assert set(out[y == 5].tolist()) == {4, 0}


@pytest.mark.parametrize(("name", "k"), [("mnist", 10), ("fashion_mnist", 10), ("cifar10", 10), ("cifar100", 100)])
def test_rule_map_follows_builtin_rules(name, k):
    y = np.repeat(np.arange(k), 40)
    out = noisy_labels(y, noise_type="rule_map", rate=1.0, seed=0, rules=name, num_classes=k)
    rules = RULE_MAPS[name]
    for c in range(k):
        moved = set(out[y == c].tolist())
        if c in rules:
            assert moved == set(rules[c]), (name, c)
        else:
            assert moved == {c}, (name, c)


def test_rule_map_spec_maps_exactly():
    mnist = {1: {7}, 2: {7}, 3: {8}, 5: {6}, 6: {5}, 7: {1, 2}, 8: {3}, 9: {7}}
    cifar10 = {0: {2}, 1: {9}, 2: {9}, 3: {5}, 4: {5, 7}, 5: {3, 4}, 7: {5}, 8: {7}}
    assert {c: set(t) for c, t in RULE_MAPS["mnist"].items()} == mnist
    assert {c: set(t) for c, t in RULE_MAPS["cifar10"].items()} == cifar10
    fashion = RULE_MAPS["fashion_mnist"]
    assert fashion[0] == (6,) and fashion[6] == (0,) and fashion[2] == (4,) and fashion[4] == (2,)
    assert 1 not in fashion and 8 not in fashion  # Trouser, Bag keep their label


def test_cifar100_moves_stay_in_superclass():
    coarse = np.array(CIFAR100_COARSE_LABELS)
    y = np.repeat(np.arange(100), 20)
    out = noisy_labels(y, noise_type="rule_map", rate=1.0, seed=5, rules="cifar100", num_classes=100)
    assert (out != y).all()
    assert np.array_equal(coarse[out], coarse[y])
    assert all(len(RULE_MAPS["cifar100"][c]) == 4 for c in range(100))


def test_rule_map_user_rules_and_realised_rate():
    y = np.repeat(np.arange(4), 25)
    out = noisy_labels(y, noise_type="rule_map", rate=1.0, seed=0, rules={0: 3, 1: [2, 2, 0]}, num_classes=4)
    assert set(out[y == 0].tolist()) == {3}
    assert set(out[y == 1].tolist()) == {0, 2}
    assert np.array_equal(out[y >= 2], y[y >= 2])
    assert (out != y).mean() == 0.5  # below rate=1: classes 2, 3 have no rule


@pytest.mark.parametrize("noise_type", LABEL_NOISE_TYPES)
def test_label_noise_deterministic_per_seed(noise_type):
    y = np.repeat(np.arange(10), 30)
    kw = {"rules": "cifar10"} if noise_type == "rule_map" else {}
    a = noisy_labels(y, noise_type=noise_type, rate=0.4, seed=1, **kw, num_classes=10)
    b = noisy_labels(y, noise_type=noise_type, rate=0.4, seed=1, **kw, num_classes=10)
    c = noisy_labels(y, noise_type=noise_type, rate=0.4, seed=2, **kw, num_classes=10)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noise_matrix_uses_cleanlab_and_keeps_global_rng():
    pytest.importorskip("cleanlab")
    y = np.repeat(np.arange(4), 250)
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    out = noisy_labels(y, noise_type="noise_matrix", rate=0.3, seed=0, num_classes=4)
    assert np.random.rand() == expected_next
    assert abs((out != y).mean() - 0.3) < 0.05
    # An explicit column-stochastic matrix: class j -> j+1 for a quarter of each class.
    nm = 0.75 * np.eye(4) + 0.25 * np.roll(np.eye(4), 1, axis=0)
    out = noisy_labels(y, noise_type="noise_matrix", rate=0.0, seed=0, noise_matrix=nm, num_classes=4)
    assert np.array_equal(out[out != y], (y[out != y] + 1) % 4)
    assert (out != y).sum() == 4 * round(0.25 * 250)


def test_noise_matrix_without_cleanlab_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab.benchmarking.noise_generation", None)
    with pytest.raises(ImportError, match=r"pip install hf_lilaw\[cleanlab\]"):
        noisy_labels(np.arange(10) % 2, noise_type="noise_matrix", rate=0.2, seed=0, num_classes=2)


def test_noisy_labels_errors():
    y = np.arange(10) % 3
    with pytest.raises(ValueError, match="uniform, pair_flip, random_transition, adjacent, rule_map, noise_matrix"):
        noisy_labels(y, noise_type="symmetric", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="add_input_noise"):
        noisy_labels(y, noise_type="crop_shift", rate=0.1, seed=0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"rate must be a fraction in \[0, 1\]"):
            noisy_labels(y, noise_type="uniform", rate=bad, seed=0, num_classes=3)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        noisy_labels(y, noise_type="uniform", rate=0.1, seed=0, num_classes=2)
    with pytest.raises(ValueError, match="integer class ids"):
        noisy_labels(y.astype(float), noise_type="uniform", rate=0.1, seed=0, num_classes=3)
    with pytest.raises(ValueError, match="needs rules="):
        noisy_labels(y, noise_type="rule_map", rate=0.1, seed=0, num_classes=3)
    with pytest.raises(ValueError, match="Unknown rule map 'svhn'"):
        noisy_labels(y, noise_type="rule_map", rate=0.1, seed=0, rules="svhn", num_classes=3)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        noisy_labels(y, noise_type="rule_map", rate=0.1, seed=0, rules={0: [7]}, num_classes=3)
    with pytest.raises(ValueError, match="only used by noise_type='pair_flip' or 'rule_map'"):
        noisy_labels(y, noise_type="uniform", rate=0.1, seed=0, rules="mnist", num_classes=3)
    with pytest.raises(ValueError, match="only used by noise_type='uniform'"):
        noisy_labels(y, noise_type="adjacent", rate=0.1, seed=0, keep_original_draw=True, num_classes=3)
    with pytest.raises(ValueError, match="seed must be an int"):
        noisy_labels(y, noise_type="uniform", rate=0.1, seed=-1, num_classes=3)


# ----------------------------------------------------------------------------- label noise on a Dataset


@pytest.mark.parametrize("classlabel", [True, False])
def test_add_label_noise_columns(classlabel):
    ds = _label_ds(n=40, k=4, classlabel=classlabel)
    out = add_label_noise(ds, noise_type="uniform", rate=0.25, seed=0, num_classes=4)
    assert out.column_names == ["text", "label", "clean_label", "is_noisy"]
    assert out.features["label"] == ds.features["label"]
    assert out.features["clean_label"] == ds.features["label"]
    assert out.features["is_noisy"] == Value("bool")
    label, clean, flag = (np.array(out[c]) for c in ("label", "clean_label", "is_noisy"))
    assert np.array_equal(clean, ds["label"])
    assert np.array_equal(flag, label != clean)
    assert flag.sum() == 10
    assert out["text"] == ds["text"]
    assert np.array_equal(label, noisy_labels(clean, noise_type="uniform", rate=0.25, seed=0, num_classes=4))


def test_add_label_noise_deterministic_and_seed_sensitive():
    ds = _label_ds(n=60, k=5)
    a = add_label_noise(ds, noise_type="random_transition", rate=0.3, seed=4)
    b = add_label_noise(ds, noise_type="random_transition", rate=0.3, seed=4)
    c = add_label_noise(ds, noise_type="random_transition", rate=0.3, seed=5)
    assert a["label"] == b["label"] and a["is_noisy"] == b["is_noisy"]
    assert a["label"] != c["label"]


def test_add_label_noise_uses_classlabel_num_classes():
    # Only classes 0 and 1 occur, but the ClassLabel says 3: uniform must also reach class 2.
    features = Features({"label": ClassLabel(names=["a", "b", "c"])})
    ds = Dataset.from_dict({"label": [0, 1] * 50}, features=features)
    out = add_label_noise(ds, noise_type="uniform", rate=1.0, seed=0)
    assert 2 in set(out["label"])


def test_add_label_noise_rule_map_realised_rate_below_rate(caplog):
    ds = Dataset.from_dict({"label": list(range(10)) * 10})
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(ds, noise_type="rule_map", rate=1.0, seed=0, rules="mnist", num_classes=10)
    assert realised_noise_rate(out) == 0.8  # classes 0 and 4 have no MNIST rule
    assert "realised rate 0.8000 < rate 1.0000" in caplog.text
    flags, label, clean = (np.array(out[c]) for c in ("is_noisy", "label", "clean_label"))
    assert np.array_equal(flags, label != clean)


def test_keep_original_draw_logs_realised_rate(caplog):
    ds = Dataset.from_dict({"label": np.arange(200) % 4}, features=Features({"label": ClassLabel(num_classes=4)}))
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(ds, noise_type="uniform", rate=0.5, seed=0, keep_original_draw=True)
    assert realised_noise_rate(out) == 0.37  # about 0.5 * 3/4
    assert "redrew a label equal to the original" in caplog.text
    assert "realised rate 0.3700 < rate 0.5000" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        add_label_noise(ds, noise_type="uniform", rate=0.5, seed=0)
    assert caplog.records == []  # the default always changes the label


def test_noise_matrix_warns_when_class_balance_moves_the_rate(caplog):
    pytest.importorskip("cleanlab")
    features = Features({"label": ClassLabel(num_classes=4)})
    imbalanced = Dataset.from_dict({"label": np.repeat(np.arange(4), [400, 120, 50, 30])}, features=features)
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(imbalanced, noise_type="noise_matrix", rate=0.4, seed=2)
    realised = realised_noise_rate(out)
    assert abs(realised - 0.2267) < 1e-4  # cleanlab's per-class rates average 0.38; the big class flips least
    assert f"realised rate {realised:.4f} differs from rate 0.4000" in caplog.text
    assert "mean per-class flip rate" in caplog.text
    balanced = Dataset.from_dict({"label": np.arange(600) % 4}, features=features)
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        for seed in range(5):  # realised 0.387 to 0.392
            add_label_noise(balanced, noise_type="noise_matrix", rate=0.4, seed=seed)
        # An explicit matrix does not use rate.
        nm = 0.75 * np.eye(4) + 0.25 * np.roll(np.eye(4), 1, axis=0)
        add_label_noise(imbalanced, noise_type="noise_matrix", rate=0.0, seed=0, noise_matrix=nm)
    assert caplog.records == []


def test_add_label_noise_after_select_uses_logical_rows():
    ds = _label_ds(n=30, k=3).shuffle(seed=0).select(range(20))
    out = add_label_noise(ds, noise_type="adjacent", rate=0.5, seed=0)
    assert out["clean_label"] == ds["label"]
    assert out["text"] == ds["text"]



def _words_only(batch):
    return {"words": [t.upper() for t in batch["text"]]}


def test_add_label_noise_keeps_a_transform():
    ds = _label_ds(n=40, k=4)
    out = add_label_noise(ds.with_transform(_words_only), noise_type="uniform", rate=0.5, seed=0)
    assert out.format["type"] == "custom" and out.format["format_kwargs"]["transform"] is _words_only
    assert out[0] == {"words": "ROW 0"}
    plain = add_label_noise(ds, noise_type="uniform", rate=0.5, seed=0)
    raw = out.with_format(None)
    assert raw.column_names == plain.column_names
    assert raw["label"] == plain["label"] and raw["clean_label"] == ds["label"] and sum(raw["is_noisy"]) == 20


def test_noise_caches_depend_on_every_output_changing_argument(tmp_path, monkeypatch):
    # Datasets loaded from disk reuse the cache file of an equal fingerprint: a missing argument returns old rows.
    labels = _labels(40, 4).tolist()
    Dataset.from_dict({"a": labels, "b": labels}).save_to_disk(tmp_path / "labels")
    ds = load_from_disk(tmp_path / "labels")
    on_a = add_label_noise(ds, noise_type="uniform", rate=0.5, seed=0, label_column="a", num_classes=4)
    on_b = add_label_noise(ds, noise_type="uniform", rate=0.5, seed=0, label_column="b", num_classes=4)
    assert on_a["b"] == labels and on_a["a"] != labels
    assert on_b["a"] == labels and on_b["b"] == on_a["a"]
    Dataset.from_dict({"image": np.full((4, 8, 8), 100, np.uint8), "label": [0, 1, 0, 1]}).save_to_disk(tmp_path / "im")
    images = load_from_disk(tmp_path / "im")
    pool = Dataset.from_dict({"black": np.zeros((2, 8, 8), np.uint8), "white": np.full((2, 8, 8), 255, np.uint8)})
    for column, value in (("black", 0), ("white", 255)):
        out = add_input_noise(images, noise_type="far_ood", rate=1.0, seed=0, pool=pool, pool_column=column)
        assert np.all(np.asarray(out["image"]) == value)
    # The package version stands in for the algorithms' version: an upgrade does not reuse old caches.
    before = add_input_noise(images, noise_type="crop_shift", rate=1.0, seed=0)._fingerprint
    monkeypatch.setattr("hf_lilaw.noise.dataset.__version__", "999.0")
    assert add_input_noise(images, noise_type="crop_shift", rate=1.0, seed=0)._fingerprint != before


def test_label_noise_refuses_test_split_unless_allowed():
    ds = _label_ds(split="test")
    with pytest.raises(ValueError, match="allow_test_split=True"):
        add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="test split"):
        add_label_noise(_label_ds(split="test[:50%]"), noise_type="uniform", rate=0.1, seed=0)
    out = add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0, allow_test_split=True)
    assert sum(out["is_noisy"]) == 4
    assert sum(add_label_noise(_label_ds(split="train"), noise_type="uniform", rate=0.1, seed=0)["is_noisy"]) == 4


def test_split_expressions_with_test_data_are_refused():
    for split in ("TEST", "test[:50%]", "train+test", "train[:10]+test[:10]", "test_matched", "test.clean", "test-other[:5]"):
        with pytest.raises(ValueError, match="test split"):
            add_label_noise(_label_ds(split=split), noise_type="uniform", rate=0.1, seed=0)
    # "testing" or "contest" are not "test"
    assert sum(add_label_noise(_label_ds(split="testing"), noise_type="uniform", rate=0.1, seed=0)["is_noisy"]) == 4


def test_train_test_split_halves_are_guarded_through_the_dict():
    parts = _label_ds(n=40).train_test_split(test_size=0.25, seed=0)
    with pytest.raises(ValueError, match="Refusing to add noise to the 'test' split"):
        add_label_noise(parts, split="test", noise_type="uniform", rate=0.5, seed=0)
    with pytest.raises(ValueError, match="Refusing"):
        add_input_noise(parts, split="test", noise_type="ts_covariate", rate=0.5, seed=0, input_column="text")
    noisy = add_label_noise(parts, split="train", noise_type="uniform", rate=0.5, seed=0)
    assert isinstance(noisy, DatasetDict) and list(noisy) == ["train", "test"]
    assert noisy["test"] is parts["test"]  # untouched
    direct = add_label_noise(parts["train"], noise_type="uniform", rate=0.5, seed=0)
    assert noisy["train"]["label"][:] == direct["label"][:] and sum(noisy["train"]["is_noisy"][:]) == 15
    allowed = add_label_noise(parts, split="test", noise_type="uniform", rate=0.5, seed=0, allow_test_split=True)
    assert sum(allowed["test"]["is_noisy"][:]) == 5
    # Documented limit: a bare half carries no name (its .split is the parent's), so it is not refused.
    assert parts["test"].split is None
    assert sum(add_label_noise(parts["test"], noise_type="uniform", rate=0.5, seed=0)["is_noisy"][:]) == 5
    with pytest.raises(ValueError, match="not in the DatasetDict"):
        add_label_noise(parts, split="validation", noise_type="uniform", rate=0.5, seed=0)
    with pytest.raises(ValueError, match="with a single Dataset, drop split="):
        add_label_noise(parts["train"], split="train", noise_type="uniform", rate=0.5, seed=0)


def test_realised_noise_rate_of_a_dataset_dict_names_the_split_to_pass():
    # add_label_noise(..., split="train") returns a DatasetDict; its column_names is a dict of splits, so this
    # used to say that the flag column "is_noisy" was not found, as if noise had been added under another name.
    noisy = add_label_noise(_label_ds(n=40).train_test_split(test_size=0.25, seed=0), split="train",
                            noise_type="uniform", rate=0.5, seed=0)  # fmt: skip
    with pytest.raises(TypeError, match=r"one split.*\['train', 'test'\] \(noised: \['train'\]\).*dataset\['train'\]"):
        realised_noise_rate(noisy)
    assert realised_noise_rate(noisy["train"]) == 0.5


def test_add_label_noise_errors():
    ds = _label_ds()
    with pytest.raises(TypeError, match=r"dataset\['train'\]"):
        add_label_noise(DatasetDict({"train": ds}), noise_type="uniform", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="Label column 'labels' not found.*label_column="):
        add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0, label_column="labels")
    with pytest.raises(ValueError, match="ClassLabel or an integer"):
        add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0, label_column="text")
    with pytest.raises(ValueError, match="disagrees with the ClassLabel"):
        add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0, num_classes=7)
    with pytest.raises(ValueError, match="add_input_noise"):
        add_label_noise(ds, noise_type="ood_covariate", rate=0.1, seed=0)
    with pytest.raises(ValueError, match=r"rate must be a fraction in \[0, 1\]"):
        add_label_noise(ds, noise_type="uniform", rate=2, seed=0)
    bad = Dataset.from_dict({"label": [0, 1, -1]}, features=Features({"label": ClassLabel(num_classes=2)}))
    with pytest.raises(ValueError, match=r"outside \[0, 2\).*unlabelled"):
        add_label_noise(bad, noise_type="uniform", rate=0.1, seed=0)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        add_label_noise(Dataset.from_dict({"label": [0, 1, 5]}), noise_type="uniform", rate=0.5, seed=0, num_classes=3)
    noisy = add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="'clean_label' already exists"):
        add_label_noise(noisy, noise_type="uniform", rate=0.1, seed=0)
    # the flags overwrote the clean labels under one name
    with pytest.raises(ValueError, match="both 'extra'.*Give them different names"):
        add_label_noise(ds, noise_type="uniform", rate=0.1, seed=0, clean_label_column="extra", noisy_flag_column="extra")
    with pytest.raises(ValueError, match="both 'extra'"):
        add_input_noise(Dataset.from_dict({"image": [np.zeros((4, 4))], "label": [0]}), noise_type="crop_shift", rate=1.0,
                        seed=0, clean_label_column="extra", noisy_flag_column="extra")  # fmt: skip
    # an int8 column cannot hold 200 classes' labels: a raw Arrow error from inside map before
    narrow = Dataset.from_dict({"label": list(range(100)) * 3}, features=Features({"label": Value("int8")}))
    with pytest.raises(ValueError, match=r"'label' is int8, which cannot hold the noisy labels up to 199.*cast_column"):
        add_label_noise(narrow, noise_type="uniform", rate=0.5, seed=0, num_classes=200)
    assert add_label_noise(narrow, noise_type="uniform", rate=0.5, seed=0).features["label"] == Value("int8")


# ----------------------------------------------------------------------------- image noise


@pytest.mark.parametrize("noise_type", IMAGE_NOISE_TYPES)
def test_image_noise_changes_exactly_hit_images(noise_type):
    arrays = _rgb_images(10, size=16)
    ds = _image_ds(arrays)
    out = add_input_noise(ds, noise_type=noise_type, rate=0.3, seed=0)
    assert out.features["image"] == Image()
    assert out["label"] == ds["label"] == out["clean_label"]
    flags = np.array(out["is_noisy"])
    assert flags.sum() == 3
    for a, b, hit in zip(arrays, _pixels(out), flags):
        assert b.shape == (16, 16, 3) and b.dtype == np.uint8
        assert (not np.array_equal(a, b)) == hit
    again = add_input_noise(ds, noise_type=noise_type, rate=0.3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(out), _pixels(again)))
    other = add_input_noise(ds, noise_type=noise_type, rate=0.3, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(_pixels(out), _pixels(other)))


def test_image_noise_keeps_grayscale_mode_and_untouched_jpeg_bytes():
    arrays = _rgb_images(6)
    buffers = []
    for a in arrays:
        buf = io.BytesIO()
        PILImage.fromarray(a).save(buf, format="JPEG")
        buffers.append({"bytes": buf.getvalue(), "path": None})
    ds = Dataset.from_dict({"image": buffers, "label": [0, 1, 2] * 2},
                           features=Features({"image": Image(), "label": ClassLabel(num_classes=3)}))  # fmt: skip
    out = add_input_noise(ds, noise_type="crop_shift", rate=0.5, seed=0)
    raw = out.cast_column("image", Image(decode=False))
    for before, after, hit in zip(buffers, raw["image"], out["is_noisy"]):
        assert (after["bytes"] == before["bytes"]) == (not hit)
    gray = add_input_noise(_image_ds(arrays, mode="L"), noise_type="zoom_shift", rate=0.5, seed=0)
    assert {img.mode for img in gray["image"]} == {"L"}
    assert all(np.asarray(img).shape == (8, 8) for img in gray["image"])


def test_crop_shift_zero_columns_on_the_left():
    arrays = _rgb_images(4, size=16)
    out = add_input_noise(_image_ds(arrays), noise_type="crop_shift", rate=1.0, seed=0)
    shift = round(10 / 32 * 16)  # 5 pixels
    for a, b in zip(arrays, _pixels(out)):
        assert np.all(b[:, :shift] == 0)
        assert np.array_equal(b[:, shift:], a[:, : 16 - shift])
    left = add_input_noise(_image_ds(arrays), noise_type="crop_shift", rate=1.0, seed=0, shift_fraction=-0.25)
    b = _pixels(left)[0]
    assert np.all(b[:, -4:] == 0) and np.array_equal(b[:, :-4], arrays[0][:, 4:])


def test_zoom_shift_is_centre_crop_resized_bilinearly():
    a = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    ds = Dataset.from_dict({"image": a, "label": [0, 1]})
    out = add_input_noise(ds, noise_type="zoom_shift", rate=1.0, seed=0, zoom_factor=1.75)
    got = out.with_format("numpy")["image"][:]
    assert got.shape == (2, 16, 16, 1) and got.dtype == np.float32
    crop = torch.from_numpy(a[:, 3:12, 3:12, 0])[:, None]  # int(16 / 1.75) = 9, top = (16 - 9) // 2 = 3
    ref = torch.nn.functional.interpolate(crop, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert np.allclose(got[..., 0], ref.numpy(), atol=1e-5)


def test_ood_covariate_scale_range_and_sigma():
    arrays = _rgb_images(4)
    ds = _image_ds(arrays)
    out = _pixels(add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.5))
    diff = np.abs(np.stack(out).astype(int) - np.stack(arrays))
    assert diff.mean() > 40 and (np.stack(out) == 255).any() and (np.stack(out) == 0).any()  # clamped
    small = _pixels(add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.01))
    assert np.abs(np.stack(small).astype(int) - np.stack(arrays)).max() <= 12
    same = add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, _pixels(same)))
    assert all(same["is_noisy"])


def test_domain_shift_cartoon_masks_dark_edges_and_smooths():
    step = np.zeros((16, 16, 1), dtype=np.float32)
    step[:, 8:] = 1.0
    ds = Dataset.from_dict({"image": np.stack([step, np.full_like(step, 0.5)]), "label": [0, 1]})
    out = add_input_noise(ds, noise_type="domain_shift", rate=1.0, seed=0, sigma=0.0)
    edge, flat = out.with_format("numpy")["image"][:]
    assert edge.shape == (16, 16, 1) and edge.dtype == np.float32
    assert np.all(edge[:, :8] == 0)  # dark side: below the local mean - C, masked out
    assert np.allclose(edge[:, 13:], 1.0)  # bright side out of the bilateral window: unchanged
    assert np.all(edge[:, 8] < 0.95) and np.all(edge[:, 8] > 0.5)  # smoothed across the edge
    assert np.allclose(flat, 0.5)  # flat image: no edges, bilateral is a no-op
    noisy = add_input_noise(ds, noise_type="domain_shift", rate=1.0, seed=0)
    values = noisy.with_format("numpy")["image"][:]
    assert values.min() >= 0 and values.max() <= 1 and (values == 0).any()


def test_far_ood_from_pool_dataset_matches_size_and_channels():
    pool_values = [30, 90, 150, 210]
    pool = Dataset.from_dict(
        {"img": [PILImage.new("RGB", (5, 7), (v, v, v)) for v in pool_values]}, features=Features({"img": Image()})
    )
    ds = _image_ds(_rgb_images(6), mode="L")
    out = add_input_noise(ds, noise_type="far_ood", rate=0.5, seed=0, pool=pool, pool_column="img")
    for img, hit in zip(out["image"], out["is_noisy"]):
        a = np.asarray(img)
        assert img.mode == "L" and a.shape == (8, 8)
        if hit:
            assert len(np.unique(a)) == 1 and int(a[0, 0]) in pool_values
    gray_pool = np.stack([np.full((4, 4), v, dtype=np.uint8) for v in pool_values])
    rgb = add_input_noise(_image_ds(_rgb_images(4)), noise_type="far_ood", rate=1.0, seed=0, pool=gray_pool)
    for a in _pixels(rgb):
        assert a.shape == (8, 8, 3) and len(np.unique(a)) == 1 and int(a[0, 0, 0]) in pool_values
    fallback = _pixels(add_input_noise(_image_ds(_rgb_images(2)), noise_type="far_ood", rate=1.0, seed=0))
    assert all(a.shape == (8, 8, 3) and a.std() > 50 for a in fallback)  # uniform noise: std ~ 74


def _uint16_images(n, size=8, seed=0):
    # Values well above 255, where an 8-bit scale would saturate.
    return [np.random.default_rng(seed + i).integers(1000, 60000, (size, size), dtype=np.uint16) for i in range(n)]


def test_16bit_image_column_keeps_mode_and_scale():
    arrays = _uint16_images(4)
    features = Features({"image": Image(), "label": ClassLabel(num_classes=3)})
    ds = Dataset.from_dict({"image": [PILImage.fromarray(a) for a in arrays], "label": [0, 1, 2, 0]}, features=features)
    assert {img.mode for img in ds["image"]} == {"I;16"}
    same = add_input_noise(ds, noise_type="ood_covariate", rate=0.5, seed=0, sigma=0.0)
    assert sum(same["is_noisy"]) == 2
    assert {img.mode for img in same["image"]} == {"I;16"}
    assert all(b.dtype == np.uint16 and np.array_equal(a, b) for a, b in zip(arrays, _pixels(same)))
    shifted = add_input_noise(ds, noise_type="crop_shift", rate=1.0, seed=0)
    for a, b in zip(arrays, _pixels(shifted)):
        assert np.all(b[:, :2] == 0) and np.array_equal(b[:, 2:], a[:, :6])  # round(10/32 * 8) = 2
    noisy = add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.01)
    diff = np.abs(np.stack(_pixels(noisy)).astype(int) - np.stack(arrays))
    assert 0 < diff.max() <= 0.05 * 65535
    # Big-endian 16-bit images come back big-endian.
    big = Dataset.from_dict({"image": [PILImage.fromarray(a.astype(">u2")) for a in arrays[:2]], "label": [0, 1]},
                            features=features)  # fmt: skip
    out = add_input_noise(big, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.0)
    assert {img.mode for img in out["image"]} == {"I;16B"}
    assert all(np.array_equal(a, b) for a, b in zip(arrays, _pixels(out)))


def test_32bit_image_modes_are_refused():
    features = Features({"image": Image(), "label": ClassLabel(num_classes=2)})
    ints = Dataset.from_dict({"image": [PILImage.fromarray(np.full((4, 4), 7, np.int32))] * 2, "label": [0, 1]},
                             features=features)  # fmt: skip
    with pytest.raises(ValueError, match=r"image column 'image' has PIL mode 'I' \(32-bit integer\).*uint8.*uint16"):
        add_input_noise(ints, noise_type="crop_shift", rate=1.0, seed=0)
    assert ints[0]["image"].mode == "I"
    floats = Dataset.from_dict(
        {"image": [PILImage.fromarray(np.full((4, 4), 0.5, np.float32))] * 2, "label": [0, 1]},
        features=Features({"image": Image(mode="F"), "label": ClassLabel(num_classes=2)}),
    )
    # The declared mode is refused before any row is read, even when no row would be hit.
    with pytest.raises(ValueError, match=r"Image column 'image' has PIL mode 'F' \(32-bit float\).*float array"):
        add_input_noise(floats, noise_type="crop_shift", rate=0.0, seed=0)


@pytest.mark.parametrize("feature", [List(List(Value("uint16"))), Array2D((8, 8), "uint16")])
def test_uint16_array_images_use_the_16bit_scale(feature):
    arrays = np.stack(_uint16_images(4))
    ds = Dataset.from_dict({"image": arrays, "label": [0, 1, 0, 1]},
                           features=Features({"image": feature, "label": Value("int64")}))  # fmt: skip
    same = add_input_noise(ds, noise_type="ood_covariate", rate=0.5, seed=0, sigma=0.0)
    assert same.features["image"] == feature
    assert sum(same["is_noisy"]) == 2
    assert np.array_equal(same.with_format("numpy")["image"][:], arrays)
    noisy = add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.01)
    diff = np.abs(np.asarray(noisy.with_format("numpy")["image"][:]) - arrays)
    assert 0 < diff.max() <= 0.05 * 65535


def test_far_ood_scales_16bit_pool_images():
    values = [30, 90, 150, 210]
    ds = _image_ds(_rgb_images(6), mode="L")
    images = Dataset.from_dict({"img": [PILImage.fromarray(np.full((5, 7), 257 * v, np.uint16)) for v in values]},
                               features=Features({"img": Image()}))  # fmt: skip
    arrays = Dataset.from_dict({"img": [np.full((5, 7), 257 * v, np.uint16) for v in values]},
                               features=Features({"img": List(List(Value("uint16")))}))  # fmt: skip
    for pool in (images, arrays):
        out = add_input_noise(ds, noise_type="far_ood", rate=1.0, seed=0, pool=pool, pool_column="img")
        for a in _pixels(out):  # 257 * v / 65535 * 255 = v
            assert a.shape == (8, 8) and len(np.unique(a)) == 1 and int(a[0, 0]) in values


def test_array_images_keep_feature_layout_and_dtype():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    features = Features({"image": Array3D((8, 8, 3), "uint8"), "label": Value("int64")})
    ds = Dataset.from_dict({"image": hwc, "label": [0, 1, 0, 1]}, features=features)
    out = add_input_noise(ds, noise_type="crop_shift", rate=0.5, seed=0)
    assert out.features["image"] == features["image"]
    got = np.array(out["image"])  # the numpy formatter widens uint8 to int64; the stored feature stays uint8
    flags = np.array(out["is_noisy"])
    assert np.array_equal(got[~flags], hwc[~flags])
    assert np.all(got[flags][:, :, :2] == 0)  # round(10/32 * 8) = 2 zero columns
    chw = rng.random((3, 3, 16, 16)).astype(np.float32)  # (N, C, H, W)
    out = add_input_noise(Dataset.from_dict({"image": chw}), noise_type="crop_shift", rate=1.0, seed=0,
                          label_column=None)  # fmt: skip
    assert out.column_names == ["image", "is_noisy"]
    got = out.with_format("numpy")["image"][:]
    assert got.shape == chw.shape and np.all(got[..., :5] == 0) and np.allclose(got[..., 5:], chw[..., :11])


def test_input_noise_keeps_dataset_format():
    ds = Dataset.from_dict({"image": np.zeros((2, 4, 4), np.float32) + 0.5, "label": [0, 1]}).with_format("numpy")
    out = add_input_noise(ds, noise_type="ood_covariate", rate=0.5, seed=0)
    assert out.format["type"] == "numpy" and out.format["columns"] == out.column_names
    plain = add_input_noise(ds.with_format(None), noise_type="ood_covariate", rate=0.5, seed=0)
    assert plain.format["type"] is None


def test_input_noise_errors():
    ds = _image_ds(_rgb_images(4))
    with pytest.raises(ValueError, match="ood_covariate, domain_shift, far_ood.*add_label_noise"):
        add_input_noise(ds, noise_type="uniform", rate=0.1, seed=0)
    with pytest.raises(ValueError, match=r"rate must be a fraction in \[0, 1\]"):
        add_input_noise(ds, noise_type="crop_shift", rate=-0.5, seed=0)
    with pytest.raises(ValueError, match="Input column 'pixels' not found.*input_column="):
        add_input_noise(ds, noise_type="crop_shift", rate=0.1, seed=0, input_column="pixels")
    with pytest.raises(ValueError, match="Label column 'y' not found.*or label_column=None for a dataset without labels"):
        add_input_noise(ds, noise_type="crop_shift", rate=0.1, seed=0, label_column="y")
    unlabelled = ds.remove_columns("label")  # the default label_column="label" is missing: say how to go without
    with pytest.raises(ValueError, match=r"'label' not found; columns are \['image'\].*label_column=None"):
        add_input_noise(unlabelled, noise_type="crop_shift", rate=0.5, seed=0)
    assert add_input_noise(unlabelled, noise_type="crop_shift", rate=0.5, seed=0, label_column=None)["is_noisy"][:] == [
        False, True, False, True
    ]
    with pytest.raises(ValueError, match="allow_test_split=True"):
        add_input_noise(Dataset.from_dict(ds.to_dict(), features=ds.features, split="test"),
                        noise_type="crop_shift", rate=0.1, seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="pool= is only used by far_ood"):
        add_input_noise(ds, noise_type="crop_shift", rate=0.1, seed=0, pool=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="zoom_factor must be >= 1"):
        add_input_noise(ds, noise_type="zoom_shift", rate=0.1, seed=0, zoom_factor=0.5)
    with pytest.raises(ValueError, match="needs a column of float sequences"):
        add_input_noise(ds, noise_type="ts_covariate", rate=0.1, seed=0, input_column="image")
    normalised = Dataset.from_dict({"image": np.full((2, 4, 4), -1.0, np.float32), "label": [0, 1]})
    with pytest.raises(ValueError, match=r"Float images must be in \[0, 1\].*before normalisation"):
        add_input_noise(normalised, noise_type="crop_shift", rate=1.0, seed=0)



def test_integer_pixels_outside_8bit_are_refused():
    pixels = np.random.default_rng(0).integers(0, 4096, (4, 8, 8))  # 12-bit values, stored as int64
    ds = Dataset.from_dict({"image": pixels.tolist(), "label": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match=r"Row \d of image column 'image' has int64 pixels in \[\d+, 40\d\d\], "
                                         r"outside \[0, 255\].*uint8.*uint16.*floats in \[0, 1\]"):  # fmt: skip
        add_input_noise(ds, noise_type="zoom_shift", rate=0.5, seed=0)
    # Python ints in [0, 255] keep the 8-bit scale.
    small = Dataset.from_dict({"image": (pixels // 16).tolist(), "label": [0, 1, 0, 1]})
    out = add_input_noise(small, noise_type="crop_shift", rate=1.0, seed=0)
    got = out.with_format("numpy")["image"][:]
    assert np.all(got[..., :2] == 0) and np.array_equal(got[..., 2:], pixels[..., :6] // 16)


def test_ambiguous_array_layouts_are_refused():
    chw = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)  # (C, H, W) or (H, W, C)?
    ds = Dataset.from_dict({"image": chw, "label": [0, 1]})
    with pytest.raises(ValueError, match=r"shape \(3, 4, 4\).*first and last axes could both be channels.*Image"):
        add_input_noise(ds, noise_type="crop_shift", rate=1.0, seed=0)
    # An Image column is always (H, W, C), however small.
    tiny = _image_ds([np.full((3, 3, 3), 100, np.uint8)] * 2)
    out = add_input_noise(tiny, noise_type="crop_shift", rate=1.0, seed=0, shift_fraction=0.34)
    assert all(np.array_equal(a[:, 0], np.zeros((3, 3))) and np.all(a[:, 1:] == 100) for a in _pixels(out))


@pytest.mark.parametrize("labels", [[0, 1, -1, -1], ["cat", "dog", "cat", "dog"]])
def test_input_noise_copies_labels_as_they_are(labels):
    _, series = _series_ds(n=4)
    ds = series.remove_columns("label").add_column("label", labels)
    out = add_input_noise(ds, noise_type="ts_covariate", rate=0.5, seed=0)
    assert out["clean_label"] == out["label"] == labels
    assert out.features["clean_label"] == ds.features["label"]


# ----------------------------------------------------------------------------- time series


def _series_ds(n=8, length=20, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, length)).astype(np.float32)
    return x, Dataset.from_dict({"series": x, "label": [i % 2 for i in range(n)]})


@pytest.mark.parametrize("noise_type", TIME_SERIES_NOISE_TYPES)
def test_time_series_noise_keeps_length_and_hits_exactly(noise_type):
    x, ds = _series_ds()
    out = add_input_noise(ds, noise_type=noise_type, rate=0.5, seed=0)
    assert out.features["series"] == ds.features["series"]
    got = out.with_format("numpy")["series"][:]
    flags = np.array(out["is_noisy"])
    assert got.shape == x.shape and got.dtype == np.float32 and flags.sum() == 4
    assert np.array_equal(got[~flags], x[~flags])
    assert all(not np.array_equal(a, b) for a, b in zip(got[flags], x[flags]))
    assert out["clean_label"] == out["label"] == ds["label"]
    again = add_input_noise(ds, noise_type=noise_type, rate=0.5, seed=0).with_format("numpy")["series"][:]
    assert np.array_equal(got, again)


def test_time_series_values():
    ramp = np.arange(32, dtype=np.float64)
    ds = Dataset.from_dict({"series": [ramp], "label": [0]})
    shifted = add_input_noise(ds, noise_type="ts_time_shift", rate=1.0, seed=0)["series"][0]
    assert np.array_equal(shifted, np.r_[np.zeros(10), ramp[:22]])
    zoomed = np.array(add_input_noise(ds, noise_type="ts_time_zoom", rate=1.0, seed=0)["series"][0])
    # int(32 / 1.75) = 18 middle steps starting at 7, stretched linearly to 32.
    assert len(zoomed) == 32 and np.allclose(zoomed, np.linspace(7, 24, 32))
    walk = np.array(add_input_noise(ds, noise_type="ts_far_ood", rate=1.0, seed=0)["series"][0])
    assert len(walk) == 32 and np.isclose(walk.min(), 0) and np.isclose(walk.max(), 31)
    assert not np.allclose(walk, ramp)
    noisy = np.array(add_input_noise(ds, noise_type="ts_covariate", rate=1.0, seed=0, sigma=0.1)["series"][0])
    assert 1.0 < np.std(noisy - ramp) < 5.0  # sigma * range = 3.1



@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_float64_inputs_not_hit_come_back_bit_for_bit(rate):
    # datasets' numpy format reads floats as float32: near 1e7 that rounds a 0.5-amplitude signal away, in every row.
    rng = np.random.default_rng(0)
    series = 1e7 + 0.5 * np.sin(np.arange(16) / 2) + 0.01 * rng.standard_normal((8, 16))
    images = rng.random((8, 4, 4)) / 3 + 1e-9  # float64 in [0, 1]
    features = Features({"series": List(Value("float64")), "image": List(List(Value("float64"))), "label": Value("int64")})
    ds = Dataset.from_dict({"series": series, "image": images, "label": [0, 1] * 4}, features=features)
    for column, noise_type, x in (("series", "ts_time_shift", series), ("image", "crop_shift", images)):
        out = add_input_noise(ds, noise_type=noise_type, rate=rate, seed=0, input_column=column)
        got, flags = np.array(out[column]), np.array(out["is_noisy"])
        assert out.features[column] == features[column] and flags.sum() == round(rate * 8)
        assert np.array_equal(got[~flags], x[~flags])  # exactly, not to float32 precision
        assert out["clean_label"] == out["label"] == [0, 1] * 4
    shifted = np.array(add_input_noise(ds, noise_type="ts_time_shift", rate=1.0, seed=0)["series"])
    assert np.array_equal(shifted[:, 5:], series[:, :11])  # round(10/32 * 16) = 5 steps, at full precision


def test_missing_steps_stay_missing_and_nan_pixels_are_refused():
    # One NaN step made the whole series NaN (its range, the covariate and walk scale, was NaN).
    ramp = np.arange(12.0)
    ramp[-1] = np.nan
    ds = Dataset.from_dict({"series": [ramp], "label": [0]}, features=Features({"series": List(Value("float64")), "label": Value("int64")}))
    noisy = np.array(add_input_noise(ds, noise_type="ts_covariate", rate=1.0, seed=0, sigma=0.1)["series"][0], dtype=float)
    assert np.isnan(noisy[-1]) and np.isfinite(noisy[:-1]).all() and 0.3 < np.std(noisy[:-1] - ramp[:-1]) < 2.0  # 0.1 · 10
    walk = np.array(add_input_noise(ds, noise_type="ts_far_ood", rate=1.0, seed=0)["series"][0], dtype=float)
    assert np.isfinite(walk).all() and np.isclose(walk.min(), 0) and np.isclose(walk.max(), 10)
    image = np.full((4, 4), 0.5)
    image[0, 0] = np.nan
    images = Dataset.from_dict({"image": [np.full((4, 4), 0.5), image], "label": [0, 1]})
    with pytest.raises(ValueError, match="Row 1 of image column 'image' has NaN or infinite pixels"):
        add_input_noise(images, noise_type="ood_covariate", rate=1.0, seed=0)


@pytest.mark.parametrize("noise_type", ["ts_covariate", "ts_time_shift", "ts_time_zoom", "ts_far_ood"])
def test_series_with_none_steps_keep_them_in_rows_not_hit(noise_type):
    # The numpy format read a None step as NaN, and the NaN went back into every row, hit or not.
    features = Features({"series": List(Value("float32")), "label": Value("int64")})
    rows = [[1.0, None, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [0.0, None, 2.0, 8.0], [5.0, 6.0, 7.0, 8.0]]
    ds = Dataset.from_dict({"series": rows, "label": [0, 1, 0, 1]}, features=features)
    out = add_input_noise(ds, noise_type=noise_type, rate=0.5, seed=0)
    flags = out["is_noisy"]
    assert sum(flags) == 2
    for row, got, hit in zip(rows, out["series"], flags):
        assert not any(isinstance(v, float) and np.isnan(v) for v in got)  # missing steps stay None, never NaN
        if not hit:
            assert got == row
    # float32 series without missing steps, noised in part: hit rows and rows not hit go back as one column
    plain = Dataset.from_dict({"series": [[float(i + j) for j in range(4)] for i in range(8)], "label": [0, 1] * 4}, features=features)
    out = add_input_noise(plain, noise_type=noise_type, rate=0.5, seed=0)
    assert out.features["series"] == features["series"] and sum(out["is_noisy"]) == 4
    for row, got, hit in zip(plain["series"], out["series"], out["is_noisy"]):
        assert len(got) == 4 and (hit or got == row)


def test_ts_far_ood_fallback_keeps_a_constant_series_constant():
    ds = Dataset.from_dict({"series": [[2.0] * 10] * 2, "label": [0, 1]})
    out = add_input_noise(ds, noise_type="ts_far_ood", rate=1.0, seed=0)
    assert np.array_equal(out.with_format("numpy")["series"][:], np.full((2, 10), 2.0))  # range [2, 2]


def test_ts_far_ood_fallback_keeps_each_channels_range():
    """Without a pool the walk was rescaled to the whole series' range: a 0..1 channel beside a 100..200 one got
    values up to ~114, so magnitude gave the replaced series away; univariate walks are unchanged."""
    x = np.stack([np.linspace(0, 1, 50), np.linspace(100, 200, 50)], axis=1)
    ds = Dataset.from_dict({"series": [x, x[:, ::-1]], "label": [0, 1]})
    got = add_input_noise(ds, noise_type="ts_far_ood", rate=1.0, seed=0).with_format("numpy")["series"][:].astype(float)
    for s in (got[0], got[1][:, ::-1]):
        np.testing.assert_allclose(s.min(0), [0, 100], atol=1e-5)
        np.testing.assert_allclose(s.max(0), [1, 200], rtol=1e-6)
    one = Dataset.from_dict({"series": [x[:, 1]], "label": [0]})
    walk = np.cumsum(np.random.default_rng([0, STREAM_PER_ROW, 0]).standard_normal(50))
    expected = 100 + (walk - walk.min()) / (walk.max() - walk.min()) * 100
    np.testing.assert_allclose(add_input_noise(one, noise_type="ts_far_ood", rate=1.0, seed=0)["series"][0], expected, rtol=1e-6)


def test_time_series_pool_and_multivariate():
    x = np.random.default_rng(0).standard_normal((3, 12, 2)).astype(np.float32)
    ds = Dataset.from_dict({"values": x, "label": [0, 1, 0]})
    pool = [np.full(5, 7.0), np.full(9, -3.0)]
    out = add_input_noise(ds, noise_type="ts_far_ood", rate=1.0, seed=0, input_column="values", pool=pool)
    got = out.with_format("numpy")["values"][:]
    assert got.shape == (3, 12, 2)
    assert all(len(np.unique(s)) == 1 and s[0, 0] in (7.0, -3.0) for s in got)
    zoom = add_input_noise(ds, noise_type="ts_time_zoom", rate=1.0, seed=0, input_column="values")
    assert zoom.with_format("numpy")["values"][:].shape == (3, 12, 2)
    ints = Dataset.from_dict({"series": [[1, 2, 3]], "label": [0]})
    with pytest.raises(ValueError, match="float series"):
        add_input_noise(ints, noise_type="ts_covariate", rate=1.0, seed=0)



# ----------------------------------------------------------------------------- pair flips


@pytest.mark.parametrize("name", sorted(PAIR_FLIP_MAPS))
def test_builtin_pair_flips_swap_every_class(name):
    partner = pair_flip_partners(name, 10)
    assert np.array_equal(partner[partner], np.arange(10))  # pairs: flipping twice gives the class back
    assert (partner != np.arange(10)).all()  # no class keeps its label
    y = np.repeat(np.arange(10), 30)
    out = noisy_labels(y, noise_type="pair_flip", rate=0.4, seed=3, rules=name, num_classes=10)
    hit = out != y
    assert hit.sum() == 120
    assert np.array_equal(out[hit], partner[y[hit]])


def test_pair_flip_maps_are_the_documented_pairs():
    def pairs(name):
        return {frozenset((a, b)) for a, b in PAIR_FLIP_MAPS[name].items()}

    # T-shirt/Shirt, Pullover/Coat, Sneaker/Ankle boot, Trouser/Dress, Sandal/Bag
    assert pairs("fashion_mnist") == {frozenset(p) for p in ((0, 6), (2, 4), (7, 9), (1, 3), (5, 8))}
    assert pairs("mnist") == pairs("digits") == {frozenset(p) for p in ((0, 6), (1, 7), (2, 8), (3, 5), (4, 9))}
    # airplane/ship, automobile/truck, bird/frog, cat/dog, deer/horse
    assert pairs("cifar10") == {frozenset(p) for p in ((0, 8), (1, 9), (2, 6), (3, 5), (4, 7))}


def test_pair_flip_default_is_next_class_and_user_maps():
    y = np.repeat(np.arange(5), 20)
    out = noisy_labels(y, noise_type="pair_flip", rate=1.0, seed=0, num_classes=5)
    assert np.array_equal(out, (y + 1) % 5)
    # A 3-cycle is a permutation too; classes 3 and 4 are left out and keep their label.
    out = noisy_labels(y, noise_type="pair_flip", rate=1.0, seed=0, num_classes=5, rules={0: 1, 1: 2, 2: 0})
    assert np.array_equal(out, np.array([1, 2, 0, 3, 4])[y])


def test_add_label_noise_pair_flip_on_fashion_mnist_classes():
    features = Features({"label": ClassLabel(num_classes=10)})
    ds = Dataset.from_dict({"label": list(range(10)) * 50}, features=features)
    out = add_label_noise(ds, noise_type="pair_flip", rate=0.4, rules="fashion_mnist", seed=1)
    assert realised_noise_rate(out) == 0.4  # every class has a partner: the rate is realised exactly
    label, clean = np.array(out["label"]), np.array(out["clean_label"])
    flipped = label != clean
    assert np.array_equal(label[flipped], pair_flip_partners("fashion_mnist", 10)[clean[flipped]])


def test_pair_flip_partner_missing_logs_realised_rate(caplog):
    ds = Dataset.from_dict({"label": [0, 1, 2, 3] * 25}, features=Features({"label": ClassLabel(num_classes=4)}))
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(ds, noise_type="pair_flip", rate=1.0, seed=0, rules={0: 1, 1: 0})
    assert realised_noise_rate(out) == 0.5
    assert "no partner for their class" in caplog.text and "realised rate 0.5000 < rate 1.0000" in caplog.text


def test_maps_that_keep_a_class_say_so_in_the_realised_rate_warning(caplog):
    # Every class has a rule / a partner here, yet the warning used to blame hit rows with "no rule" ("no partner").
    ds = Dataset.from_dict({"label": [0, 1, 2] * 4}, features=Features({"label": ClassLabel(num_classes=3)}))
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(ds, noise_type="rule_map", rate=1.0, seed=0, rules={0: [0, 1], 1: [2], 2: [0]})
    assert out["label"][:3] == [0, 2, 0] and realised_noise_rate(out) == 8 / 12  # every hit class-0 row drew 0
    assert "no rule for their class, or drew their own class from its rule, and keep their label" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_lilaw.noise"):
        out = add_label_noise(ds, noise_type="pair_flip", rate=1.0, seed=0, rules={0: 0, 1: 2, 2: 1})
    assert out["label"][:3] == [0, 2, 1] and realised_noise_rate(out) == 8 / 12
    assert "no partner for their class, or are their own partner, and keep their label" in caplog.text


@pytest.mark.parametrize(
    ("rules", "error", "match"),
    [
        ("svhn", ValueError, "Unknown pair flip map 'svhn'"),
        ({0: 1}, ValueError, r"must permute its classes.*classes \[0\] and partners \[1\]"),
        ({0: 1, 1: 1}, ValueError, r"must permute its classes.*partners \[1, 1\]"),
        ({0: 3, 3: 0}, ValueError, r"0 -> 3.*\[0, 3\)"),
        ({0: [1], 1: [0]}, ValueError, "one partner class per class"),
        ([1, 0, 2], TypeError, "a name, a {class: partner} mapping or None"),
    ],
)
def test_pair_flip_rules_are_validated(rules, error, match):
    with pytest.raises(error, match=match):
        noisy_labels(np.arange(9) % 3, noise_type="pair_flip", rate=0.5, seed=0, rules=rules, num_classes=3)


def test_named_pair_flip_needs_its_class_count():
    with pytest.raises(ValueError, match="pairs the 10 classes of cifar10, but there are num_classes=100"):
        noisy_labels(np.arange(100), noise_type="pair_flip", rate=0.5, seed=0, rules="cifar10", num_classes=100)


# ----------------------------------------------------------------------------- renamed types


@pytest.mark.parametrize(
    ("old", "new", "kw", "reference"),
    [
        # outputs of the code before the rename: the old names keep giving the same labels
        ("asymmetric", "random_transition", {},
         [2, 7, 8, 2, 0, 1, 2, 1, 4, 3, 3, 1, 0, 1, 4, 5, 0, 9, 6, 2, 6, 6, 7, 7, 8, 8, 8, 9, 8, 9]),
        ("instance", "rule_map", {"rules": "fashion_mnist"},
         [6, 6, 6, 1, 1, 1, 2, 4, 4, 3, 3, 0, 2, 2, 4, 5, 7, 7, 6, 0, 6, 9, 7, 7, 8, 8, 8, 9, 7, 9]),
    ],
)  # fmt: skip
def test_old_type_names_are_deprecated_aliases(old, new, kw, reference):
    y = np.repeat(np.arange(10), 3)
    with pytest.warns(FutureWarning, match=f"noise_type='{old}' is deprecated.*use noise_type='{new}'") as record:
        before = noisy_labels(y, noise_type=old, rate=0.5, seed=3, num_classes=10, **kw)
    assert record[0].filename == __file__  # points at the caller's line
    assert before.tolist() == reference
    assert noisy_labels(y, noise_type=new, rate=0.5, seed=3, num_classes=10, **kw).tolist() == reference
    ds = Dataset.from_dict({"label": y}, features=Features({"label": ClassLabel(num_classes=10)}))
    with pytest.warns(FutureWarning, match=new) as record:
        out = add_label_noise(ds, noise_type=old, rate=0.5, seed=3, **kw)
    assert len(record) == 1 and record[0].filename == __file__
    assert out["label"] == reference


def test_old_helper_names_warn_and_return_the_new_objects():
    import hf_lilaw.noise as noise

    with pytest.warns(FutureWarning, match="use RULE_MAPS"):
        assert noise.INSTANCE_RULES is RULE_MAPS
    with pytest.warns(FutureWarning, match="use random_transition_matrix"):
        assert noise.asymmetric_transition_matrix is random_transition_matrix
    with pytest.raises(AttributeError):
        noise.no_such_name  # noqa: B018


def test_old_names_are_named_as_label_noise_for_add_input_noise():
    with pytest.raises(ValueError, match="'instance' is a label noise type: use add_label_noise"):
        add_input_noise(_label_ds(), noise_type="instance", rate=0.1, seed=0, input_column="text")


# ----------------------------------------------------------------------------- K from plain integer labels


def test_plain_integer_labels_warn_that_k_is_guessed():
    ds = Dataset.from_dict({"label": [3] * 10})  # only class 3 present
    with pytest.warns(UserWarning, match=r"K = max\(label\) \+ 1 = 4 is a guess.*Pass num_classes=K") as record:
        out = add_label_noise(ds, noise_type="uniform", rate=1.0, seed=0)
    assert len(record) == 1 and record[0].filename == __file__
    assert set(out["label"]) == {0, 1, 2}  # what the guess does: classes above 3 are never drawn
    with pytest.warns(UserWarning, match="num_classes=K"):
        noisy_labels(np.array([3] * 10), noise_type="uniform", rate=1.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = add_label_noise(ds, noise_type="uniform", rate=1.0, seed=0, num_classes=10)
        assert max(out["label"]) > 3  # with K given, the classes above 3 are reached
        add_label_noise(_label_ds(classlabel=True), noise_type="uniform", rate=0.5, seed=0)  # K from the ClassLabel
        noisy_labels(np.array([3] * 10), noise_type="uniform", rate=1.0, seed=0, num_classes=10)
