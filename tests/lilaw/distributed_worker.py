"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: train, crash, resume; dump each rank's state."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from _distributed import resume_after_a_stop, write_rank_result  # noqa: E402
from conftest import TinyNet, blobs  # noqa: E402
from hf_lilaw import LiLAWConfig, LiLAWTrainer  # noqa: E402
from hf_lilaw.analysis import TrainingDynamicsRecorder  # noqa: E402


def make(output_dir, per_device_batch, callbacks=None):
    torch.manual_seed(0)
    args = LiLAWConfig(
        output_dir=output_dir, per_device_train_batch_size=per_device_batch, num_train_epochs=2, learning_rate=0.05,
        lilaw_warmup_steps=2, lilaw_lr=0.5, save_strategy="steps", save_steps=5, logging_steps=3, report_to=[],
        disable_tqdm=True, seed=0,
        use_cpu=True,  # on CPU, accelerate only sees torchrun's processes as one job (MULTI_CPU) with this set
    )
    return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(192), meta_dataset=blobs(48, seed=1),
                        callbacks=callbacks)


def summary(trainer):
    return {
        "params": trainer.lilaw_parameters(),
        "meta_steps": trainer.meta_steps,
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
        "logged_w": [h["lilaw/w"] for h in trainer.state.log_history if "lilaw/w" in h],
    }


if __name__ == "__main__":
    out, per_device_batch = sys.argv[1], int(sys.argv[2])
    recorder = TrainingDynamicsRecorder()
    full = make(os.path.join(out, "full"), per_device_batch, callbacks=[recorder])
    full.train()
    result = {"full": summary(full), "dynamics_prob_label": recorder.dynamics.prob_label.tolist()}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        resumed, result["files"] = resume_after_a_stop(
            lambda output_dir, callbacks=None: make(output_dir, per_device_batch, callbacks=callbacks),
            os.path.join(out, "resumed"),
        )
        result["resumed"] = summary(resumed)
    write_rank_result(out, result)
