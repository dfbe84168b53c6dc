"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: train, crash, resume; dump each rank's state."""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from conftest import StopAfter, TinyNet, blobs  # noqa: E402
from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.analysis.dynamics import TrainingDynamicsRecorder


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
        make(os.path.join(out, "resumed"), per_device_batch, callbacks=[StopAfter(5)]).train()
        resumed = make(os.path.join(out, "resumed"), per_device_batch)
        resumed.train(resume_from_checkpoint=os.path.join(out, "resumed", "checkpoint-5"))
        result["resumed"] = summary(resumed)
        result["files"] = sorted(os.listdir(os.path.join(out, "resumed", "checkpoint-5")))
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
