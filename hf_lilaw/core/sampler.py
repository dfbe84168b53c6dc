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


class StreamedMetaBatches:
    """Meta batches from an iterable (streamed) meta set, for data that has no length or random access.

    Each pass over the stream is shuffled with a seeded buffer when the stream supports it
    (`datasets.IterableDataset`), and a batch may straddle two passes. The state is the pass number and the
    examples consumed in it, so a resumed run re-opens the same pass and skips what was already drawn.

    Args:
        dataset: a `datasets.IterableDataset` or any iterable of examples.
        batch_size: examples per batch.
        seed: seed of the shuffle; give each process its own.
        buffer_size: shuffle buffer of a `datasets.IterableDataset`.
    """

    def __init__(self, dataset: Any, batch_size: int, seed: int, buffer_size: int = 1000) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.buffer_size = buffer_size
        self.epoch = 0
        self.consumed = 0
        self._iterator: Any = None

    def _open(self) -> None:
        stream = self.dataset
        if hasattr(stream, "shuffle"):
            stream = stream.shuffle(seed=self.seed + self.epoch, buffer_size=self.buffer_size)
        self._iterator = iter(stream)
        for _ in range(self.consumed):
            next(self._iterator)

    def next_batch(self) -> list[Any]:
        """The next ``batch_size`` examples."""
        if self._iterator is None:
            self._open()
        batch: list[Any] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(next(self._iterator))
                self.consumed += 1
            except StopIteration:
                if self.consumed == 0:
                    raise ValueError("The streamed meta set yielded no examples; pass a non-empty meta_dataset.")
                self.epoch, self.consumed = self.epoch + 1, 0
                self._open()
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError("The checkpoint's streamed meta sampler used another seed; resume with the same lilaw_seed.")
        self.epoch, self.consumed = state["epoch"], state["consumed"]
        self._iterator = None
