"""A third method family in a few lines: what BaseTrainer gives a family without copying a trainer."""

import os
from dataclasses import dataclass, field

import pytest
import torch
from transformers import TrainingArguments

from hf_lilaw import BaseTrainer
from hf_lilaw.core.checkpoint import load_state_file

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
    assert load_state_file(checkpoint / "probe_state.pt", what="probe state") == {"world_size": 1, "state": {"side_batches": 3}}
    card = (tmp_path / "full" / "checkpoint-6" / "README.md").read_text()
    assert "with **Probe** from the `hf_lilaw` library" in card and "Side batches: 6." in card and "- probe" in card

    make(tmp_path / "resumed", callbacks=[StopAfter(3)]).train()
    resumed = make(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.probe_state.side_batches == 6
    assert resumed.side_labels == expected_batches[3:]  # the side stream continues where the checkpoint left it


def test_an_empty_side_set_and_an_empty_train_set_are_refused(tmp_path):
    with pytest.raises(ValueError, match="side_dataset is empty"):
        ProbeTrainer(model=TinyNet(), args=ProbeConfig(output_dir=str(tmp_path), report_to=[]), train_dataset=blobs(8),
                     side_dataset=blobs(8).select([]))
    with pytest.raises(ValueError, match="train_dataset is empty"):
        ProbeTrainer(model=TinyNet(), args=ProbeConfig(output_dir=str(tmp_path), report_to=[]),
                     train_dataset=blobs(8).select([]), side_dataset=blobs(8))
