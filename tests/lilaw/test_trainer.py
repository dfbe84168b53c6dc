import copy
import dataclasses
import logging
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.checkpoint import load_state_file
from hf_lilaw.core.sampler import IndexBatchSampler
import hf_lilaw.lilaw.trainer as lilaw_trainer_module
from hf_lilaw.lilaw.trainer import LILAW_STATE_NAME

from conftest import (
    REFERENCE_ARGS, StopAfter, TinyNet, blobs, model_state, plain_eval_loss, trainer_with_cross_entropy
)


def config(tmp_path, **overrides) -> LiLAWConfig:
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        num_train_epochs=3,
        learning_rate=0.05,
        logging_steps=4,
        save_strategy="no",
        report_to=[],
        seed=0,
        lilaw_warmup_epochs=1,
        lilaw_lr=0.5,  # larger than the paper's 0.005 so a few dozen steps move the scalars visibly
        disable_tqdm=True,
    )
    base.update(overrides)
    return LiLAWConfig(**base)


def test_drop_in_swap_moves_scalars_logs_and_checkpoints(tmp_path, blob_splits):
    """An unchanged Trainer script with Trainer replaced by LiLAWTrainer."""
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=4, learning_rate=0.05,
        logging_steps=4, save_strategy="epoch", eval_strategy="epoch", report_to=[], disable_tqdm=True,
    )
    trainer = LiLAWTrainer(
        model=TinyNet(), args=args, train_dataset=blob_splits["train"], eval_dataset=blob_splits["test"]
    )
    trainer.train()

    params = trainer.lilaw_parameters()
    assert set(params) == {"alpha", "beta", "delta"}
    # Appendix A.2: dL/dα >= 0 and dL/dβ <= 0, so α falls and β rises from the defaults 10, 2, 6.
    assert params["alpha"] < 10.0
    assert params["beta"] > 2.0
    assert params["delta"] >= params["beta"]

    train_logs = [h for h in trainer.state.log_history if "loss" in h]
    assert train_logs
    for key in ("lilaw/alpha", "lilaw/beta", "lilaw/delta", "lilaw/w_alpha", "lilaw/w_beta", "lilaw/w_delta", "lilaw/w"):
        assert all(key in h for h in train_logs), key
    assert train_logs[-1]["lilaw/meta_steps"] > 0

    checkpoints = sorted(d for d in os.listdir(tmp_path) if d.startswith("checkpoint-"))
    assert checkpoints
    for ckpt in checkpoints:
        assert any("lilaw" in f for f in os.listdir(tmp_path / ckpt)), ckpt
        assert "lilaw" in (tmp_path / ckpt / "README.md").read_text()  # each checkpoint carries its model card
    saved = load_state_file(tmp_path / checkpoints[-1] / LILAW_STATE_NAME, what="LiLAW state")
    assert saved["world_size"] == 1
    assert saved["state"]["parameters"] == pytest.approx(params, abs=0.05)
    assert saved["state"]["meta_steps"] == trainer.meta_steps  # the last checkpoint is the last step


def test_plain_trainingarguments_use_lilaw_defaults(tmp_path, blob_splits, tiny_model):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    trainer = LiLAWTrainer(model=tiny_model, args=args, train_dataset=blob_splits["train"])
    assert isinstance(trainer.args, LiLAWConfig)  # coerced: code reads trainer.args.lilaw_*
    assert trainer.args.output_dir == str(tmp_path) and trainer.args.report_to == []
    assert trainer.lilaw_parameters() == {"alpha": 10.0, "beta": 2.0, "delta": 6.0}
    assert trainer.args.lilaw_lr == 0.005
    assert trainer.args.lilaw_weight_decay == 1e-4
    assert trainer.lilaw_state.sampler.batch_size == args.per_device_train_batch_size


def test_meta_split_is_stratified_seeded_and_logged(tmp_path, blob_splits, tiny_model, caplog):
    train = blob_splits["train"]
    with caplog.at_level(logging.WARNING, logger="hf_lilaw"):
        trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train)
    assert "meta set" in caplog.text and "15%" in caplog.text
    meta = trainer.meta_dataset
    assert len(meta) + len(trainer.train_dataset) == len(train)
    assert len(meta) == pytest.approx(0.15 * len(train), abs=1)
    counts_all = np.bincount(train["label"], minlength=3) * 0.15
    np.testing.assert_allclose(np.bincount(meta["label"], minlength=3), counts_all, atol=1)
    again = LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train)
    assert again.meta_dataset["x"] == meta["x"]



def test_meta_split_numbers_the_users_rows_without_changing_the_run(tmp_path, blob_splits):
    """The automatic split numbers the rows of the data set passed before splitting (so recorded dynamics and
    clean_labels index it, meta rows included); the ids change neither the batches nor the math."""
    from hf_lilaw.core import split_meta_set

    train = blob_splits["train"]
    assert "sample_id" not in train.column_names

    def fit(**data):
        torch.manual_seed(0)
        model = TinyNet()
        trainer = LiLAWTrainer(model=model, args=config(tmp_path / str(len(data))), **data)
        trainer.train()
        return trainer, model

    auto, auto_model = fit(train_dataset=train)
    assert "sample_id" not in train.column_names  # the caller's data set is untouched
    train_ids, meta_ids = np.asarray(auto.train_dataset["sample_id"]), np.asarray(auto.meta_dataset["sample_id"])
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, meta_ids])), np.arange(len(train)))
    np.testing.assert_array_equal(np.asarray(train["x"])[meta_ids], np.asarray(auto.meta_dataset["x"]))
    np.testing.assert_array_equal(np.asarray(train["x"])[train_ids], np.asarray(auto.train_dataset["x"]))
    # The same split passed explicitly (no ids anywhere): bit-identical weights and scalars.
    part, meta = split_meta_set(train, fraction=auto.args.lilaw_meta_fraction, seed=auto.args.seed)
    explicit, explicit_model = fit(train_dataset=part, meta_dataset=meta)
    assert explicit.meta_steps == auto.meta_steps > 0
    assert explicit.lilaw_parameters() == auto.lilaw_parameters()
    for name, value in model_state(explicit_model).items():
        torch.testing.assert_close(model_state(auto_model)[name], value, rtol=0, atol=0)

@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_warmup_makes_lilaw_identical_to_trainer(tmp_path, blob_splits, dropout):
    """During warm-up the loss is Trainer's plain mean CE and the data order and dropout masks are Trainer's."""
    plain_model = trainer_with_cross_entropy(tmp_path, blob_splits["train"], dropout=dropout)
    torch.manual_seed(0)
    lilaw_model = TinyNet(dropout=dropout)
    trainer = LiLAWTrainer(model=lilaw_model,
                           args=LiLAWConfig(output_dir=str(tmp_path), **REFERENCE_ARGS, lilaw_warmup_epochs=2),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    assert trainer.meta_steps == 0
    for name, value in model_state(plain_model).items():
        torch.testing.assert_close(model_state(lilaw_model)[name], value, rtol=0, atol=0)


class RngRecorder(TrainerCallback):
    """The global torch RNG state at the start of every optimizer step."""

    def __init__(self):
        self.states = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.states.append(torch.random.get_rng_state())


def test_meta_steps_leave_the_training_rng_as_plain_trainers(tmp_path, blob_splits):
    # Past the warm-up every step is followed by a meta step (eval-mode forward, meta batch from its own generator):
    # the global RNG that training dropout and augmentations draw from is where a plain Trainer run has it.
    plain = RngRecorder()
    trainer_with_cross_entropy(tmp_path / "plain", blob_splits["train"], dropout=0.3, callbacks=[plain])
    torch.manual_seed(0)
    lilaw = RngRecorder()
    trainer = LiLAWTrainer(model=TinyNet(dropout=0.3), callbacks=[lilaw],
                           args=LiLAWConfig(output_dir=str(tmp_path / "lilaw"), **REFERENCE_ARGS, lilaw_warmup_steps=2),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])  # fmt: skip
    trainer.train()
    assert trainer.meta_steps == len(lilaw.states) - 3 > 10
    assert len(lilaw.states) == len(plain.states)
    for step, (ours, theirs) in enumerate(zip(lilaw.states, plain.states), start=1):
        assert torch.equal(ours, theirs), f"step {step}"


def test_meta_steps_once_per_optimizer_step_after_warmup(tmp_path, blob_splits, tiny_model):
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, lilaw_warmup_steps=5),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    steps = trainer.state.global_step  # 192 / 16 * 3 = 36
    assert steps == 36
    # Steps 6..36 are weighted; each is followed by a meta step, the last one's would come after training ends.
    assert trainer.meta_steps == steps - 5 - 1


class GradientRecorder(TrainerCallback):
    def __init__(self):
        self.grads = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append(torch.cat([p.grad.flatten().clone() for p in model.parameters()]))


def test_gradient_accumulation_matches_a_large_batch(tmp_path, blob_splits):
    def run(batch_size, accumulation):
        torch.manual_seed(0)
        recorder = GradientRecorder()
        trainer = LiLAWTrainer(
            model=TinyNet(),
            args=config(tmp_path / f"{batch_size}x{accumulation}", per_device_train_batch_size=batch_size,
                        gradient_accumulation_steps=accumulation, lilaw_warmup_steps=2, lilaw_meta_batch_size=16,
                        num_train_epochs=2),
            train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"], callbacks=[recorder],
        )
        trainer.train()
        return trainer, recorder.grads

    big, big_grads = run(16, 1)
    small, small_grads = run(8, 2)
    assert big.state.global_step == small.state.global_step == 24
    assert big.meta_steps == small.meta_steps == 24 - 2 - 1
    assert len(big_grads) == len(small_grads)
    for g_big, g_small in zip(big_grads, small_grads):
        torch.testing.assert_close(g_small, g_big, rtol=1e-4, atol=1e-6)
    assert small.lilaw_parameters() == pytest.approx(big.lilaw_parameters(), rel=1e-5)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, blob_splits):
    def make(output_dir, callbacks=None):
        torch.manual_seed(0)
        return LiLAWTrainer(
            model=TinyNet(dropout=0.1),
            args=config(output_dir, save_strategy="steps", save_steps=10, lilaw_warmup_steps=4),
            train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"], callbacks=callbacks,
        )

    full = make(tmp_path / "full")
    full.train()

    interrupted = make(tmp_path / "resumed", callbacks=[StopAfter(20)])  # checkpoint-20 is mid-epoch (12/epoch)
    interrupted.train()
    assert interrupted.state.global_step == 20
    assert os.path.isfile(tmp_path / "resumed" / "checkpoint-20" / LILAW_STATE_NAME)
    resumed = make(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-20"))

    assert resumed.meta_steps == full.meta_steps
    assert resumed.lilaw_parameters() == pytest.approx(full.lilaw_parameters(), rel=1e-6, abs=1e-7)
    for name, value in model_state(full.model).items():
        torch.testing.assert_close(model_state(resumed.model)[name], value, rtol=1e-6, atol=1e-7)


@dataclasses.dataclass
class ScriptConfig(LiLAWConfig):
    """A script's own options beside the method's (the `HfArgumentParser` pattern): not the method's settings."""

    data_dir: str = "/old"


def test_a_resume_under_other_lilaw_settings_is_refused_and_a_checkpoint_without_them_resumes(tmp_path, blob_splits):
    # A resume with lilaw_alpha=3 and a GCE base loss went on silently from the saved α = 10 under cross-entropy's
    # history, and the card then reported initial α 3 and base loss GCE.
    def make(**overrides):
        torch.manual_seed(0)
        args = config(tmp_path, **{"save_strategy": "steps", "save_steps": 4, "max_steps": 8, "lilaw_warmup_steps": 2,
                                   **overrides})  # fmt: skip
        return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"],
                            meta_dataset=blob_splits["meta"])  # fmt: skip

    make(max_steps=4).train()
    checkpoint = tmp_path / "checkpoint-4"
    resumed = make(lilaw_alpha=3.0, lilaw_base_loss="gce")
    with pytest.raises(ValueError, match=re.escape("(lilaw_alpha: saved 10.0, now 3.0; lilaw_base_loss: saved 'cross_entropy', now 'gce')")):
        resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 0 and resumed.lilaw_parameters()["alpha"] == 3.0
    make(lilaw_meta_cache="off").train(resume_from_checkpoint=str(checkpoint))  # speed only: free to change
    make(lilaw_seed=0).train(resume_from_checkpoint=str(checkpoint))  # None (= seed, 0) spelt out: not compared

    torch.manual_seed(0)
    args = ScriptConfig(**{**config(tmp_path, save_strategy="steps", save_steps=4, max_steps=8,
                                    lilaw_warmup_steps=2).to_dict(), "data_dir": "/new"})  # fmt: skip
    LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"],
                 meta_dataset=blob_splits["meta"]).train(resume_from_checkpoint=str(checkpoint))  # fmt: skip

    # A checkpoint saved before settings were recorded (as plain Trainer's manifest-free folder) is not compared.
    state = load_state_file(checkpoint / LILAW_STATE_NAME, what="LiLAW state")
    del state["settings"]
    torch.save(state, checkpoint / LILAW_STATE_NAME)
    os.remove(checkpoint / "hf_lilaw_manifest.json")
    old = make(lilaw_lr=0.1)
    old.train(resume_from_checkpoint=str(checkpoint))
    assert old.state.global_step == 8


def test_eval_loss_is_the_plain_mean_cross_entropy(tmp_path, blob_splits, tiny_model):
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=blob_splits["train"],
                           meta_dataset=blob_splits["meta"], eval_dataset=blob_splits["test"])
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(plain_eval_loss(trainer.model, blob_splits["test"]), rel=1e-5)


def test_meta_step_restores_train_mode_keeps_global_rng_and_follows_the_gradient(tmp_path, blob_splits, tiny_model):
    from hf_lilaw.functional import lilaw_meta_gradient, lilaw_meta_update

    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=blob_splits["train"],
                           meta_dataset=blob_splits["meta"])
    tiny_model.train()
    before = torch.random.get_rng_state()
    trainer.meta_step(tiny_model)
    assert tiny_model.training
    assert torch.equal(before, torch.random.get_rng_state())
    assert trainer.meta_steps == 1
    # The same step by hand: the meta sampler's first batch (seed 0, process 0), eval-mode forward, SGD.
    first = IndexBatchSampler(len(blob_splits["meta"]), 16, seed=0).next_batch()
    meta = blob_splits["meta"].select(first)
    tiny_model.eval()
    with torch.no_grad():
        logits = tiny_model(torch.tensor(meta["x"]))["logits"]
    labels = torch.tensor(meta["label"])
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    grad = lilaw_meta_gradient(logits.softmax(-1), labels, losses, torch.tensor([10.0, 2.0, 6.0]))
    expected = lilaw_meta_update(torch.tensor([10.0, 2.0, 6.0]), grad, lr=torch.full((3,), 0.5),
                                 weight_decay=torch.full((3,), 1e-4))
    assert list(trainer.lilaw_parameters().values()) == pytest.approx(expected.tolist(), rel=1e-6)


def test_detached_weights_change_the_model_gradient(tmp_path, blob_splits):
    """The first weighted step's gradient, by hand: mean(W·ℓ) with W attached to θ or a constant."""
    from hf_lilaw.functional import lilaw_weights

    def run(detach):
        torch.manual_seed(0)
        recorder, seen = GradientRecorder(), []
        model = TinyNet()
        initial = copy.deepcopy(model)
        model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["x"].clone()) if module.training else None,
                                        with_kwargs=True)
        LiLAWTrainer(model=model, args=config(tmp_path, lilaw_warmup_steps=0, max_steps=1, max_grad_norm=0,
                                                  lilaw_detach_weights=detach),
                     train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"], callbacks=[recorder]).train()
        return recorder.grads[0], initial, seen[0]

    def by_hand(model, x, labels, detach):
        logits = model(x)["logits"]
        weights = lilaw_weights(logits.softmax(-1), labels, alpha=10.0, beta=2.0, delta=6.0).total
        weights = weights.detach() if detach else weights
        loss = (weights * torch.nn.functional.cross_entropy(logits, labels, reduction="none")).mean()
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])

    x_to_label = {tuple(row): y for row, y in zip(np.asarray(blob_splits["train"]["x"]).tolist(), blob_splits["train"]["label"])}
    for detach in (False, True):
        grad, initial, x = run(detach)
        labels = torch.tensor([x_to_label[tuple(row)] for row in x.tolist()])
        torch.testing.assert_close(grad, by_hand(initial, x, labels, detach), rtol=1e-5, atol=1e-7)
    attached, detached = run(False)[0], run(True)[0]
    assert (attached - detached).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["vit", "timm", "plain"])
def test_works_with_transformers_timm_and_plain_models(tmp_path, kind):
    from datasets import Dataset
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification, ViTConfig, ViTForImageClassification

    rng = np.random.default_rng(0)
    data = Dataset.from_dict({"pixel_values": rng.normal(size=(48, 3, 16, 16)).astype(np.float32),
                              "label": rng.integers(0, 3, 48)})
    torch.manual_seed(0)
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=3))
    elif kind == "timm":
        model = TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_resnet", num_labels=3))
    else:
        class Flat(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(3 * 16 * 16, 3)

            def forward(self, pixel_values):
                return self.fc(pixel_values.flatten(1))  # a bare tensor of logits

        model = Flat()
    trainer = LiLAWTrainer(model=model, args=config(tmp_path, per_device_train_batch_size=8, num_train_epochs=2,
                                                     lilaw_warmup_steps=1), train_dataset=data)
    trainer.train()
    assert trainer.meta_steps > 0
    assert trainer.lilaw_parameters()["alpha"] < 10.0
    assert np.isfinite(trainer.evaluate(data)["eval_loss"])


def test_bad_input_is_refused_with_the_fix(tmp_path, blob_splits, tiny_model):
    train, meta = blob_splits["train"], blob_splits["meta"]
    with pytest.raises(ValueError, match="lilaw_base_loss"):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train, compute_loss_func=lambda *a, **k: 0)
    with pytest.raises(ValueError, match="larger than train_dataset"):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=meta, meta_dataset=train)
    with pytest.raises(ValueError, match="empty"):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train, meta_dataset=meta.select([]))
    with pytest.raises(ValueError, match="meta_dataset="):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=torch.utils.data.TensorDataset(torch.ones(4)))
    with pytest.raises(ValueError, match="lilaw_delta"):
        config(tmp_path, lilaw_delta=1.0, lilaw_beta=2.0)
    with pytest.raises(ValueError, match="lilaw_lr"):
        config(tmp_path, lilaw_lr=float("nan"))
    with pytest.raises(ValueError, match="lilaw_alpha_lr"):
        config(tmp_path, lilaw_alpha_lr=-1.0)


# ---- precision, compilation, data shapes, bad input (issue: "at scale and under stress") -------------------------


def test_bf16_autocast_keeps_weights_and_meta_gradients_in_float32(tmp_path, blob_splits, tiny_model, monkeypatch):
    # LiLAW's step math runs on float32 logits with autocast off, so no op of it is autocast to bfloat16 (which would
    # round weights, losses and meta gradients by ~1e-3): each call gives what it gives in plain float32.
    calls = []

    def spy(function):
        def recorded(logits, labels, params, **kwargs):
            out = function(logits, labels, params, **kwargs)
            calls.append((function, torch.is_autocast_enabled("cpu"), logits.detach().clone(), labels.clone(),
                          params.detach().clone(), kwargs, out))
            return out

        return recorded

    for name in ("training_loss_terms", "meta_gradient"):
        monkeypatch.setattr(lilaw_trainer_module, name, spy(getattr(lilaw_trainer_module, name)))
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, bf16=True, use_cpu=True, lilaw_warmup_steps=1,
                                                         max_steps=8),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    head_dtypes = []
    tiny_model.head.register_forward_hook(lambda module, args, output: head_dtypes.append((module.training, output.dtype)))
    trainer.train()
    # Training and meta (eval-mode) forwards both ran under bf16 autocast; accelerate hands back float32 outputs.
    assert (True, torch.bfloat16) in head_dtypes and (False, torch.bfloat16) in head_dtypes
    assert trainer.lilaw_state.params.dtype == torch.float32
    functions = [call[0].__name__ for call in calls]
    assert functions.count("training_loss_terms") == 8 and functions.count("meta_gradient") == 6
    assert not any(call[1] for call in calls) and all(call[2].dtype == torch.float32 for call in calls)
    for function, _, logits, labels, params, kwargs, out in calls:
        kwargs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        expected = function(logits, labels, params, **kwargs)
        for got, want in zip(*(o if isinstance(o, tuple) else (o,) for o in (out, expected))):
            assert got.dtype == torch.float32
            torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-6, atol=1e-7)
    assert trainer.meta_steps == 6
    assert all(np.isfinite(v) for v in trainer.lilaw_parameters().values())
    assert trainer.lilaw_parameters()["alpha"] < 10.0


def test_torch_compile_gives_the_eager_run(tmp_path, blob_splits):
    # torch_compile=True compiles the model (Trainer) and LiLAW's step math (lilaw_compile follows it).
    logged = ("lilaw/alpha", "lilaw/beta", "lilaw/delta", "lilaw/w_alpha", "lilaw/w_beta", "lilaw/w_delta", "lilaw/w")
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = TinyNet()
        trainer = LiLAWTrainer(model=model, args=config(tmp_path / str(compiled), torch_compile=compiled,
                                                        lilaw_warmup_steps=1, max_steps=8, logging_steps=2),
                               train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])  # fmt: skip
        trainer.train()
        assert trainer.args.lilaw_compiles is compiled and trainer.meta_steps == 6
        history = [[h[k] for k in logged] for h in trainer.state.log_history if "loss" in h]
        runs.append((history, trainer.lilaw_parameters(), model_state(model)))
    (eager, eager_params, eager_weights), (fused, fused_params, fused_weights) = runs
    assert len(eager) == 4 and eager_params != {"alpha": 10.0, "beta": 2.0, "delta": 6.0}
    # Fused kernels round differently: equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(fused, eager, rtol=1e-5)
    assert fused_params == pytest.approx(eager_params, rel=1e-6)
    for name, value in eager_weights.items():
        torch.testing.assert_close(fused_weights[name], value, rtol=1e-5, atol=1e-6)


def test_non_finite_meta_rows_are_refused_up_front(tmp_path, blob_splits, tiny_model):
    meta = blob_splits["meta"].map(lambda row, i: {"x": [float("nan")] * len(row["x"]) if i in (3, 40) else row["x"]},
                                   with_indices=True)
    with pytest.raises(ValueError, match=r"meta_dataset has 2 of 48 rows with non-finite values .* column 'x' .*\[3, 40\]"):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path), train_dataset=blob_splits["train"], meta_dataset=meta)


class NaNWhenEvaluating(TinyNet):
    """Finite in training, non-finite logits in the meta forward (eval mode): a meta loss that is not finite."""

    def forward(self, x, labels=None):
        logits = self.head(self.body(x))
        return {"logits": logits if self.training else logits * float("nan")}


def test_non_finite_meta_batches_are_skipped_with_a_warning(tmp_path, blob_splits, caplog):
    # A list of dicts is read up front like a datasets.Dataset: its non-finite rows are refused, naming the row.
    meta = [{"x": [float("nan")] * len(row["x"]), "label": row["label"]} for row in blob_splits["meta"]]
    with pytest.raises(ValueError, match=r"meta_dataset row 0 holds a non-finite value \(NaN or inf\) in 'x'"):
        LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=blob_splits["train"], meta_dataset=meta)
    # A meta loss that is not finite all the same (here: the model's) skips the meta step.
    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=NaNWhenEvaluating(), args=config(tmp_path, lilaw_warmup_steps=1, max_steps=9, logging_steps=3),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    with caplog.at_level(logging.WARNING, logger="hf_lilaw"):
        trainer.train()
    assert trainer.lilaw_parameters() == {"alpha": 10.0, "beta": 2.0, "delta": 6.0}
    assert trainer.meta_steps == 7
    assert trainer.skipped_meta_steps == 7
    assert trainer.state.log_history[-2]["lilaw/skipped_meta_steps"] == 7
    assert "skipped" in caplog.text and "not finite" in caplog.text
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_eval_loss_leaves_out_evaluation_batches_without_a_labelled_row(tmp_path, blob_splits):
    # Evaluation batches of 8; the second is all -100. It used to count as a loss of 0 (eval_loss 5/6 of the truth).
    evaluation = blob_splits["meta"].map(lambda row, i: {"label": -100 if 8 <= i < 16 else row["label"]},
                                         with_indices=True)
    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, per_device_eval_batch_size=8, max_steps=2),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    labels = torch.tensor(evaluation["label"])
    with torch.no_grad():
        logits = trainer.model(torch.tensor(evaluation["x"]))["logits"]
    expected = torch.nn.functional.cross_entropy(logits, labels).item()  # the mean over the 40 labelled rows
    assert trainer.evaluate(evaluation)["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_meta_batches_of_unlabelled_rows_are_skipped_not_fatal(tmp_path, blob_splits, caplog):
    # Two of four meta rows unlabelled and meta batches of 2: some draws hold no labelled row. They used to stop
    # training mid-run with an error; now each is skipped and counted like a non-finite meta step.
    meta = blob_splits["meta"].select(range(4)).map(lambda row, i: {"label": -100 if i < 2 else row["label"]},
                                                    with_indices=True)
    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, lilaw_warmup_steps=0, max_steps=24, logging_steps=24,
                                                        lilaw_meta_batch_size=2),
                           train_dataset=blob_splits["train"], meta_dataset=meta)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw"):
        trainer.train()
    assert trainer.meta_steps == 23 and 0 < trainer.skipped_meta_steps < 23
    assert "no labelled row" in caplog.text
    assert trainer.lilaw_parameters() != {"alpha": 10.0, "beta": 2.0, "delta": 6.0}


@pytest.mark.parametrize(("overrides", "warns", "meta_steps"), [
    ({"max_steps": 10, "lilaw_warmup_steps": 9}, True, 0),
    ({"max_steps": 10, "lilaw_warmup_steps": 8}, False, 1),
    ({"num_train_epochs": 1, "lilaw_warmup_epochs": 1}, True, 0),  # 12 steps, all in the warm-up
    ({"num_train_epochs": 2, "lilaw_warmup_epochs": 1}, False, 11),
])
def test_warmup_covering_the_whole_run_is_announced(tmp_path, blob_splits, tiny_model, caplog, overrides, warns, meta_steps):
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, **overrides), train_dataset=blob_splits["train"],
                           meta_dataset=blob_splits["meta"])
    with caplog.at_level(logging.WARNING, logger="hf_lilaw"):
        trainer.train()
    assert ("no meta step will ever happen" in caplog.text) is warns
    assert trainer.meta_steps == meta_steps


def test_a_resume_with_a_streamed_training_set_warns_that_it_is_exact_only_inside_the_first_pass(
    tmp_path, blob_splits, caplog
):
    def make():
        torch.manual_seed(0)
        args = config(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, lilaw_warmup_steps=1)
        return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"].to_iterable_dataset(),
                            meta_dataset=blob_splits["meta"])  # fmt: skip

    make().train()
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.base_trainer"):
        make().train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert "exactly only from a checkpoint inside the stream's first pass" in caplog.text


def test_streamed_train_and_meta_sets(tmp_path, blob_splits, tiny_model):
    train = blob_splits["train"].to_iterable_dataset(num_shards=2)
    meta = blob_splits["meta"].to_iterable_dataset(num_shards=1)
    with pytest.raises(ValueError, match="lilaw_warmup_steps"):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path, max_steps=10), train_dataset=train, meta_dataset=meta)
    with pytest.raises(ValueError, match="meta_dataset="):
        LiLAWTrainer(model=tiny_model, args=config(tmp_path, max_steps=10, lilaw_warmup_steps=2), train_dataset=train)
    # 48 meta rows / 16 per batch: 9 meta steps use up the third pass of the stream exactly.
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, max_steps=12, lilaw_warmup_steps=2),
                           train_dataset=train, meta_dataset=meta)
    trainer.train()
    assert trainer.meta_steps == 9
    assert trainer.lilaw_state.sampler.state_dict() == {"batch_size": 16, "seed": 0, "batches_drawn": 9, "epoch": 2, "consumed": 48,
                                                         "buffer_size": 1000}
    assert trainer.lilaw_parameters()["alpha"] < 10.0


def test_remove_unused_columns_keeps_labels_and_drops_the_rest(tmp_path, blob_splits, tiny_model):
    # blobs carry clean_label and is_noisy, which TinyNet.forward does not take: they must be dropped, labels kept.
    forward_kwargs = []
    tiny_model.register_forward_pre_hook(lambda module, args, kwargs: forward_kwargs.append((module.training, set(kwargs))),
                                         with_kwargs=True)
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, remove_unused_columns=True, max_steps=3,
                                                         lilaw_warmup_steps=0, logging_steps=3),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    assert trainer.meta_steps == 2
    # 3 training forwards and 2 meta forwards (plus the pre-flight), all with x alone: labels went to the loss
    assert sorted(forward_kwargs, key=str) == sorted([(True, {"x"})] * 3 + [(False, {"x"})] * 3, key=str)
    # labels reached the weighted loss: the logged mean weight of 48 labelled samples
    assert 0 < trainer.state.log_history[0]["lilaw/w"] < 3


def test_class_imbalance_and_batches_missing_a_class(tmp_path, tiny_model):
    data = blobs(400, noise_rate=0.2, seed=3)
    keep = [i for i, y in enumerate(data["label"]) if y != 2 or i % 10 == 0]  # class 2 becomes ~4% of the data
    data = data.select(keep)
    trainer = LiLAWTrainer(model=tiny_model, args=config(tmp_path, per_device_train_batch_size=8),
                           train_dataset=data)
    trainer.train()
    counts = np.bincount(trainer.meta_dataset["label"], minlength=3)
    # stratification: each class, the rare one too, gets its 15% share of the meta set
    np.testing.assert_allclose(counts, 0.15 * np.bincount(data["label"], minlength=3), atol=1)
    assert counts[2] >= 1
    assert trainer.meta_steps > 0 and trainer.lilaw_parameters()["alpha"] < 10.0


class NoLogits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x, labels=None):
        return {"embedding": self.fc(x)}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("label_out_of_range", r"labels in \[0, 3\] but the model outputs 3 classes|labels must lie in \[0, 3\)"),
        ("float_labels", "integer class indices"),
        ("multi_label", "multi-label"),
        ("meta_without_labels", "no label column"),
        ("no_logits", "needs classification logits"),
        ("regression_config", "single-label classification"),
        ("plain_model_meta_labels_beyond_outputs", r"meta_dataset has labels in \[0, 2\] but the model outputs 2 classes"),
        ("plain_model_train_labels_beyond_outputs", r"train_dataset has labels in \[0, 2\] but the model outputs 2 classes"),
        ("one_output_binary_labels", "use 2 outputs"),
        ("empty_train", "train_dataset is empty"),
    ],
)
def test_bad_input_fails_before_any_training_step(tmp_path, blob_splits, case, message):
    from transformers import ViTConfig, ViTForImageClassification

    train, meta, model = blob_splits["train"], blob_splits["meta"], TinyNet()
    if case == "label_out_of_range":
        meta = meta.map(lambda row: {"label": 3 if row["label"] == 2 else row["label"]})
    elif case == "float_labels":
        train = train.cast_column("label", __import__("datasets").Value("float32"))
    elif case == "multi_label":
        train = train.map(lambda row: {"label": [row["label"], 0]})
    elif case == "meta_without_labels":
        meta = meta.remove_columns("label")
    elif case == "no_logits":
        model = NoLogits()
    elif case == "regression_config":
        model = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=8, num_labels=1))
    elif case == "plain_model_meta_labels_beyond_outputs":
        model = TinyNet(num_classes=2)  # no config.num_labels: only the real logits tell the output size
        train = train.filter(lambda row: row["label"] < 2)
    elif case == "plain_model_train_labels_beyond_outputs":
        model = TinyNet(num_classes=2)
        meta = meta.filter(lambda row: row["label"] < 2)
    elif case == "one_output_binary_labels":
        model = TinyNet(num_classes=1)
        train, meta = (d.map(lambda row: {"label": row["label"] % 2}) for d in (train, meta))
    elif case == "empty_train":
        train = train.select([])
    steps = []

    class CountSteps(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            steps.append(1)

    with pytest.raises(ValueError, match=message):
        trainer = LiLAWTrainer(model=model, args=config(tmp_path), train_dataset=train, meta_dataset=meta,
                               callbacks=[CountSteps()])
        trainer.train()
    assert steps == []


# ---- score_samples, the automatic meta split's errors and the model card ------------------------------------------


@pytest.mark.parametrize("setting", ["dataloader_drop_last", "prediction_loss_only", "eval_do_concat_batches"])
def test_score_samples_scores_every_row_whatever_the_evaluation_settings(tmp_path, blob_splits, setting):
    """Scoring overrides the settings that would drop the last partial batch, skip the logits or keep them per
    batch, and restores them afterwards, also when the scoring pass fails."""
    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, max_steps=4, lilaw_warmup_steps=1,
                                                        per_device_eval_batch_size=32),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    test = blob_splits["test"].select(range(70))  # 32 + 32 + 6 rows
    expected = trainer.score_samples(test).to_dict()
    assert len(expected["w_alpha"]) == 70
    value = setting != "eval_do_concat_batches"  # the user's value that scoring must override
    setattr(trainer.args, setting, value)
    assert trainer.score_samples(test).to_dict() == expected
    assert getattr(trainer.args, setting) is value
    bad = test.map(lambda row: {"label": 5 if row["label"] == 2 else row["label"]})
    with pytest.raises(ValueError, match="labels must lie in"):
        trainer.score_samples(bad)
    assert getattr(trainer.args, setting) is value
    assert trainer.compute_metrics is None and not trainer._logits_only


def test_score_samples_warns_when_it_scores_the_training_set_through_its_transform(tmp_path, blob_splits):
    """Under the image example's setup the training set augments at random, so score_samples() scored other random
    views at each call (and find_label_issues / clean_labels with them); scoring an explicit set does not warn."""

    def augment(batch):
        x = torch.tensor(batch["x"])
        return {"x": x + torch.randn_like(x), "label": batch["label"]}

    train, meta = blob_splits["train"], blob_splits["meta"]
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=train.with_transform(augment),
                           meta_dataset=meta)
    with pytest.warns(UserWarning, match=r"^score_samples\(\) scores the training set through its transform .* Pass "
                                         r"the training rows under the evaluation transform, e\.g\. "):
        assert len(trainer.score_samples()) == len(train)
    plain = LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=train, meta_dataset=meta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.score_samples(train)  # the rows as evaluation sees them
        plain.score_samples()  # no transform
    assert not [w for w in caught if "score_samples()" in str(w.message)]


class LengthNet(TinyNet):
    def forward(self, x, length=None, labels=None):  # takes the length column, so Trainer keeps it for the sampler
        return {"logits": self.head(self.body(x))}


@pytest.mark.parametrize("case", ["group_by_length", "stream_with_workers"])
def test_score_samples_keeps_the_row_order(tmp_path, blob_splits, case):
    """Trainer evaluates in length-grouped order under group_by_length, and workers interleave a sharded stream
    differently from the stream's own order: scoring reads the rows in order and restores the settings."""
    rng = np.random.default_rng(0)
    train, meta, test = (blob_splits[name].add_column("length", rng.integers(1, 100, len(blob_splits[name])).tolist())
                         for name in ("train", "meta", "test"))
    overrides = {"train_sampling_strategy": "group_by_length"} if case == "group_by_length" else {
        "dataloader_num_workers": 2, "dataloader_prefetch_factor": 2}
    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=LengthNet(), args=config(tmp_path, max_steps=2, lilaw_warmup_steps=1,
                                                          per_device_eval_batch_size=8, **overrides),
                           train_dataset=train, meta_dataset=meta)
    trainer.train()
    scored = test if case == "group_by_length" else test.to_iterable_dataset(num_shards=2)
    rows = list(scored)
    with torch.no_grad():
        logits = trainer.model(torch.tensor(np.array([r["x"] for r in rows]), dtype=torch.float32))["logits"]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([r["label"] for r in rows]), reduction="none")
    np.testing.assert_allclose(trainer.score_samples(scored)["loss"], expected.numpy(), atol=1e-5)
    assert {name: getattr(trainer.args, name) for name in overrides} == overrides
    assert trainer.args.dataloader_in_order is True


@pytest.mark.parametrize("bad_row", [7, 150])
def test_bad_labels_under_the_meta_split_are_named_by_their_row_in_train_dataset(tmp_path, blob_splits, bad_row):
    train = blob_splits["train"]
    labels = list(train["label"])
    labels[bad_row] = 5
    bad = train.remove_columns("label").add_column("label", labels)
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=bad)
    with pytest.raises(ValueError) as refused:
        trainer.train()
    assert str(refused.value).startswith(
        "train_dataset has labels in [0, 5] but the model outputs 3 classes: labels must lie in [0, 3) (or be -100 to "
        f"ignore a row). The first is row {bad_row} (label 5)."
    )
    assert trainer.state.global_step == 0
    with pytest.raises(ValueError, match="^train_dataset has no label column"):
        LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=train.rename_column("label", "target"))


def test_model_card_names_label_smoothing(tmp_path, blob_splits):
    def card(**overrides):
        trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, **overrides), train_dataset=blob_splits["train"],
                               meta_dataset=blob_splits["meta"])
        return trainer.model_card_values()

    assert card()["base_loss"] == "cross_entropy"
    assert card(label_smoothing_factor=0.1)["base_loss"] == "cross_entropy (label smoothing 0.1)"
    assert card(lilaw_base_loss="focal", label_smoothing_factor=0.1)["base_loss"] == "focal (γ = 2.0, label smoothing 0.1)"
    assert card(lilaw_base_loss="focal")["base_loss"] == "focal (γ = 2.0)"


def test_model_card_does_not_claim_the_meta_set_for_lilaw_alone(tmp_path, blob_splits):
    """The meta set may also be the evaluation set (as in the examples): the card says only what LiLAW does with it."""
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=blob_splits["train"],
                           meta_dataset=blob_splits["meta"], eval_dataset=blob_splits["meta"])
    assert trainer.model_card_values()["side_sets"] == {"Meta set": "48 samples, which LiLAW's meta steps draw from"}


def test_model_card_states_the_runs_settings_and_the_meta_batch_drawn(tmp_path, blob_splits):
    # The snippet hard-coded the default α, β, δ, and the card gave the requested meta batch (64), not the 48 rows
    # the sampler draws from a meta set of 48.
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=64, lilaw_alpha=7.0,
                                                        lilaw_beta=1.0, lilaw_delta=3.0, lilaw_warmup_steps=1),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    values = trainer.model_card_values()
    assert values["method_settings"]["meta batch size"] == 48
    assert (
        'args = LiLAWConfig(output_dir="my-model", lilaw_alpha=7.0, lilaw_beta=1.0, lilaw_delta=3.0, lilaw_lr=0.5, '
        "lilaw_warmup_steps=1)\n"
    ) in values["train_snippet"]


class ClassWeightedLiLAW(LiLAWTrainer):
    """The transformers recipe for a class-weighted loss, which replaces LiLAW's weighted loss."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(x=inputs["x"])
        loss = torch.nn.functional.cross_entropy(outputs["logits"], labels, weight=torch.tensor([1.0, 2.0, 0.5]))
        return (loss, outputs) if return_outputs else loss


class ScaledLiLAW(LiLAWTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


@pytest.mark.parametrize("overrides", [{}, {"lilaw_warmup_steps": 0}], ids=["in-warm-up", "weighted"])
def test_a_compute_loss_override_that_bypasses_lilaw_is_refused_at_the_first_step(tmp_path, blob_splits, overrides):
    # It trained unweighted (equal to a plain class-weighted Trainer) while α, β, δ kept moving in the logs.
    torch.manual_seed(0)
    model = TinyNet()
    before = model_state(model)
    trainer = ClassWeightedLiLAW(model=model, args=config(tmp_path, **overrides), train_dataset=blob_splits["train"],
                                 meta_dataset=blob_splits["meta"])
    with pytest.raises(RuntimeError) as error:
        trainer.train()
    assert str(error.value) == (
        "LiLAWTrainer's training loss did not go through LiLAW's per-sample weighting: ClassWeightedLiLAW overrides "
        "compute_loss and its loss did not come from LiLAWTrainer.compute_loss (super().compute_loss). The model "
        "would train on that loss while α, β, δ still moved in the logs; stopped at step 1, before its optimizer "
        "step. LiLAW weights the per-sample base loss of the logits itself: choose it with lilaw_base_loss "
        "('cross_entropy', 'focal', 'gce' or 'sce') and label_smoothing_factor, and remove the override (or return "
        "super().compute_loss(...) from it); for another loss (e.g. class-weighted cross-entropy) use "
        "transformers.Trainer."
    )
    assert trainer.state.global_step == 0 and trainer.meta_steps == 0
    assert all(torch.equal(before[k], v) for k, v in model_state(model).items())

    # An override that returns LiLAW's loss trains as LiLAWTrainer does.
    trainer = ScaledLiLAW(model=TinyNet(), args=config(tmp_path, max_steps=4, lilaw_warmup_steps=1),
                          train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    trainer.train()
    assert trainer.meta_steps == 2


def test_gradient_accumulation_by_default_draws_one_optimizer_steps_rows_per_meta_batch(tmp_path, blob_splits):
    # The default meta batch was one micro-batch (per_device_train_batch_size), so 8 × 1 and 4 × 2 differed.
    def run(batch_size, accumulation):
        torch.manual_seed(0)
        model = TinyNet()
        trainer = LiLAWTrainer(
            model=model,
            args=config(tmp_path / f"{batch_size}x{accumulation}", per_device_train_batch_size=batch_size,
                        gradient_accumulation_steps=accumulation, lilaw_warmup_steps=1, max_steps=10, logging_steps=1),
            train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"],
        )
        trainer.train()
        weights = [h["lilaw/w"] for h in trainer.state.log_history if "lilaw/w" in h]
        return trainer, model, weights

    big, big_model, big_weights = run(8, 1)
    small, small_model, small_weights = run(4, 2)
    assert big.meta_steps == small.meta_steps == 8
    assert small.lilaw_parameters() == pytest.approx(big.lilaw_parameters(), rel=1e-6, abs=0)
    assert big.meta_set.sampler.batch_size == small.meta_set.sampler.batch_size == 8
    assert small.lilaw_parameters() != pytest.approx({"alpha": 10.0, "beta": 2.0, "delta": 6.0}, abs=1e-3)
    assert small_weights == pytest.approx(big_weights, rel=1e-6)
    for name, value in big_model.state_dict().items():
        torch.testing.assert_close(small_model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_the_meta_loss_is_the_unsmoothed_cross_entropy_whatever_label_smoothing(tmp_path, blob_splits):
    from hf_lilaw.functional import lilaw_meta_gradient, lilaw_meta_update

    torch.manual_seed(0)
    model = TinyNet()  # a plain nn.Module: Trainer.__init__ read model.config when label smoothing is on
    trainer = LiLAWTrainer(
        model=model,
        args=config(tmp_path, label_smoothing_factor=0.3, learning_rate=0.0, max_steps=2, lilaw_warmup_steps=0,
                    lilaw_meta_batch_size=48, lilaw_lr=5.0, lilaw_weight_decay=0.0),
        train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"],
    )
    trainer.train()  # the model does not move (learning rate 0): one meta step on the whole meta set
    assert trainer.meta_steps == 1
    meta = blob_splits["meta"]
    with torch.no_grad():
        logits = model(torch.tensor(meta["x"]))["logits"]
    labels = torch.tensor(meta["label"])
    start = torch.tensor([10.0, 2.0, 6.0])

    def by_hand(smoothing):
        losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing)
        grad = lilaw_meta_gradient(logits.softmax(-1), labels, losses, start)
        return lilaw_meta_update(start, grad, lr=torch.full((3,), 5.0), weight_decay=torch.zeros(3)).tolist()

    params = list(trainer.lilaw_parameters().values())
    assert params == pytest.approx(by_hand(0.0), rel=1e-5)
    assert params != pytest.approx(by_hand(0.3), rel=1e-3)


@pytest.mark.parametrize("base_loss", ["cross_entropy", "focal"])
def test_an_optimizer_step_of_unlabelled_rows_leaves_the_model_finite(tmp_path, blob_splits, base_loss):
    # Its num_items_in_batch is 0: the loss was 0/0, its NaN gradient made every weight NaN, the logged loss read 0.
    train = blob_splits["train"].map(lambda row, i: {"label": -100 if i < 8 else row["label"]}, with_indices=True)
    torch.manual_seed(0)
    model = TinyNet()
    trainer = LiLAWTrainer(model=model, args=config(tmp_path, per_device_train_batch_size=8, max_steps=2,
                                                    train_sampling_strategy="sequential", lilaw_warmup_steps=0,
                                                    lilaw_base_loss=base_loss, logging_steps=1),
                           train_dataset=train, meta_dataset=blob_splits["meta"])  # fmt: skip
    trainer.train()
    first, second = [h for h in trainer.state.log_history if "loss" in h]
    assert first["loss"] == 0 and first["grad_norm"] == 0 and math.isfinite(second["grad_norm"]) and second["loss"] > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_settings_changed_on_trainer_args_after_it_was_built_are_refused(tmp_path, blob_splits):
    # The meta step's learning rate and the initial α were read at construction: the run would have trained with
    # lilaw_lr 0.005 and α 10 while its card and checkpoints said 0.5 and 3.
    for late, value in (("lilaw_lr", 0.5), ("lilaw_alpha", 3.0), ("lilaw_base_loss", "gce")):
        trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, lilaw_lr=0.005, max_steps=2),
                               train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
        setattr(trainer.args, late, value)
        with pytest.raises(ValueError, match=rf"trainer.args changed after LiLAWTrainer was built \({late} .* -> "
                                             rf"{value!r}\).*Build a new LiLAWTrainer"):
            trainer.train()
        assert trainer.state.global_step == 0 and trainer.meta_steps == 0
    trainer.args.lilaw_lr = -1.0  # and a value the config refuses is refused as it would have been at construction
    with pytest.raises(ValueError, match="lilaw_lr"):
        trainer.train()
    trainer.args.lilaw_lr, trainer.args.lilaw_base_loss = 0.005, "cross_entropy"
    trainer.args.max_steps = 3  # a Trainer setting, and the method's as built: trains, twice
    trainer.train()
    trainer.train()
    assert trainer.state.global_step == 3


def test_auto_find_batch_size_retry_takes_no_meta_step_at_its_first_step(tmp_path, blob_splits):
    # After an out-of-memory error at step 3, Trainer retries from step 0 with a smaller batch: the meta step owed by
    # the abandoned loop's last step ran before the retried loop's first step, inside its warm-up.
    class OutOfMemoryOnce(TrainerCallback):
        fired = False

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3 and not self.fired:
                self.fired = True
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    torch.manual_seed(0)
    trainer = LiLAWTrainer(model=TinyNet(), args=config(tmp_path, max_steps=6, lilaw_warmup_steps=1, auto_find_batch_size=True),
                           train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"], callbacks=[OutOfMemoryOnce()])  # fmt: skip
    at, meta_step = [], trainer.meta_step
    trainer.meta_step = lambda model=None: (at.append(trainer.state.global_step), meta_step(model))
    trainer.train()
    assert trainer._train_batch_size == 14
    assert at == [2, 2, 3, 4, 5] and trainer.meta_steps == 5  # the abandoned loop's one, then an uninterrupted run's
