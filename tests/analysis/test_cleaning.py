"""clean_labels: one training run flags the flipped labels, then prune or relabel exactly those rows."""

import datasets
import numpy as np
import pytest
import torch

from hf_lilaw import LiLAWConfig, LiLAWTrainer, TrainingDynamicsRecorder, find_label_issues
from hf_lilaw.analysis.cleaning import clean_labels
from hf_lilaw.analysis.scores import HARDNESS_SCORES
from hf_lilaw.core import split_meta_set

from conftest import TinyNet, blobs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """LiLAW on 240 blobs with 30 % of the labels flipped, recording the dynamics; the meta set is separate."""
    train = blobs(240, noise_rate=0.3, seed=3)
    train = train.add_column("row", list(range(len(train))))  # no sample_id: the record is matched by position
    torch.manual_seed(0)
    recorder = TrainingDynamicsRecorder()
    args = LiLAWConfig(
        output_dir=str(tmp_path_factory.mktemp("run")), per_device_train_batch_size=16, num_train_epochs=4,
        learning_rate=0.05, save_strategy="no", report_to=[], disable_tqdm=True, seed=0, lilaw_warmup_epochs=1,
    )
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train, meta_dataset=blobs(48, seed=1),
                           callbacks=[recorder])
    trainer.train()
    return train, trainer, recorder.dynamics


def test_flagged_rows_are_mostly_the_flipped_ones(run, caplog):
    train, _, dynamics = run
    flipped = np.asarray(train["is_noisy"])
    assert flipped.mean() == pytest.approx(0.3, abs=0.06)  # the precision of flagging at random
    # Four epochs of a tiny model: W_α is J-shaped (the flipped rows are its tail, not a second peak), so the
    # automatic split declines and says how to flag at a known rate.
    assert not find_label_issues(dynamics=dynamics, score="w_alpha").any()
    assert "one group, not two" in caplog.text
    at_rate = find_label_issues(dynamics=dynamics, score="w_alpha", frac_issues=0.3)  # noise rate known
    assert flipped[at_rate].mean() > 0.8 and at_rate[flipped].mean() > 0.8


def test_prune_drops_exactly_the_flagged_rows(run):
    train, _, dynamics = run
    flagged = find_label_issues(dynamics=dynamics, score="aum", frac_issues=0.3)
    pruned = clean_labels(train, action="prune", dynamics=dynamics, score="aum", frac_issues=0.3, expected_noise_rate=0.3)
    assert len(pruned) == len(train) - flagged.sum() == len(train) - 72
    assert pruned["row"] == np.flatnonzero(~flagged).tolist()  # kept rows, in order
    assert np.mean(pruned["is_noisy"]) < 0.15  # from 30 % noise
    # The default removes nothing from scores that show one group.
    assert len(clean_labels(train, action="prune", dynamics=dynamics, score="aum")) == len(train)


def test_warns_when_removing_more_than_the_estimated_noise(run):
    train, _, dynamics = run
    # The advice fits the rule used: the refusal's own "pass frac_issues=", and max_fraction= (refused beside
    # frac_issues=), were offered to a user who had passed frac_issues=.
    with pytest.warns(UserWarning, match=r"would remove 72 of 240 rows \(30.0%\), more than the estimated noise of "
                                         r"0.0% from the scores' shape \(the automatic split finds no second group "
                                         r"in them\)\. Check that so many rows are mislabelled; pass expected_noise_rate=") as caught:
        clean_labels(train, action="prune", dynamics=dynamics, score="aum", frac_issues=0.3)
    assert not any("max_fraction" in str(w.message) or "frac_issues=" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="more than the estimated noise of 20.0% from the expected_noise_rate you gave"):
        clean_labels(train, action="prune", dynamics=dynamics, frac_issues=0.3, expected_noise_rate=0.2)
    capped = clean_labels(train, action="prune", dynamics=dynamics, threshold=-2.0, max_fraction=0.2,
                          expected_noise_rate=0.2)
    assert len(capped) == 240 - 48
    mask = np.zeros(len(train), dtype=bool)
    mask[:100] = True
    with pytest.warns(UserWarning, match="would relabel 100 of 240"):
        clean_labels(train, action="relabel", issues=mask, predictions=np.zeros(240, int), expected_noise_rate=0.3)
    with pytest.raises(ValueError, match=r"expected_noise_rate must lie in \[0, 1\]"):
        clean_labels(train, action="prune", issues=mask, expected_noise_rate=30)


def test_relabel_changes_exactly_the_flagged_rows_to_the_prediction(run):
    train, trainer, _ = run
    table = trainer.score_samples(train)
    flagged = find_label_issues(scores=-np.asarray(table["w_alpha"]), frac_issues=0.3)
    relabelled = clean_labels(train, action="relabel", scores=table, frac_issues=0.3, expected_noise_rate=0.3)
    assert relabelled.column_names == train.column_names and len(relabelled) == len(train)
    assert relabelled.features["label"] == train.features["label"]
    old, new = np.asarray(train["label"]), np.asarray(relabelled["label"])
    prediction = np.asarray(table["prediction"])
    np.testing.assert_array_equal(new[~flagged], old[~flagged])
    np.testing.assert_array_equal(new[flagged], prediction[flagged])
    assert (new[flagged] != old[flagged]).mean() > 0.8  # low W_α: the model disagrees with the given label
    clean = np.asarray(train["clean_label"])
    assert (new == clean).mean() > (old == clean).mean() + 0.1
    # add_label_noise's flag follows the new labels, so the noise left is measured on them
    np.testing.assert_array_equal(relabelled["is_noisy"], new != clean)
    assert np.mean(relabelled["is_noisy"]) < np.mean(train["is_noisy"]) - 0.1
    pruned = clean_labels(train, action="prune", scores=table, frac_issues=0.3)
    np.testing.assert_array_equal(pruned["is_noisy"], np.asarray(train["is_noisy"])[~flagged])  # rows kept as they are


def test_relabel_checks_the_class_range(run):
    train, _, _ = run
    mask = np.zeros(len(train), dtype=bool)
    mask[:5] = True
    good = np.zeros(len(train), dtype=int)
    with_classes = train.cast_column("label", datasets.ClassLabel(num_classes=3))
    for bad, where in ((12, "class 12 at row 7"), (-1, "class -1 at row 7")):
        predictions = good.copy()
        predictions[7] = bad
        with pytest.raises(ValueError, match=f"{where} .* the classes are 0..2"):
            clean_labels(with_classes, action="relabel", issues=mask, predictions=predictions)
    with pytest.raises(ValueError, match="4 columns of logits.* 3 classes"):
        clean_labels(with_classes, action="relabel", issues=mask, predictions=np.zeros((len(train), 4)))
    with pytest.raises(ValueError, match="class -1 at row 0 .* the classes are ≥ 0"):  # plain int labels
        clean_labels(train, action="relabel", issues=mask, predictions=good - 1)
    with pytest.raises(ValueError, match="fractional"):
        clean_labels(train, action="relabel", issues=mask, predictions=good + 0.5)
    relabelled = clean_labels(with_classes, action="relabel", issues=mask, predictions=good + 2)
    assert relabelled["label"][:6] == [2, 2, 2, 2, 2, int(train["label"][5])]
    # trainer.predict(...).predictions of a model that also returns features is a tuple: a numpy error before
    logits = np.eye(3)[good + 2] * 4.0
    for features in (np.zeros((len(train), 5)), np.zeros((len(train), 3))):
        from_tuple = clean_labels(with_classes, action="relabel", issues=mask, predictions=(logits, features))
        assert from_tuple["label"][:] == relabelled["label"][:]


def test_relabel_from_dynamics_with_predictions_matches_a_mask(run):
    train, trainer, dynamics = run
    logits = trainer.predict(train).predictions
    mask = find_label_issues(dynamics=dynamics, frac_issues=0.3)
    from_dynamics = clean_labels(train, action="relabel", dynamics=dynamics, frac_issues=0.3, predictions=logits,
                                 expected_noise_rate=0.3)
    from_mask = clean_labels(train, action="relabel", issues=mask, predictions=logits.argmax(1))
    assert from_dynamics["label"] == from_mask["label"]
    assert sum(a != b for a, b in zip(from_mask["label"], train["label"])) <= mask.sum()


def test_bad_input_names_the_fix(run):
    train, _, dynamics = run
    with pytest.raises(ValueError, match="'prune'.*'relabel'"):
        clean_labels(train, action="drop", dynamics=dynamics)
    with pytest.raises(ValueError, match="exactly one of"):
        clean_labels(train, action="prune")
    with pytest.raises(ValueError, match="relabel needs the model's predictions"):
        clean_labels(train, action="relabel", dynamics=dynamics)
    with pytest.raises(ValueError, match="no sample_id column"):
        clean_labels(train.select(range(10)), action="prune", dynamics=dynamics)
    with pytest.raises(ValueError, match="sample_id values reach"):
        clean_labels(train.add_column("sample_id", [i + 1 for i in range(len(train))]), action="prune", dynamics=dynamics)
    with pytest.raises(ValueError, match=r"sample_id' values repeat .* share one recorded score"):
        clean_labels(train.add_column("sample_id", [i // 2 for i in range(len(train))]), action="prune", dynamics=dynamics)
    with pytest.raises(ValueError, match="one value per row"):
        clean_labels(train, action="prune", scores=np.zeros(3))
    with pytest.raises(TypeError):
        clean_labels(train, "prune", dynamics=dynamics)


def test_counts_are_over_the_rows_passed_when_the_data_set_holds_part_of_the_record(run):
    """num_issues / frac_issues / the ranking count over the rows of a filtered data set, not the whole record."""
    train, _, dynamics = run
    with_ids = train.add_column("sample_id", np.arange(len(train)))
    part = with_ids.select(range(0, len(train), 2))  # 120 of the 240 recorded samples
    aum = find_label_issues(dynamics=dynamics, score="aum", num_issues=len(train))  # every row scored
    assert aum.all()
    values = np.asarray(HARDNESS_SCORES["aum"](dynamics))[part["sample_id"]]
    for rule, removed in (({"num_issues": 10}, 10), ({"frac_issues": 0.2}, 24)):
        pruned = clean_labels(part, action="prune", dynamics=dynamics, score="aum", expected_noise_rate=0.3, **rule)
        assert len(part) - len(pruned) == removed
        expected = find_label_issues(scores=values, **rule)  # the part's own highest scores
        assert pruned["row"] == np.asarray(part["row"])[~expected].tolist()
        # The order of the rows does not matter.
        shuffled = clean_labels(part.shuffle(seed=1), action="prune", dynamics=dynamics, score="aum",
                                expected_noise_rate=0.3, **rule)
        assert sorted(shuffled["row"]) == pruned["row"]
    # The whole record, in any order, flags what find_label_issues(dynamics=...) flags.
    everything = clean_labels(with_ids.shuffle(seed=2), action="prune", dynamics=dynamics, score="aum",
                              num_issues=30, expected_noise_rate=0.3)
    kept = ~find_label_issues(dynamics=dynamics, score="aum", num_issues=30)
    assert sorted(everything["row"]) == np.flatnonzero(kept).tolist()


def test_readme_flow_with_the_automatic_meta_split_keeps_the_meta_rows(tmp_path):
    """No meta_dataset and no sample_id: clean_labels(train, ...) on the data set passed to the trainer keeps the
    rows LiLAW split off as its meta set (never scored, never flagged) and counts over the scored rows; the split's
    seed puts the last row in the meta set, so the record must be sized by the set passed, not by the ids trained."""
    train = blobs(100, seed=3).add_column("row", list(range(100)))
    seed = next(s for s in range(50) if 99 in split_meta_set(train, fraction=0.15, seed=s)[1]["row"])
    torch.manual_seed(0)
    recorder = TrainingDynamicsRecorder()
    args = LiLAWConfig(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=2, learning_rate=0.05,
                       save_strategy="no", report_to=[], disable_tqdm=True, seed=0, lilaw_seed=seed,
                       lilaw_warmup_epochs=1)  # fmt: skip
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train, callbacks=[recorder])
    trainer.train()
    dynamics = recorder.dynamics
    meta_rows = np.asarray(trainer.meta_dataset["row"])
    assert len(meta_rows) == 15 and 99 in meta_rows and dynamics.num_samples == len(train)
    assert np.isnan(np.asarray(HARDNESS_SCORES["w_alpha"](dynamics))[meta_rows]).all()
    assert clean_labels(train, action="prune", dynamics=dynamics, num_issues=0)["row"] == list(range(100))
    pruned = clean_labels(train, action="prune", dynamics=dynamics, score="aum", frac_issues=0.2, expected_noise_rate=0.3)
    assert len(pruned) == 100 - round(0.2 * 85)
    assert set(meta_rows) <= set(pruned["row"])
    # The trainer's own (training) part still works: its rows carry the ids.
    assert len(clean_labels(trainer.train_dataset, action="prune", dynamics=dynamics, num_issues=0)) == 85
    with pytest.raises(ValueError, match="None of the data set's 15 rows has a 'w_alpha' score"):
        clean_labels(trainer.meta_dataset, action="prune", dynamics=dynamics, num_issues=1)


def test_a_mask_refuses_the_rules_that_choose_rows_from_scores():
    # issues= with num_issues=1 dropped both flagged rows, the count silently ignored (threshold=, epoch= too)
    train = datasets.Dataset.from_dict({"x": [[float(i)] for i in range(6)], "label": [0, 1, 2, 0, 1, 2]})
    mask = np.array([False, True, False, False, True, False])
    assert clean_labels(train, action="prune", issues=mask)["x"] == [[0.0], [2.0], [3.0], [5.0]]
    for rule in ({"num_issues": 1}, {"frac_issues": 0.1}, {"threshold": 5.0}, {"max_fraction": 0.1}, {"epoch": 2}):
        with pytest.raises(ValueError, match=rf"issues= is already the flag of each row, so {next(iter(rule))}= \(for flagging by scores\) would be ignored"):
            clean_labels(train, action="prune", issues=mask, **rule)


def test_scores_that_are_all_nan_say_so():
    # "check the recorder or epoch=" before: neither is involved with scores= (epoch= is refused there)
    train = datasets.Dataset.from_dict({"x": [[0.0], [1.0], [2.0]], "label": [0, 1, -100]})
    table = datasets.Dataset.from_dict({"w_alpha": [float("nan")] * 3, "prediction": [0, 1, 1]})
    for scores in (np.full(3, np.nan), table):
        with pytest.raises(ValueError, match="All 3 scores are NaN: none of the rows was scored"):
            clean_labels(train, action="prune", scores=scores, num_issues=1)


def test_a_data_set_of_another_kind_is_told_how_to_convert():
    # every kind was told "for a streamed set, materialise the training split first"
    train = datasets.Dataset.from_dict({"x": [[0.0], [1.0]], "label": [0, 1]})

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return train[i]

    for dataset, fix in (
        (datasets.DatasetDict({"train": train}), r"pass the split you trained on, e.g. dataset\['train'\]"),
        (Rows(), r"convert it, e.g. datasets.Dataset.from_list"),
        (train.to_iterable_dataset(), "for a streamed set, materialise the training split first"),
    ):
        with pytest.raises(ValueError, match=f"needs a datasets.Dataset .*, got {type(dataset).__name__}; {fix}"):
            clean_labels(dataset, action="prune", issues=np.zeros(2, dtype=bool))
    rows = datasets.Dataset.from_list([Rows()[i] for i in range(len(Rows()))])  # the conversion offered works
    assert clean_labels(rows, action="prune", issues=np.array([True, False]))["x"] == [[1.0]]
