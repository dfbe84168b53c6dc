"""Per-sample training dynamics: the `TrainingDynamics` record and the `TrainingDynamicsRecorder` that fills it
from the forward passes training already makes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch

from ..core.observers import TrainingDynamicsObserver
from ..functional.statistics import STATISTICS, WEIGHTS, per_sample_statistics

logger = logging.getLogger(__name__)

DYNAMICS_FILE_NAME = "training_dynamics.npz"
SAVED_AT_STEP = "saved_at_step"
"""The recorder's file also holds the optimizer step it was saved at, under this name (`TrainingDynamics.load`
skips it)."""


def _to_numpy(x: Any, dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x  # bf16/fp16 have no NumPy dtype
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def _with_rows(
    array: np.ndarray, rows: int, fill: float, *, spare: dict[str, np.ndarray] | None = None, key: str = ""
) -> np.ndarray:
    """``array`` with rows of ``fill`` added up to ``rows``; with ``spare``, as the leading rows of ``spare[key]``.

    A spare buffer that is full is replaced by one of twice the rows (the rows not yet used are left unwritten, so
    the OS commits no memory to them): a record growing epoch by epoch is copied O(log epochs) times, not every
    epoch (O(epochs² × samples) in all).
    """
    have = array.shape[0]
    buffer = None if spare is None else spare.get(key)
    if buffer is None or buffer.shape[0] < rows or array.base is not buffer:  # full, or `array` replaced since
        buffer = np.empty((rows if spare is None else max(rows, 2 * have), *array.shape[1:]), dtype=array.dtype)
        buffer[:have] = array
        if spare is not None:
            spare[key] = buffer
    grown = buffer[:rows]
    grown[have:] = fill
    return grown


def _host_values(stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``stats`` as flat float32 arrays; tensors of one shape on one device are copied to the host in one transfer
    (one device sync per micro-batch, not one per statistic)."""
    tensors = list(stats.values())
    if len(tensors) > 1 and all(isinstance(v, torch.Tensor) for v in tensors):
        if len({(v.shape, v.device) for v in tensors}) == 1:
            stacked = _to_numpy(torch.stack([v.detach().float() for v in tensors]), np.float32)
            return {name: row.reshape(-1) for name, row in zip(stats, stacked)}
    return {name: _to_numpy(value, np.float32).reshape(-1) for name, value in stats.items()}


@dataclass(eq=False)  # `==` on array fields would be ambiguous
class TrainingDynamics:
    """Per-epoch, per-sample statistics of one training run.

    Each field has shape ``(num_epochs, num_samples)``: row ``e``, column ``i`` is sample ``i``'s
    statistic in epoch ``e`` (0-based), NaN where the sample was not seen that epoch (e.g. the meta
    split). The fields are those of `per_sample_statistics`; the LiLAW weights are ``None`` for a run
    without LiLAW. Stored as float32 (epochs × samples × 9 values add up at Clothing-1M scale); the scores
    compute in float64.
    """

    prob_label: np.ndarray
    prob_max: np.ndarray
    margin: np.ndarray
    el2n: np.ndarray
    loss: np.ndarray
    correct: np.ndarray
    w_alpha: np.ndarray | None = None
    w_beta: np.ndarray | None = None
    w_delta: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                if f.name in STATISTICS:
                    raise ValueError(f"{f.name} is required; only {WEIGHTS} may be None.")
                continue
            value = np.array(_to_numpy(value, np.float32))  # a copy: `record` writes in place
            if value.ndim != 2:
                raise ValueError(f"{f.name} must have shape (num_epochs, num_samples), got {value.shape}.")
            if shape is not None and value.shape != shape:
                raise ValueError(f"{f.name} has shape {value.shape}, but the other fields have {shape}.")
            shape = value.shape
            setattr(self, f.name, value)

    def __repr__(self) -> str:
        extra = [name for name in WEIGHTS if getattr(self, name) is not None]
        return f"TrainingDynamics(num_epochs={self.num_epochs}, num_samples={self.num_samples}, extra={extra})"

    @property
    def num_epochs(self) -> int:
        return self.prob_label.shape[0]

    @property
    def num_samples(self) -> int:
        return self.prob_label.shape[1]

    @classmethod
    def empty(cls, num_samples: int, *, weights: bool = True) -> TrainingDynamics:
        """Dynamics with no epochs yet, for a recorder to fill with `record`.

        Args:
            num_samples: size of the training set (indices passed to `record` lie in ``[0, num_samples)``).
            weights: keep the LiLAW weights (``False`` for a plain, unweighted run).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be ≥ 1, got {num_samples}.")
        blank = np.empty((0, num_samples), dtype=np.float32)
        kept = STATISTICS + (WEIGHTS if weights else ())
        return cls(**{name: blank for name in kept})

    @classmethod
    def from_logits(
        cls,
        logits: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        *,
        alpha: float | np.ndarray | None = None,
        beta: float | np.ndarray | None = None,
        delta: float | np.ndarray | None = None,
    ) -> TrainingDynamics:
        """Dynamics from saved per-epoch logits.

        Args:
            logits: shape ``(num_epochs, num_samples, num_classes)``.
            labels: observed labels, shape ``(num_samples,)``, ``-100`` for samples never trained on.
            alpha, beta, delta: LiLAW scalars, one value or one per epoch; all three or none.
        """
        logits = torch.as_tensor(logits)
        if logits.ndim != 3:
            raise ValueError(
                f"logits must have shape (num_epochs, num_samples, num_classes), got {tuple(logits.shape)}."
            )
        labels = torch.as_tensor(labels)
        lilaw = {"alpha": alpha, "beta": beta, "delta": delta}
        per_epoch = {
            k: None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (logits.shape[0],))
            for k, v in lilaw.items()
        }
        dynamics = cls.empty(logits.shape[1], weights=alpha is not None)
        dynamics._grow(logits.shape[0])  # all rows at once, not one copy of the record per epoch
        index = torch.arange(logits.shape[1])
        for epoch, epoch_logits in enumerate(logits):
            kwargs = {k: None if v is None else float(v[epoch]) for k, v in per_epoch.items()}
            dynamics.record(index, per_sample_statistics(epoch_logits, labels, **kwargs), epoch=epoch)
        return dynamics

    def record(
        self, indices: torch.Tensor | np.ndarray, stats: Mapping[str, torch.Tensor | np.ndarray], *, epoch: int
    ) -> None:
        """Write one batch into row ``epoch``, adding NaN rows up to it as needed.

        Args:
            indices: dataset indices of the batch's samples, shape ``(batch,)``.
            stats: `per_sample_statistics` output (or any subset of the fields), each of shape ``(batch,)``.
            epoch: 0-based row; a sample seen twice in one epoch keeps its last value.
        """
        idx = self._checked(indices, epoch=epoch)
        names = [f.name for f in dataclasses.fields(self)]
        values = {}
        for name, value in stats.items():
            if name not in names:
                raise ValueError(f"Unknown statistic {name!r}; expected some of {names}.")
            if getattr(self, name) is None:
                raise ValueError(
                    f"These dynamics do not keep {name!r}; create them with TrainingDynamics.empty(..., weights=True)."
                )
            values[name] = _to_numpy(value, np.float32).reshape(-1)
            if values[name].shape != idx.shape:
                raise ValueError(f"{name} has {values[name].size} values for {idx.size} indices.")
        if epoch >= self.num_epochs:
            self._grow(epoch + 1)
        for name, value in values.items():
            getattr(self, name)[epoch, idx] = value

    def _grow(self, num_epochs: int, *, spare: dict[str, np.ndarray] | None = None) -> None:
        """NaN rows up to ``num_epochs``, in the buffers of ``spare`` where given (see `_with_rows`)."""
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is not None:
                setattr(self, f.name, _with_rows(getattr(self, f.name), num_epochs, np.nan, spare=spare, key=f.name))

    def _checked(self, indices: torch.Tensor | np.ndarray, *, epoch: int) -> np.ndarray:
        """``indices`` as a flat int64 array, refused unless they and ``epoch`` can address a row."""
        if epoch < 0:
            raise ValueError(f"epoch must be a 0-based row index ≥ 0, got {epoch}.")
        idx = _to_numpy(indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_samples):
            raise IndexError(f"indices must lie in [0, {self.num_samples}); pass dataset indices, not batch positions.")
        return idx

    def save(self, path: str | PathLike, *, compressed: bool = True, **extra: np.ndarray) -> None:
        """Save to an ``.npz`` file (zlib-compressed unless ``compressed=False``), with ``extra`` arrays that `load`
        skips."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        (np.savez_compressed if compressed else np.savez)(path, **arrays, **extra)

    @classmethod
    def load(cls, path: str | PathLike) -> TrainingDynamics:
        """Load what `save` wrote."""
        names = {f.name for f in dataclasses.fields(cls)}
        with np.load(path) as data:
            return cls(**{name: data[name] for name in data.files if name in names})


class TrainingDynamicsRecorder(TrainingDynamicsObserver):
    """Keeps, for every training sample and epoch, what the classic hardness scores need.

    Add it to a `LiLAWTrainer` or an `ELRTrainer` (``callbacks=[TrainingDynamicsRecorder()]``; an ELR run with
    ``elr_lambda=0.0`` is plain cross-entropy); under any other trainer it stops the run before its first step.
    The trainer hands it the statistics of each training micro-batch from the logits it already computed, so
    recording costs no extra forward or backward pass: the margin (AUM), EL2N, correctness (forgetting),
    probability of the given label (Data Maps, Data-IQ), loss and the LiLAW weights with the α, β, δ of that step.

    Samples are identified by their ``sample_id`` column (`hf_lilaw.data` loaders add one; otherwise the trainer
    adds ``sample_id = row index`` to a `datasets.Dataset` when training starts), so identity survives shuffling,
    ``remove_unused_columns`` and multiple processes. At the end of training the processes' records are merged
    and ``dynamics`` holds the result on every process; with ``output_dir`` set it is also saved there as
    ``training_dynamics.npz`` (main process), and so is the record so far whenever Trainer saves a checkpoint, both
    uncompressed (``TrainingDynamics.load(path).save(other)`` writes a compressed copy). A fresh run replaces that
    file.

    The record is not part of checkpoints: a run resumed from one records the epochs from the checkpoint on. With
    ``output_dir`` set, the epochs before the checkpoint are taken from the ``training_dynamics.npz`` already there
    (saved at the run's last checkpoint, or when it ended), so the file keeps every epoch: a checkpoint saved
    mid-epoch keeps the file's values of that epoch for the rows the resumed run did not see again (and, from a file
    saved at that checkpoint, for the epoch's first rows it sees again as padding of an uneven last batch under
    several processes), and the file's epochs after the checkpoint (a continuation the resume replaces) are
    dropped. A run killed after a checkpoint and resumed from it thus records what the uninterrupted run would have.
    A file of another shape (other sample ids, or LiLAW weights in one and not the other) is not this run's: the
    resumed run refuses to start rather than overwrite it. Without ``output_dir`` the epochs before the checkpoint
    stay NaN.

    Args:
        output_dir: where to save the merged dynamics at each checkpoint and at the end of training (and where a
            resumed run finds the epochs before its checkpoint); ``None`` keeps them in memory only.
    """

    def __init__(self, *, output_dir: str | None = None) -> None:
        self.output_dir = output_dir
        self.dynamics: TrainingDynamics | None = None
        # the file's record, the epoch resumed at, whether the file was saved at the checkpoint resumed from
        self._earlier: tuple[TrainingDynamics, float, bool] | None = None
        # When this process recorded each value (the number of its `record` call; -1: not yet), shape
        # (num_epochs, num_samples): the distributed sampler pads an uneven last batch with the epoch's first rows,
        # and a sample keeps its first visit of an epoch, as one process records it. int32 (half the memory of int64,
        # a ninth of the record's) until the count outgrows it.
        self._order = np.empty((0, 0), dtype=np.int32)
        self._calls = 0
        self._spare: dict[str, np.ndarray] = {}  # the buffers the record and `_order` are the leading rows of

    def start(self, num_samples: int, *, weights: bool = True) -> None:
        """Begin a fresh record for sample ids in ``[0, num_samples)``; called by the trainer."""
        self.dynamics = TrainingDynamics.empty(num_samples, weights=weights)
        self._order = np.empty((0, num_samples), dtype=np.int32)
        self._calls = 0
        self._spare = {}

    def record(self, sample_ids: torch.Tensor, stats: dict[str, torch.Tensor], *, epoch: int) -> None:
        """Store one micro-batch's `per_sample_statistics` under row ``epoch``; a sample already recorded in that
        epoch (a padded copy) keeps its first value."""
        if self.dynamics is None:
            raise RuntimeError(
                "TrainingDynamicsRecorder.record called before start(); attach it to a LiLAWTrainer or an ELRTrainer."
            )
        ids = self.dynamics._checked(sample_ids, epoch=epoch)
        values = _host_values(stats)
        if any(value.shape != ids.shape for value in values.values()):
            self.dynamics.record(ids, values, epoch=epoch)  # refuses, naming the statistic
        if epoch >= len(self._order):
            self.dynamics._grow(epoch + 1, spare=self._spare)
            self._order = _with_rows(self._order, epoch + 1, -1, spare=self._spare, key="order")
        _, first = np.unique(ids, return_index=True)
        first = np.sort(first[self._order[epoch, ids[first]] < 0])
        self.dynamics.record(ids[first], {name: value[first] for name, value in values.items()}, epoch=epoch)
        if self._calls > np.iinfo(self._order.dtype).max:
            self._order = self._order.astype(np.int64)
        self._order[epoch, ids[first]] = self._calls
        self._calls += 1

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        self._earlier = None
        path = os.path.join(self.output_dir, DYNAMICS_FILE_NAME) if self.output_dir else None
        # Trainer has loaded the checkpoint's state by now: a step above 0 means a resumed run.
        if state.global_step and path and os.path.isfile(path) and self.dynamics is not None:
            earlier, saved_at = _earlier_record(path, like=self.dynamics)
            self._earlier = earlier, float(state.epoch or 0), saved_at == state.global_step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The record so far, for a run killed after this checkpoint to resume with: the in-memory record stays
        # this process's own until the end.
        if self.dynamics is not None and self.output_dir:
            self._save(self._merged(), state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.dynamics is None:
            return
        self.dynamics = self._released(self._merged())
        self._earlier = None
        if self.output_dir:
            self._save(self.dynamics, state)

    def _released(self, dynamics: TrainingDynamics) -> TrainingDynamics:
        """``dynamics`` with arrays of its own and the spare growth buffers freed: a record that is still their
        leading rows (one process) would keep up to twice its memory alive for as long as the user holds it."""
        buffers = {id(buffer) for buffer in self._spare.values()}
        views = any(value is not None and id(value.base) in buffers for value in vars(dynamics).values())
        if id(self._order.base) in buffers:
            self._order = self._order.copy()
        self._spare = {}
        return dataclasses.replace(dynamics) if views else dynamics  # a new record copies its arrays

    def _merged(self) -> TrainingDynamics:
        """Every process's record (a collective: all processes call it), with the epochs before a resume."""
        merged = merge_across_processes(self.dynamics, order=self._order)
        return merged if self._earlier is None else _with_earlier_epochs(merged, *self._earlier)

    def _save(self, dynamics: TrainingDynamics, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        # Whole or not at all: a kill while saving must leave the previous save's record, not a cut file.
        temporary = os.path.join(self.output_dir, f".{DYNAMICS_FILE_NAME}.{os.getpid()}.tmp.npz")
        try:
            # Uncompressed: the float32 statistics hardly compress (about a quarter smaller), while zlib took
            # hundreds of times as long as the write, at every checkpoint, for a record of epochs × samples.
            dynamics.save(temporary, compressed=False, **{SAVED_AT_STEP: np.int64(state.global_step)})
            os.replace(temporary, os.path.join(self.output_dir, DYNAMICS_FILE_NAME))
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise


def _earlier_record(path: str, *, like: TrainingDynamics) -> tuple[TrainingDynamics, int | None]:
    """The record a resumed run continues and the step it was saved at (``None``: not said): ``path`` loaded,
    refused unless it has ``like``'s samples and fields."""
    fix = (
        "Move it elsewhere (or delete it) to keep it apart from this run, or give TrainingDynamicsRecorder "
        "another output_dir."
    )
    try:
        earlier = TrainingDynamics.load(path)
        with np.load(path) as data:
            saved_at = int(data[SAVED_AT_STEP]) if SAVED_AT_STEP in data.files else None
    except Exception as error:  # NumPy raises OSError, ValueError, KeyError or zipfile errors for a damaged file
        raise ValueError(
            f"Cannot read {path}, the training dynamics this resumed run would continue ({error}). {fix}"
        ) from error
    fields = [name for name in WEIGHTS if getattr(like, name) is not None]
    kept = [name for name in WEIGHTS if getattr(earlier, name) is not None]
    if earlier.num_samples != like.num_samples or kept != fields:
        raise ValueError(
            f"{path} holds the training dynamics of {earlier.num_samples} sample ids, {'with' if kept else 'without'} "
            f"LiLAW weights; this resumed run records {like.num_samples}, {'with' if fields else 'without'}: it is not "
            f"this run's record, and the run would overwrite it when it ends. {fix}"
        )
    return earlier, saved_at


def _with_earlier_epochs(
    dynamics: TrainingDynamics, earlier: TrainingDynamics, resumed_at: float, at_checkpoint: bool = False
) -> TrainingDynamics:
    """``dynamics`` of a run resumed at epoch ``resumed_at``, with ``earlier``'s rows of the epochs before it.

    ``at_checkpoint``: ``earlier`` was saved at the checkpoint resumed from, so its values of a checkpoint's epoch
    are first visits, and win over the resumed run's (there, the padded copies of an uneven last batch).
    """
    first = int(resumed_at)  # the row the resumed run recorded into first
    keep = min(earlier.num_epochs, first + (resumed_at > first))  # with the checkpoint's epoch when it was mid-epoch
    if keep == 0:
        return dynamics
    merged = {}
    for f in dataclasses.fields(dynamics):
        value = getattr(dynamics, f.name)
        if value is None:
            continue
        full = np.full((max(dynamics.num_epochs, keep), dynamics.num_samples), np.nan, dtype=np.float32)
        full[: value.shape[0]] = value
        full[:keep] = np.where(np.isnan(full[:keep]), getattr(earlier, f.name)[:keep], full[:keep])
        if at_checkpoint and keep > first:
            before = getattr(earlier, f.name)[first]
            full[first] = np.where(np.isnan(before), full[first], before)
        merged[f.name] = full
    return TrainingDynamics(**merged)


def merge_across_processes(dynamics: TrainingDynamics, *, order: np.ndarray | None = None) -> TrainingDynamics:
    """Combine each process's partial record into the full one, identical on every process.

    Every process saw a different shard of each epoch. A sample seen by several processes in one epoch (the
    distributed sampler pads an uneven last batch with the epoch's first rows) keeps its first value there, where
    ``order`` says when each process recorded each value (shape ``(num_epochs, num_samples)``, smaller = earlier,
    -1 = not recorded; the same count on every process), the value of the lowest process where two tie; without
    ``order``, the mean of their values.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return dynamics
    fields = {name: value for name, value in vars(dynamics).items() if value is not None}
    nccl = torch.distributed.get_backend() == "nccl"  # NCCL reduces device tensors only
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    epochs = torch.tensor([dynamics.num_epochs], device=device)
    torch.distributed.all_reduce(epochs, op=torch.distributed.ReduceOp.MAX)
    first = None
    if order is not None:
        if order.shape != (dynamics.num_epochs, dynamics.num_samples):
            raise ValueError(f"order has shape {order.shape}; the dynamics have {dynamics.prob_label.shape}.")
        # (when, process) as one number; the earliest visit of each (epoch, sample) is the one kept
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        full = np.full((int(epochs), dynamics.num_samples), np.iinfo(np.int64).max, dtype=np.int64)
        full[: order.shape[0]] = np.where(order < 0, np.iinfo(np.int64).max, order.astype(np.int64) * world + rank)
        visit = torch.from_numpy(full).to(device)
        earliest = visit.clone()
        torch.distributed.all_reduce(earliest, op=torch.distributed.ReduceOp.MIN)
        first = (visit == earliest).cpu().numpy()
    merged = {}
    for name, value in fields.items():
        full = np.full((int(epochs), dynamics.num_samples), np.nan, dtype=np.float32)
        full[: value.shape[0]] = value
        if first is not None:
            full[~first] = np.nan  # another process's earlier visit, or nobody's
        values = torch.from_numpy(full).to(device)
        seen = ~torch.isnan(values)
        total = torch.where(seen, values, torch.zeros_like(values)).double()
        count = seen.double()
        torch.distributed.all_reduce(total)
        torch.distributed.all_reduce(count)
        merged[name] = torch.where(count > 0, total / count.clamp_min(1), torch.nan).float().cpu().numpy()
    return TrainingDynamics(**merged)
