"""Run by tests/elr/test_elr_distributed.py under `torchrun --nproc_per_node 2`: train, crash, resume; dump each
rank's targets and weights."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from _distributed import resume_after_a_stop, write_rank_result  # noqa: E402
from conftest import TinyNet, blobs  # noqa: E402
from hf_lilaw import ELRConfig, ELRTrainer  # noqa: E402


def make(output_dir, per_device_batch, *, rows=192, epochs=2, callbacks=None):
    torch.manual_seed(0)
    args = ELRConfig(
        output_dir=output_dir, per_device_train_batch_size=per_device_batch, num_train_epochs=epochs, learning_rate=0.05,
        save_strategy="steps", save_steps=5, logging_steps=3, report_to=[], disable_tqdm=True, seed=0,
        use_cpu=True,  # on CPU, accelerate only sees torchrun's processes as one job (MULTI_CPU) with this set
    )
    return ELRTrainer(model=TinyNet(), args=args, train_dataset=blobs(rows), callbacks=callbacks)


def summary(trainer):
    return {
        "targets": trainer.elr_targets().tolist(),
        "updates": trainer.elr_state.updates,
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
        "logged": [[h["elr/ce"], h["elr/reg"]] for h in trainer.state.log_history if "elr/reg" in h],
    }


if __name__ == "__main__":
    out, per_device_batch = sys.argv[1], int(sys.argv[2])
    full = make(os.path.join(out, "full"), per_device_batch)
    full.train()
    result = {"full": summary(full)}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        resumed, result["files"] = resume_after_a_stop(
            lambda output_dir, callbacks=None: make(output_dir, per_device_batch, callbacks=callbacks),
            os.path.join(out, "resumed"),
        )
        result["resumed"] = summary(resumed)
        # 190 rows on 2 x 8: the last batches are padded with samples from the start of the epoch
        uneven = make(os.path.join(out, "uneven"), per_device_batch, rows=190, epochs=1)
        uneven.train()
        result["uneven"] = summary(uneven)
    write_rank_result(out, result)
