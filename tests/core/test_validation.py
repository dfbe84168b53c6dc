"""Checks of what a user passes as data (`hf_lilaw.core.validation`); the checks of side and evaluation sets in
trainers are in test_side_set_checks.py."""

import datasets
import pytest

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.validation import scan_dataset

from conftest import TinyNet, blobs


def test_a_label_that_is_none_is_named_by_its_row_not_as_a_dtype_to_cast(tmp_path):
    # An integer label column with an empty entry reads as floats with NaN: the error said "got dtype float32 ...
    # Cast the label column to int", of a column that is int64 already, and named no row.
    train = blobs(24).map(lambda row, i: {"label": None if i in (5, 9) else row["label"]}, with_indices=True)
    assert train.features["label"] == datasets.Value("int64")
    expected = (r"^train_dataset row 5 has no label: its 'label' is None \(2 such rows\). Drop them, e\.g\. "
                r"train_dataset\.filter\(lambda row: row\['label'\] is not None\), or give each a class index")
    with pytest.raises(ValueError, match=expected):
        scan_dataset(train, name="train_dataset", num_classes=3)
    args = LiLAWConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, lilaw_meta_batch_size=2)
    with pytest.raises(ValueError, match=expected):  # LiLAW's automatic meta split scans the set as passed
        LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train)
    classes = train.cast_column("label", datasets.ClassLabel(names=["a", "b", "c"])).select([9, 0, 1])
    with pytest.raises(ValueError, match=r"^eval_dataset row 0 has no label: its 'label' is None \(1 such rows\)"):
        scan_dataset(classes, name="eval_dataset", num_classes=3, labels_required=False)
    rows = [{"x": [1.0], "labels": 0}, {"x": [1.0], "labels": None}]
    with pytest.raises(ValueError, match=r"^meta_dataset row 1 has no label: its 'labels' is None \(1 such rows\)\. "
                                         r"Drop them, e\.g\. \[row for row in meta_dataset if row\['labels'\] is not None\]"):
        scan_dataset(rows, name="meta_dataset", num_classes=3)
