"""Checkpoint files that survive a kill: atomic writes, loads that name the bad file, and the newest complete folder.

A run killed while it saves leaves a `checkpoint-N` folder with some files missing, empty or cut short. These
helpers make hf_lilaw's own files appear whole or not at all, and let a resume skip folders that are not
complete instead of crashing on them.
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
from collections.abc import Sequence
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

_CHECKPOINT_FOLDER = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def save_state_atomically(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` ``obj`` so that ``path`` holds either its previous content or the whole new file.

    The data goes to a hidden temporary file beside ``path``, is flushed to disk, then renamed onto ``path``
    (`os.replace` is atomic within a file system). A failure removes the temporary file and re-raises.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The leading dot keeps the temporary name out of globs such as "lilaw_state*.pt"; os.open with 0o666
    # (not mkstemp's 0o600) gives the final file the permissions a plain torch.save would.
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save(obj, file)
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
            says how to resume from an earlier checkpoint.
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
    output_dir: str | os.PathLike, *, required_files: Sequence[str] = ()
) -> str | None:
    """The newest complete ``checkpoint-N`` folder of ``output_dir``, or ``None`` when there is none.

    Complete means: ``trainer_state.json`` parses, the model weights are there (a full model, every shard of
    a sharded one, or a PEFT adapter), and every entry of ``required_files`` (a file name or a glob pattern
    such as ``"lilaw_state*.pt"``) matches at least one non-empty file. Folders are ranked by their step
    number N; every newer folder that is skipped is logged with the reason.
    """
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    steps = {}
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_FOLDER.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[name] = int(match.group(1))
    for name in sorted(steps, key=steps.get, reverse=True):
        folder = os.path.join(output_dir, name)
        problem = _incompleteness(folder, required_files)
        if problem is None:
            return folder
        logger.warning("Skipping incomplete checkpoint %s: %s.", folder, problem)
    return None


def _incompleteness(folder: str, required_files: Sequence[str]) -> str | None:
    """Why ``folder`` cannot be resumed from, or ``None`` when it can."""
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
        matches = glob.glob(os.path.join(glob.escape(folder), pattern))
        if not matches:
            return f"no file matches {pattern!r}"
        empty = [os.path.basename(m) for m in matches if os.path.isfile(m) and os.path.getsize(m) == 0]
        if empty:
            return f"{', '.join(sorted(empty))} {'is' if len(empty) == 1 else 'are'} empty (0 bytes)"
    return None


def _weights_problem(folder: str) -> str | None:
    """Why ``folder`` holds no usable model weights, or ``None`` when it does."""
    if any(_non_empty_file(os.path.join(folder, name)) for name in MODEL_WEIGHT_FILES):
        return None
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
            return None
    if glob.glob(os.path.join(glob.escape(folder), FSDP_WEIGHTS)):
        return None
    latest = os.path.join(folder, DEEPSPEED_LATEST)
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as file:
            tag = file.read().strip()
        if tag and os.path.isdir(os.path.join(folder, tag)):
            return None
        return f"the DeepSpeed file 'latest' names {tag!r}, which is not a folder there"
    for entry in os.scandir(folder):
        if entry.is_dir() and any(_non_empty_file(os.path.join(entry.path, n)) for n in ADAPTER_WEIGHT_FILES):
            return None  # several PEFT adapters, one folder each
    return "it holds no model weights (none of " + ", ".join(MODEL_WEIGHT_FILES + MODEL_WEIGHT_INDEXES) + ")"


def _non_empty_file(path: str) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _unreadable_message(path: str, what: str, problem: str) -> str:
    checkpoint = os.path.dirname(os.path.abspath(path))
    return (
        f"Cannot load the {what} from {path}: {problem}. The checkpoint {checkpoint} is incomplete or damaged "
        "(was the run stopped while saving it?). Resume from an earlier checkpoint: pass its folder as "
        "resume_from_checkpoint, or resume_from_checkpoint=True to take the newest complete one."
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

