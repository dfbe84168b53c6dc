"""Run by tests/analysis/test_dynamics_distributed.py, under `torchrun --nproc_per_node 2` and as one process:
record the training dynamics of 22 rows (an uneven last batch), and under two processes, kill after a checkpoint
and resume; dump each rank's records."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from _distributed import write_rank_result  # noqa: E402
from conftest import KillAfter, TinyNet, blobs  # noqa: E402
from hf_lilaw import ELRConfig, ELRTrainer  # noqa: E402
from hf_lilaw.analysis import TrainingDynamics, TrainingDynamicsRecorder  # noqa: E402
from hf_lilaw.analysis.dynamics import DYNAMICS_FILE_NAME  # noqa: E402

NUM_ROWS = 22  # not a multiple of the global batch of 8: the last batch is padded under two processes


def run(output_dir, per_device_batch, *, kill_after=None, resume=None, **overrides):
    torch.manual_seed(0)
    settings = dict(per_device_train_batch_size=per_device_batch, num_train_epochs=2, learning_rate=0.5,
                    elr_lambda=0.0, save_strategy="steps", save_steps=4, report_to=[], disable_tqdm=True, seed=0,
                    use_cpu=True)  # fmt: skip
    args = ELRConfig(output_dir=output_dir, **{**settings, **overrides})
    recorder = TrainingDynamicsRecorder(output_dir=os.path.join(output_dir, "dynamics"))
    callbacks = [recorder] + ([KillAfter(kill_after)] if kill_after else [])
    trainer = ELRTrainer(model=TinyNet(), args=args, train_dataset=blobs(NUM_ROWS), callbacks=callbacks)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:  # the kill
        pass
    saved = os.path.join(output_dir, "dynamics", DYNAMICS_FILE_NAME)
    return {
        "prob_label": recorder.dynamics.prob_label.tolist(),
        "loss": recorder.dynamics.loss.tolist(),
        "saved_prob_label": TrainingDynamics.load(saved).prob_label.tolist() if os.path.exists(saved) else None,
        "files": sorted(os.listdir(os.path.dirname(saved))) if os.path.exists(saved) else [],
    }


if __name__ == "__main__":
    out, per_device_batch = sys.argv[1], int(sys.argv[2])
    result = {"full": run(os.path.join(out, "full"), per_device_batch)}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        killed = os.path.join(out, "killed")
        run(killed, per_device_batch, kill_after=4)  # 3 steps an epoch: checkpoint-4 is mid-epoch 1
        result["resumed"] = run(killed, per_device_batch, resume=os.path.join(killed, "checkpoint-4"))
        result["no_save"] = run(os.path.join(out, "no_save"), per_device_batch, save_strategy="no")
    write_rank_result(out, result)
