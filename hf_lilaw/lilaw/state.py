"""What LiLAW keeps across a checkpoint, in one object (the meta set's position is saved beside it)."""

from __future__ import annotations

from typing import Any

import torch

from ..core.side_set import SideBatchSampler, SideSet

PARAMETER_NAMES = ("alpha", "beta", "delta")


class LiLAWState:
    """The scalars α, β, δ and the meta-step bookkeeping.

    ``state_dict()`` is ``"shared"`` for `hf_lilaw.core.BaseTrainer`: α, β, δ and the counters are identical on every
    process (the meta gradient is averaged across processes). The meta set's position, this process's own, is
    saved beside it by the trainer (registered as ``"sampler"`` of the per-process part; see
    `BaseTrainer.register_side_set`).

    Args:
        initial: initial ``(α, β, δ)``.
        meta_set: the meta set (`hf_lilaw.core.side_set.SideSet`), whose sampler `sampler` shows.
        device: where the scalars live (the model's device, so the meta step needs no host sync).
    """

    def __init__(
        self,
        initial: tuple[float, float, float],
        meta_set: SideSet,
        device: torch.device,
    ) -> None:
        self.params = torch.tensor(initial, dtype=torch.float32, device=device)
        self.meta_set = meta_set
        self.meta_steps = 0
        # A tensor, so skipping a non-finite meta step never forces a device sync.
        self.skipped_meta_steps = torch.zeros((), dtype=torch.long, device=device)
        # Global step seen by the last training micro-batch, and whether that optimizer step is weighted
        # (past the warm-up; then a meta step follows it): see LiLAWTrainer.training_step.
        self.last_step_seen = -1
        self.current_step_weighted = False

    @property
    def sampler(self) -> SideBatchSampler:
        """The meta set's sampler."""
        return self.meta_set.sampler

    def parameters(self) -> dict[str, float]:
        return dict(zip(PARAMETER_NAMES, self.params.tolist()))

    def restart(self) -> None:
        """Forget the step bookkeeping of a previous `train()` call (the scalars and the sampler carry on)."""
        self.last_step_seen, self.current_step_weighted = -1, False

    def state_dict(self) -> dict[str, Any]:
        return {
            "shared": {
                "params": self.params.detach().cpu(),
                "parameters": self.parameters(),  # readable copy for people inspecting the file
                "meta_steps": self.meta_steps,
                "skipped_meta_steps": int(self.skipped_meta_steps),
                "last_step_seen": self.last_step_seen,
                "current_step_weighted": self.current_step_weighted,
            },
            "per_rank": {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        self.params = shared["params"].to(self.params.device, torch.float32)
        self.meta_steps = shared["meta_steps"]
        self.skipped_meta_steps.fill_(shared["skipped_meta_steps"])
        self.last_step_seen = shared["last_step_seen"]
        self.current_step_weighted = shared["current_step_weighted"]
