"""Everything of meta label correction that must survive a checkpoint, in one object."""

from __future__ import annotations

from typing import Any

import torch

from ..core.side_set import SideBatchSampler, SideSet
from .meta_model import LabelCorrectionNetwork

__all__ = ["MetaLabelCorrectionState"]


class MetaLabelCorrectionState:
    """The meta model, its optimizer, the number of bilevel steps and this process's position in the clean set.

    ``state_dict()`` splits it for `hf_lilaw.core.BaseTrainer`: the meta model, its optimizer and the step count are
    identical on every process (``"shared"``, saved once); the clean stream is seeded per process (``"per_rank"``,
    `SideSet.state_dict` under ``"clean_sampler"``). Without a per-rank part (resumed under another number of
    processes) the clean set moves to where its own stream stands after ``steps`` batches: one clean batch is
    drawn per step.

    Args:
        meta_model: The label correction network.
        meta_optimizer: Its optimizer.
        clean_set: The clean set (`hf_lilaw.core.side_set.SideSet`) of this process.
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
            "per_rank": {"clean_sampler": self.clean_set.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        self.meta_model.load_state_dict(shared["meta_model"])
        self.meta_optimizer.load_state_dict(shared["meta_optimizer"])
        self.steps = int(shared["steps"])
        per_rank = state.get("per_rank")
        self.clean_set.load_state_dict(None if per_rank is None else per_rank["clean_sampler"], batches_drawn=self.steps)
