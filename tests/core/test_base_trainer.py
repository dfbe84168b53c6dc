"""A third method family in a few lines: what BaseTrainer gives a family without copying a trainer."""

import os
import random
from dataclasses import dataclass, field

import datasets
import numpy as np
import pytest
import torch
from datasets import concatenate_datasets
from transformers import TrainingArguments
from transformers.trainer import TRAINING_ARGS_NAME

from hf_lilaw import BaseTrainer, ELRConfig, ELRTrainer, LiLAWConfig, LiLAWTrainer, TrainingDynamicsRecorder
from hf_lilaw.core.checkpoint import checkpoint_problem, load_state_file
from hf_lilaw.data import vector_transform
from hf_lilaw.models.mlp import MLPClassifierConfig, MLPForTabularClassification

from conftest import StopAfter, TinyNet, blobs


@dataclass
class ProbeConfig(TrainingArguments):
    probe_batch_size: int = field(default=4, metadata={"help": "Side examples per step."})


class ProbeState:
    def __init__(self, sampler):
        self.sampler, self.side_batches = sampler, 0

    def state_dict(self):
        return {"shared": {"side_batches": self.side_batches}, "per_rank": {"sampler": self.sampler.state_dict()}}

    def load_state_dict(self, state):
        self.side_batches = state["shared"]["side_batches"]
        if state["per_rank"] is None:
            self.sampler.fast_forward(self.side_batches)
        else:
            self.sampler.load_state_dict(state["per_rank"]["sampler"])


class ProbeTrainer(BaseTrainer):
    """Draws one side batch per training step and logs the mean side label: a family's whole plumbing."""

    config_class = ProbeConfig
    method_name = "Probe"
    _tag_names = ["probe", "hf_lilaw"]

    def __init__(self, *args, side_dataset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.side_dataset = side_dataset
        sampler = self.side_batch_sampler(side_dataset, batch_size=self.args.probe_batch_size,
                                          seed=self.args.seed + self.args.process_index, name="side_dataset")
        self.probe_state = ProbeState(sampler)
        self.register_training_state(self.probe_state, name="probe_state", what="probe state")
        self.side_labels = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        _, labels = self.next_side_batch(self.side_dataset, self.probe_state.sampler, name="side_dataset")
        self.side_labels.append(labels.tolist())
        self.probe_state.side_batches += 1
        self.accumulate_metrics({"probe/label": labels.float().sum()}, count=len(labels))
        return super().training_step(model, inputs, num_items_in_batch)

    def preflight_side_set(self):
        return self.side_dataset, "side_dataset"

    def training_log_values(self):
        return {"probe/side_batches": self.probe_state.side_batches}

    def model_card_values(self):
        return {"method_description": "A probe.", "base_loss": "cross_entropy", "citation": "@misc{probe}",
                "train_snippet": "ProbeTrainer(...)", "method_facts": [f"Side batches: {self.probe_state.side_batches}."]}


def make(output_dir, callbacks=None):
    torch.manual_seed(0)
    args = TrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=6, logging_steps=3,
                             save_strategy="steps", save_steps=3, report_to=[], disable_tqdm=True, learning_rate=0.05)
    return ProbeTrainer(model=TinyNet(), args=args, train_dataset=blobs(96), side_dataset=blobs(10, seed=5),
                        callbacks=callbacks, compute_loss_func=cross_entropy)


def cross_entropy(outputs, labels, num_items_in_batch=None):
    return torch.nn.functional.cross_entropy(outputs["logits"], labels, reduction="sum") / num_items_in_batch


def test_a_family_gets_config_tags_side_batches_metrics_checkpoints_resume_and_card(tmp_path):
    trainer = make(tmp_path / "full")
    assert isinstance(trainer.args, ProbeConfig) and trainer.args.probe_batch_size == 4
    trainer.train()
    side = blobs(10, seed=5)["label"]
    expected_batches = [[side[i] for i in batch] for batch in
                        (lambda s: [s.next_batch() for _ in range(6)])(BaseTrainer.side_batch_sampler(
                            list(range(10)), batch_size=4, seed=trainer.args.seed, name="x"))]
    assert trainer.side_labels == expected_batches
    train_logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["probe/side_batches"] for h in train_logs] == [3, 6]
    for log, batches in zip(train_logs, (expected_batches[:3], expected_batches[3:])):
        assert log["probe/label"] == pytest.approx(sum(map(sum, batches)) / 12)
    assert "probe/label" not in trainer.state.log_history[-1]  # the end-of-training summary is no training log

    checkpoint = tmp_path / "full" / "checkpoint-3"
    assert {"probe_state.pt", "probe_state_rank0.pt", "README.md"} <= set(os.listdir(checkpoint))
    assert load_state_file(checkpoint / "probe_state.pt", what="probe state") == {
        "world_size": 1, "state": {"side_batches": 3}, "settings": {"method": "Probe", "probe_batch_size": 4}
    }
    card = (tmp_path / "full" / "checkpoint-6" / "README.md").read_text()
    assert "with **Probe** from the `hf_lilaw` library" in card and "Side batches: 6." in card and "- probe" in card

    make(tmp_path / "resumed", callbacks=[StopAfter(3)]).train()
    resumed = make(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.probe_state.side_batches == 6
    assert resumed.side_labels == expected_batches[3:]  # the side stream continues where the checkpoint left it


def test_a_second_train_call_logs_only_its_own_steps(tmp_path):
    # The sums of the steps after the first run's last log (steps 4-5) were mixed into the second run's first log.
    trainer = make(tmp_path)
    trainer.args.max_steps, trainer.args.save_strategy = 5, "no"
    trainer.train()
    trainer.train()
    side = blobs(10, seed=5)["label"]
    sampler = BaseTrainer.side_batch_sampler(list(range(10)), batch_size=4, seed=trainer.args.seed, name="x")
    batches = [[side[i] for i in sampler.next_batch()] for _ in range(10)]
    assert trainer.side_labels == batches
    first_log_of_second_run = [h for h in trainer.state.log_history if "loss" in h][0]
    assert first_log_of_second_run["probe/label"] == pytest.approx(sum(map(sum, batches[5:8])) / 12)


def test_an_empty_side_set_and_an_empty_train_set_are_refused(tmp_path):
    with pytest.raises(ValueError, match="side_dataset is empty"):
        ProbeTrainer(model=TinyNet(), args=ProbeConfig(output_dir=str(tmp_path), report_to=[]), train_dataset=blobs(8),
                     side_dataset=blobs(8).select([]))
    with pytest.raises(ValueError, match="train_dataset is empty"):
        ProbeTrainer(model=TinyNet(), args=ProbeConfig(output_dir=str(tmp_path), report_to=[]),
                     train_dataset=blobs(8).select([]), side_dataset=blobs(8))


# ---- Trainer's API at its edges: what a family must read or refuse like Trainer -----------------------------------


class TupleNet(TinyNet):
    """``(logits, features)``: the tuple convention of a plain module that computes no loss itself."""

    def forward(self, x, labels=None):
        features = self.body(x)
        return self.head(features), features


def family_trainer(family, output_dir, model, train, **overrides):
    values = dict(output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=2, report_to=[],
                  disable_tqdm=True, save_strategy="no", use_cpu=True)  # fmt: skip
    values.update(overrides)
    if family == "lilaw":
        return LiLAWTrainer(model=model, args=LiLAWConfig(**values), train_dataset=train, meta_dataset=blobs(16, seed=1))
    return ELRTrainer(model=model, args=ELRConfig(**values), train_dataset=train)


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_a_tuple_output_predicts_its_logits_and_features_as_trainer_does(tmp_path, family):
    torch.manual_seed(0)
    model, test = TupleNet(), blobs(24, noise_rate=0.0, seed=2)
    trainer = family_trainer(family, tmp_path, model, blobs(48))
    output = trainer.predict(test)
    with torch.no_grad():
        logits, features = model(torch.tensor(test["x"]))
    # Trainer drops a tuple's first item as the loss: without the fix the features came back as the predictions.
    assert isinstance(output.predictions, tuple) and len(output.predictions) == 2
    torch.testing.assert_close(torch.as_tensor(output.predictions[0]), logits)
    torch.testing.assert_close(torch.as_tensor(output.predictions[1]), features)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(test["label"])).item()
    assert output.metrics["test_loss"] == pytest.approx(expected, rel=1e-5)



class ListNet(TinyNet):
    """``[logits, features]``: a list, which the families' losses read as a tuple."""

    def forward(self, x, labels=None):
        features = self.body(x)
        return [self.head(features), features]


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_a_list_output_predicts_and_evaluates_its_logits(tmp_path, family):
    # Trainer dropped the list's first item as the loss: the features came back as predictions, and compute_metrics
    # scored them (argmax over 16 features) without a word.
    torch.manual_seed(0)
    model, test = ListNet(), blobs(24, noise_rate=0.0, seed=2)
    trainer = family_trainer(family, tmp_path, model, blobs(48))
    trainer.compute_metrics = lambda p: {"accuracy": float((np.argmax(p.predictions[0], -1) == p.label_ids).mean())}
    output = trainer.predict(test)
    with torch.no_grad():
        logits, features = model(torch.tensor(test["x"]))
    torch.testing.assert_close(torch.as_tensor(output.predictions[0]), logits)
    torch.testing.assert_close(torch.as_tensor(output.predictions[1]), features)
    accuracy = (logits.argmax(-1) == torch.tensor(test["label"])).float().mean().item()
    assert output.metrics["test_accuracy"] == pytest.approx(accuracy)

class LengthNet(TinyNet):
    def forward(self, x, length=None, labels=None):  # takes the length column, so Trainer keeps it for the sampler
        return {"logits": self.head(self.body(x))}


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_predict_keeps_the_row_order_under_group_by_length(tmp_path, family):
    # Trainer gives evaluation a LengthGroupedSampler under group_by_length: the predictions came back shuffled.
    torch.manual_seed(0)
    model, test = LengthNet(), blobs(40, seed=2)
    test = test.add_column("length", np.random.default_rng(0).integers(1, 100, len(test)).tolist())
    trainer = family_trainer(family, tmp_path, model, blobs(48), train_sampling_strategy="group_by_length",
                             per_device_eval_batch_size=8)
    output = trainer.predict(test)
    with torch.no_grad():
        logits = model(torch.tensor(test["x"]))["logits"]
    torch.testing.assert_close(torch.as_tensor(output.predictions), logits)
    np.testing.assert_array_equal(output.label_ids, test["label"])


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_hyperparameter_search_and_a_second_run_from_model_init_are_refused(tmp_path, family):
    def model_init(trial=None):
        torch.manual_seed(0)
        return TinyNet()

    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=2, report_to=[],
                  disable_tqdm=True, save_strategy="no", use_cpu=True)  # fmt: skip
    if family == "lilaw":
        trainer = LiLAWTrainer(model_init=model_init, args=LiLAWConfig(**values, lilaw_warmup_steps=0),
                               train_dataset=blobs(48), meta_dataset=blobs(16, seed=1))  # fmt: skip
        learned = lambda: trainer.lilaw_parameters()  # noqa: E731
    else:
        trainer = ELRTrainer(model_init=model_init, args=ELRConfig(**values), train_dataset=blobs(48))
        learned = lambda: trainer.elr_state.table.clone()  # noqa: E731
    with pytest.raises(ValueError, match="does not support hyperparameter_search: it reads its method settings"):
        trainer.hyperparameter_search(hp_space=lambda trial: {}, n_trials=2)
    with pytest.raises(ValueError, match="does not support hyperparameter_search"):
        trainer.train(trial={"learning_rate": 0.1})
    trainer.train()  # one run from model_init is fine
    after_one = learned()
    with pytest.raises(ValueError, match=r"already ran on this trainer: with model_init the model starts anew"):
        trainer.train()
    after_refusal = learned()
    if family == "lilaw":
        assert after_refusal == after_one
    else:
        torch.testing.assert_close(after_refusal, after_one)


def test_a_checkpoint_records_the_runs_own_training_arguments(tmp_path):
    torch.manual_seed(0)
    trainer = family_trainer("elr", tmp_path, TinyNet(), blobs(48), save_strategy="steps", save_steps=1,
                             save_total_limit=3)  # fmt: skip
    trainer.train()
    saved = torch.load(tmp_path / "checkpoint-2" / TRAINING_ARGS_NAME, weights_only=False)
    assert saved.save_total_limit == 3 and saved.push_to_hub is False  # was None: blanked while the parent saved
    assert checkpoint_problem(tmp_path / "checkpoint-2") is None  # rewritten before the manifest


def test_repeated_sample_ids_are_refused_before_dynamics_are_recorded(tmp_path):
    train = blobs(48).add_column("sample_id", list(range(48)))
    joined = concatenate_datasets([train, blobs(16, seed=3).add_column("sample_id", list(range(16)))])
    torch.manual_seed(0)
    trainer = family_trainer("lilaw", tmp_path, TinyNet(), joined)
    trainer.add_callback(TrainingDynamicsRecorder())
    with pytest.raises(ValueError, match=r"'sample_id' values repeat \(16 ids, e.g. 0 on rows 0 and 48\).*"
                                         r"remove_columns\('sample_id'\)"):
        trainer.train()
    assert trainer.state.global_step == 0


# ---- a data set's transform against the columns Trainer removes ---------------------------------------------------


def vector_set(n, *, column="features", extra=None, seed=0):
    """blobs(n) as ``{column, label}`` (plus ``extra``'s columns), read through `vector_transform`."""
    data = blobs(n, seed=seed)
    values = {column: data["x"], "label": data["label"], **(extra or {})}
    return datasets.Dataset.from_dict(values).with_transform(vector_transform(input_column=column))


def mlp():
    torch.manual_seed(0)
    return MLPForTabularClassification(MLPClassifierConfig(input_size=8, num_labels=3))


def test_a_transform_that_reads_a_column_trainer_removes_is_refused_before_the_first_step(tmp_path):
    fix = r"reads the column 'features', which Trainer removes.*Set remove_unused_columns=False in the TrainingArguments"
    model = mlp()
    before = [p.clone() for p in model.parameters()]
    trainer = family_trainer("elr", tmp_path, model, vector_set(48))
    with pytest.raises(ValueError, match=r"^train_dataset's transform \(with_transform/set_transform\) " + fix):
        trainer.train()  # was a bare KeyError: 'features' at the first batch
    assert trainer.state.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    trainer = family_trainer("elr", tmp_path, mlp(), blobs(48).rename_column("x", "input_values"))
    trainer.eval_dataset = {"valid": vector_set(8, seed=1)}
    with pytest.raises(ValueError, match=r"^eval_dataset\['valid'\]'s transform .*" + fix):
        trainer.train()
    trainer = ELRTrainer(model_init=mlp, args=ELRConfig(output_dir=str(tmp_path), max_steps=2, report_to=[],
                                                        use_cpu=True), train_dataset=vector_set(48))  # fmt: skip
    with pytest.raises(ValueError, match=fix):
        trainer.train()

    trainer = family_trainer("elr", tmp_path, mlp(), vector_set(48), remove_unused_columns=False)
    trainer.eval_dataset = vector_set(8, seed=1)
    trainer.train()
    assert trainer.state.global_step == 2 and trainer.evaluate()["eval_loss"] > 0


def test_a_random_transform_that_needs_no_removed_column_trains_as_if_unchecked(tmp_path):
    def noisy(transform):
        def augment(batch):
            out = transform(batch)
            shift = random.random() + np.random.rand()  # every global RNG a transform may draw from
            out["input_values"] = [v + torch.randn_like(v) * 0.1 + shift for v in out["input_values"]]
            return out

        return augment

    def run(extra, output_dir):
        data = blobs(48)
        train = datasets.Dataset.from_dict({"input_values": data["x"], "label": data["label"], **extra})
        train = train.with_transform(noisy(vector_transform(input_column="input_values")))
        trainer = family_trainer("elr", output_dir, mlp(), train)
        torch.manual_seed(1), np.random.seed(1), random.seed(1)
        trainer.train()
        return [p.detach().clone() for p in trainer.model.parameters()]

    # 'note' is removed, so the transform runs once more in the pre-flight, and must leave training as it was.
    checked = run({"note": ["n"] * 48}, tmp_path / "checked")
    unchecked = run({}, tmp_path / "unchecked")
    assert all(torch.equal(a, b) for a, b in zip(checked, unchecked))


def test_a_random_transform_resumes_exactly_from_an_epochs_end_and_is_warned_about_mid_epoch(tmp_path, caplog):
    # Trainer restores a mid-epoch checkpoint's RNG state only after fetching the first resumed batch, so a random
    # augmentation made that resume differ from the uninterrupted run without a word.
    transform = vector_transform(input_column="input_values")

    def augment(batch):
        out = transform(batch)
        out["input_values"] = [v + torch.rand_like(v) for v in out["input_values"]]
        return out

    def run(output_dir, resume=None):
        data = blobs(32)
        train = datasets.Dataset.from_dict({"input_values": data["x"], "label": data["label"]}).with_transform(augment)
        trainer = family_trainer("elr", output_dir, mlp(), train, per_device_train_batch_size=8, max_steps=8,
                                 save_strategy="steps", save_steps=2)  # 4 steps an epoch  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])

    full = run(tmp_path / "full")
    with caplog.at_level("WARNING", logger="hf_lilaw.core.base_trainer"):
        ended = run(tmp_path / "ended", resume=str(tmp_path / "full" / "checkpoint-4"))  # epoch 1.0
    assert "mid-epoch" not in caplog.text and torch.equal(ended, full)
    with caplog.at_level("WARNING", logger="hf_lilaw.core.base_trainer"):
        mid = run(tmp_path / "mid", resume=str(tmp_path / "full" / "checkpoint-6"))  # epoch 1.5
    assert "saved mid-epoch (epoch 1.50), with a training set transform" in caplog.text
    assert not torch.equal(mid, full)  # Trainer's behaviour, which the warning describes


# ---- labels: one label column, every batch of a set read batch by batch ------------------------------------------


def with_column(dataset, name, values):
    return dataset.add_column(name, list(values))


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_a_set_with_two_label_columns_is_refused_before_the_first_step(tmp_path, family):
    # The label checks read 'label', the collator trained on 'labels': all-zero 'labels' gave a model predicting 0.
    train = with_column(blobs(48), "labels", [0] * 48)
    trainer = family_trainer(family, tmp_path, TinyNet(), train)
    with pytest.raises(ValueError, match=r"^train_dataset has the label columns 'label' and 'labels': Trainer's "
                                         r"default collator trains on 'labels'"):
        trainer.train()
    assert trainer.state.global_step == 0

    trainer = family_trainer(family, tmp_path, TinyNet(), blobs(48))
    trainer.eval_dataset = {"valid": with_column(blobs(8, seed=2), "label_ids", [1] * 8)}
    with pytest.raises(ValueError, match=r"^the eval_valid dataset has the label columns 'label' and 'label_ids'"):
        trainer.evaluate()
    with pytest.raises(ValueError, match=r"^eval_dataset\['valid'\] has the label columns"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_side_set_with_two_label_columns_is_refused_and_columns_trainer_removes_do_not_count(tmp_path):
    meta = [{"x": row["x"], "label": row["label"], "labels": 0} for row in blobs(16, seed=1)]
    trainer = LiLAWTrainer(model=TinyNet(), train_dataset=blobs(48), meta_dataset=meta,
                           args=LiLAWConfig(output_dir=str(tmp_path), max_steps=2, report_to=[], use_cpu=True))
    with pytest.raises(ValueError, match=r"^meta_dataset has the label columns 'label' and 'labels'"):
        trainer.train()
    assert trainer.state.global_step == 0

    # A column that remove_unused_columns takes away never reaches the collator (a forward without `labels`, with
    # label_names=['label']); without remove_unused_columns it does.
    train = with_column(blobs(48), "labels", [0] * 48)
    trainer = family_trainer("elr", tmp_path, LabelArgumentNet(), train, label_names=["label"])
    trainer.check_label_columns(train, name="train_dataset")
    trainer.args.remove_unused_columns = False
    with pytest.raises(ValueError, match="^train_dataset has the label columns 'label' and 'labels'"):
        trainer.check_label_columns(train, name="train_dataset")


class LabelArgumentNet(TinyNet):
    """`TinyNet` whose forward names its label argument `label`, so Trainer keeps no `labels` column."""

    def forward(self, x, label=None):
        return super().forward(x)


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_a_forward_taking_label_evaluates_and_predicts_as_it_trains(tmp_path, family):
    # Trainer's label_names ['label'] (from the forward) found no labels in the collated 'labels' at evaluation and
    # passed them to the forward: TypeError after a whole training run.
    results = []
    for net in (LabelArgumentNet, TinyNet):
        torch.manual_seed(0)
        trainer = family_trainer(family, tmp_path, net(), blobs(48))
        trainer.train()
        output = trainer.predict(blobs(24, seed=2))
        results.append((output.metrics["test_loss"], output.label_ids.tolist(), trainer.evaluate(blobs(24, seed=2))["eval_loss"]))
    assert results[0] == results[1]


class TorchRows(torch.utils.data.Dataset):
    """A torch data set of dict rows: its labels are not read up front."""

    def __init__(self, dataset, bad_rows=(), bad=3):
        self.rows = [{"x": torch.tensor(row["x"]), "label": row["label"], "sample_id": i} for i, row in enumerate(dataset)]
        for i in bad_rows:
            self.rows[i]["label"] = bad

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


@pytest.mark.parametrize("family", ["lilaw", "elr"])
@pytest.mark.parametrize("bad", [3, -1])
def test_every_batch_of_a_torch_training_set_is_checked_naming_the_step(tmp_path, family, bad):
    # Only the first batch was checked: a bad label in a later one was a raw "IndexError: Target 3 is out of bounds"
    # (a device-side assert on a GPU).
    data = blobs(96)
    trainer = family_trainer(family, tmp_path, TinyNet(), TorchRows(data, bad_rows=[70], bad=bad),
                             per_device_train_batch_size=8, max_steps=12)
    with pytest.raises(ValueError) as error:
        trainer.train()
    step = trainer.state.global_step + 1
    assert step > 1  # a later batch: the first one holds no bad row
    assert str(error.value).startswith("train_dataset example ")
    assert f" of step {step}'s batch has label {bad}, but the model outputs 3 classes: labels must lie in [0, 3)" in str(
        error.value
    )

    trainer = family_trainer(family, tmp_path, TinyNet(), TorchRows(data, bad_rows=[70], bad=-100),
                             per_device_train_batch_size=8, max_steps=12, gradient_accumulation_steps=2)
    trainer.train()  # -100 marks a row to skip
    assert trainer.state.global_step == 12


@pytest.mark.parametrize(("family", "field", "value", "message"), [
    ("lilaw", "lilaw_lr", -1.0, "lilaw_lr must be a finite number >= 0"),
    ("lilaw", "lilaw_alpha", 0.5, "lilaw_alpha must be >= 1"),
    ("elr", "elr_beta", 1.0, r"elr_beta must be in \[0, 1\)"),
])  # fmt: skip
def test_a_setting_changed_after_the_config_was_built_is_checked_by_the_trainer(tmp_path, family, field, value, message):
    # The config's __post_init__ checks never saw it: LiLAW trained with a negative meta learning rate.
    config = (LiLAWConfig if family == "lilaw" else ELRConfig)(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    setattr(config, field, value)
    trainer_class = LiLAWTrainer if family == "lilaw" else ELRTrainer
    extra = {"meta_dataset": blobs(16, seed=1)} if family == "lilaw" else {}
    with pytest.raises(ValueError, match=message):
        trainer_class(model=TinyNet(), args=config, train_dataset=blobs(48), **extra)


class BareTensorNet(TinyNet):
    def forward(self, x, labels=None):
        return self.head(self.body(x))  # a bare tensor of logits


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_predict_without_labels_keeps_a_bare_tensor_outputs_rows(tmp_path, family):
    # Trainer read a bare tensor as a tuple without labels: a one-row batch lost its batch dimension (eval batch 1:
    # a flat array of every logit; a one-row last batch: IndexError). With labels it was read right.
    train, test = blobs(64, seed=0), blobs(17, seed=1)
    torch.manual_seed(0)
    args = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=16, report_to=[], save_strategy="no")
    if family == "lilaw":
        trainer = LiLAWTrainer(model=BareTensorNet(), args=LiLAWConfig(**args), train_dataset=train,
                               meta_dataset=blobs(16, seed=2))  # fmt: skip
    else:
        trainer = ELRTrainer(model=BareTensorNet(), args=ELRConfig(**args), train_dataset=train)
    trainer.train()
    with torch.no_grad():
        expected = trainer.model(torch.tensor(test["x"])).numpy()
    for batch_size in (1, 8):
        trainer.args.per_device_eval_batch_size = batch_size
        for data in (test, test.remove_columns(["label"])):
            np.testing.assert_allclose(trainer.predict(data).predictions, expected, rtol=1e-5, atol=1e-6)


def test_an_evaluation_set_the_model_cannot_read_fails_before_the_first_step(tmp_path):
    # It used to fail at the first evaluation, after eval_steps of training and before that step's checkpoint.
    train, evaluation = blobs(64, seed=0), blobs(16, seed=1).rename_column("x", "features")
    args = LiLAWConfig(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=16, report_to=[],
                       eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2)  # fmt: skip
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train, meta_dataset=blobs(16, seed=2),
                           eval_dataset={"held_out": evaluation})  # fmt: skip
    with pytest.raises(ValueError, match=r"eval_dataset\[.held_out.\].*.features."):
        trainer.train()
    assert trainer.state.global_step == 0 and not list(tmp_path.glob("checkpoint-*"))
    trainer.eval_dataset = {"held_out": evaluation.rename_column("features", "x")}
    trainer.train()  # the same trainer with a set it can read
    assert trainer.state.global_step == 4 and "eval_held_out_loss" in trainer.state.log_history[1]


def test_a_fairness_gap_as_best_metric_needs_lower_is_better(tmp_path):
    # Trainer read "eval_accuracy_difference" as higher-is-better (its name does not end in "loss").
    args = dict(output_dir=str(tmp_path), report_to=[], eval_strategy="epoch", save_strategy="epoch",
                load_best_model_at_end=True, metric_for_best_model="eval_accuracy_difference")  # fmt: skip
    with pytest.raises(ValueError, match="gap between groups .* Set greater_is_better=False"):
        ELRTrainer(model=TinyNet(), args=ELRConfig(**args), train_dataset=blobs(32), eval_dataset=blobs(8))
    trainer = ELRTrainer(model=TinyNet(), args=ELRConfig(**args, greater_is_better=False), train_dataset=blobs(32),
                         eval_dataset=blobs(8))
    assert trainer.args.greater_is_better is False


@pytest.mark.parametrize("family", ["lilaw", "elr"])
def test_label_smoothing_with_a_plain_module_from_model_init_trains_and_evaluates_smoothed(tmp_path, family):
    # Trainer.__init__ builds the model_init model and reads its .config for label smoothing: an AttributeError.
    def model_init(trial=None):
        torch.manual_seed(0)
        return TinyNet()

    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=1, report_to=[],
                  disable_tqdm=True, save_strategy="no", use_cpu=True, label_smoothing_factor=0.2)  # fmt: skip
    if family == "lilaw":
        trainer = LiLAWTrainer(model_init=model_init, args=LiLAWConfig(**values, lilaw_warmup_steps=0),
                               train_dataset=blobs(32), meta_dataset=blobs(16, seed=1))  # fmt: skip
    else:
        trainer = ELRTrainer(model_init=model_init, args=ELRConfig(**values, elr_lambda=0.0), train_dataset=blobs(32))
    test = blobs(24, seed=2)
    with torch.no_grad():
        logits = model_init()(torch.tensor(test["x"]))["logits"]
    smoothed = torch.nn.functional.cross_entropy(logits, torch.tensor(test["label"]), label_smoothing=0.2).item()
    assert trainer.args.label_smoothing_factor == 0.2
    assert trainer.evaluate(test)["eval_loss"] == pytest.approx(smoothed, rel=1e-6)
    trainer.train()
    assert trainer.state.global_step == 1


@pytest.mark.parametrize("trainer_class", [LiLAWTrainer, ELRTrainer])
def test_class_names_in_another_order_than_the_datas_are_refused_before_training(tmp_path, trainer_class):
    data = blobs(24).cast_column("label", datasets.ClassLabel(names=["cat", "dog", "bird"]))
    data = data.rename_column("x", "input_values").select_columns(["input_values", "label"])
    config = MLPClassifierConfig(input_size=8, num_labels=3, id2label={0: "dog", 1: "bird", 2: "cat"})
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match=r"id2label\) are \['dog', 'bird', 'cat'\].*\['cat', 'dog', 'bird'\]"):
        trainer_class(model=MLPForTabularClassification(config), args=args, train_dataset=data)
    config.id2label, config.label2id = {0: "cat", 1: "dog", 2: "bird"}, {"cat": 0, "dog": 1, "bird": 2}
    trainer_class(model=MLPForTabularClassification(config), args=args, train_dataset=data)


class _TupleRows(torch.utils.data.Dataset):
    """A torch Dataset of ``(x, y)`` tuples, as torchvision's sets give."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return torch.full((8,), float(i)), i % 3


def test_a_torch_dataset_of_tuples_is_explained_not_left_to_the_collators_type_error(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_steps=1,
                             per_device_train_batch_size=4)  # fmt: skip
    meta = [{"x": torch.zeros(8), "label": 1}] * 4
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=_TupleRows(), meta_dataset=meta)
    with pytest.raises(ValueError, match=r"^train_dataset rows must be dicts .* row 0 is a tuple\. Convert the set"):
        trainer.train()

    def collate(rows):  # a collator of the user's own that takes tuples: nothing to explain, it trains
        pairs = [(row["x"], row["label"]) if isinstance(row, dict) else row for row in rows]  # the meta set's dicts too
        return {"x": torch.stack([x for x, _ in pairs]), "labels": torch.tensor([y for _, y in pairs])}

    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=_TupleRows(), meta_dataset=meta,
                           data_collator=collate)  # fmt: skip
    assert trainer.train().global_step == 1
