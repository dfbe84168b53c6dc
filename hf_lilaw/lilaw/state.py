"""Everything of LiLAW that must survive a checkpoint, in one object."""

from __future__ import annotations

from typing import Any

import torch

from ..core.sampler import MetaBatchSampler, StreamedMetaBatches

PARAMETER_NAMES = ("alpha", "beta", "delta")


class LiLAWState:
    """The scalars α, β, δ, the meta-step bookkeeping and this process's meta sampler.

    Args:
        initial: initial ``(α, β, δ)``.
        sampler: this process's meta batch sampler (indices of a map-style set, or examples of a stream).
        device: where the scalars live (the model's device, so the meta step needs no host sync).
    """

    def __init__(
        self,
        initial: tuple[float, float, float],
        sampler: MetaBatchSampler | StreamedMetaBatches,
        device: torch.device,
    ) -> None:
        self.params = torch.tensor(initial, dtype=torch.float32, device=device)
        self.sampler = sampler
        self.meta_steps = 0
        # A tensor, so skipping a non-finite meta step never forces a device sync.
        self.skipped_meta_steps = torch.zeros((), dtype=torch.long, device=device)
        # Global step seen by the last training micro-batch, and whether that optimizer step is weighted
        # (past the warm-up; then a meta step follows it): see LiLAWTrainer.training_step.
        self.last_step_seen = -1
        self.current_step_weighted = False

    def parameters(self) -> dict[str, float]:
        return dict(zip(PARAMETER_NAMES, self.params.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.detach().cpu(),
            "parameters": self.parameters(),  # readable copy for people inspecting the file
            "meta_steps": self.meta_steps,
            "skipped_meta_steps": int(self.skipped_meta_steps),
            "last_step_seen": self.last_step_seen,
            "current_step_weighted": self.current_step_weighted,
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params = state["params"].to(self.params.device, torch.float32)
        self.meta_steps = state["meta_steps"]
        self.skipped_meta_steps.fill_(state["skipped_meta_steps"])
        self.last_step_seen = state["last_step_seen"]
        self.current_step_weighted = state["current_step_weighted"]
        self.sampler.load_state_dict(state["sampler"])
