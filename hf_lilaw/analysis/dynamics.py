"""`TrainingDynamicsRecorder`: per-sample training dynamics from the forward passes training already makes."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from .scores import TrainingDynamics

logger = logging.getLogger(__name__)

DYNAMICS_FILE_NAME = "training_dynamics.npz"


class TrainingDynamicsRecorder(TrainerCallback):
    """Keeps, for every training sample and epoch, what the classic hardness scores need.

    Add it to a `LiLAWTrainer` (``callbacks=[TrainingDynamicsRecorder()]``). The trainer hands it the logits of
    each training micro-batch it already computed, so recording costs no extra forward or backward pass: the
    margin (AUM), EL2N, correctness (forgetting), probability of the given label (Data Maps, Data-IQ), loss and
    the LiLAW weights with the α, β, δ of that step. GraNd needs per-sample gradients and is not recorded.

    Samples are identified by their ``sample_id`` column (`hf_lilaw.data` loaders add one; otherwise the trainer
    adds ``sample_id = row index`` to a `datasets.Dataset` when training starts), so identity survives shuffling,
    ``remove_unused_columns`` and multiple processes. At the end of training the processes' records are merged
    and ``dynamics`` holds the result on every process; with ``output_dir`` set it is also saved there as
    ``training_dynamics.npz`` (main process). The record is not part of checkpoints: a run resumed from one
    records the epochs from the resume on, with the earlier rows NaN.

    Args:
        output_dir: where to save the merged dynamics at the end of training; ``None`` keeps them in memory only.
    """

    def __init__(self, *, output_dir: str | None = None) -> None:
        self.output_dir = output_dir
        self.dynamics: TrainingDynamics | None = None

    def start(self, num_samples: int, *, weights: bool = True) -> None:
        """Begin a fresh record for sample ids in ``[0, num_samples)``; called by the trainer."""
        self.dynamics = TrainingDynamics.empty(num_samples, weights=weights)

    def record(self, sample_ids: torch.Tensor, stats: dict[str, torch.Tensor], *, epoch: int) -> None:
        """Store one micro-batch's `per_sample_statistics` under row ``epoch``."""
        if self.dynamics is None:
            raise RuntimeError("TrainingDynamicsRecorder.record called before start(); attach it to a LiLAWTrainer.")
        self.dynamics.record(sample_ids, stats, epoch=epoch)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.dynamics is None:
            return
        self.dynamics = merge_across_processes(self.dynamics)
        if self.output_dir and state.is_world_process_zero:
            os.makedirs(self.output_dir, exist_ok=True)
            self.dynamics.save(os.path.join(self.output_dir, DYNAMICS_FILE_NAME))


def merge_across_processes(dynamics: TrainingDynamics) -> TrainingDynamics:
    """Combine each process's partial record into the full one, identical on every process.

    Every process saw a different shard of each epoch; a sample seen by several processes in one epoch (the
    padding of an uneven last batch) gets the mean of their values.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return dynamics
    fields = {name: value for name, value in vars(dynamics).items() if value is not None}
    nccl = torch.distributed.get_backend() == "nccl"  # NCCL reduces device tensors only
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    epochs = torch.tensor([dynamics.num_epochs], device=device)
    torch.distributed.all_reduce(epochs, op=torch.distributed.ReduceOp.MAX)
    merged = {}
    for name, value in fields.items():
        full = np.full((int(epochs), dynamics.num_samples), np.nan, dtype=np.float32)
        full[: value.shape[0]] = value
        values = torch.from_numpy(full).to(device)
        seen = ~torch.isnan(values)
        total = torch.where(seen, values, torch.zeros_like(values)).double()
        count = seen.double()
        torch.distributed.all_reduce(total)
        torch.distributed.all_reduce(count)
        merged[name] = torch.where(count > 0, total / count.clamp_min(1), torch.nan).float().cpu().numpy()
    return TrainingDynamics(**merged)
