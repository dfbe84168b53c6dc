"""Checks of what a user passes as data (`hf_lilaw.core.validation`); the checks of side and evaluation sets in
trainers are in test_side_set_checks.py."""

import datasets
import pytest
import torch

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.validation import check_batch, scan_dataset

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


MISSING = ("-1 is datasets' ClassLabel value for a missing label: mark such rows -100 to skip them, or, for a set "
           "without labels (a test split), remove the label column (dataset.remove_columns('{}')).")
WIDTH = "Fix the label, or give the model one output per class (num_labels, or the width of its last layer)."


def test_datasets_missing_class_label_minus_1_is_explained_not_blamed_on_the_models_width(tmp_path):
    # A test split as datasets ships many (GLUE's): every label -1. predict said "Fix the label, or give the model one
    # output per class", which fixes nothing; removing the label column predicts.
    test = blobs(6, seed=2).map(lambda row: {"label": -1}).cast_column("label", datasets.ClassLabel(names=["a", "b", "c"]))
    args = LiLAWConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, lilaw_meta_batch_size=4)
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(24), meta_dataset=blobs(8, seed=1))
    with pytest.raises(ValueError) as error:
        trainer.predict(test)
    assert str(error.value).endswith("The first is row 0 (label -1). " + MISSING.format("label"))
    assert trainer.predict(test.remove_columns("label")).predictions.shape == (6, 3)
    with pytest.raises(ValueError) as error:
        scan_dataset(test.rename_column("label", "labels"), name="eval_dataset", num_classes=3, labels_required=False)
    assert str(error.value).endswith(MISSING.format("labels"))
    with pytest.raises(ValueError) as error:  # -1 and a label past the classes: both fixes
        scan_dataset([{"x": 1.0, "label": 7}, {"x": 1.0, "label": -1}], name="meta_dataset", num_classes=3)
    assert str(error.value).endswith("The first is row 0 (label 7). " + MISSING.format("label") + " " + WIDTH)
    batch = {"labels": torch.tensor([0, -1]), "x": torch.zeros(2, 8)}
    with pytest.raises(ValueError) as error:  # a streamed or torch set, checked batch by batch
        check_batch(batch, name="eval_dataset", rows=["row 0", "row 1"], num_classes=3, require_labelled=False)
    assert str(error.value).startswith("eval_dataset row 1 has label -1, but the model outputs 3 classes")
    assert str(error.value).endswith(MISSING.format("label"))
    with pytest.raises(ValueError) as error:
        check_batch({**batch, "labels": torch.tensor([0, 3])}, name="eval_dataset", rows=["row 0", "row 1"], num_classes=3)
    assert str(error.value).endswith("(or be -100 to skip a row). " + WIDTH)
