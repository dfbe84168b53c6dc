"""A tiny LiLAW run that checkpoints every step, for the resume-safety tests (tests/lilaw/test_resume_safety.py).

Two ways to run it:

* ``python kill_worker.py train OUTPUT_DIR RESULT [--resume] [--stop-after K] [--per-device-batch B]``
  (also under ``torchrun``): one run; each process writes ``RESULT.rank<r>.json``. ``--then`` starts the
  arguments of another run, made afterwards in the same processes.
* ``python kill_worker.py serve --marker-fd FD``: imports everything once, then for each line of stdin (the
  arguments of one ``train`` run, as a JSON list) forks a child that runs it. The child reports on FD when each
  checkpoint save starts and ends, so the test can SIGKILL it inside the save; the server reports the child's
  pid and its exit code. Forking saves the few seconds of imports that each of the kill trials would cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import torch
from transformers import TrainerCallback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest
from _distributed import end_worker  # noqa: E402
from conftest import StopAfter, TinyNet, blobs  # noqa: E402
from hf_lilaw import LiLAWConfig, LiLAWTrainer  # noqa: E402

MAX_STEPS, WARMUP_STEPS, GLOBAL_BATCH = 10, 2, 16


def make_trainer(output_dir: str, *, per_device_batch: int = GLOBAL_BATCH, callbacks: list | None = None) -> LiLAWTrainer:
    """The run every resume-safety test repeats: 10 steps, a checkpoint after each, LiLAW from step 3 on."""
    torch.manual_seed(0)
    args = LiLAWConfig(
        output_dir=output_dir, per_device_train_batch_size=per_device_batch, max_steps=MAX_STEPS,
        learning_rate=0.05, lilaw_warmup_steps=WARMUP_STEPS, lilaw_lr=0.5, save_strategy="steps", save_steps=1,
        save_total_limit=3,  # checkpoint rotation deletes folders too: a kill may land there
        logging_steps=MAX_STEPS, report_to=[], disable_tqdm=True, seed=0,
        use_cpu=True,  # on CPU, accelerate only sees torchrun's processes as one job (MULTI_CPU) with this set
    )
    return LiLAWTrainer(
        model=TinyNet(dropout=0.1), args=args, train_dataset=blobs(192), meta_dataset=blobs(48, seed=1),
        callbacks=callbacks,
    )


class RecordRun(TrainerCallback):
    """Records where the run started (after any resume) and marks the start and end of each checkpoint save."""

    def __init__(self, marker_fd: int | None = None):
        self.marker_fd = marker_fd
        self.trainer: LiLAWTrainer | None = None
        self.start: dict = {}

    def mark(self, text: str) -> None:
        if self.marker_fd is not None:
            os.write(self.marker_fd, f"{text} {time.monotonic():.6f}\n".encode())

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = {
            "global_step": state.global_step,
            "params": self.trainer.lilaw_parameters(),
            "meta_steps": self.trainer.meta_steps,
        }

    def on_step_end(self, args, state, control, **kwargs):
        # DefaultFlowCallback runs first and has decided by now whether this step is saved.
        if control.should_save:
            self.mark(f"save_begin {state.global_step}")

    def on_save(self, args, state, control, **kwargs):
        self.mark(f"save_end {state.global_step}")


def summary(trainer: LiLAWTrainer, start: dict) -> dict:
    return {
        "start": start,
        "params": trainer.lilaw_parameters(),
        "meta_steps": trainer.meta_steps,
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
    }


def train(argv: list[str], marker_fd: int | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kill_worker.py train")
    parser.add_argument("output_dir")
    parser.add_argument("result")
    parser.add_argument("--resume", action="store_true", help="resume_from_checkpoint=True")
    parser.add_argument("--stop-after", type=int, default=None, help="stop (as if crashed) after this step's save")
    parser.add_argument("--per-device-batch", type=int, default=GLOBAL_BATCH)
    options = parser.parse_args(argv)
    record = RecordRun(marker_fd)
    callbacks = [record] + ([StopAfter(options.stop_after)] if options.stop_after else [])
    trainer = make_trainer(options.output_dir, per_device_batch=options.per_device_batch, callbacks=callbacks)
    record.trainer = trainer
    trainer.train(resume_from_checkpoint=True if options.resume else None)
    rank = int(os.environ.get("RANK", "0"))
    with open(f"{options.result}.rank{rank}.json", "w") as file:
        json.dump(summary(trainer, record.start), file)


def serve(marker_fd: int) -> None:
    os.write(marker_fd, b"ready\n")
    for line in sys.stdin:
        argv = json.loads(line)
        log_path = argv[0].rstrip("/") + ".log"  # beside the run's output folder
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(log_path, "a") as log:
                    os.dup2(log.fileno(), 1)
                    os.dup2(log.fileno(), 2)
                train(argv, marker_fd)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.write(marker_fd, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(marker_fd, f"exit {os.waitstatus_to_exitcode(status)}\n".encode())


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[sys.argv.index("--marker-fd") + 1]))
    elif sys.argv[1:2] == ["train"]:
        runs, argv = [[]], sys.argv[2:]
        for arg in argv:
            runs.append([]) if arg == "--then" else runs[-1].append(arg)
        for run in runs:  # one after the other in the same processes: one torchrun start for several runs
            train(run)
        end_worker()
    else:
        sys.exit(__doc__)
