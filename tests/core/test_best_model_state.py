"""`load_best_model_at_end` restores a family's registered state from the best checkpoint, with the model.

Each run evaluates and saves every 2 steps for 6 steps and counts the *largest* eval loss as best
(``greater_is_better=True``), so that the best checkpoint is an early one, not the last.
"""

import logging
import os

import torch

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.checkpoint import load_state_file
from hf_lilaw.mlc import MLC_STATE_NAME, MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer

from conftest import TinyNet, blobs

BEST_OF_EARLY = dict(
    max_steps=6, per_device_train_batch_size=16, eval_strategy="steps", eval_steps=2, save_strategy="steps",
    save_steps=2, load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=True,
    report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
)


def saved_state(checkpoint: str, name: str) -> dict:
    return load_state_file(os.path.join(checkpoint, name), what="state")["state"]


def best_and_last(trainer) -> tuple[str, str]:
    best = trainer.state.best_model_checkpoint
    last = os.path.join(trainer.args.output_dir, f"checkpoint-{trainer.state.global_step}")
    assert best is not None and best != last and os.path.isdir(last)
    return best, last


def assert_model_is(trainer, checkpoint: str) -> None:
    from safetensors.torch import load_file

    saved = load_file(os.path.join(checkpoint, "model.safetensors"))
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)


def test_lilaw_scalars_and_counters_come_from_the_best_checkpoint(tmp_path):
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), learning_rate=0.05, lilaw_warmup_steps=0, lilaw_lr=0.5, **BEST_OF_EARLY)
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(192), eval_dataset=blobs(48, seed=2),
                           meta_dataset=blobs(48, seed=1))  # fmt: skip
    trainer.train()
    best, last = best_and_last(trainer)
    assert_model_is(trainer, best)
    at_best, at_last = saved_state(best, "lilaw_state.pt"), saved_state(last, "lilaw_state.pt")
    assert at_best["meta_steps"] > 0 and at_best["meta_steps"] < at_last["meta_steps"]
    assert not torch.equal(at_best["params"], at_last["params"])

    state = trainer.lilaw_state
    assert torch.equal(state.params.cpu(), at_best["params"])
    assert trainer.lilaw_parameters() == at_best["parameters"]
    assert (state.meta_steps, int(state.skipped_meta_steps), state.last_step_seen, state.current_step_weighted) == (
        at_best["meta_steps"], at_best["skipped_meta_steps"], at_best["last_step_seen"], at_best["current_step_weighted"]
    )
    # The meta sampler stands where it stood at the best checkpoint, too.
    sampler = saved_state(best, "lilaw_state_rank0.pt")["sampler"]
    assert state.sampler.state_dict()["batches_drawn"] == sampler["batches_drawn"] == at_best["meta_steps"]


def test_mlc_meta_model_optimizer_and_step_counter_come_from_the_best_checkpoint(tmp_path):
    torch.manual_seed(0)
    args = MetaLabelCorrectionConfig(output_dir=str(tmp_path), learning_rate=1e-2, mlc_method="mlc", **BEST_OF_EARLY)
    trainer = MetaLabelCorrectionTrainer(model=TinyNet(), args=args, train_dataset=blobs(96),
                                         eval_dataset=blobs(48, seed=2), clean_dataset=blobs(32, seed=1))  # fmt: skip
    trainer.train()
    best, last = best_and_last(trainer)
    assert_model_is(trainer, best)
    at_best, at_last = saved_state(best, MLC_STATE_NAME), saved_state(last, MLC_STATE_NAME)
    assert 0 < at_best["steps"] < at_last["steps"] == trainer.state.global_step
    assert trainer.mlc_state.steps == at_best["steps"]
    for name, value in trainer.meta_model.state_dict().items():
        torch.testing.assert_close(value, at_best["meta_model"][name], rtol=0, atol=0)
    assert any(not torch.equal(at_best["meta_model"][k], at_last["meta_model"][k]) for k in at_best["meta_model"])
    assert trainer.meta_optimizer.state_dict()["state"][0]["step"] == at_best["steps"]
    assert trainer.mlc_state.clean_sampler.batches_drawn == at_best["steps"]


def test_a_best_checkpoint_without_the_state_keeps_the_last_and_says_so(tmp_path, caplog):
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), learning_rate=0.05, lilaw_warmup_steps=0, lilaw_lr=0.5, **BEST_OF_EARLY)
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(192), eval_dataset=blobs(48, seed=2),
                           meta_dataset=blobs(48, seed=1))  # fmt: skip
    original = trainer._save_checkpoint

    def save_then_drop_state(model, trial):  # a checkpoint as plain Trainer would have written it
        original(model, trial)
        if trainer.state.global_step == 2:
            os.remove(os.path.join(tmp_path, "checkpoint-2", "lilaw_state.pt"))

    trainer._save_checkpoint = save_then_drop_state
    with caplog.at_level(logging.WARNING):
        trainer.train()
    best, last = best_and_last(trainer)
    assert best.endswith("checkpoint-2")
    assert trainer.meta_steps == saved_state(last, "lilaw_state.pt")["meta_steps"]
    assert f"The best checkpoint {best} has no lilaw_state.pt" in caplog.text
