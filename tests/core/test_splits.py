import math

import datasets
import numpy as np
import pytest

from hf_lilaw.core import split_meta_set
from hf_lilaw.core.columns import find_label_column


def labelled(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])  # imbalanced
    return datasets.Dataset.from_dict({"row": np.arange(n), "label": labels})


def test_split_is_stratified_disjoint_ordered_and_seeded():
    data = labelled()
    train, meta = split_meta_set(data, fraction=0.15, seed=0)
    assert len(meta) == 30 and len(train) == 170
    assert set(train["row"]).isdisjoint(meta["row"])
    assert list(train["row"]) == sorted(train["row"])
    expected = np.bincount(data["label"], minlength=4) * 0.15
    np.testing.assert_allclose(np.bincount(meta["label"], minlength=4), expected, atol=1)
    again_train, again_meta = split_meta_set(data, fraction=0.15, seed=0)
    assert again_meta["row"] == meta["row"]
    _, other = split_meta_set(data, fraction=0.15, seed=1)
    assert other["row"] != meta["row"]


def test_split_keeps_the_transform_and_never_runs_it_for_labels():
    calls = []

    def transform(batch):
        calls.append(1)
        return {"double": [2 * r for r in batch["row"]], "label": batch["label"]}

    data = labelled().with_transform(transform)
    train, meta = split_meta_set(data, fraction=0.2, seed=0)
    assert calls == []
    assert meta[0]["double"] == 2 * labelled()[meta._indices.column(0)[0].as_py()]["row"]


def test_stratified_split_is_scikit_learns():
    """The rows recorded benchmarks were run on: scikit-learn's stratified split, unchanged."""
    from sklearn.model_selection import train_test_split

    data = labelled()
    _, meta = split_meta_set(data, fraction=0.15, seed=3)
    _, expected = train_test_split(np.arange(200), test_size=0.15, random_state=3, stratify=data["label"])
    assert meta["row"][:] == sorted(expected.tolist())


def test_fewer_meta_rows_than_classes_still_give_each_class_its_share(caplog):
    data = datasets.Dataset.from_dict({"row": np.arange(50), "label": np.repeat(np.arange(10), 5)})
    for seed in range(5):
        train, meta = split_meta_set(data, fraction=0.15, seed=seed)
        per_class = np.bincount(meta["label"], minlength=10)
        assert len(meta) == 8 and per_class.max() == 1 and per_class.sum() == 8  # 0.75 each, to within one
        assert sorted(train["row"][:] + meta["row"][:]) == list(range(50))
        assert split_meta_set(data, fraction=0.15, seed=seed)[1]["row"][:] == meta["row"][:]
    assert "carving each class's share instead" in caplog.text


def test_no_class_gives_its_last_training_row():
    """The fallback carve used to move a singleton class into meta (its 0.2 the largest remainder), leaving training
    without it. A row can be in one split only: in train the class is learned; in meta it would be scored by a model
    that never saw it, and a test carve would measure a class the model cannot predict."""
    data = datasets.Dataset.from_dict({"label": [0] * 30 + [1]})
    train, meta = split_meta_set(data, fraction=0.2, seed=0)
    # 7 meta rows (scikit-learn's ceil(0.2 · 31)): class 1's share is capped at 0, class 0 gives the seventh
    assert np.bincount(meta["label"], minlength=2).tolist() == [7, 0] and train["label"].count(1) == 1
    for sizes in ([1, 20], [2, 2, 2, 2, 40], [1] * 10 + [10]):
        labels = np.repeat(np.arange(len(sizes)), sizes)
        for seed in range(5):
            train, meta = split_meta_set(datasets.Dataset.from_dict({"label": labels}), fraction=0.3, seed=seed)
            assert np.bincount(train["label"], minlength=len(sizes)).min() >= 1
            assert len(meta) == math.ceil(0.3 * len(labels))
    # where no class gives its last row, the carve is what it was (a class of 2 may still give none)
    three = datasets.Dataset.from_dict({"label": np.repeat([0, 1, 2], [2, 30, 30])})
    assert np.bincount(split_meta_set(three, fraction=0.15, seed=0)[1]["label"], minlength=3).tolist() == [0, 5, 5]
    with pytest.raises(ValueError, match="keep a row of every class for training; pass more rows per class"):
        split_meta_set(datasets.Dataset.from_dict({"label": list(range(10))}), fraction=0.15, seed=0)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="Rename the column"):
        find_label_column(datasets.Dataset.from_dict({"target": [0, 1]}))
    with pytest.raises(ValueError, match="fraction must be in"):
        split_meta_set(labelled(), fraction=0.0, seed=0)
    with pytest.raises(ValueError, match="keep any for training; pass more rows or a smaller fraction"):
        split_meta_set(datasets.Dataset.from_dict({"label": [0]}), fraction=0.15, seed=0)


def test_unlabelled_rows_stay_in_train_and_the_labelled_split_is_unchanged():
    data = labelled()
    labels = np.asarray(data["label"])
    mixed = datasets.Dataset.from_dict(
        {"row": np.arange(260), "label": np.concatenate([labels, np.full(60, -100)])}
    )
    train, meta = split_meta_set(mixed, fraction=0.15, seed=0)
    assert -100 not in meta["label"] and len(meta) == 30  # 15 % of the 200 labelled rows
    assert meta["row"][:] == split_meta_set(data, fraction=0.15, seed=0)[1]["row"][:]
    assert set(range(200, 260)) <= set(train["row"]) and len(train) == 230
    few = datasets.Dataset.from_dict({"row": np.arange(8), "label": [0, 1, -100, -100, 0, 1, -100, -100]})
    train, meta = split_meta_set(few, fraction=0.5, seed=0)
    assert sorted(meta["label"]) == [0, 1] and train["label"].count(-100) == 4
    with pytest.raises(ValueError, match="all labelled -100"):
        split_meta_set(datasets.Dataset.from_dict({"label": [-100, -100]}), fraction=0.5, seed=0)
