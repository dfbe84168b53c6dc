"""No run is lost to a crash, a kill or a change of process count.

Every run here is kill_worker.make_trainer's: 10 steps of a tiny LiLAW run (warm-up 2 steps), a checkpoint after
each step, the 3 newest kept. "Equal to an uninterrupted run" means α, β, δ, the meta-step count and the model
weights of the resumed run equal those of the same run never stopped.
"""

import json
import logging
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from transformers import HfArgumentParser

import _distributed
from _distributed import ENV
from conftest import StopAfter, TinyNet, blobs
from hf_lilaw import LiLAWConfig, LiLAWTrainer
from kill_worker import MAX_STEPS, WARMUP_STEPS, RecordRun, make_trainer, summary

WORKER = Path(__file__).with_name("kill_worker.py")
# Steps 3..10 are weighted; the meta step owed by the last one never runs, as the run ends first.
META_STEPS = MAX_STEPS - WARMUP_STEPS - 1
KILL_TRIALS = 6


def train_here(output_dir, *, resume=None, stop_after=None, per_device_batch=16) -> dict:
    """One run in this process; returns kill_worker.summary (with the step and α, β, δ it started from)."""
    record = RecordRun()
    callbacks = [record] + ([StopAfter(stop_after)] if stop_after else [])
    trainer = make_trainer(str(output_dir), per_device_batch=per_device_batch, callbacks=callbacks)
    record.trainer = trainer
    trainer.train(resume_from_checkpoint=resume)
    return summary(trainer, record.start)


def assert_equal_runs(resumed: dict, full: dict) -> None:
    assert resumed["global_step"] == full["global_step"] == MAX_STEPS
    assert resumed["meta_steps"] == full["meta_steps"] == META_STEPS
    assert resumed["params"] == full["params"]
    assert resumed["weights"] == full["weights"]


def lilaw_files(checkpoint: Path) -> list[Path]:
    files = sorted(checkpoint.glob("lilaw*.pt"))
    assert files, f"no LiLAW state file in {checkpoint}: {sorted(os.listdir(checkpoint))}"
    return files


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    return train_here(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def stopped_at_8(tmp_path_factory) -> tuple[Path, dict]:
    """A run stopped after step 8's checkpoint (checkpoints 6, 7, 8 kept); tests damage copies of it."""
    output_dir = tmp_path_factory.mktemp("stopped") / "run"
    return output_dir, train_here(output_dir, stop_after=8)


def copy_of(stopped_at_8, tmp_path) -> Path:
    output_dir = tmp_path / "run"
    shutil.copytree(stopped_at_8[0], output_dir)
    assert sorted(os.listdir(output_dir)) == ["checkpoint-6", "checkpoint-7", "checkpoint-8"]
    return output_dir


# ---- a kill-like incomplete newest checkpoint is skipped ---------------------------------------------------------


def remove_trainer_state(checkpoint: Path) -> str:
    (checkpoint / "trainer_state.json").unlink()
    return "trainer_state.json is missing"


def empty_lilaw_state(checkpoint: Path) -> str:
    for path in lilaw_files(checkpoint):
        path.write_bytes(b"")
    return "empty (0 bytes)"


def cut_trainer_state(checkpoint: Path) -> str:
    path = checkpoint / "trainer_state.json"
    path.write_text(path.read_text()[:40])
    return "trainer_state.json does not parse"


def remove_weights(checkpoint: Path) -> str:
    (checkpoint / "model.safetensors").unlink()
    return "no model weights"


@pytest.mark.parametrize(
    "damages, resumed_from",
    [
        ({8: remove_trainer_state}, 7),
        ({8: empty_lilaw_state}, 7),
        ({8: remove_weights, 7: cut_trainer_state}, 6),
    ],
    ids=["no-trainer-state", "empty-lilaw-state", "two-incomplete"],
)
def test_incomplete_newest_checkpoints_are_skipped(stopped_at_8, uninterrupted, tmp_path, caplog, damages, resumed_from):
    output_dir = copy_of(stopped_at_8, tmp_path)
    reasons = {step: damage(output_dir / f"checkpoint-{step}") for step, damage in damages.items()}
    with caplog.at_level(logging.WARNING):
        resumed = train_here(output_dir, resume=True)
    assert resumed["start"]["global_step"] == resumed_from
    assert_equal_runs(resumed, uninterrupted)
    for step, reason in reasons.items():
        skipped = [r.getMessage() for r in caplog.records if f"checkpoint-{step}" in r.getMessage()]
        assert any(reason in message for message in skipped), (step, reason, skipped)


# ---- a damaged state file in a named checkpoint fails with its path ------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "empty"])
def test_damaged_state_in_named_checkpoint_fails_with_its_path(stopped_at_8, tmp_path, keep):
    output_dir = copy_of(stopped_at_8, tmp_path)
    checkpoint = output_dir / "checkpoint-8"
    damaged = lilaw_files(checkpoint)
    for path in damaged:
        content = path.read_bytes()
        path.write_bytes(content[: int(len(content) * keep)])
    trainer = make_trainer(str(output_dir))
    with pytest.raises(ValueError) as error:
        trainer.train(resume_from_checkpoint=str(checkpoint))
    message = str(error.value)
    assert any(str(path) in message for path in damaged), message
    assert "earlier checkpoint" in message
    assert trainer.state.global_step == 0  # failed before the first step
    assert sorted(os.listdir(output_dir)) == ["checkpoint-6", "checkpoint-7", "checkpoint-8"]


# ---- a change of process count keeps α, β, δ and the meta-step count -------------------------------------------------


def torchrun(tmp_path, name, *runs) -> list[dict]:
    """Runs kill_worker.py train under 2 processes, one run per argument list (per-device batch 8: the same global
    batch); the result of run i is ``tmp_path/f"{name}{i}.rank<r>.json"``. Returns each run's per-rank summaries.

    One torchrun start for all runs saves its cost.
    """
    args = ["train"]
    for i, (output_dir, *options) in enumerate(runs):
        args += (["--then"] if i else []) + [str(output_dir), str(tmp_path / f"{name}{i}"), *map(str, options)]
        args += ["--per-device-batch", "8"]
    _distributed.torchrun(WORKER, *args, log=tmp_path / f"{name}.log")
    return [[json.loads((tmp_path / f"{name}{i}.rank{r}.json").read_text()) for r in range(2)] for i in range(len(runs))]


@pytest.fixture(scope="module")
def process_count_changes(tmp_path_factory):
    """Under 1 process: a run stopped after step 5. Under 2 processes: that run resumed, and another run stopped after step 5."""
    tmp_path = tmp_path_factory.mktemp("process_count")
    one, two = tmp_path / "saved_by_one", tmp_path / "saved_by_two"
    stopped_by_one = train_here(one, stop_after=5)
    resumed_by_two, stopped_by_two = torchrun(tmp_path, "ddp", [one, "--resume"], [two, "--stop-after", 5])
    log = (tmp_path / "ddp.log").read_text()
    return {"one": (one, stopped_by_one), "two": (two, stopped_by_two), "resumed_by_two": resumed_by_two, "log": log}


def test_saved_under_two_processes_resumed_under_one(process_count_changes, tmp_path, caplog):
    saved, stopped = process_count_changes["two"]
    assert stopped[0]["params"] == stopped[1]["params"] and stopped[0]["global_step"] == 5
    shutil.copytree(saved, tmp_path / "first")
    shutil.copytree(saved, tmp_path / "second")
    with caplog.at_level(logging.WARNING):
        resumed = train_here(tmp_path / "first", resume=True)  # one process, same global batch of 16
    assert "saved by 2 process(es) and is resumed by 1" in caplog.text
    assert resumed["start"] == {"global_step": 5, "params": stopped[0]["params"], "meta_steps": stopped[0]["meta_steps"]}
    assert resumed["meta_steps"] == META_STEPS
    assert resumed["params"] != stopped[0]["params"]  # and it went on learning them
    # The per-process part (which meta batches come next) is re-derived, deterministically: a second resume
    # of the same checkpoint ends identically.
    assert train_here(tmp_path / "second", resume=True) == resumed


def test_saved_under_one_process_resumed_under_two(process_count_changes):
    _, stopped = process_count_changes["one"]
    resumed = process_count_changes["resumed_by_two"]
    assert "saved by 1 process(es) and is resumed by 2" in process_count_changes["log"]
    for rank in resumed:
        assert rank["start"] == {"global_step": 5, "params": stopped["params"], "meta_steps": stopped["meta_steps"]}
        assert rank["meta_steps"] == META_STEPS
    assert resumed[0]["params"] == resumed[1]["params"] != stopped["params"]
    assert resumed[0]["weights"] == resumed[1]["weights"]


# ---- the real kill test ----------------------------------------------------------------------------------------------


class WorkerServer:
    """``kill_worker.py serve``: forks one training run per request and reports pids, saves and exit codes."""

    def __init__(self, log_path: Path):
        self.read_fd, write_fd = os.pipe()
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "serve", "--marker-fd", str(write_fd)], cwd=WORKER.parent, env=ENV,
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self.buffer = b""
        assert self.next_mark(timeout=600) == ["ready"]

    def next_mark(self, timeout: float = 300) -> list[str]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.read_fd], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(self.read_fd, 4096) if ready else None
            if not chunk:
                raise AssertionError(f"kill_worker.py serve {'timed out' if ready == [] else 'exited'}; see {self.log.name}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().split()

    def start(self, *argv) -> int:
        self.process.stdin.write((json.dumps([str(a) for a in argv]) + "\n").encode())
        self.process.stdin.flush()
        kind, pid = self.next_mark()
        assert kind == "pid"
        return int(pid)

    def marks_until_exit(self) -> tuple[int, list[list[str]]]:
        marks = []
        while (mark := self.next_mark())[0] != "exit":
            marks.append(mark)
        return int(mark[1]), marks

    def run(self, *argv) -> list[list[str]]:
        self.start(*argv)
        code, marks = self.marks_until_exit()
        assert code == 0, f"{argv[0]} failed; see {argv[0]}.log"
        return marks

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        os.close(self.read_fd)
        self.log.close()


def describe_folder(checkpoint: Path) -> str:
    if not checkpoint.is_dir():
        return "absent"
    files = sorted(os.listdir(checkpoint))
    empty = [name for name in files if (checkpoint / name).is_file() and (checkpoint / name).stat().st_size == 0]
    return ",".join(files) + (f" (empty: {','.join(empty)})" if empty else "")


def test_sigkill_during_checkpoint_saves_then_resume(tmp_path, record_property):
    """Trial outcomes are printed (run with -s) and recorded as the junit property "kill_trials"."""
    server = WorkerServer(tmp_path / "server.log")
    try:
        marks = server.run(tmp_path / "full", tmp_path / "full")
        full = json.loads((tmp_path / "full.rank0.json").read_text())
        begins = {int(m[1]): float(m[2]) for m in marks if m[0] == "save_begin"}
        save_seconds = {int(m[1]): float(m[2]) - begins[int(m[1])] for m in marks if m[0] == "save_end"}
        assert sorted(save_seconds) == list(range(1, MAX_STEPS + 1))

        rng = random.Random(11)
        outcomes = []
        for trial in range(KILL_TRIALS):
            run_dir = tmp_path / f"trial{trial}"
            step = rng.randint(2, MAX_STEPS - 1)  # a later step always follows, so the kill lands before the end
            delay = rng.uniform(0.0, 1.0) * save_seconds[step]  # a random moment of that save, as timed in `full`
            pid = server.start(run_dir, run_dir)
            while (mark := server.next_mark())[:2] != ["save_begin", str(step)]:
                assert mark[0] != "exit", f"trial {trial} ended before step {step}; see {run_dir}.log"
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            code, after = server.marks_until_exit()
            last = after[-1] if after else mark
            killed_in = f"save {last[1]}" if last[0] == "save_begin" else f"after save {last[1]}"
            newest = describe_folder(run_dir / f"checkpoint-{last[1]}")

            server.run(run_dir, run_dir, "--resume")
            resumed = json.loads(run_dir.with_suffix(".rank0.json").read_text())
            outcomes.append({
                "trial": trial, "exit": code, "step": step, "delay_ms": round(1000 * delay, 1),
                "save_ms": round(1000 * save_seconds[step], 1), "killed_in": killed_in, "folder": newest,
                "resumed_from": resumed["start"]["global_step"], "params": resumed["params"],
                "equal": resumed["params"] == full["params"] and resumed["weights"] == full["weights"]
                and resumed["meta_steps"] == full["meta_steps"],
            })
    finally:
        server.close()

    record_property("kill_trials", json.dumps(outcomes))
    print(f"\nkill trials (uninterrupted α, β, δ = {full['params']}, {full['meta_steps']} meta steps):")
    for outcome in outcomes:
        print(json.dumps(outcome))
    assert full["meta_steps"] == META_STEPS
    assert all(o["exit"] == -signal.SIGKILL for o in outcomes)
    for o in outcomes:
        last_step = int(o["killed_in"].split()[-1])
        expected = {last_step - 1, last_step} if o["killed_in"].startswith("save") else {last_step}
        assert o["resumed_from"] in expected, o
    assert all(o["equal"] for o in outcomes), [o for o in outcomes if not o["equal"]]
    inside = sum(o["killed_in"].startswith("save") for o in outcomes)
    assert inside >= KILL_TRIALS // 2, f"only {inside} of {KILL_TRIALS} kills landed inside a save"


# ---- transformers' example scripts take --lilaw_* flags ---------------------------------------------------------------


@dataclass
class ModelArguments:  # the shape of the dataclasses in transformers' examples/pytorch/*/run_*.py
    model_name_or_path: str = field(default="google/vit-base-patch16-224-in21k")


@dataclass
class DataTrainingArguments:
    dataset_name: str | None = field(default=None)


def test_example_script_parser_takes_lilaw_flags(tmp_path):
    flags = ["--output_dir", str(tmp_path), "--learning_rate", "0.1", "--lilaw_alpha", "5", "--lilaw_warmup_steps",
             "3", "--lilaw_base_loss", "focal", "--lilaw_beta_lr", "0.01"]
    (config,) = HfArgumentParser((LiLAWConfig,)).parse_args_into_dataclasses(flags)
    model_args, data_args, training_args = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, LiLAWConfig)
    ).parse_args_into_dataclasses(flags + ["--dataset_name", "beans"])
    assert data_args.dataset_name == "beans" and model_args.model_name_or_path.startswith("google/")
    for parsed in (config, training_args):
        assert isinstance(parsed, LiLAWConfig)
        assert (parsed.learning_rate, parsed.lilaw_alpha, parsed.lilaw_warmup_steps) == (0.1, 5.0, 3)
        assert (parsed.lilaw_base_loss, parsed.lilaw_beta_lr, parsed.lilaw_alpha_lr) == ("focal", 0.01, None)
    trainer = LiLAWTrainer(model=TinyNet(), args=training_args, train_dataset=blobs(96), meta_dataset=blobs(24, seed=1))
    assert trainer.lilaw_parameters() == {"alpha": 5.0, "beta": 2.0, "delta": 6.0}
    with pytest.raises(SystemExit):  # argparse refuses a loss that does not exist
        HfArgumentParser((LiLAWConfig,)).parse_args_into_dataclasses(flags + ["--lilaw_base_loss", "huber"])

