"""A checkpoint is complete only when it verifies against the manifest written at the end of its save.

Every run here: 6 steps of a tiny LiLAW run (warm-up 2 steps), a checkpoint after each, the 3 newest kept. The
tests damage copies of a run stopped after step 5 and resume it; "equal" means α, β, δ, the meta-step count and
the model weights equal those of the same run never stopped.
"""

import concurrent.futures
import json
import logging
import os
import shutil
import types

import pytest
import torch
import transformers.trainer
from transformers import Trainer, TrainerCallback

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core import checkpoint
from hf_lilaw.core.checkpoint import MANIFEST_NAME

from conftest import StopAfter, TinyNet, blobs

MAX_STEPS = 6


def make_trainer(output_dir, callbacks=None, **overrides) -> LiLAWTrainer:
    torch.manual_seed(0)
    values = dict(
        output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=MAX_STEPS, learning_rate=0.05,
        lilaw_warmup_steps=2, lilaw_lr=0.5, save_strategy="steps", save_steps=1, save_total_limit=3,
        logging_steps=MAX_STEPS, report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
    )  # fmt: skip
    values.update(overrides)
    return LiLAWTrainer(model=TinyNet(dropout=0.1), args=LiLAWConfig(**values), train_dataset=blobs(96),
                        meta_dataset=blobs(32, seed=1), callbacks=callbacks)  # fmt: skip


def summary(trainer) -> dict:
    return {
        "params": trainer.lilaw_parameters(),
        "meta_steps": trainer.meta_steps,
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
    }


class StartStep(TrainerCallback):
    def __init__(self):
        self.step = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.step = state.global_step


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    trainer = make_trainer(tmp_path_factory.mktemp("full"))
    trainer.train()
    return summary(trainer)


@pytest.fixture(scope="module")
def stopped_at_5(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("stopped") / "run"
    make_trainer(output_dir, callbacks=[StopAfter(5)]).train()
    return output_dir


def copy_of(stopped_at_5, tmp_path):
    output_dir = tmp_path / "run"
    shutil.copytree(stopped_at_5, output_dir)
    assert sorted(os.listdir(output_dir)) == ["checkpoint-3", "checkpoint-4", "checkpoint-5"]
    return output_dir


def resume(output_dir, resume_from=True):
    """Resume, returning the step it started from and the run's summary."""
    start = StartStep()
    trainer = make_trainer(output_dir, callbacks=[start])
    trainer.train(resume_from_checkpoint=resume_from)
    return start.step, summary(trainer)


def flip_inside(path, offset):
    """Invert 8 bytes at ``offset`` (negative: from the end); the file keeps its size."""
    content = bytearray(path.read_bytes())
    start = offset % len(content)
    content[start:start + 8] = bytes(b ^ 0xFF for b in content[start:start + 8])
    path.write_bytes(bytes(content))


def damage_tensor_bytes(checkpoint):
    flip_inside(checkpoint / "model.safetensors", -16)  # inside the last tensor's data, past the header
    return "model.safetensors is damaged: its CRC-32 is"


def damage_state_bytes(checkpoint):
    flip_inside(checkpoint / "lilaw_state.pt", -200)
    return "lilaw_state.pt is damaged: its CRC-32 is"


def damage_header(checkpoint):
    flip_inside(checkpoint / "model.safetensors", 12)  # inside the JSON header
    return "model.safetensors has a damaged safetensors header"


def test_every_checkpoint_has_a_manifest_of_all_its_files(stopped_at_5):
    for step in (3, 4, 5):
        folder = stopped_at_5 / f"checkpoint-{step}"
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        assert manifest["complete"] and manifest["checksum"] == "crc32"
        on_disk = sorted(name for name in os.listdir(folder) if name != MANIFEST_NAME)
        assert sorted(manifest["files"]) == on_disk
        assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                "lilaw_state.pt", "lilaw_state_rank0.pt", "README.md"} <= set(on_disk)  # fmt: skip
        for name, entry in manifest["files"].items():
            assert entry["size"] == os.path.getsize(folder / name) and len(entry["crc32"]) == 8


@pytest.mark.parametrize("damage", [damage_tensor_bytes, damage_state_bytes, damage_header],
                         ids=["tensor-bytes", "state-bytes", "header"])  # fmt: skip
def test_a_damaged_newest_checkpoint_is_skipped_and_the_run_ends_equal(stopped_at_5, uninterrupted, tmp_path,
                                                                       caplog, damage):  # fmt: skip
    output_dir = copy_of(stopped_at_5, tmp_path)
    reason = damage(output_dir / "checkpoint-5")
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        start, resumed = resume(output_dir)
    assert start == 4
    assert resumed == uninterrupted
    (skipped,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert skipped.startswith(f"Skipping checkpoint {output_dir / 'checkpoint-5'}: ") and reason in skipped
    assert str(output_dir / "checkpoint-5" / ("lilaw_state.pt" if "state" in reason else "model.safetensors")) in skipped


@pytest.mark.parametrize("damage", [damage_tensor_bytes, damage_state_bytes, damage_header],
                         ids=["tensor-bytes", "state-bytes", "header"])  # fmt: skip
def test_a_damaged_named_checkpoint_fails_naming_one_that_verifies(stopped_at_5, tmp_path, damage):
    output_dir = copy_of(stopped_at_5, tmp_path)
    reason = damage(output_dir / "checkpoint-5")
    damage(output_dir / "checkpoint-4")
    trainer = make_trainer(output_dir)
    with pytest.raises(ValueError) as error:
        trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-5"))
    message = str(error.value)
    assert message.startswith(f"Cannot resume from {output_dir / 'checkpoint-5'}: ") and reason in message
    earlier = str(output_dir / "checkpoint-3")
    assert f"Resume from an earlier checkpoint that verifies: resume_from_checkpoint={earlier!r}" in message
    assert trainer.state.global_step == 0


def test_nothing_verifies_points_to_training_from_scratch(stopped_at_5, tmp_path):
    output_dir = copy_of(stopped_at_5, tmp_path)
    for step in (3, 4, 5):
        damage_tensor_bytes(output_dir / f"checkpoint-{step}")
    with pytest.raises(ValueError, match="No checkpoint in the output directory .* verifies .* train from scratch"):
        make_trainer(output_dir).train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match=r"No other checkpoint in .* verifies: train from scratch"):
        make_trainer(output_dir).train(resume_from_checkpoint=str(output_dir / "checkpoint-5"))


@pytest.mark.parametrize("where", ["trainer-files", "checksums"])
def test_a_save_that_fails_midway_leaves_a_pending_manifest_and_the_older_checkpoint(tmp_path, monkeypatch, caplog, where):
    """A save stopped (like a kill) while Trainer writes its files, or while the manifest's checksums are read."""
    output_dir = tmp_path / "run"
    if where == "trainer-files":
        save_rng_state = Trainer._save_rng_state

        def fail_at_step_2(self, folder):  # after the weights, before trainer_state.json
            if folder.endswith("checkpoint-2"):
                raise OSError("No space left on device")
            save_rng_state(self, folder)

        monkeypatch.setattr(Trainer, "_save_rng_state", fail_at_step_2)
    else:
        crc32 = checkpoint.file_crc32

        def fail_at_step_2(path):  # every file of the save is written; the manifest is being computed
            if "checkpoint-2" in str(path):
                raise OSError("No space left on device")
            return crc32(path)

        monkeypatch.setattr(checkpoint, "file_crc32", fail_at_step_2)
    with pytest.raises(OSError, match="No space left"):
        make_trainer(output_dir, save_total_limit=1).train()
    monkeypatch.undo()
    # Rotation comes after the manifest: save_total_limit=1 did not delete checkpoint-1 for the unfinished one.
    assert sorted(os.listdir(output_dir)) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((output_dir / "checkpoint-2" / MANIFEST_NAME).read_text()) == {"format": 1, "complete": False}
    (output_dir / "checkpoint-2" / "trainer_state.json").write_text("{}")  # even with every file there
    if where == "trainer-files":
        shutil.copy(output_dir / "checkpoint-1" / "rng_state.pth", output_dir / "checkpoint-2")
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        start, _ = resume(output_dir)
    assert start == 1
    assert "checkpoint-2: its save began but did not finish" in caplog.text


def test_sizes_only_switch(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.checkpoint_checksums = False
    trainer.train()
    manifest = json.loads((tmp_path / "checkpoint-2" / MANIFEST_NAME).read_text())
    assert manifest["checksum"] is None and all(set(e) == {"size"} for e in manifest["files"].values())
    assert manifest["files"]["model.safetensors"]["size"] == os.path.getsize(tmp_path / "checkpoint-2" / "model.safetensors")


class RecordingHub:
    """Stands in for the Hub API: each uploaded checkpoint folder's manifest, as it was at upload time."""

    def __init__(self):
        self.manifests = {}

    def create_repo(self, repo_id, **kwargs):
        return types.SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, folder_path, path_in_repo=None, **kwargs):
        if path_in_repo == "last-checkpoint":
            manifest = os.path.join(folder_path, MANIFEST_NAME)
            self.manifests[os.path.basename(folder_path)] = json.loads(open(manifest).read())
        done = concurrent.futures.Future()
        done.set_result(None)
        return done


def test_the_hub_gets_each_checkpoint_with_its_finished_manifest(tmp_path, monkeypatch):
    hub = RecordingHub()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)
    trainer = make_trainer(tmp_path, max_steps=3, push_to_hub=True, hub_model_id="me/run", hub_strategy="checkpoint")
    trainer.train()
    assert sorted(hub.manifests) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    for name, manifest in hub.manifests.items():
        assert manifest["complete"] and "trainer_state.json" in manifest["files"]
        assert manifest == json.loads((tmp_path / name / MANIFEST_NAME).read_text())


# ---- checkpoints without a manifest (plain Trainer, older hf_lilaw) need the optimizer's and scheduler's states ----


@pytest.mark.parametrize("lost", [("optimizer.pt",), ("scheduler.pt",), ("optimizer.pt", "scheduler.pt")])
def test_a_checkpoint_without_manifest_that_lost_its_optimizer_is_skipped_and_the_run_ends_equal(
    stopped_at_5, uninterrupted, tmp_path, caplog, lost
):
    """Without them Trainer resumes silently with a fresh optimizer and LR schedule (weights off by ~0.1); with no
    manifest to list them, the completeness check itself must ask for them."""
    output_dir = copy_of(stopped_at_5, tmp_path)
    for name in (MANIFEST_NAME, *lost):
        os.remove(output_dir / "checkpoint-5" / name)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        start, resumed = resume(output_dir)
    assert start == 4
    assert resumed == uninterrupted
    (skipped,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert skipped.startswith(f"Skipping checkpoint {output_dir / 'checkpoint-5'}: {lost[0]} is missing")


def test_a_named_checkpoint_without_manifest_and_optimizer_is_refused_naming_the_file_and_the_fix(stopped_at_5, tmp_path):
    output_dir = copy_of(stopped_at_5, tmp_path)
    for name in (MANIFEST_NAME, "optimizer.pt", "scheduler.pt"):
        os.remove(output_dir / "checkpoint-5" / name)
    trainer = make_trainer(output_dir)
    with pytest.raises(ValueError) as error:
        trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-5"))
    message = str(error.value)
    assert message.startswith(f"Cannot resume from {output_dir / 'checkpoint-5'}: optimizer.pt is missing (the optimizer")
    earlier = str(output_dir / "checkpoint-4")
    assert f"Resume from an earlier checkpoint that verifies: resume_from_checkpoint={earlier!r}" in message
    assert "set save_only_model=True to resume from its weights" in message
    assert trainer.state.global_step == 0


def test_a_save_only_model_run_still_resumes_from_its_weights_with_a_warning(tmp_path, caplog):
    """Its checkpoints hold no optimizer: it is not refused for that (Trainer resumes it with a fresh one), it warns."""
    make_trainer(tmp_path, save_only_model=True, callbacks=[StopAfter(3)]).train()
    assert not (tmp_path / "checkpoint-3" / "optimizer.pt").exists()
    start = StartStep()
    trainer = make_trainer(tmp_path, save_only_model=True, callbacks=[start])
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.base_trainer"):
        trainer.train(resume_from_checkpoint=True)
    assert start.step == 3 and trainer.state.global_step == MAX_STEPS
    assert "holds no optimizer state (saved with save_only_model=True?)" in caplog.text
    assert "the optimizer and LR schedule start fresh, and so does the RNG state, so the run" in caplog.text


def test_checkpoint_files_follow_how_trainer_saves_the_optimizer(tmp_path):
    trainer = make_trainer(tmp_path)
    assert trainer.checkpoint_files() == [
        "optimizer.pt", "scheduler.pt", "rng_state*.pth", "lilaw_state.pt", "lilaw_state_rank*.pt"
    ]  # fmt: skip
    trainer.is_fsdp_enabled = True  # accelerate's optimizer.bin, optimizer_0/ or optimizer_0_rank<r>.bin
    assert trainer.optimizer_files() == ["optimizer*", "scheduler.pt"]
    assert trainer.resume_files() == ["optimizer*", "scheduler.pt", "rng_state*.pth"]
    trainer.is_fsdp_enabled, trainer.is_deepspeed_enabled = False, True  # inside DeepSpeed's global_step folder
    assert trainer.optimizer_files() == []
    assert trainer.resume_files() == ["rng_state*.pth"]  # Trainer saves the RNGs beside DeepSpeed's folder
    assert make_trainer(tmp_path, save_only_model=True).optimizer_files() == []
    assert make_trainer(tmp_path, save_only_model=True).resume_files() == []


def test_a_checkpoint_without_manifest_that_lost_its_rng_state_is_skipped_or_refused(
    stopped_at_5, uninterrupted, tmp_path, caplog
):
    """Without rng_state.pth Trainer resumes silently with fresh RNGs: another dropout, weights off by ~3e-2."""
    output_dir = copy_of(stopped_at_5, tmp_path)
    for name in (MANIFEST_NAME, "rng_state.pth"):
        os.remove(output_dir / "checkpoint-5" / name)
    reason = (
        "no file matches 'rng_state*.pth' (the random number generators' state: Trainer would resume with a fresh "
        "one, and the run would not continue as the interrupted one would have)"
    )
    trainer = make_trainer(output_dir)
    with pytest.raises(ValueError) as error:
        trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-5"))
    assert str(error.value).startswith(f"Cannot resume from {output_dir / 'checkpoint-5'}: {reason}. Resume from an "
                                       f"earlier checkpoint that verifies: resume_from_checkpoint="
                                       f"{str(output_dir / 'checkpoint-4')!r}")  # fmt: skip
    assert "save_only_model" not in str(error.value)  # the optimizer is there: not a weights-only checkpoint
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        start, resumed = resume(output_dir)
    assert start == 4
    assert resumed == uninterrupted
    (skipped,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert skipped == f"Skipping checkpoint {output_dir / 'checkpoint-5'}: {reason}."


def test_a_cut_optimizer_without_manifest_is_refused_naming_the_file_and_an_earlier_checkpoint(stopped_at_5, tmp_path):
    output_dir = copy_of(stopped_at_5, tmp_path)
    optimizer = output_dir / "checkpoint-5" / "optimizer.pt"
    os.remove(output_dir / "checkpoint-5" / MANIFEST_NAME)
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    trainer = make_trainer(output_dir)
    with pytest.raises(ValueError) as error:  # was Trainer's raw "PytorchStreamReader failed reading zip archive"
        trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-5"))
    assert str(error.value) == (
        f"Cannot resume from {output_dir / 'checkpoint-5'}: {optimizer} is damaged: it is not a whole torch.save "
        "archive, its end is cut short or damaged (BadZipFile: File is not a zip file). Resume from an earlier "
        f"checkpoint that verifies: resume_from_checkpoint={str(output_dir / 'checkpoint-4')!r}, or train from "
        "scratch (without resume_from_checkpoint)."
    )
    assert trainer.state.global_step == 0
