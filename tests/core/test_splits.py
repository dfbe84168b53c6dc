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


def test_singleton_class_falls_back_to_an_unstratified_split(caplog):
    data = datasets.Dataset.from_dict({"label": [0] * 30 + [1]})
    train, meta = split_meta_set(data, fraction=0.2, seed=0)
    assert len(train) + len(meta) == 31
    assert "not stratified" in caplog.text


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="Rename the column"):
        find_label_column(datasets.Dataset.from_dict({"target": [0, 1]}))
    with pytest.raises(ValueError, match="fraction must be in"):
        split_meta_set(labelled(), fraction=0.0, seed=0)
