"""A side set's random transforms draw from randomness of their own: new numbers at every draw, re-derived on resume,
and the training data's stream (Trainer's global RNGs) untouched."""

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.checkpoint import MANIFEST_NAME
from hf_lilaw.core.rng import side_seed, side_set_rng
from hf_lilaw.mlc import EBOMLCTrainer, MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer

from _distributed import torchrun
from conftest import StopAfter, TinyNet, blobs

META_BATCH = 8


def global_states():
    return random.getstate(), np.random.get_state()[1].tolist(), torch.random.get_rng_state()


def same_states(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_side_seed_depends_on_every_argument_and_is_stable():
    base = dict(process_index=0, name="meta_dataset", draw=3)
    seeds = {side_seed(0, **base), side_seed(1, **base), side_seed(0, **{**base, "process_index": 1}),
             side_seed(0, **{**base, "name": "clean_dataset"}), side_seed(0, **{**base, "draw": 4})}
    assert len(seeds) == 5
    assert side_seed(0, **base) == 2761991366316020995  # no salted hash(): the same in every Python process


def test_side_set_rng_draws_per_draw_and_leaves_the_global_generators():
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    before = global_states()
    draws = []
    for draw in (0, 1, 0):
        with side_set_rng(0, process_index=0, name="meta_dataset", draw=draw):
            draws.append((torch.rand(3), random.random(), np.random.rand()))
    assert same_states(before, global_states())
    assert torch.equal(draws[0][0], draws[2][0]) and draws[0][1:] == draws[2][1:]  # draw 0 again: same numbers
    assert not torch.equal(draws[0][0], draws[1][0]) and draws[0][1] != draws[1][1] and draws[0][2] != draws[1][2]


class NoisyX:
    """A random transform drawing from torch's global generator; records the noise of each full batch."""

    def __init__(self, batch_size):
        self.batch_size, self.noise = batch_size, []

    def __call__(self, batch):
        x = torch.tensor(batch["x"])
        noise = torch.randn(x.shape)
        if len(x) == self.batch_size:
            self.noise.append(noise)
        return {"x": x + 0.1 * noise, "label": batch["label"]}


class RecordRNG(TrainerCallback):
    """The global RNG states at the end of every step: what the training data order and dropout draw from."""

    def __init__(self):
        self.states = []

    def on_step_end(self, args, state, control, **kwargs):
        self.states.append(global_states())


def lilaw(output_dir, meta, callbacks=(), **overrides):
    torch.manual_seed(0)
    values = dict(output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=8, learning_rate=0.05,
                  lilaw_warmup_steps=1, lilaw_lr=0.5, lilaw_meta_batch_size=META_BATCH, save_strategy="no",
                  logging_steps=8, report_to=[], disable_tqdm=True, seed=0, use_cpu=True)
    values.update(overrides)
    return LiLAWTrainer(model=TinyNet(), args=LiLAWConfig(**values), train_dataset=blobs(192),
                        meta_dataset=meta, callbacks=list(callbacks))


def test_a_random_meta_transform_gives_every_meta_batch_new_noise_and_leaves_the_training_stream(tmp_path):
    transform = NoisyX(META_BATCH)
    rng_noisy, rng_plain = RecordRNG(), RecordRNG()
    noisy = lilaw(tmp_path / "noisy", blobs(48, seed=1).with_transform(transform), [rng_noisy])
    noisy.train()
    assert noisy.meta_steps == 6 and len(transform.noise) == 6
    # Nothing else draws from the global generators between meta steps (no dropout, one epoch's shuffle).
    for previous, current in zip(transform.noise, transform.noise[1:]):
        assert not torch.equal(previous, current)
    plain = lilaw(tmp_path / "plain", blobs(48, seed=1), [rng_plain])
    plain.train()
    assert all(same_states(a, b) for a, b in zip(rng_noisy.states, rng_plain.states, strict=True))


def test_random_meta_transform_resumes_exactly_under_any_process_count(tmp_path):
    save = dict(save_strategy="steps", save_steps=1)
    full_transform = NoisyX(META_BATCH)
    full = lilaw(tmp_path / "full", blobs(48, seed=1).with_transform(full_transform), **save)
    full.train()
    lilaw(tmp_path / "run", blobs(48, seed=1).with_transform(NoisyX(META_BATCH)), [StopAfter(4)], **save).train()
    checkpoint = tmp_path / "run" / "checkpoint-4"
    for per_rank in (True, False):
        if not per_rank:  # as if saved under 2 processes: the sampler moves to meta_steps draws of its own stream
            shared = torch.load(checkpoint / "lilaw_state.pt", weights_only=False)
            torch.save({**shared, "world_size": 2}, checkpoint / "lilaw_state.pt")
            os.remove(checkpoint / MANIFEST_NAME)
        transform = NoisyX(META_BATCH)
        resumed = lilaw(tmp_path / "run", blobs(48, seed=1).with_transform(transform), **save)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.lilaw_parameters() == full.lilaw_parameters()
        assert resumed.meta_steps == full.meta_steps == 6
        # Meta steps 1-2 ran before the stop (the one owed by step 4 runs at step 5): the resumed run draws the
        # noise of meta steps 3-6 again.
        assert len(transform.noise) == 4
        assert all(torch.equal(a, b) for a, b in zip(transform.noise, full_transform.noise[2:], strict=True))
        for a, b in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
            assert torch.equal(a, b)


def noisy_row(row):
    """A random `.map` of a streamed side set: it runs as the stream's rows are read."""
    return {"x": (torch.tensor(row["x"]) + 0.1 * torch.randn(len(row["x"]))).tolist()}


def noisy_stream(n, **options):
    return blobs(n, seed=1, **options).to_iterable_dataset().map(noisy_row)


def assert_same_parameters(a, b):
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)


def test_a_streamed_meta_set_with_a_random_map_resumes_exactly(tmp_path):
    """12 meta rows, 8 per meta batch: the checkpoint falls inside the second pass, which the second meta batch
    opened (and mapped) under its own randomness; the resumed run replays that pass under the same draws."""
    save = dict(save_strategy="steps", save_steps=1)
    full = lilaw(tmp_path / "full", noisy_stream(12), **save)
    full.train()
    stopped = lilaw(tmp_path / "run", noisy_stream(12), [StopAfter(4)], **save)
    stopped.train()
    assert (stopped.meta_set.batches_drawn, stopped.meta_set.state_dict()["epoch"]) == (2, 1)
    checkpoint = tmp_path / "run" / "checkpoint-4"
    for saved_per_process in (True, False):
        if not saved_per_process:  # as if saved under 2 processes: the stream is replayed from its start
            shared = torch.load(checkpoint / "lilaw_state.pt", weights_only=False)
            torch.save({**shared, "world_size": 2}, checkpoint / "lilaw_state.pt")
            os.remove(checkpoint / MANIFEST_NAME)
        resumed = lilaw(tmp_path / "run", noisy_stream(12), **save)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.meta_steps == full.meta_steps == 6
        assert resumed.meta_set.state_dict() == full.meta_set.state_dict()
        assert resumed.lilaw_parameters() == full.lilaw_parameters()
        assert_same_parameters(resumed.model, full.model)


@pytest.mark.parametrize("method", ["mlc", "ebomlc"])
def test_a_streamed_clean_set_with_a_random_map_resumes_exactly(tmp_path, method):
    """12 clean rows, 8 per clean batch: at the checkpoint (step 2) the second pass is open, mapped under the
    second draw's randomness; the resumed run's clean batches, models and meta models are the uninterrupted run's."""
    def run(output_dir, callbacks=()):
        torch.manual_seed(0)
        args = MetaLabelCorrectionConfig(output_dir=str(output_dir), max_steps=5, per_device_train_batch_size=8,
                                         mlc_clean_batch_size=8, mlc_method=method, learning_rate=1e-2,
                                         mlc_meta_lr=1e-2, report_to="none", save_strategy="steps", save_steps=2,
                                         use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
        return MetaLabelCorrectionTrainer(model=TinyNet(), args=args, train_dataset=blobs(192),
                                          clean_dataset=noisy_stream(12, noise_rate=0.0), callbacks=list(callbacks))

    full = run(tmp_path / "full")
    full.train()
    stopped = run(tmp_path / "run", [StopAfter(2)])
    stopped.train()
    assert (stopped.clean_set.batches_drawn, stopped.clean_set.state_dict()["epoch"]) == (2, 1)
    resumed = run(tmp_path / "run")
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert resumed.clean_set.state_dict() == full.clean_set.state_dict()
    assert full.clean_set.state_dict()["epoch"] == 3
    assert_same_parameters(resumed.model, full.model)
    assert_same_parameters(resumed.meta_model, full.meta_model)


def test_processes_draw_different_side_noise():
    noise = []
    for process_index in (0, 1):
        with side_set_rng(0, process_index=process_index, name="meta_dataset", draw=0):
            noise.append(torch.randn(4))
    assert not torch.equal(*noise)


def mlc_run(output_dir, clean, record):
    torch.manual_seed(0)
    args = MetaLabelCorrectionConfig(output_dir=str(output_dir), max_steps=5, per_device_train_batch_size=8,
                                     mlc_clean_batch_size=8, learning_rate=1e-2, report_to="none", save_strategy="no",
                                     use_cpu=True, disable_tqdm=True, seed=0)
    EBOMLCTrainer(model=TinyNet(), args=args, train_dataset=blobs(192), clean_dataset=clean, callbacks=[record]).train()


def test_a_random_clean_transform_draws_new_noise_and_leaves_the_training_stream(tmp_path):
    # MLC reads each clean batch once and collates its two halves under one draw of the clean set's randomness.
    transform = NoisyX(8)
    clean = blobs(48, noise_rate=0.0, seed=1)
    noisy, plain = RecordRNG(), RecordRNG()
    mlc_run(tmp_path / "noisy", clean.with_transform(transform), noisy)
    mlc_run(tmp_path / "plain", clean, plain)
    assert len(transform.noise) == 5
    assert len({tuple(n.flatten().tolist()) for n in transform.noise}) == 5
    assert all(same_states(a, b) for a, b in zip(noisy.states, plain.states, strict=True))


def test_two_processes_draw_their_own_meta_noise_keep_one_alpha_beta_delta_and_resume_exactly(tmp_path):
    torchrun(Path(__file__).with_name("side_set_rng_worker.py"), tmp_path, log=tmp_path / "torchrun.log")
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    for run_name in ("full", "resumed"):  # the meta gradient is averaged: one α, β, δ and one model on both ranks
        assert rank0[run_name]["params"] == rank1[run_name]["params"]
        assert rank0[run_name]["weights"] == rank1[run_name]["weights"]
    for rank in (rank0, rank1):
        full, resumed = rank["full"], rank["resumed"]
        assert full["meta_steps"] == resumed["meta_steps"] == 6
        assert (resumed["params"], resumed["weights"]) == (full["params"], full["weights"])
        assert resumed["noise"] == full["noise"][2:]  # meta steps 3-6 drew the same noise again
        assert all(a != b for a, b in zip(full["noise"], full["noise"][1:]))
    assert all(a != b for a, b in zip(rank0["full"]["noise"], rank1["full"]["noise"], strict=True))  # per process
