"""A trainer family's extra training state in a checkpoint: shared once, per process beside it.

A family keeps everything that must survive a resume in one object following `TrainingState`. Its
``state_dict()`` splits into ``"shared"`` (identical on every process: learned scalars, a meta model,
counters) and ``"per_rank"`` (this process's own: sampler positions, RNG). The shared part is written once,
by the main process, as ``<name>.pt``; each process writes its part as ``<name>_rank<r>.pt``. Both record
the number of processes, so a resume under another count restores the shared part and lets the object
re-derive its per-rank part (``load_state_dict`` gets ``"per_rank": None``).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .checkpoint import load_state_file, save_state_atomically

logger = logging.getLogger(__name__)


@runtime_checkable
class TrainingState(Protocol):
    """What a trainer family registers with `BaseTrainer.register_training_state`."""

    def state_dict(self) -> dict[str, Any]:
        """``{"shared": ..., "per_rank": ...}``: plain tensors, containers and numbers only."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state``; ``state["per_rank"]`` is ``None`` when the number of processes changed, and the
        object then re-derives its per-process part deterministically (from its seed, rank and counters)."""
        ...


def shared_file_name(name: str) -> str:
    return f"{name}.pt"


def per_rank_file_name(name: str, rank: int | str) -> str:
    return f"{name}_rank{rank}.pt"


def save_training_state(
    state: TrainingState,
    checkpoint_dir: str,
    *,
    name: str,
    process_index: int,
    world_size: int,
    save_shared: bool,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Write this process's part of ``state`` (and the shared part when ``save_shared``), each atomically.
    ``settings`` (plain values: the method's settings) are saved with the shared part, for `load_training_state`
    to compare on resume."""
    parts = state.state_dict()
    if set(parts) != {"shared", "per_rank"}:
        raise TypeError(f"{type(state).__name__}.state_dict() must return {{'shared': ..., 'per_rank': ...}}, got keys {sorted(parts)}.")
    if save_shared:
        shared = {"world_size": world_size, "state": parts["shared"]}
        if settings is not None:
            shared["settings"] = dict(settings)
        save_state_atomically(shared, os.path.join(checkpoint_dir, shared_file_name(name)))
    save_state_atomically(
        {"world_size": world_size, "rank": process_index, "state": parts["per_rank"]},
        os.path.join(checkpoint_dir, per_rank_file_name(name, process_index)),
    )


def load_training_state(
    state: TrainingState,
    checkpoint_dir: str,
    *,
    name: str,
    process_index: int,
    world_size: int,
    what: str,
    settings: Mapping[str, Any] | None = None,
) -> bool:
    """Restore ``state`` from ``checkpoint_dir``; returns ``False`` (and logs why) when the checkpoint has no such state.

    Raises:
        ValueError: a state file is there but unreadable, or it was saved with other ``settings`` than these; the
            message names it. Compared are the settings both sides name and set: one left at ``None`` (derived
            from other settings), one a checkpoint predates, and every setting of a checkpoint that predates saved
            settings, are not.
    """
    shared_path = os.path.join(checkpoint_dir, shared_file_name(name))
    ranks = sorted(glob.glob(os.path.join(glob.escape(checkpoint_dir), per_rank_file_name(name, "*"))))
    if not os.path.isfile(shared_path) and ranks:
        # The per-rank files say this run saved the state: its shared part was lost, not never written, and
        # starting it fresh would silently continue another run than the checkpoint's.
        raise ValueError(
            f"Checkpoint {checkpoint_dir} has {os.path.basename(ranks[0])} but no {shared_file_name(name)}: its "
            f"{what} was saved and its shared part is missing, so the checkpoint is damaged. Resume from an earlier "
            "checkpoint (resume_from_checkpoint=True picks the newest that verifies) or train from scratch."
        )
    if not os.path.isfile(shared_path):
        logger.warning(
            "Checkpoint %s has no %s: the %s starts fresh (was the checkpoint saved by plain Trainer?).",
            checkpoint_dir, shared_file_name(name), what,
        )
        return False
    shared = load_state_file(shared_path, what=what)
    saved = shared.get("settings")
    if settings is not None and saved is not None:
        both = sorted(k for k in set(saved) & set(settings) if saved[k] is not None and settings[k] is not None)
        changed = {k: (saved[k], settings[k]) for k in both if saved[k] != settings[k]}
        if changed:
            listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(
                f"Checkpoint {checkpoint_dir} was saved with other method settings than this run's ({listed}): "
                f"resuming would continue the saved {what} under settings it was not trained with, and describe the "
                "run by the new ones. Resume with the settings it was saved with, or start a new run without "
                "resume_from_checkpoint."
            )
    saved_world_size = shared["world_size"]
    rank_path = os.path.join(checkpoint_dir, per_rank_file_name(name, process_index))
    per_rank = None
    if saved_world_size == world_size:
        per_rank = load_state_file(rank_path, what=f"{what} of process {process_index}")["state"]
    elif process_index == 0:
        logger.warning(
            "Checkpoint %s was saved by %d process(es) and is resumed by %d: the %s (shared by all processes) "
            "continues from the checkpoint; each process's own part (e.g. which side batches it draws next) is "
            "re-derived from its seed, rank and step count, so the run continues deterministically but not as an "
            "uninterrupted run with %d processes would.",
            checkpoint_dir, saved_world_size, world_size, what, world_size,
        )
    state.load_state_dict({"shared": shared["state"], "per_rank": per_rank})
    return True
