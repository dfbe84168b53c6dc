"""Checkpoints that survive a kill: atomic writes, manifests, loads naming the bad file, the newest folder that verifies.

A run killed while it saves leaves a `checkpoint-N` folder with some files missing, empty or cut short; a disk or a
copy can damage bytes inside a file that keeps its size. These helpers make hf_lilaw's own files appear whole or
not at all, write a manifest of every file of a checkpoint (sizes and CRC-32s) once the save is over, and let a
resume skip folders that do not verify instead of crashing on them or silently loading damaged weights.

A folder verifies when its trainer state parses, its model weights are there (safetensors headers intact), every
required file is non-empty, and every file its manifest lists has the recorded size and checksum. A folder
without a manifest (saved by plain `Trainer` or an hf_lilaw release before manifests) is accepted on the other
checks with a warning; one whose manifest says the save began but never ended is not.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import pickle
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"

# What `Trainer.save_model` writes: a full model, a sharded one (an index and its shards), a PEFT adapter (also
# one sub-folder per adapter when there are several), an FSDP state, or a DeepSpeed checkpoint ("latest" names
# its global_step folder).
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MODEL_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin") + ADAPTER_WEIGHT_FILES
MODEL_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
FSDP_WEIGHTS = "pytorch_model_fsdp*"
DEEPSPEED_LATEST = "latest"

# What `Trainer` saves of the optimizer, the LR schedule and the RNGs (unless ``save_only_model``) and needs to
# resume as the run would have gone on: without them it resumes silently with a fresh optimizer, schedule or RNGs.
# Under FSDP, accelerate names the optimizer ``optimizer.bin``, ``optimizer_0/`` or ``optimizer_0_rank<r>.bin``;
# the RNGs are in ``rng_state.pth`` (one process) or ``rng_state_<r>.pth`` (one per process).
OPTIMIZER_FILE = "optimizer.pt"
FSDP_OPTIMIZER_FILES = "optimizer*"
SCHEDULER_FILE = "scheduler.pt"
RNG_STATE_FILES = "rng_state*.pth"
_RESUME_STATE_FILES = {
    OPTIMIZER_FILE: "the optimizer state",
    FSDP_OPTIMIZER_FILES: "the optimizer state",
    SCHEDULER_FILE: "the learning-rate scheduler state",
    RNG_STATE_FILES: "the random number generators' state",
}
_TORCH_FILE_SUFFIXES = (".pt", ".pth", ".bin")
_ZIP_MAGIC = b"PK\x03\x04"

MANIFEST_NAME = "hf_lilaw_manifest.json"
"""The manifest of a checkpoint folder: written when its save begins (``"complete": false``) and replaced, once
every file is written, by the list of the folder's files with their sizes and, by default, CRC-32s."""
_MANIFEST_FORMAT = 1
_READ_CHUNK = 8 << 20

_PER_RANK_STATE = re.compile(r"(.+)_rank\d+\.pt")
_CHECKPOINT_FOLDER = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def save_state_atomically(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` ``obj`` so that ``path`` holds either its previous content or the whole new file.

    The data goes to a hidden temporary file beside ``path``, is flushed to disk, then renamed onto ``path``
    (`os.replace` is atomic within a file system). A failure removes the temporary file and re-raises.
    """
    _write_atomically(path, lambda file: torch.save(obj, file))


def _write_atomically(path: str | os.PathLike, write: Any) -> None:
    """``write(file)`` into a hidden temporary beside ``path``, flushed to disk, then renamed onto ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The leading dot keeps the temporary name out of globs such as "lilaw_state*.pt" and out of manifests;
    # os.open with 0o666 (not mkstemp's 0o600) gives the final file the permissions a plain torch.save would.
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_folder(folder)


def load_state_file(path: str | os.PathLike, *, what: str) -> Any:
    """Load a state file written by `save_state_atomically`, on the CPU.

    Only tensors (a `torch.Generator` state is a ByteTensor), containers and primitives are accepted
    (``weights_only=True``): a checkpoint file can then never run code when it is read.

    Args:
        path: the file.
        what: what the file holds, for the error message (e.g. ``"LiLAW state"``).

    Raises:
        ValueError: the file is missing, empty, cut short or not a state file. The message names the file and
            the checkpoint to resume from instead (another one of the same run that verifies), or says to train
            from scratch when there is none.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        problem = "the file does not exist"
    elif os.path.getsize(path) == 0:
        problem = "the file is empty (0 bytes)"
    else:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "Unsupported global" not in str(error):  # a damaged file, not a refused object
                raise ValueError(_unreadable_message(path, what, _unreadable(error))) from error
            raise ValueError(
                f"Cannot load the {what} from {path}: it holds objects other than tensors, containers and "
                f"numbers, which hf_lilaw never writes ({_first_line(error)}). Was it written by other code? "
                "Resume from a checkpoint saved by hf_lilaw."
            ) from error
        except Exception as error:  # torch raises RuntimeError or EOFError for a damaged file
            raise ValueError(_unreadable_message(path, what, _unreadable(error))) from error
    raise ValueError(_unreadable_message(path, what, problem))


def find_resumable_checkpoint(
    output_dir: str | os.PathLike,
    *,
    required_files: Sequence[str] = (),
    exclude: str | os.PathLike | None = None,
    before_step: int | None = None,
) -> str | None:
    """The newest ``checkpoint-N`` folder of ``output_dir`` that verifies, or ``None`` when there is none.

    Verifies means: ``trainer_state.json`` parses, the model weights are there (a full model, every shard of
    a sharded one, or a PEFT adapter; safetensors headers intact), every entry of ``required_files`` (a file
    name or a glob pattern such as ``"lilaw_state*.pt"``) matches at least one non-empty file, and the folder's
    manifest (see `write_manifest`) matches its files. Folders are ranked by their step number N; every newer
    folder that is skipped is logged with the reason and the file at fault. ``exclude``: a folder not to consider.
    ``before_step``: prefer the folders of earlier steps (newest first), the later ones only when none of them
    verifies; each folder is checked once.
    """
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    excluded = os.path.abspath(exclude) if exclude is not None else None
    folders = [f for f in _checkpoint_folders(output_dir) if os.path.abspath(f) != excluded]
    if before_step is not None:
        folders.sort(key=lambda f: _step_of(f) >= before_step)  # stable: newest first within each part
    for folder in folders:
        problem = checkpoint_problem(folder, required_files=required_files)
        if problem is None:
            return folder
        logger.warning("Skipping checkpoint %s: %s.", folder, problem)
    return None


def _checkpoint_folders(output_dir: str) -> list[str]:
    """The ``checkpoint-N`` folders of ``output_dir``, newest (largest N) first."""
    steps = {}
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_FOLDER.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[name] = int(match.group(1))
    return [os.path.join(output_dir, name) for name in sorted(steps, key=steps.get, reverse=True)]


def checkpoint_problem(folder: str | os.PathLike, *, required_files: Sequence[str] = ()) -> str | None:
    """Why ``folder`` cannot be resumed from (naming the file at fault), or ``None`` when it verifies.

    The cheap checks come first (`find_resumable_checkpoint` lists them), the manifest's sizes, then its
    checksums, which read every file once. A folder without a manifest is accepted on the other checks (its
    required `torch.save` files must end whole), with a warning.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return "there is no such folder"
    problem = _incompleteness(folder, required_files)
    if problem is not None:
        return problem
    manifest = os.path.join(folder, MANIFEST_NAME)
    if not os.path.exists(manifest):
        problem = _torch_archive_problem(folder, required_files)
        if problem is not None:
            return problem
        logger.warning(
            "Checkpoint %s has no %s (saved by plain Trainer or before hf_lilaw wrote manifests): it is accepted "
            "because its trainer state parses and its weights and state files are there, but damaged bytes inside "
            "its files cannot be detected.", folder, MANIFEST_NAME,
        )  # fmt: skip
        return None
    return _manifest_problem(folder)


def resume_advice(checkpoint: str | os.PathLike, *, required_files: Sequence[str] = ()) -> str:
    """Where to resume from instead of ``checkpoint``: another checkpoint of its run that verifies, named (relative
    to the working directory when ``checkpoint`` is, so it can be pasted back), or training from scratch when there
    is none."""
    relative = not os.path.isabs(os.fspath(checkpoint))
    checkpoint = os.path.abspath(os.fspath(checkpoint))
    output_dir = os.path.dirname(checkpoint)
    match = _CHECKPOINT_FOLDER.match(os.path.basename(checkpoint))
    step = int(match.group(1)) if match else None
    # The newest one before the step asked for (the user picked a point of the run), else the newest of the others.
    other = find_resumable_checkpoint(output_dir, required_files=required_files, exclude=checkpoint, before_step=step)
    if other is None:
        return (
            f"No other checkpoint in {output_dir} verifies: train from scratch (without resume_from_checkpoint), "
            "or with another output_dir."
        )
    older = step is not None and _step_of(other) < step
    if relative:
        other = os.path.relpath(other)
    return (
        f"Resume from {'an earlier' if older else 'a later'} checkpoint that verifies: "
        f"resume_from_checkpoint={other!r}, or train from scratch (without resume_from_checkpoint)."
    )


def _step_of(folder: str) -> int:
    return int(_CHECKPOINT_FOLDER.match(os.path.basename(folder)).group(1))


def begin_checkpoint(folder: str | os.PathLike) -> None:
    """Mark ``folder`` as being saved: a manifest that says so replaces any previous one, so that a save killed
    before `write_manifest` never leaves the manifest of an earlier save over files of this one."""
    _write_json_atomically(os.path.join(folder, MANIFEST_NAME), {"format": _MANIFEST_FORMAT, "complete": False})


def write_manifest(folder: str | os.PathLike, *, checksums: bool = True) -> dict[str, Any]:
    """Write ``folder``'s manifest, atomically: every file under it (hidden temporaries excepted) with its size
    and, when ``checksums``, its CRC-32. Call it once everything else of the checkpoint is written. Returns it."""
    folder = os.fspath(folder)
    files: dict[str, dict[str, Any]] = {}
    for name in _folder_files(folder):
        path = os.path.join(folder, name)
        entry: dict[str, Any] = {"size": os.path.getsize(path)}
        if checksums:
            entry["crc32"] = f"{file_crc32(path):08x}"
        files[name] = entry
    checksum = "crc32" if checksums else None
    manifest = {"format": _MANIFEST_FORMAT, "complete": True, "checksum": checksum, "files": files}
    _write_json_atomically(os.path.join(folder, MANIFEST_NAME), manifest)
    return manifest


def file_crc32(path: str | os.PathLike) -> int:
    """The CRC-32 (`zlib.crc32`) of a file's bytes, read in chunks."""
    crc = 0
    buffer = bytearray(_READ_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            crc = zlib.crc32(view[:count], crc)
    return crc


def _folder_files(folder: str) -> Iterator[str]:
    """The files under ``folder`` (relative, ``/``-separated, sorted) but the manifest and hidden entries."""
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        relative = os.path.relpath(root, folder)
        for name in sorted(names):
            if name.startswith(".") or (relative == "." and name == MANIFEST_NAME):
                continue
            if os.path.isfile(os.path.join(root, name)):
                yield name if relative == "." else f"{relative.replace(os.sep, '/')}/{name}"


def _manifest_problem(folder: str) -> str | None:
    """Why ``folder``'s files do not match its manifest, or ``None`` when they do."""
    path = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        complete, files = manifest["complete"], manifest.get("files")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its manifest {MANIFEST_NAME} does not parse ({_first_line(error)})"
    if not complete:
        return f"its save began but did not finish ({MANIFEST_NAME} lists no files yet)"
    if not isinstance(files, dict):
        return f"its manifest {MANIFEST_NAME} does not parse (no file list)"
    for name, entry in files.items():  # sizes first: a missing or cut file fails before anything is read
        file_path = os.path.join(folder, *name.split("/"))
        if not os.path.isfile(file_path):
            return f"{file_path} is missing (the manifest lists it)"
        size = os.path.getsize(file_path)
        if size != entry["size"]:
            return f"{file_path} has {size} bytes where the manifest records {entry['size']}"
    for name, entry in files.items():
        if entry.get("crc32") is not None:
            file_path = os.path.join(folder, *name.split("/"))
            crc = f"{file_crc32(file_path):08x}"
            if crc != entry["crc32"]:
                return f"{file_path} is damaged: its CRC-32 is {crc} where the manifest records {entry['crc32']}"
    return None


def _write_json_atomically(path: str, value: Any) -> None:
    _write_atomically(path, lambda file: file.write(json.dumps(value, indent=1, sort_keys=True).encode("utf-8")))


def _incompleteness(folder: str, required_files: Sequence[str]) -> str | None:
    """Why ``folder`` cannot be resumed from on its file structure alone, or ``None`` when it can."""
    state_path = os.path.join(folder, TRAINER_STATE_NAME)
    if not os.path.isfile(state_path):
        return f"{TRAINER_STATE_NAME} is missing"
    try:
        with open(state_path, encoding="utf-8") as file:
            json.load(file)
    except (OSError, ValueError) as error:
        return f"{TRAINER_STATE_NAME} does not parse ({_first_line(error)})"
    weights_problem = _weights_problem(folder)
    if weights_problem:
        return weights_problem
    for pattern in required_files:
        matches = _matching(folder, pattern)
        if not matches and pattern in _RESUME_STATE_FILES:
            missing = f"{pattern} is missing" if not glob.has_magic(pattern) else f"no file matches {pattern!r}"
            if pattern == FSDP_OPTIMIZER_FILES:  # Trainer's own name first: FSDP's are the exception
                missing = f"{OPTIMIZER_FILE} is missing (no file matches {pattern!r})"
            return (
                f"{missing} "
                f"({_RESUME_STATE_FILES[pattern]}: Trainer would resume with a fresh one, and the run would not "
                "continue as the interrupted one would have)"
            )
        if not matches:
            return f"no file matches {pattern!r}"
        empty = [os.path.basename(m) for m in matches if os.path.isfile(m) and os.path.getsize(m) == 0]
        if empty:
            return f"{', '.join(sorted(empty))} {'is' if len(empty) == 1 else 'are'} empty (0 bytes)"
    # A family state's per-process files (`<name>_rank<N>.pt`, core.training_state) without its shared `<name>.pt`:
    # the state was saved and part of it lost, which even a folder without a manifest shows.
    for file_name in sorted(os.listdir(folder)):
        shared = _PER_RANK_STATE.fullmatch(file_name)
        if shared and not os.path.isfile(os.path.join(folder, f"{shared[1]}.pt")):
            return f"{shared[1]}.pt is missing beside {file_name} (the family state's shared part)"
    return None


def _torch_archive_problem(folder: str, required_files: Sequence[str]) -> str | None:
    """Why a `torch.save` file among ``required_files`` is cut short, from the zip directory at its end alone (a
    few KiB read), or ``None``: without a manifest, a cut ``optimizer.pt`` would otherwise fail inside Trainer."""
    for pattern in required_files:
        for path in sorted(_matching(folder, pattern)):
            if not (path.endswith(_TORCH_FILE_SUFFIXES) and os.path.isfile(path)):
                continue
            with open(path, "rb") as file:
                if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:  # torch's legacy (non-zip) format: nothing to check
                    continue
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.infolist()
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
                return (
                    f"{path} is damaged: it is not a whole torch.save archive, its end is cut short or damaged "
                    f"({type(error).__name__}: {_first_line(error)})"
                )
    return None


def missing_files(folder: str | os.PathLike, patterns: Sequence[str]) -> list[str]:
    """The glob ``patterns`` that match nothing in ``folder``."""
    return [pattern for pattern in patterns if not _matching(folder, pattern)]


def _matching(folder: str | os.PathLike, pattern: str) -> list[str]:
    """The paths in ``folder`` matching the glob ``pattern`` (the folder's own name taken literally)."""
    return glob.glob(os.path.join(glob.escape(os.fspath(folder)), pattern))


def _weights_problem(folder: str) -> str | None:
    """Why ``folder`` holds no usable model weights, or ``None`` when it does."""
    present = [os.path.join(folder, name) for name in MODEL_WEIGHT_FILES if _non_empty_file(os.path.join(folder, name))]
    if present:
        return next(filter(None, map(_safetensors_problem, present)), None)
    for name in MODEL_WEIGHT_INDEXES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as file:
                    shards = set(json.load(file)["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                return f"the weight index {name} does not parse ({_first_line(error)})"
            missing = sorted(s for s in shards if not _non_empty_file(os.path.join(folder, s)))
            if missing:
                return f"the weight shards {', '.join(missing)} listed in {name} are missing or empty"
            return next(filter(None, (_safetensors_problem(os.path.join(folder, s)) for s in sorted(shards))), None)
    if _matching(folder, FSDP_WEIGHTS):
        return None
    latest = os.path.join(folder, DEEPSPEED_LATEST)
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as file:
            tag = file.read().strip()
        if tag and os.path.isdir(os.path.join(folder, tag)):
            return None
        return f"the DeepSpeed file 'latest' names {tag!r}, which is not a folder there"
    for entry in os.scandir(folder):
        adapters = [os.path.join(entry.path, n) for n in ADAPTER_WEIGHT_FILES] if entry.is_dir() else []
        if any(map(_non_empty_file, adapters)):  # several PEFT adapters, one folder each
            return next(filter(None, map(_safetensors_problem, filter(_non_empty_file, adapters))), None)
    return "it holds no model weights (none of " + ", ".join(MODEL_WEIGHT_FILES + MODEL_WEIGHT_INDEXES) + ")"


def _non_empty_file(path: str) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _safetensors_problem(path: str) -> str | None:
    """Why the ``.safetensors`` file ``path`` is damaged, from its header alone, or ``None`` (also for other files).

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's byte range, the data.
    """
    if not path.endswith(".safetensors"):
        return None
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > size - 8:
                raise ValueError(f"the header length {length} exceeds the file")
            header = json.loads(file.read(length))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error) as error:
        return f"{path} has a damaged safetensors header ({type(error).__name__}: {_first_line(error)})"
    if 8 + length + max(ends, default=0) != size:
        return f"{path} has {size} bytes where its safetensors header needs {8 + length + max(ends, default=0)}"
    return None


def _unreadable_message(path: str, what: str, problem: str) -> str:
    checkpoint = os.path.dirname(os.path.abspath(path))
    return (
        f"Cannot load the {what} from {path}: {problem}. The checkpoint {checkpoint} is incomplete or damaged "
        f"(was the run stopped while saving it?). {resume_advice(checkpoint)}"
    )


def _unreadable(error: BaseException) -> str:
    return f"it cannot be read ({type(error).__name__}: {_first_line(error)})"


def _first_line(error: BaseException) -> str:
    """The informative line of ``error``: torch's unpickling errors put theirs after a long preamble."""
    detail = re.search(r"Unsupported (global: GLOBAL \S+|[^.\n]*)", str(error))
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return detail.group(0) if detail else (lines[0] if lines else "no details")


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable; not every platform can open a folder, and then this is skipped."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

