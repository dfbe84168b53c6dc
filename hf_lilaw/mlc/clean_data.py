"""An endless, seeded, resumable stream of clean-set index batches."""

from typing import Any

import numpy as np

__all__ = ["CleanBatchSampler"]


class CleanBatchSampler:
    """Yields batches of clean-set indices forever, reshuffling at every pass.

    Batch `k` depends only on `(seed, k)`: pass `e = k // (num_samples // batch_size)` is a permutation drawn from
    its own generator seeded with `(seed, e)`, and the last incomplete batch of a pass is dropped. The whole state is
    the number of batches drawn, so a resumed run continues the exact stream.

    Args:
        num_samples: Size of the clean set.
        batch_size: Indices per batch, at most `num_samples`.
        seed: Seed of the stream (use `args.seed + process_index` so that processes draw different batches).
    """

    def __init__(self, num_samples: int, *, batch_size: int, seed: int):
        if batch_size > num_samples:
            raise ValueError(
                f"mlc_clean_batch_size ({batch_size}) is larger than the clean set ({num_samples} examples): "
                "pass a smaller mlc_clean_batch_size or a larger clean_dataset."
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.batches_drawn = 0
        self._batches_per_pass = num_samples // batch_size
        self._pass: int | None = None
        self._order: np.ndarray | None = None

    def __iter__(self) -> "CleanBatchSampler":
        return self

    def __next__(self) -> list[int]:
        pass_index, position = divmod(self.batches_drawn, self._batches_per_pass)
        if pass_index != self._pass:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, pass_index]))
            self._pass, self._order = pass_index, rng.permutation(self.num_samples)
        self.batches_drawn += 1
        start = position * self.batch_size
        return self._order[start : start + self.batch_size].tolist()

    def state_dict(self) -> dict[str, Any]:
        """The stream position and the settings it depends on."""
        return {
            "batches_drawn": self.batches_drawn,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream of `state`; the settings must match the ones this sampler was built with."""
        settings = ("num_samples", "batch_size", "seed")
        mismatch = {k: (state[k], getattr(self, k)) for k in settings if state.get(k) != getattr(self, k)}
        if mismatch:
            raise ValueError(
                f"The clean sampler state does not match this run (saved, current): {mismatch}. Resume with the same "
                "clean_dataset, mlc_clean_batch_size, seed and number of processes."
            )
        self.batches_drawn = int(state["batches_drawn"])
