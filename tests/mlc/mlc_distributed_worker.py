"""Run by tests/mlc/test_mlc_distributed.py under `torchrun --nproc_per_node 2`: train, stop, resume; dump each rank."""

import os
import sys

import torch

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]  # tests/, for conftest; the checkout's hf_lilaw, not an installed one
from _distributed import write_rank_result  # noqa: E402
from conftest import StopAfter, TinyNet, blobs  # noqa: E402
from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer  # noqa: E402


def make(output_dir, method, callbacks=None):
    torch.manual_seed(0)
    args = MetaLabelCorrectionConfig(
        output_dir=output_dir, mlc_method=method, per_device_train_batch_size=8, mlc_clean_batch_size=6,
        max_steps=8, learning_rate=0.05, save_strategy="steps", save_steps=4, logging_steps=2, report_to=[],
        disable_tqdm=True, seed=0, use_cpu=True,
    )  # fmt: skip
    return MetaLabelCorrectionTrainer(
        model=TinyNet(), args=args, train_dataset=blobs(96).remove_columns(["clean_label", "is_noisy"]),
        clean_dataset=blobs(24, noise_rate=0.0, seed=1).remove_columns(["clean_label", "is_noisy"]),
        callbacks=callbacks,
    )


def summary(trainer):
    return {
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
        "meta": torch.cat([p.detach().flatten() for p in trainer.meta_model.parameters()]).tolist(),
        "logged": [h["mlc/upper_loss"] for h in trainer.state.log_history if "mlc/upper_loss" in h],
    }


if __name__ == "__main__":
    out, method = sys.argv[1], sys.argv[2]
    full = make(os.path.join(out, "full"), method)
    full.train()
    make(os.path.join(out, "resumed"), method, callbacks=[StopAfter(4)]).train()
    resumed = make(os.path.join(out, "resumed"), method)
    resumed.train(resume_from_checkpoint=os.path.join(out, "resumed", "checkpoint-4"))
    result = {"full": summary(full), "resumed": summary(resumed),
              "files": sorted(os.listdir(os.path.join(out, "resumed", "checkpoint-4")))}  # fmt: skip
    write_rank_result(out, result)
