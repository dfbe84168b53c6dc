"""Everything of meta label correction that must survive a checkpoint, in one object."""

from __future__ import annotations

from typing import Any

import torch

from ..core.sampler import IndexBatchSampler, StreamedBatches
from ..core.training_state import restore_side_sampler
from .meta_model import LabelCorrectionNetwork

__all__ = ["MetaLabelCorrectionState"]


class MetaLabelCorrectionState:
    """The meta model, its optimizer, the number of bilevel steps and this process's clean-batch stream.

    ``state_dict()`` splits it for `hf_lilaw.core.BaseTrainer`: the meta model, its optimizer and the step count are
    identical on every process (``"shared"``, saved once); the clean stream is seeded per process (``"per_rank"``).
    Without a per-rank part (resumed under another number of processes) the stream is moved to where its own
    sequence stands after ``steps`` batches: one clean batch is drawn per step.

    Args:
        meta_model: The label correction network.
        meta_optimizer: Its optimizer.
        clean_sampler: This process's clean-batch stream.
    """

    def __init__(
        self,
        *,
        meta_model: LabelCorrectionNetwork,
        meta_optimizer: torch.optim.Optimizer,
        clean_sampler: IndexBatchSampler | StreamedBatches,
    ):
        self.meta_model = meta_model
        self.meta_optimizer = meta_optimizer
        self.clean_sampler = clean_sampler
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "shared": {
                "meta_model": self.meta_model.state_dict(),
                "meta_optimizer": self.meta_optimizer.state_dict(),
                "steps": self.steps,
            },
            "per_rank": {"clean_sampler": self.clean_sampler.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        self.meta_model.load_state_dict(shared["meta_model"])
        self.meta_optimizer.load_state_dict(shared["meta_optimizer"])
        self.steps = int(shared["steps"])
        restore_side_sampler(self.clean_sampler, state, key="clean_sampler", batches_drawn=self.steps)
