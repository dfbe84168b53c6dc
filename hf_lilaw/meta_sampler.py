"""Random meta batches with a resumable position: LiLAW's "choose a random batch from the meta set"."""

from __future__ import annotations

from typing import Any

import torch


class MetaBatchSampler:
    """Draws index batches from ``range(num_samples)`` without replacement, reshuffling after each pass.

    It owns its ``torch.Generator``, so drawing meta batches never shifts the global RNG that drives
    the training data order and dropout: a LiLAW run sees the same training batches as a plain one.

    Args:
        num_samples: size of the meta set.
        batch_size: indices per batch (capped at ``num_samples``).
        seed: seed of the generator; give each process its own so ranks draw different batches.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int) -> None:
        if num_samples < 1:
            raise ValueError("The meta set is empty; pass a non-empty meta_dataset or raise lilaw_meta_fraction.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.num_samples = num_samples
        self.batch_size = min(batch_size, num_samples)
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(num_samples, generator=self.generator)
        self.position = 0

    def next_batch(self) -> list[int]:
        """Indices of the next meta batch; a batch never straddles two passes."""
        if self.position + self.batch_size > self.num_samples:
            self.permutation = torch.randperm(self.num_samples, generator=self.generator)
            self.position = 0
        batch = self.permutation[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch.tolist()

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_samples"] != self.num_samples:
            raise ValueError(
                f"The checkpoint's meta sampler covers {state['num_samples']} meta samples but this meta set has "
                f"{self.num_samples}. Resume with the same meta_dataset (and lilaw_meta_fraction/lilaw_seed)."
            )
        self.batch_size = state["batch_size"]
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = state["position"]
