"""What a trainer hands to callbacks that watch every training sample (e.g. a training-dynamics recorder).

Defined here, in the trainer machinery, so that the trainers never import the tools built on top of them:
`hf_lilaw.analysis.TrainingDynamicsRecorder` subclasses `TrainingDynamicsObserver`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

RECORDING_TRAINERS = (
    "hf_lilaw.LiLAWTrainer or hf_lilaw.ELRTrainer (ELRConfig(elr_lambda=0.0) trains with plain cross-entropy)"
)
"""The trainer families that hand observers their statistics, as error messages name them."""


class TrainingDynamicsObserver(TrainerCallback):
    """A callback that receives per-sample statistics of every training micro-batch.

    A `BaseTrainer` family that records them finds these among its callbacks when training starts, gives its
    training set a ``sample_id`` column, calls `begin` (which calls `start`), then `record` for each micro-batch
    with the statistics it computed from the forward pass training already made. Any other trainer never calls
    `begin`, and the observer stops that run at ``on_train_begin``, before its first step, instead of ending it
    with nothing recorded.
    """

    _begun = False

    def begin(self, num_samples: int, *, weights: bool) -> None:
        """Called by the trainer before each run: `start` a fresh record (subclasses override `start`, not this)."""
        self._begun = True
        self.start(num_samples, weights=weights)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        begun, self._begun = self._begun, False  # the next run must be begun again
        if not begun:
            raise ValueError(
                f"{type(self).__name__} gets its per-sample statistics from the trainer, and this trainer hands it "
                f"none: attach it to {RECORDING_TRAINERS}."
            )

    def start(self, num_samples: int, *, weights: bool) -> None:
        """Begin a fresh record for sample ids in ``[0, num_samples)``; ``weights``: LiLAW weights are recorded."""
        raise NotImplementedError

    def record(self, sample_ids: torch.Tensor, stats: dict[str, torch.Tensor], *, epoch: int) -> None:
        """Store one micro-batch's `hf_lilaw.functional.statistics.per_sample_statistics` under row ``epoch``."""
        raise NotImplementedError

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        return None
