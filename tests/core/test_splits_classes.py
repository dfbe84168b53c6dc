import math

import datasets
import numpy as np

from hf_lilaw.core import split_meta_set


def test_scikit_learns_split_never_takes_a_small_class_out_of_train(caplog):
    """Above a fraction of 0.5 scikit-learn's stratified split rounds a class of 2 rows down to no training row and
    puts both in meta, silently: a class the model never saw. The carve keeps one of them for training."""
    labels = np.repeat([0, 1, 2], [2, 2, 100])
    data = datasets.Dataset.from_dict({"label": labels})
    train, meta = split_meta_set(data, fraction=0.8, seed=0)
    assert np.bincount(train["label"], minlength=3).tolist() == [1, 1, 18]
    assert np.bincount(meta["label"], minlength=3).tolist() == [1, 1, 82] and len(meta) == math.ceil(0.8 * 104)
    assert "leaves classes [0] without a training row" in caplog.text
    for seed in range(5):
        train, _ = split_meta_set(data, fraction=0.8, seed=seed)
        assert np.bincount(train["label"], minlength=3).min() >= 1
