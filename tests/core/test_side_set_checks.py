"""Every side set (LiLAW's meta set, MLC's clean set) and every evaluation set is checked, whatever its type: in full
before training where it can be read cheaply, batch by batch otherwise; a bad row fails clearly, naming the set, the
row and the fix, never as a raw IndexError, ZeroDivisionError or a NaN model."""

import logging
import re

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from hf_lilaw import ELRConfig, ELRTrainer, LiLAWConfig, LiLAWTrainer, TrainingDynamicsRecorder
from hf_lilaw.core import base_trainer
from hf_lilaw.core.validation import check_batch, describe_rows, explain_collate_failure, scan_dataset
from hf_lilaw.mlc import EBOMLCTrainer, MetaLabelCorrectionConfig, MLCTrainer

from conftest import TinyNet, blobs

TRAIN, META = blobs(192), blobs(48, seed=1)


class Rows(torch.utils.data.Dataset):
    """A map-style torch data set of dict rows: read only row by row, so checked batch by batch."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def rows_of(dataset, **changes):
    """The rows of ``dataset`` as dicts of tensors; ``changes`` maps a row to the values replaced in it."""
    rows = [{"x": torch.tensor(row["x"]), "label": row["label"]} for row in dataset]
    for i, values in changes.items():
        rows[int(i.removeprefix("row"))].update(values)
    return rows


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def lilaw(tmp_path, meta=META, callbacks=(), train=TRAIN, **overrides):
    torch.manual_seed(0)
    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=12, learning_rate=0.05,
                  lilaw_warmup_steps=1, lilaw_meta_batch_size=8, save_strategy="no", report_to=[], disable_tqdm=True,
                  seed=0, use_cpu=True)
    values.update(overrides)
    eval_dataset = values.pop("eval_dataset", None)
    return LiLAWTrainer(model=TinyNet(), args=LiLAWConfig(**values), train_dataset=train, meta_dataset=meta,
                        eval_dataset=eval_dataset, callbacks=list(callbacks))


def mlc(tmp_path, clean, cls=EBOMLCTrainer, callbacks=(), train=TRAIN, **overrides):
    torch.manual_seed(0)
    values = dict(output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=8, mlc_clean_batch_size=8,
                  learning_rate=1e-2, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    values.update(overrides)
    return cls(model=TinyNet(), args=MetaLabelCorrectionConfig(**values), train_dataset=train, clean_dataset=clean,
               callbacks=list(callbacks))


# ---- non-finite values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MLCTrainer, EBOMLCTrainer])
def test_nan_features_in_an_mlc_clean_set_are_refused_up_front(tmp_path, cls):
    clean = META.map(lambda row, i: {"x": [float("nan")] * 8 if i == 7 else row["x"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"clean_dataset has 1 of 48 rows with non-finite values .* column 'x' .*\[7\]"):
        mlc(tmp_path, clean, cls=cls)


def test_nan_in_a_torch_clean_set_fails_at_its_batch_naming_the_row(tmp_path):
    clean = Rows(rows_of(META, row21={"x": torch.full((8,), float("inf"))}))
    steps = CountSteps()
    trainer = mlc(tmp_path, clean, callbacks=[steps])
    with pytest.raises(ValueError, match=r"clean_dataset row 21 holds a non-finite value \(NaN or inf\) in 'x'"):
        trainer.train()
    assert steps.steps < 12 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def family_trainer(tmp_path, family, train, callbacks=()):
    """LiLAW (given meta set, or its automatic split of ``train``: ``"lilaw_split"``), MLC or ELR on ``train``."""
    if family.startswith("lilaw"):
        return lilaw(tmp_path, meta=META if family == "lilaw" else None, callbacks=callbacks, train=train)
    if family == "mlc":
        # 12 steps of 16 rows: every row of TRAIN is drawn (the other helpers use batches of 16 too).
        return mlc(tmp_path, META, cls=MLCTrainer, callbacks=callbacks, train=train, per_device_train_batch_size=16)
    return elr(tmp_path, None, callbacks=callbacks, train=train)


@pytest.mark.parametrize("family", ["lilaw", "lilaw_split", "mlc", "elr"])
def test_nan_in_a_training_set_is_refused_before_training(tmp_path, family):
    # Trainer trains on a NaN row without a word: the weights turn NaN and the logged loss leaves the NaN out.
    train = TRAIN.map(lambda row, i: {"x": [float("nan")] * 8 if i == 150 else row["x"]}, with_indices=True)
    steps = CountSteps()
    trainer = family_trainer(tmp_path, family, train, callbacks=[steps])
    # Under LiLAW's automatic meta split the row is named by its index in the set passed, whichever part it is in.
    with pytest.raises(ValueError, match=r"^train_dataset has 1 of 192 rows with non-finite values .* column 'x' .*\[150\]"):
        trainer.train()
    assert steps.steps == 0 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_training_set_assigned_after_lilaws_automatic_split_is_checked_and_recorded_as_itself(tmp_path):
    # The split's source (the set passed to the constructor) is stale once train_dataset is assigned: checking it
    # instead let a NaN row of the new set train a NaN model, and sizing the dynamics by it failed with IndexError.
    bad = blobs(160, seed=4).map(lambda row, i: {"x": [float("nan")] * 8 if i == 7 else row["x"]}, with_indices=True)
    steps = CountSteps()
    trainer = family_trainer(tmp_path, "lilaw_split", TRAIN, callbacks=[steps])
    trainer.train_dataset = bad
    with pytest.raises(ValueError, match=r"^train_dataset has 1 of 160 rows with non-finite values .* column 'x' .*\[7\]"):
        trainer.train()
    assert steps.steps == 0 and all(torch.isfinite(p).all() for p in trainer.model.parameters())

    recorder = TrainingDynamicsRecorder()
    trainer = family_trainer(tmp_path, "lilaw_split", TRAIN, callbacks=[recorder])
    trainer.train_dataset = blobs(160, seed=4)
    trainer.train()
    assert recorder.dynamics.num_samples == 160 and np.isfinite(recorder.dynamics.loss).any(axis=0).sum() == 160


def test_a_training_set_labelled_only_with_minus_100_is_refused_before_training(tmp_path):
    train = TRAIN.map(lambda row: {"label": -100})
    steps = CountSteps()
    trainer = family_trainer(tmp_path, "lilaw", train, callbacks=[steps])
    with pytest.raises(ValueError, match=r"^Every label of train_dataset is -100 \(ignored\)"):
        trainer.train()
    assert steps.steps == 0


@pytest.mark.parametrize("family", ["lilaw", "mlc", "elr"])
def test_nan_in_a_torch_training_set_fails_at_its_batch_before_its_step(tmp_path, family):
    steps = CountSteps()
    rows = rows_of(TRAIN, row100={"x": torch.full((8,), float("inf"))})
    if family == "elr":  # ELR tracks rows by id
        rows = [{**row, "sample_id": i} for i, row in enumerate(rows)]
    train = Rows(rows)
    trainer = family_trainer(tmp_path, family, train, callbacks=[steps])
    with pytest.raises(ValueError, match=r"^train_dataset example \d+ of step (\d+)'s batch holds a non-finite value "
                       r"\(NaN or inf\) in 'x'") as refused:  # fmt: skip
        trainer.train()
    step = int(re.search(r"step (\d+)", str(refused.value)).group(1))
    assert steps.steps == step - 1  # the steps before it ran; its own did not
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_in_an_eval_set_is_refused_before_training(tmp_path):
    eval_set = blobs(32, seed=3).map(lambda row, i: {"x": [float("nan")] * 8 if i == 30 else row["x"]}, with_indices=True)
    steps = CountSteps()
    with pytest.raises(ValueError, match=r"eval_dataset has 1 of 32 rows with non-finite values .*\[30\]"):
        lilaw(tmp_path, eval_dataset=eval_set, eval_strategy="steps", eval_steps=4, callbacks=[steps]).train()
    assert steps.steps == 0


def elr(tmp_path, eval_dataset, callbacks=(), train=TRAIN):
    torch.manual_seed(0)
    args = ELRConfig(output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=12, learning_rate=0.05,
                     save_strategy="no", report_to=[], disable_tqdm=True, seed=0, use_cpu=True)
    return ELRTrainer(
        model=TinyNet(), args=args, train_dataset=train, eval_dataset=eval_dataset, callbacks=list(callbacks)
    )


@pytest.mark.parametrize("bad", ["nan", "label"])
def test_an_elr_eval_set_without_a_side_set_is_scanned_before_training(tmp_path, bad):
    # ELR registers no side set: the eval set is scanned all the same (on main it trained, then evaluated silently).
    if bad == "nan":
        eval_set = blobs(32, seed=3).map(lambda row, i: {"x": [float("nan")] * 8 if i == 30 else row["x"]}, with_indices=True)
        message = r"eval_dataset has 1 of 32 rows with non-finite values \(NaN or inf\) in column 'x' \(first rows: \[30\]"
    else:
        eval_set = blobs(48, seed=3).map(lambda row, i: {"label": 12 if i == 40 else row["label"]}, with_indices=True)
        message = r"eval_dataset has labels in \[0, 12\] .*The first is row 40 \(label 12\)"
    steps = CountSteps()
    with pytest.raises(ValueError, match=message):
        elr(tmp_path, eval_set, callbacks=[steps]).train()
    assert steps.steps == 0


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_evaluate_and_predict_refuse_a_nan_row_of_the_set_given_them_scanning_it_once(tmp_path, family, monkeypatch):
    # Trainer leaves a non-finite batch loss out of the mean (logging_nan_inf_filter): on main the NaN row's whole
    # batch silently dropped out of test_loss.
    test = blobs(32, seed=3).map(lambda row, i: {"x": [float("nan")] * 8 if i == 3 else row["x"]}, with_indices=True)
    trainer = lilaw(tmp_path, max_steps=2) if family == "lilaw" else elr(tmp_path, None)
    trainer.train()
    message = r"the test dataset has 1 of 32 rows with non-finite values \(NaN or inf\) in column 'x' \(first rows: \[3\]"
    with pytest.raises(ValueError, match=message):
        trainer.evaluate(test, metric_key_prefix="test")
    with pytest.raises(ValueError, match=message):
        trainer.predict(test)
    scans = []
    monkeypatch.setattr(base_trainer, "scan_dataset", lambda *a, **k: scans.append(k["name"]) or scan_dataset(*a, **k))
    clean = blobs(32, seed=3)
    assert trainer.evaluate(clean, metric_key_prefix="test")["test_loss"] == trainer.predict(clean).metrics["test_loss"]
    assert scans == ["the test dataset"]  # once per set (by fingerprint), not per call


# ---- labels out of range, all ignored --------------------------------------------------------------------------


def test_label_12_at_row_40_of_a_list_meta_set_fails_before_training(tmp_path):
    steps = CountSteps()
    with pytest.raises(ValueError, match=r"meta_dataset has labels in \[0, 12\] .* The first is row 40 \(label 12\)"):
        lilaw(tmp_path, meta=rows_of(META, row40={"label": 12}), callbacks=[steps]).train()
    assert steps.steps == 0


@pytest.mark.parametrize("family", ["lilaw", "mlc"])
def test_label_12_at_row_40_of_a_torch_side_set_fails_at_its_batch(tmp_path, family):
    side = Rows(rows_of(META, row40={"label": 12}))
    steps = CountSteps()
    name = "meta_dataset" if family == "lilaw" else "clean_dataset"
    trainer = lilaw(tmp_path, meta=side, callbacks=[steps]) if family == "lilaw" else mlc(tmp_path, side, callbacks=[steps])
    with pytest.raises(ValueError, match=rf"{name} row 40 has label 12, but the model outputs 3 classes: .*Fix the label"):
        trainer.train()
    assert 0 < steps.steps < 12  # at the batch that holds row 40, not before it


def test_an_out_of_range_eval_label_fails_before_training(tmp_path):
    eval_set = blobs(48, seed=3).map(lambda row, i: {"label": 12 if i == 40 else row["label"]}, with_indices=True)
    for data in (eval_set, rows_of(eval_set)):
        steps = CountSteps()
        with pytest.raises(ValueError, match=r"eval_dataset has labels in \[0, 12\] .*The first is row 40 \(label 12\)"):
            lilaw(tmp_path, eval_dataset=data, eval_strategy="steps", eval_steps=4, callbacks=[steps]).train()
        assert steps.steps == 0


def test_an_out_of_range_label_in_a_torch_eval_set_fails_clearly_at_its_batch(tmp_path):
    trainer = lilaw(tmp_path, max_steps=2, eval_dataset=Rows(rows_of(blobs(48, seed=3), row40={"label": 12})),
                    per_device_eval_batch_size=16)
    trainer.train()
    with pytest.raises(ValueError, match=r"eval_dataset row 40 has label 12, but the model outputs 3 classes"):
        trainer.evaluate()


@pytest.mark.parametrize("family", ["lilaw", "elr", "ebomlc"])
def test_an_out_of_range_eval_label_before_train_is_named_not_an_index_error(tmp_path, family):
    # A baseline evaluate() before train() with a plain nn.Module: LiLAW blamed train_dataset, ELR and EBOMLC
    # raised a bare IndexError from the loss (no width known yet to check the labels against).
    bad = blobs(48, seed=3).map(lambda row, i: {"label": 12 if i == 40 else row["label"]}, with_indices=True)
    make = {"lilaw": lambda: lilaw(tmp_path), "elr": lambda: elr(tmp_path, None), "ebomlc": lambda: mlc(tmp_path, META)}
    for data in (bad, Rows(rows_of(bad))):
        with pytest.raises(ValueError, match=r"the test dataset (has labels in \[0, 12\] .*The first is )?row 40"):
            make[family]().evaluate(data, metric_key_prefix="test")
    assert make[family]().evaluate(blobs(48, seed=3))["eval_loss"] > 0  # a good set still evaluates


def test_a_meta_set_labelled_only_with_minus_100(tmp_path):
    unlabelled = META.map(lambda row: {"label": -100})
    with pytest.raises(ValueError, match=r"Every label of meta_dataset is -100 \(ignored\)"):
        lilaw(tmp_path, meta=unlabelled)
    # Read row by row: the first meta batch fails, naming its rows (on main: ZeroDivisionError).
    trainer = lilaw(tmp_path, meta=Rows(rows_of(META, **{f"row{i}": {"label": -100} for i in range(48)})))
    with pytest.raises(ValueError, match=r"A batch of meta_dataset \(row \d+, \.\.\.\) holds no labelled row: all its labels are -100"):
        trainer.train()


# ---- clear messages -----------------------------------------------------------------------------------------------


def test_a_meta_set_whose_input_column_is_named_otherwise(tmp_path):
    with pytest.raises(ValueError, match=r"its rows have the columns \['clean_label', 'features', 'is_noisy', 'label'\], "
                                         r"the model's forward takes \(x\) and needs 'x'.*rename_column\('features', 'x'\)"):
        lilaw(tmp_path, meta=META.rename_column("x", "features")).train()
    with pytest.raises(ValueError, match=r"clean_dataset's batches: .*rename_column\('features', 'x'\)"):
        mlc(tmp_path, META.rename_column("x", "features"))


def test_a_list_of_tuples_as_a_side_set(tmp_path):
    tuples = [(torch.tensor(row["x"]), row["label"]) for row in META]
    message = r"meta_dataset rows must be dicts of columns .* row 0 is a tuple. Convert the set"
    with pytest.raises(ValueError, match=message):
        lilaw(tmp_path, meta=tuples)
    with pytest.raises(ValueError, match=message.replace("meta", "clean")):
        mlc(tmp_path, tuples)
    with pytest.raises(ValueError, match=r"clean_dataset rows must be dicts .* row 0 is a tuple"):
        mlc(tmp_path, torch.utils.data.TensorDataset(torch.tensor(META["x"]), torch.tensor(META["label"])))


def test_side_rows_of_different_sizes_fail_at_their_batch(tmp_path):
    meta = Rows(rows_of(META, row45={"x": torch.zeros(9)}))
    with pytest.raises(ValueError, match=r"meta_dataset's 'x' has different shapes in one batch: row \d+ \(8,\), row 45 \(9,\)"
                                         r".*resize or crop them to one size"):
        lilaw(tmp_path, meta=meta).train()


def test_a_missing_label_column_names_the_set(tmp_path):
    with pytest.raises(ValueError, match="meta_dataset has no label column"):
        lilaw(tmp_path, meta=META.remove_columns("label"))
    with pytest.raises(ValueError, match="clean_dataset has no label column"):
        mlc(tmp_path, META.remove_columns("label"))
    with pytest.raises(ValueError, match="meta_dataset has no label column"):
        lilaw(tmp_path, meta=META.remove_columns("label").to_iterable_dataset())


def test_a_meta_batch_larger_than_the_meta_set_is_capped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_lilaw"):
        trainer = lilaw(tmp_path, meta=blobs(60, seed=1), lilaw_meta_batch_size=500, max_steps=3)
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if "is larger than the meta_dataset" in r.getMessage()]
    assert warnings == [
        "lilaw_meta_batch_size (500) is larger than the meta_dataset (60 examples): every batch is the whole "
        "meta_dataset, 60 examples. Set lilaw_meta_batch_size to at most 60, or pass a larger meta_dataset."
    ]
    assert trainer.lilaw_state.sampler.batch_size == 60


# ---- the checks themselves ---------------------------------------------------------------------------------------


def test_checks_of_one_batch():
    rows = describe_rows([4, 9, 2], 3, batch="m")
    batch = {"x": torch.ones(3, 2), "labels": torch.tensor([0, 2, -100])}
    check_batch(batch, name="m", rows=rows, num_classes=3)
    with pytest.raises(ValueError, match="m row 9 has label 2, but the model outputs 2 classes"):
        check_batch(batch, name="m", rows=rows, num_classes=2)
    with pytest.raises(ValueError, match=r"m row 2 holds a non-finite value \(NaN or inf\) in 'x'"):
        check_batch({**batch, "x": torch.tensor([[1.0, 0], [0, 1], [0, float("nan")]])}, name="m", rows=rows, num_classes=3)
    check_batch({**batch, "x": torch.full((3, 2), float("nan"))}, name="m", rows=rows, num_classes=3, labels_only=True)
    unlabelled = {**batch, "labels": torch.full((3,), -100)}
    with pytest.raises(ValueError, match="holds no labelled row"):
        check_batch(unlabelled, name="m", rows=rows, num_classes=3)
    check_batch(unlabelled, name="m", rows=rows, num_classes=3, require_labelled=False)
    assert describe_rows(None, 2, batch="batch 3 of the streamed m") == [
        "example 0 of batch 3 of the streamed m", "example 1 of batch 3 of the streamed m"]


def test_scans_read_columns_and_lists_only():
    scan = scan_dataset(META, name="m", num_classes=3)
    assert (scan.has_ignored, scan.transformed) == (False, False)
    partly = scan_dataset(META.map(lambda row, i: {"label": -100 if i < 3 else row["label"]}, with_indices=True),
                          name="m", num_classes=3)
    assert partly.has_ignored
    assert scan_dataset(META.with_transform(lambda batch: batch), name="m").transformed
    assert scan_dataset(Rows(rows_of(META)), name="m") is None
    assert scan_dataset(META.to_iterable_dataset(), name="m") is None
    assert scan_dataset([{"x": [1.0, 2.0]}], name="e", labels_required=False) is not None
    with pytest.raises(ValueError, match="m row 1 carries no label"):
        scan_dataset([{"x": 1.0, "label": 0}, {"x": 2.0}], name="m")
    assert explain_collate_failure([{"x": np.zeros(2)}, {"x": np.zeros(2)}], name="m", rows=["row 0", "row 1"]) is None


@pytest.mark.parametrize("family", ["lilaw", "mlc"])
def test_a_side_set_that_is_the_training_set_is_warned_about(tmp_path, family, caplog):
    # MLC's clean set (or LiLAW's meta set) equal to the training set holds out nothing: the "trusted" labels are
    # the noisy ones the model trains on. It trained without a word.
    def build(side):
        if family == "lilaw":
            return lilaw(tmp_path, meta=side, train=TRAIN, max_steps=1)
        return mlc(tmp_path, side, cls=MLCTrainer, train=TRAIN, max_steps=1)

    name = "meta_dataset" if family == "lilaw" else "clean_dataset"
    for side, warned in ((TRAIN, True), (blobs(192), True), (META, False)):  # blobs(192) rebuilt: same fingerprint
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.base_trainer"):
            build(side).train()
        assert (f"{name} is the training set itself" in caplog.text) is warned


@pytest.mark.parametrize("family", ["lilaw", "mlc"])
def test_a_side_set_missing_classes_is_warned_about(tmp_path, family, caplog):
    # A clean (or meta) set without a row of some class trained silently: the side step never sees those labels.
    num_classes = len(set(TRAIN["label"]))
    without = META.filter(lambda row: row["label"] != 1)
    for side, warned in ((without, True), (META, False)):
        caplog.clear()
        trainer = lilaw(tmp_path, meta=side, max_steps=1) if family == "lilaw" else mlc(tmp_path, side, cls=MLCTrainer, max_steps=1)
        with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.base_trainer"):
            trainer.train()
        expected = f"has no row of 1 of the {num_classes} classes trained on (1)"
        assert (expected in caplog.text) is warned, caplog.text
    # classes the training set lacks too (a model wider than the classes in use) are no side set's fault
    caplog.clear()
    narrow = TRAIN.filter(lambda row: row["label"] != 1)
    trainer = lilaw(tmp_path, meta=without, train=narrow, max_steps=1) if family == "lilaw" else mlc(
        tmp_path, without, cls=MLCTrainer, train=narrow, max_steps=1)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.base_trainer"):
        trainer.train()
    assert "has no row of" not in caplog.text


def test_a_dataset_dict_is_refused_naming_the_splits(tmp_path):
    # len() of a DatasetDict counts its splits: MLC said "the clean_dataset (2 examples)", then a KeyError
    import datasets

    splits = datasets.DatasetDict(train=blobs(32), test=blobs(16, seed=1))
    with pytest.raises(ValueError, match=r"^clean_dataset is a DatasetDict with the splits \['train', 'test'\]: pass one "
                                         r"split, e.g. clean_dataset=dataset\['train'\]\.$"):
        mlc(tmp_path, splits)
    with pytest.raises(ValueError, match=r"^meta_dataset is a DatasetDict"):
        lilaw(tmp_path, meta=splits)
    with pytest.raises(ValueError, match=r"^train_dataset is a DatasetDict"):
        lilaw(tmp_path, train=splits)


def test_a_text_column_a_padding_collator_cannot_take_is_named(tmp_path):
    # It was blamed on the rows' shapes, with advice to pass a collator that pads (which the user had done).
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3, "very": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")

    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = torch.nn.EmbeddingBag(len(vocab), 4), torch.nn.Linear(4, 2)

        def forward(self, input_ids, attention_mask=None):
            return {"logits": self.head(self.embed(input_ids))}

    def texts(sentences, labels):
        data = datasets.Dataset.from_dict({"text": sentences, "label": labels})
        return data.map(lambda row: tokenizer(row["text"]))

    train = texts(["good", "very good", "bad", "very bad"] * 4, [1, 1, 0, 0] * 4).remove_columns("text")
    meta = texts(["very good", "bad", "good", "very bad"], [1, 0, 1, 0])  # its text column kept
    args = LiLAWConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[],
                       remove_unused_columns=False, lilaw_warmup_steps=0, lilaw_meta_batch_size=2)  # fmt: skip
    trainer = LiLAWTrainer(model=Bag(), args=args, train_dataset=train, meta_dataset=meta,
                           data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    with pytest.raises(ValueError, match=r"meta_dataset's column 'text' holds text.*remove_columns\('text'\).*The collator said"):
        trainer.train()
    assert explain_collate_failure([{"x": [1, 2], "t": "a"}, {"x": [1], "t": "b"}], name="m", rows=["row 0", "row 1"]).startswith(
        "m's column 't' holds text")
