"""Run by tests/core/test_side_set_rng.py under `torchrun --nproc_per_node 2`: a LiLAW run whose meta set has a
random transform, then the same run resumed from its step-4 checkpoint; dumps each rank's α, β, δ, weights and meta noise."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from _distributed import write_rank_result  # noqa: E402
from conftest import TinyNet, blobs  # noqa: E402
from hf_lilaw import LiLAWConfig, LiLAWTrainer  # noqa: E402


class NoisyX:
    def __init__(self):
        self.noise = []

    def __call__(self, batch):
        x = torch.tensor(batch["x"])
        noise = torch.randn(x.shape)
        if len(x) == 8:
            self.noise.append(noise.flatten().tolist())
        return {"x": x + 0.1 * noise, "label": batch["label"]}


def run(output_dir, resume=None):
    torch.manual_seed(0)
    transform = NoisyX()
    args = LiLAWConfig(
        output_dir=output_dir, per_device_train_batch_size=8, max_steps=8, learning_rate=0.05, lilaw_warmup_steps=1,
        lilaw_lr=0.5, lilaw_meta_batch_size=8, save_strategy="steps", save_steps=4, logging_steps=8, report_to=[],
        disable_tqdm=True, seed=0, use_cpu=True,
    )
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(192),
                           meta_dataset=blobs(48, seed=1).with_transform(transform))
    trainer.train(resume_from_checkpoint=resume)
    return {
        "params": trainer.lilaw_parameters(),
        "meta_steps": trainer.meta_steps,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
        "noise": transform.noise,
    }


if __name__ == "__main__":
    out = sys.argv[1]
    result = {"full": run(os.path.join(out, "full"))}
    result["resumed"] = run(os.path.join(out, "resumed"), resume=os.path.join(out, "full", "checkpoint-4"))
    write_rank_result(out, result)
