"""hf_lilaw.data.splits: the test and meta carves of `finish_splits` and `with_meta_split`."""

from datasets import Dataset, DatasetDict

from hf_lilaw.data import finish_splits, with_meta_split


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
