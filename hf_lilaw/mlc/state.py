"""What meta label correction keeps across a checkpoint, in one object (the clean set's position is saved beside
it)."""

from __future__ import annotations

from typing import Any

import torch

from ..core.side_set import SideBatchSampler, SideSet
from .meta_model import LabelCorrectionNetwork

__all__ = ["MetaLabelCorrectionState"]


class MetaLabelCorrectionState:
    """The meta model, its optimizer and the number of bilevel steps.

    ``state_dict()`` is ``"shared"`` for `hf_lilaw.core.BaseTrainer`: the meta model, its optimizer and the step
    count are identical on every process (saved once). The clean set's position, seeded per process, is saved
    beside it by the trainer (registered as ``"clean_sampler"`` of the per-process part; see
    `BaseTrainer.register_side_set`).

    Args:
        meta_model: The label correction network.
        meta_optimizer: Its optimizer.
        clean_set: The clean set (`hf_lilaw.core.side_set.SideSet`), whose sampler `clean_sampler` shows.
    """

    def __init__(
        self,
        *,
        meta_model: LabelCorrectionNetwork,
        meta_optimizer: torch.optim.Optimizer,
        clean_set: SideSet,
    ):
        self.meta_model = meta_model
        self.meta_optimizer = meta_optimizer
        self.clean_set = clean_set
        self.steps = 0

    @property
    def clean_sampler(self) -> SideBatchSampler:
        """The clean set's sampler."""
        return self.clean_set.sampler

    def state_dict(self) -> dict[str, Any]:
        return {
            "shared": {
                "meta_model": self.meta_model.state_dict(),
                "meta_optimizer": self.meta_optimizer.state_dict(),
                "steps": self.steps,
            },
            "per_rank": {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        self.meta_model.load_state_dict(shared["meta_model"])
        self.meta_optimizer.load_state_dict(shared["meta_optimizer"])
        self.steps = int(shared["steps"])
