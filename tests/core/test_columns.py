import pytest

from hf_lilaw.core.columns import check_one_label_column


def test_one_label_column_passes_and_two_are_refused_naming_the_one_trained_on():
    check_one_label_column(["x", "labels", "sample_id"], name="train_dataset")
    check_one_label_column(["x"], name="train_dataset")  # no label column: not this check's error
    with pytest.raises(ValueError) as error:
        check_one_label_column(["x", "label", "labels"], name="train_dataset")
    assert str(error.value) == (
        "train_dataset has the label columns 'label' and 'labels': Trainer's default collator trains on 'labels' "
        "while hf_lilaw's label checks read 'label', so which one holds the labels is ambiguous. Keep one label "
        "column: remove or rename the others, e.g. dataset.remove_columns(['label']) to train on 'labels'."
    )
    with pytest.raises(ValueError, match=r"^meta_dataset has the label columns 'label' and 'label_ids': Trainer's "
                                         r"default collator and hf_lilaw's label checks use 'label' and ignore "
                                         r"'label_ids', .* dataset.remove_columns\(\['label_ids'\]\)"):
        check_one_label_column(["label_ids", "x", "label"], name="meta_dataset")
