import fractions
import io
import json
import logging
import os
import zlib

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from hf_lilaw.core.checkpoint import (
    MANIFEST_NAME,
    begin_checkpoint,
    checkpoint_problem,
    file_crc32,
    find_resumable_checkpoint,
    load_state_file,
    resume_advice,
    save_state_atomically,
    write_manifest,
)

STATE = {
    "params": torch.tensor([10.0, 2.0, 6.0]),
    "meta_steps": 7,
    "generator": torch.Generator().manual_seed(3).get_state(),  # a ByteTensor
    "sampler": {"position": 4, "permutation": torch.arange(5), "seed": (0, 1)},
    "parameters": {"alpha": 10.0, "beta": 2.0, "delta": 6.0},
    "flag": False,
    "none": None,
}


def assert_state_equal(loaded, expected):
    assert loaded.keys() == expected.keys()
    torch.testing.assert_close(loaded["params"], expected["params"], rtol=0, atol=0)
    assert torch.equal(loaded["generator"], expected["generator"])
    assert torch.equal(loaded["sampler"]["permutation"], expected["sampler"]["permutation"])
    assert loaded["sampler"]["position"] == 4 and loaded["sampler"]["seed"] == (0, 1)
    assert (loaded["meta_steps"], loaded["parameters"], loaded["flag"], loaded["none"]) == (
        7, expected["parameters"], False, None
    )


def test_round_trip_with_weights_only_and_generator_state(tmp_path):
    path = tmp_path / "sub" / "lilaw_state.pt"  # the folder is created
    save_state_atomically(STATE, path)
    loaded = load_state_file(path, what="LiLAW state")
    assert_state_equal(loaded, STATE)
    restored = torch.Generator()
    restored.set_state(loaded["generator"])
    assert torch.equal(torch.rand(4, generator=restored), torch.rand(4, generator=torch.Generator().manual_seed(3)))
    assert os.listdir(path.parent) == ["lilaw_state.pt"]  # no temporary file left behind


def test_failing_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "lilaw_state.pt"
    save_state_atomically(STATE, path)
    old_bytes = path.read_bytes()

    def half_written_save(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial")  # a kill or a full disk in the middle of the write
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_written_save)
    with pytest.raises(OSError, match="No space left"):
        save_state_atomically({"params": torch.zeros(3)}, path)
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["lilaw_state.pt"]
    monkeypatch.undo()
    assert_state_equal(load_state_file(path, what="LiLAW state"), STATE)


def test_save_replaces_the_previous_content(tmp_path):
    path = tmp_path / "state.pt"
    save_state_atomically({"x": torch.zeros(2)}, path)
    save_state_atomically({"x": torch.ones(2)}, path)
    assert torch.equal(load_state_file(path, what="state")["x"], torch.ones(2))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: path.write_bytes(b""), "empty (0 bytes)"),
        (lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]), "cannot be read"),
        (lambda path: path.unlink(), "does not exist"),
        (lambda path: path.write_bytes(b"not a torch file at all"), "cannot be read"),
    ],
    ids=["empty", "truncated", "missing", "garbage"],
)
def test_damaged_file_error_names_the_file_what_and_the_fix(tmp_path, damage, problem):
    path = tmp_path / "checkpoint-5" / "lilaw_state.pt"
    make_checkpoint(tmp_path, 5)
    save_state_atomically(STATE, path)
    damage(path)
    with pytest.raises(ValueError) as error:
        load_state_file(path, what="LiLAW state")
    message = str(error.value)
    assert str(path) in message
    assert "LiLAW state" in message and problem in message
    # The fix points somewhere new: no other checkpoint, so training from scratch (not this folder again).
    assert "No other checkpoint in" in message and "train from scratch" in message
    assert "resume_from_checkpoint=True" not in message

    earlier = make_checkpoint(tmp_path, 3, manifest=True)
    with pytest.raises(ValueError) as error:
        load_state_file(path, what="LiLAW state")
    assert f"an earlier checkpoint that verifies: resume_from_checkpoint={earlier!r}" in str(error.value)


def test_objects_outside_tensors_and_containers_are_refused_by_name(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"bad": fractions.Fraction(1, 3)}, path)  # an arbitrary pickled object: weights_only refuses it
    with pytest.raises(ValueError, match=r"Cannot load the MLC state from .*state\.pt: it holds objects other than tensors"):
        load_state_file(path, what="MLC state")


WEIGHTS = safetensors_bytes({"w": torch.arange(64, dtype=torch.float32)})


def weights_bytes(name: str) -> bytes:
    return WEIGHTS if name.endswith(".safetensors") else b"weights"


def make_checkpoint(output_dir, step, *, weights="model.safetensors", trainer_state="{}", extra=None, manifest=False):
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if trainer_state is not None:
        (folder / "trainer_state.json").write_text(trainer_state)
    if weights:
        (folder / weights).write_bytes(weights_bytes(weights))
    for name, content in (extra or {}).items():
        (folder / name).write_bytes(content)
    if manifest:
        write_manifest(folder)
    return str(folder)


def test_newest_by_step_number_not_by_name(tmp_path):
    make_checkpoint(tmp_path, 9)
    newest = make_checkpoint(tmp_path, 10)  # "checkpoint-10" < "checkpoint-9" as strings
    make_checkpoint(tmp_path, 2)
    (tmp_path / "checkpoint-99.tmp").mkdir()  # not a checkpoint folder name
    (tmp_path / "checkpoint-50").write_text("a file, not a folder")
    assert find_resumable_checkpoint(tmp_path) == newest


def test_incomplete_newest_folders_are_skipped_with_the_reason_logged(tmp_path, caplog):
    complete = make_checkpoint(tmp_path, 3, extra={"lilaw_state.pt": b"x"}, manifest=True)
    make_checkpoint(tmp_path, 4, trainer_state=None, extra={"lilaw_state.pt": b"x"})
    make_checkpoint(tmp_path, 5, trainer_state='{"global_step": ', extra={"lilaw_state.pt": b"x"})
    make_checkpoint(tmp_path, 6, weights=None, extra={"lilaw_state.pt": b"x"})
    make_checkpoint(tmp_path, 7, extra={"lilaw_state.pt": b""})
    make_checkpoint(tmp_path, 8)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        found = find_resumable_checkpoint(tmp_path, required_files=["lilaw_state*.pt"])
    assert found == complete
    reasons = {record.getMessage().split(": ", 1)[0].rsplit("-", 1)[1]: record.getMessage() for record in caplog.records}
    assert sorted(reasons, key=int) == ["4", "5", "6", "7", "8"]
    assert "trainer_state.json is missing" in reasons["4"]
    assert "trainer_state.json does not parse" in reasons["5"]
    assert "no model weights" in reasons["6"]
    assert "lilaw_state.pt is empty (0 bytes)" in reasons["7"]
    assert "no file matches 'lilaw_state*.pt'" in reasons["8"]
    assert all(str(tmp_path) in message for message in reasons.values())


def test_glob_requirement_checks_every_match_and_temporaries_do_not_count(tmp_path):
    make_checkpoint(tmp_path, 1, extra={"lilaw_state_0.pt": b"x", "lilaw_state_1.pt": b"x"})
    make_checkpoint(tmp_path, 2, extra={"lilaw_state_0.pt": b"x", "lilaw_state_1.pt": b""})
    # A temporary left by a killed save_state_atomically is hidden: it does not satisfy the pattern.
    make_checkpoint(tmp_path, 3, extra={".lilaw_state.pt.123.abcd.tmp": b"x"})
    assert find_resumable_checkpoint(tmp_path, required_files=["lilaw_state*.pt"]).endswith("checkpoint-1")


def test_every_kind_of_model_weights_counts(tmp_path):
    for step, weights in enumerate(["pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin"], 1):
        assert find_resumable_checkpoint(tmp_path / str(step)) is None  # no output_dir yet
        expected = make_checkpoint(tmp_path / str(step), step, weights=weights)
        assert find_resumable_checkpoint(tmp_path / str(step)) == expected
    make_checkpoint(tmp_path / "empty", 1, weights="model.safetensors")
    (tmp_path / "empty" / "checkpoint-1" / "model.safetensors").write_bytes(b"")
    assert find_resumable_checkpoint(tmp_path / "empty") is None


def test_fsdp_deepspeed_and_multi_adapter_checkpoints_count(tmp_path):
    fsdp = make_checkpoint(tmp_path / "fsdp", 1, weights=None)
    os.mkdir(os.path.join(fsdp, "pytorch_model_fsdp_0"))
    deepspeed = make_checkpoint(tmp_path / "deepspeed", 1, weights=None, extra={"latest": b"global_step1"})
    os.mkdir(os.path.join(deepspeed, "global_step1"))
    adapters = make_checkpoint(tmp_path / "adapters", 1, weights=None)
    os.mkdir(os.path.join(adapters, "second"))
    (tmp_path / "adapters" / "checkpoint-1" / "second" / "adapter_model.safetensors").write_bytes(WEIGHTS)
    for found in (fsdp, deepspeed, adapters):
        assert find_resumable_checkpoint(os.path.dirname(found)) == found
    make_checkpoint(tmp_path / "broken", 1, weights=None, extra={"latest": b"global_step1"})  # its folder is missing
    assert find_resumable_checkpoint(tmp_path / "broken") is None


def test_sharded_weights_need_every_shard(tmp_path):
    index = json.dumps({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                       "b": "model-00002-of-00002.safetensors"}})
    shard = {"model-00001-of-00002.safetensors": WEIGHTS}
    complete = make_checkpoint(tmp_path, 1, weights=None, extra={
        "model.safetensors.index.json": index.encode(), **shard, "model-00002-of-00002.safetensors": WEIGHTS})
    make_checkpoint(tmp_path, 2, weights=None, extra={"model.safetensors.index.json": index.encode(), **shard})
    assert find_resumable_checkpoint(tmp_path) == complete


def test_none_when_nothing_is_complete(tmp_path, caplog):
    make_checkpoint(tmp_path, 1, trainer_state=None)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        assert find_resumable_checkpoint(tmp_path) is None
    assert "checkpoint-1" in caplog.text and "trainer_state.json is missing" in caplog.text


# ---- manifests: a checkpoint is complete when it verifies ------------------------------------------------------------


def flip_bytes(path, offset_from_end=100, count=8):
    """Damage bytes inside a file, keeping its size (what a disk or a copy can do)."""
    content = bytearray(path.read_bytes())
    for i in range(len(content) - offset_from_end, len(content) - offset_from_end + count):
        content[i] ^= 0xFF
    path.write_bytes(bytes(content))


def test_manifest_lists_every_file_with_size_and_crc32(tmp_path):
    folder = make_checkpoint(tmp_path, 1, extra={"lilaw_state.pt": b"x" * 10, ".lilaw_state.pt.1.ab.tmp": b"t"})
    os.mkdir(os.path.join(folder, "global_step1"))
    with open(os.path.join(folder, "global_step1", "shard.pt"), "wb") as file:
        file.write(b"deepspeed")
    manifest = write_manifest(folder)
    assert json.loads((tmp_path / "checkpoint-1" / MANIFEST_NAME).read_text()) == manifest
    assert manifest["complete"] and manifest["checksum"] == "crc32"
    # Hidden temporaries and the manifest itself are not listed; files in sub-folders are, with "/".
    assert sorted(manifest["files"]) == ["global_step1/shard.pt", "lilaw_state.pt", "model.safetensors", "trainer_state.json"]
    assert manifest["files"]["lilaw_state.pt"] == {"size": 10, "crc32": "%08x" % zlib.crc32(b"x" * 10)}
    assert file_crc32(os.path.join(folder, "model.safetensors")) == zlib.crc32(WEIGHTS)
    assert checkpoint_problem(folder) is None
    sizes_only = write_manifest(folder, checksums=False)
    assert sizes_only["checksum"] is None and sizes_only["files"]["lilaw_state.pt"] == {"size": 10}


def test_file_crc32_reads_in_chunks(tmp_path, monkeypatch):
    import hf_lilaw.core.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "_READ_CHUNK", 7)
    data = bytes(range(256)) * 3
    (tmp_path / "f").write_bytes(data)
    assert file_crc32(tmp_path / "f") == zlib.crc32(data)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda f: flip_bytes(f / "model.safetensors"), "model.safetensors is damaged: its CRC-32 is"),
        (lambda f: flip_bytes(f / "lilaw_state.pt", offset_from_end=3, count=2), "lilaw_state.pt is damaged"),
        (lambda f: (f / "lilaw_state.pt").write_bytes(b"y" * 11), "lilaw_state.pt has 11 bytes where the manifest records 10"),
        (lambda f: (f / "optimizer.pt").unlink(), "optimizer.pt is missing (the manifest lists it)"),
        (lambda f: begin_checkpoint(f), "its save began but did not finish"),
        (lambda f: (f / MANIFEST_NAME).write_text('{"complete": tr'), f"its manifest {MANIFEST_NAME} does not parse"),
    ],
    ids=["tensor-bytes", "state-bytes", "state-size", "missing-file", "pending", "garbage-manifest"],
)
def test_a_folder_that_does_not_verify_is_skipped_naming_the_file(tmp_path, caplog, damage, reason):
    good = make_checkpoint(tmp_path, 1, extra={"lilaw_state.pt": b"x" * 10, "optimizer.pt": b"o" * 5}, manifest=True)
    newest = make_checkpoint(tmp_path, 2, extra={"lilaw_state.pt": b"x" * 10, "optimizer.pt": b"o" * 5}, manifest=True)
    assert find_resumable_checkpoint(tmp_path, required_files=["lilaw_state*.pt"]) == newest
    damage(tmp_path / "checkpoint-2")
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        assert find_resumable_checkpoint(tmp_path, required_files=["lilaw_state*.pt"]) == good
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"Skipping checkpoint {newest}: ") and reason in message
    assert checkpoint_problem(newest) == message.split(": ", 1)[1].rstrip(".")
    assert resume_advice(newest) == (
        f"Resume from an earlier checkpoint that verifies: resume_from_checkpoint={good!r}, or train from scratch "
        "(without resume_from_checkpoint)."
    )


def test_sizes_only_manifest_checks_sizes_but_not_bytes(tmp_path):
    folder = make_checkpoint(tmp_path, 1, extra={"lilaw_state.pt": b"x" * 10})
    write_manifest(folder, checksums=False)
    flip_bytes(tmp_path / "checkpoint-1" / "lilaw_state.pt", offset_from_end=5, count=1)
    assert checkpoint_problem(folder) is None  # what the switch gives up
    (tmp_path / "checkpoint-1" / "lilaw_state.pt").write_bytes(b"x" * 9)
    assert "lilaw_state.pt has 9 bytes where the manifest records 10" in checkpoint_problem(folder)


def test_a_folder_without_manifest_is_accepted_with_a_warning(tmp_path, caplog):
    folder = make_checkpoint(tmp_path, 1)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        assert find_resumable_checkpoint(tmp_path) == folder
    assert f"Checkpoint {folder} has no {MANIFEST_NAME}" in caplog.text and "cannot be detected" in caplog.text


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"\xff" * 8 + WEIGHTS[8:], "damaged safetensors header (ValueError: the header length"),
        (WEIGHTS[:8] + b"{garbage" + WEIGHTS[16:], "damaged safetensors header (JSONDecodeError"),
        (WEIGHTS[:-4], f"has {len(WEIGHTS) - 4} bytes where its safetensors header needs {len(WEIGHTS)}"),
    ],
    ids=["length", "json", "cut-short"],
)
def test_a_damaged_safetensors_header_is_found_without_a_manifest(tmp_path, content, reason):
    good = make_checkpoint(tmp_path, 1)
    make_checkpoint(tmp_path, 2)
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(content)
    assert find_resumable_checkpoint(tmp_path) == good
    assert reason in checkpoint_problem(tmp_path / "checkpoint-2")
    assert str(tmp_path / "checkpoint-2" / "model.safetensors") in checkpoint_problem(tmp_path / "checkpoint-2")


def test_advice_without_another_checkpoint_and_for_a_missing_folder(tmp_path):
    only = make_checkpoint(tmp_path, 4, manifest=True)
    assert resume_advice(only).startswith(f"No other checkpoint in {tmp_path} verifies: train from scratch")
    newer = make_checkpoint(tmp_path, 9, manifest=True)
    assert f"a later checkpoint that verifies: resume_from_checkpoint={newer!r}" in resume_advice(only)
    assert checkpoint_problem(tmp_path / "checkpoint-77") == "there is no such folder"
    # for checkpoint-6 the newest checkpoint before it (4) is named, not the newest of the run (9), as before
    earlier = make_checkpoint(tmp_path, 6, manifest=True)
    assert f"an earlier checkpoint that verifies: resume_from_checkpoint={only!r}" in resume_advice(earlier)


def test_resume_advice_names_the_checkpoint_as_the_user_did(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "out", 4, manifest=True)
    make_checkpoint(tmp_path / "out", 8, manifest=True)
    monkeypatch.chdir(tmp_path)
    assert "resume_from_checkpoint='out/checkpoint-4'," in resume_advice("out/checkpoint-8")
    absolute = os.path.join(str(tmp_path), "out", "checkpoint-4")
    assert f"resume_from_checkpoint={absolute!r}," in resume_advice(tmp_path / "out" / "checkpoint-8")


def test_a_cut_torch_file_is_found_without_a_manifest_and_the_legacy_format_is_not_read(tmp_path):
    buffer = io.BytesIO()
    torch.save({"state": {0: {"exp_avg": torch.ones(64)}}}, buffer)
    whole = buffer.getvalue()
    good = make_checkpoint(tmp_path, 1, extra={"optimizer.pt": whole})
    make_checkpoint(tmp_path, 2, extra={"optimizer.pt": whole[: len(whole) // 2]})
    path = tmp_path / "checkpoint-2" / "optimizer.pt"
    assert checkpoint_problem(tmp_path / "checkpoint-2", required_files=["optimizer.pt"]) == (
        f"{path} is damaged: it is not a whole torch.save archive, its end is cut short or damaged "
        "(BadZipFile: File is not a zip file)"
    )
    assert find_resumable_checkpoint(tmp_path, required_files=["optimizer.pt"]) == good
    assert checkpoint_problem(tmp_path / "checkpoint-2") is None  # only the required files are read
    legacy = io.BytesIO()
    torch.save({"step": 1}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "checkpoint-2" / "optimizer.pt").write_bytes(legacy.getvalue())
    assert checkpoint_problem(tmp_path / "checkpoint-2", required_files=["optimizer.pt"]) is None


def test_a_family_states_per_rank_file_without_its_shared_file_does_not_verify(tmp_path, caplog):
    # Without a manifest nothing told the lost shared file: LiLAW resumed from such a folder with alpha, beta, delta
    # reset (resume_checkpoints, which requires no family file, picked it).
    earlier = make_checkpoint(tmp_path, 2, extra={"lilaw_state.pt": b"x", "lilaw_state_rank0.pt": b"x"})
    make_checkpoint(tmp_path, 4, extra={"lilaw_state_rank0.pt": b"x", "lilaw_state_rank1.pt": b"x"})
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        assert find_resumable_checkpoint(tmp_path) == earlier
    assert "checkpoint-4: lilaw_state.pt is missing beside lilaw_state_rank0.pt" in caplog.text
