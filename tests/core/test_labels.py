import datasets
import numpy as np
import pytest
import torch

from hf_lilaw.core.labels import (
    check_class_labels,
    check_class_names,
    check_finite_columns,
    check_label_feature,
    check_single_label_model,
    dataset_labels,
)


def test_class_labels_in_range_pass_and_ignored_rows_are_skipped():
    check_class_labels(torch.tensor([0, 2, -100, 1]), num_classes=3, name="x")
    check_class_labels(np.array([1, 0]), num_classes=2, name="x")


@pytest.mark.parametrize(
    ("labels", "num_classes", "message"),
    [
        (torch.tensor([0, 3]), 3, r"x has labels in \[0, 3\] but the model outputs 3 classes"),
        (np.array([-2, 1]), 3, r"labels in \[-2, 1\]"),
        (torch.tensor([0.0, 1.0]), 3, "integer class indices"),
        (np.array([[0, 1]]), 3, r"shape \(batch,\)"),
        (torch.tensor([0, 1, 1]), 1, "use 2 outputs"),
    ],
)
def test_bad_class_labels_name_the_fix(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        check_class_labels(labels, num_classes=num_classes, name="x")


def test_label_features_and_reading_labels():
    data = datasets.Dataset.from_dict({"x": [[1.0], [2.0]], "label": [1, 0]})
    check_label_feature(data, name="d")
    assert dataset_labels(data, name="d").tolist() == [1, 0]
    assert dataset_labels([{"label": 2}, {"label": 0}], name="d") is None
    assert dataset_labels([{"label": 2}, {"label": 0}], name="d", read_rows=True).tolist() == [2, 0]
    with pytest.raises(ValueError, match="d examples carry no label"):
        dataset_labels([{"y": 2}], name="d", read_rows=True)
    with pytest.raises(ValueError, match="has dtype float32"):
        check_label_feature(data.cast_column("label", datasets.Value("float32")), name="d")
    with pytest.raises(ValueError, match="multi-label"):
        check_label_feature(data.map(lambda row: {"label": [row["label"]]}), name="d")


def test_non_finite_rows_are_counted_per_column():
    data = datasets.Dataset.from_dict({
        "label": [0, 1, 0, 1],
        "x": [[1.0, 2.0], [float("nan"), 0.0], [1.0, float("inf")], [0.0, 0.0]],
        "ragged": [[1.0], [1.0, 2.0], [3.0], [4.0, 5.0, 6.0]],
        "name": ["a", "b", "c", "d"],
    })
    with pytest.raises(ValueError, match=r"m has 2 of 4 rows with non-finite values .* column 'x' .*\[1, 2\]"):
        check_finite_columns(data, name="m")
    ragged = data.remove_columns("x").map(lambda row, i: {"ragged": row["ragged"] + ([float("nan")] if i == 3 else [])},
                                          with_indices=True)
    with pytest.raises(ValueError, match=r"1 of 4 rows .* column 'ragged' .*\[3\]"):
        check_finite_columns(ragged, name="m")
    check_finite_columns(data.remove_columns("x"), name="m")


def test_models_set_up_for_another_task_are_refused():
    from transformers import PretrainedConfig

    class Model(torch.nn.Module):
        def __init__(self, **config):
            super().__init__()
            self.config = PretrainedConfig(**config)

    check_single_label_model(Model(num_labels=3))
    with pytest.raises(ValueError, match="for binary labels use 2 outputs"):
        check_single_label_model(Model(num_labels=1))
    with pytest.raises(ValueError, match="multi_label_classification"):
        check_single_label_model(Model(num_labels=3, problem_type="multi_label_classification"))


def test_class_names_must_match_the_training_sets_class_label(caplog):
    from transformers import PretrainedConfig

    def model(names):
        module = torch.nn.Linear(2, 3)
        id2label = dict(enumerate(names)) if names else None
        module.config = PretrainedConfig(num_labels=3, **({"id2label": id2label} if id2label else {}))
        return module

    data = datasets.Dataset.from_dict(
        {"features": [[0.0, 1.0]] * 3, "label": [0, 1, 2]},
        features=datasets.Features(
            {"features": datasets.Sequence(datasets.Value("float32")), "label": datasets.ClassLabel(names=["cat", "dog", "bird"])}
        ),
    )
    check_class_names(model(["cat", "dog", "bird"]), data, name="train_dataset")
    check_class_names(model(None), data, name="train_dataset")  # LABEL_0, LABEL_1, LABEL_2: nothing to compare
    check_class_names(model(["dog", "bird", "cat"]), data.cast_column("label", datasets.Value("int64")), name="t")
    with pytest.raises(ValueError, match=r"\['dog', 'bird', 'cat'\].*\['cat', 'dog', 'bird'\].*id2label = dict"):
        check_class_names(model(["dog", "bird", "cat"]), data, name="train_dataset")
    with caplog.at_level("WARNING", logger="hf_lilaw.core.labels"):
        check_class_names(model(["Cat", "Dog", "Bird"]), data, name="train_dataset")
    assert "name its outputs wrongly" in caplog.text
