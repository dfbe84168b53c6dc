"""Everything of ELR that must survive a checkpoint, in one object."""

from __future__ import annotations

from typing import Any

import torch


class ELRState:
    """The ``N × K`` float32 targets (a running average of each training sample's predictions).

    The table has one row more than there are samples: row ``N`` is a sink that padded rows of a cross-process
    update are written to, so that update needs neither a host sync nor a data-dependent shape. It is never read.

    ``state_dict()`` splits it for `hf_lilaw.core.BaseTrainer`: the targets are identical on every process (each
    update is gathered and applied everywhere), so they are ``"shared"``, written once, with the training set's
    ``fingerprint`` (its labels in id order; ``None`` where they cannot be read up front). Per process is ``seen``,
    which of this process's ids came in which epoch (the repeat check of a set whose ids are checked batch by batch;
    ``None`` otherwise). The table is allocated by the trainer once the number of samples and classes are known, or
    by `load_state_dict` from a checkpoint.

    Args:
        device: where the table lives (the model's device, or the CPU with ``elr_targets_on_cpu``).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.table: torch.Tensor | None = None
        self.updates = 0  # training micro-batches (of each process) whose predictions went into the targets
        self.fingerprint: str | None = None
        self.fingerprint_saved = True  # False: restored from a checkpoint written before fingerprints were saved
        # Per row: 0 never seen, 2e + 1 seen in this process's first batch of epoch e, 2e + 2 later in epoch e.
        self.seen: torch.Tensor | None = None
        self.seen_epoch: int | None = None  # the epoch of this process's last checked batch

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(num_samples, num_classes)``, or ``None`` before the table exists."""
        return None if self.table is None else (self.table.shape[0] - 1, self.table.shape[1])

    @property
    def targets(self) -> torch.Tensor:
        """The ``(num_samples, num_classes)`` targets (a view of the table, on its device)."""
        if self.table is None:
            raise ValueError("ELR's targets do not exist yet: they are allocated when training starts.")
        return self.table[:-1]

    def allocate(self, num_samples: int, num_classes: int) -> None:
        """A table of zeros (the authors' start: a sample's first target is ``(1 − β)·p``)."""
        self.table = torch.zeros(num_samples + 1, num_classes, dtype=torch.float32, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        shared = None
        if self.table is not None:
            shared = {"targets": self.targets.detach().cpu(), "updates": self.updates, "fingerprint": self.fingerprint}
        per_rank = {} if self.seen is None else {"seen": self.seen.cpu(), "seen_epoch": self.seen_epoch}
        return {"shared": shared, "per_rank": per_rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        if shared is None:  # saved before the table existed
            return
        saved = shared["targets"]
        if self.table is not None and self.shape != tuple(saved.shape):
            raise ValueError(
                f"The checkpoint's ELR targets are {tuple(saved.shape)} (samples, classes) but this trainer's are "
                f"{self.shape}: resume with the same training set and model as the checkpoint's run."
            )
        if self.table is None:
            self.allocate(*saved.shape)
        self.targets.copy_(saved.to(self.device, torch.float32))
        self.updates = shared["updates"]
        self.fingerprint_saved = "fingerprint" in shared
        self.fingerprint = shared.get("fingerprint")
        per_rank = state["per_rank"] or {}  # None: saved by another number of processes, whose rows differ
        self.seen = per_rank["seen"].to(self.device) if "seen" in per_rank else None
        self.seen_epoch = per_rank.get("seen_epoch")
