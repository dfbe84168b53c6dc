"""`ELRTrainer`: `transformers.Trainer` with early-learning regularisation (Liu et al., NeurIPS 2020)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import datasets
import numpy as np
import psutil
import torch
from torch import nn
from transformers import DefaultDataCollator, TrainerCallback, TrainingArguments, default_data_collator
from transformers.trainer_utils import has_length

from ..core.base_trainer import BaseTrainer
from ..core.columns import SAMPLE_ID_COLUMN, column_array, unique_sample_ids, with_sample_id
from ..core.model_card import format_value, settings_as_code
from ..core.outputs import extract_logits
from ..functional.elr import elr_loss
from ..functional.losses import IGNORE_INDEX, per_sample_loss
from ..functional.statistics import per_sample_statistics
from .config import ELRConfig
from .state import ELRState

logger = logging.getLogger(__name__)

ELR_STATE_NAME = "elr_state.pt"
"""The ELR state file of a checkpoint (the targets, written once: they are identical on every process)."""

MEMORY_SHARE = 0.5
"""The targets may take at most this share of the free memory where they live; the rest is the training step's
(activations, gradients, optimizer state allocated at the first step)."""

ELR_CITATION = """\
@inproceedings{liu2020early,
  title     = {Early-Learning Regularization Prevents Memorization of Noisy Labels},
  author    = {Liu, Sheng and Niles-Weed, Jonathan and Razavian, Narges and Fernandez-Granda, Carlos},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {33},
  year      = {2020}
}"""

_METRIC_NAMES = ("elr/ce", "elr/reg")


def free_memory_bytes(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``: CUDA's free memory, or the host's available RAM for the CPU;
    ``None`` where it cannot be told (then nothing is refused)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        return psutil.virtual_memory().available
    return None


class ELRTrainer(BaseTrainer):
    """A drop-in `Trainer` that adds early-learning regularisation to the cross-entropy (method page:
    ``docs/elr.md``).

    Each training sample ``i`` has a target ``t_i``, a running average of the model's own predictions for it
    (``t_i ← β·t_i + (1 − β)·p_i``, updated from the training forward, no extra one); its loss is
    ``CE_i + λ·log(1 − ⟨p_i, t_i⟩)``, which keeps the model's later predictions close to what it predicted early,
    before it could memorise wrong labels. The targets are indexed by the ``sample_id`` column (added to a
    `datasets.Dataset` automatically), saved in every checkpoint and identical on every process.

    Args:
        All arguments are those of `transformers.Trainer`. ``args`` may be an `ELRConfig` or a plain
        `TrainingArguments` (converted to an `ELRConfig` with ELR's defaults). ``train_dataset``: a
        `datasets.Dataset`, or any other data set (streamed too) whose examples carry ``sample_id`` in
        ``[0, elr_num_samples)``. ``compute_loss_func`` is not accepted: ELR owns the loss.
    """

    config_class = ELRConfig
    method_name = "ELR"
    resume_free_settings = frozenset({"elr_targets_on_cpu"})
    owned_loss = (
        "ELR's regularised loss",
        "the logs and the model card described ELR",
        "ELR adds its regulariser to the cross-entropy of the logits itself (label_smoothing_factor applies): remove "
        "the override (or return super().compute_loss(...) from it); for another loss use transformers.Trainer.",
    )
    _tag_names = ["elr", "hf_lilaw"]
    _records_training_dynamics = True
    args: ELRConfig

    @classmethod
    def validate_config(cls, args: TrainingArguments) -> None:
        args._validate_elr()

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        model_init: Callable[..., nn.Module] | None = None,
        compute_loss_func: Callable | None = None,
        compute_metrics: Callable | None = None,
        callbacks: list | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if compute_loss_func is not None:
            raise ValueError(
                "ELRTrainer computes its own loss (cross-entropy + λ·log(1 − ⟨p, t⟩)), so it does not take "
                "compute_loss_func. Set elr_lambda=0 for plain cross-entropy, or use transformers.Trainer."
            )
        args = self.coerce_args(args)
        self.check_train_dataset(train_dataset)
        # Trainer's default collator makes the same int64 tensor of plain ints
        default_collator = data_collator is None or data_collator is default_data_collator or isinstance(
            data_collator, DefaultDataCollator
        )
        num_samples = None
        if train_dataset is not None:
            train_dataset, num_samples = _identified(train_dataset, args.elr_num_samples, unformat=default_collator)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            model_init=model_init,
            compute_loss_func=self._elr_loss,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        self._num_samples = num_samples
        self._default_collator = default_collator
        self._identified_set = self.train_dataset  # a set assigned later is identified by before_train
        self._exchange_updates = self.accelerator.num_processes > 1  # one process: no exchange, not even a check
        self._passes = _CountPasses()
        self.add_callback(self._passes)
        self.elr_state = ELRState(torch.device("cpu") if self.args.elr_targets_on_cpu else self.args.device)
        self.register_training_state(self.elr_state, name=ELR_STATE_NAME.removesuffix(".pt"), what="ELR targets")

    @property
    def _check_ids_per_batch(self) -> bool:
        """Ids of a `datasets.Dataset` are checked in full up front; any other set's batch by batch (one host
        sync)."""
        return not isinstance(self.train_dataset, datasets.Dataset)

    # ---- public API -------------------------------------------------------------------------------------

    def elr_targets(self) -> torch.Tensor:
        """A copy of the ``(num_samples, num_classes)`` float32 targets on the CPU; row ``i`` is the sample whose
        ``sample_id`` is ``i`` (zeros for a sample not trained on yet)."""
        return self.elr_state.targets.detach().to("cpu", copy=True)

    # ---- the loss ------------------------------------------------------------------------------------------

    def _elr_loss(
        self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        if labels is None:
            raise ValueError(
                "ELRTrainer got a batch without labels. Keep the label column (named 'label' or 'labels') in the "
                "data set; with a custom collator, return it as 'labels'."
            )
        logits = extract_logits(outputs)
        if self._in_training_step:
            self.mark_owned_loss()
            losses = self._training_losses(logits, labels)
        else:  # evaluation: plain cross-entropy, comparable with Trainer's eval_loss
            losses = per_sample_loss(logits, labels, label_smoothing=self.args.label_smoothing_factor)
        return self.reduce_owned_loss(losses, labels, num_items_in_batch)

    def _training_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        state = self.elr_state
        if state.table is None:
            raise ValueError("ELR's targets were never allocated: train through ELRTrainer.train().")
        if self.check_first_batch(logits, labels) and logits.shape[-1] != state.shape[1]:
            raise ValueError(
                f"The model outputs {logits.shape[-1]} classes but ELR's targets have {state.shape[1]} (from the "
                "checkpoint or the first train() call): train with the model the targets were made for."
            )
        ids = self._batch_ids(len(labels))  # on the table's device
        rows = state.table.index_select(0, ids)
        if rows.device != logits.device:
            rows = rows.to(logits.device, non_blocking=True)
        args = self.args
        terms = elr_loss(logits, labels, rows, elr_lambda=args.elr_lambda, beta=args.elr_beta,
                         label_smoothing=args.label_smoothing_factor)  # fmt: skip
        self._write_targets(ids, terms.targets)
        labelled = (labels != IGNORE_INDEX).float()
        self.accumulate_metric_sums(_METRIC_NAMES, torch.stack([terms.ce.detach(), terms.reg.detach(), labelled]).sum(1))
        if self.records_dynamics:
            self.record_dynamics(per_sample_statistics(logits, labels))
        return terms.loss

    def _batch_ids(self, batch_size: int) -> torch.Tensor:
        """The batch's sample ids: int64, one per example, on the device of the targets."""
        ids = self._batch_sample_ids
        if ids is None:
            raise ValueError(
                f"ELR needs each training batch to carry '{SAMPLE_ID_COLUMN}' (which row of the targets a sample "
                "is). With set_transform/with_transform, return that column from your transform "
                "(hf_lilaw.data.image_transforms passes it through); with a custom collator, keep it."
            )
        if not isinstance(ids, torch.Tensor):
            ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            ids = ids.reshape(-1)
        if ids.dtype != torch.long:
            ids = ids.long()
        if ids.shape[0] != batch_size:
            raise ValueError(
                f"The training batch has {batch_size} labels but {ids.shape[0]} '{SAMPLE_ID_COLUMN}' values: the "
                "collator must keep one id per example."
            )
        device = self.elr_state.device
        if ids.device != device:
            ids = ids.to(device)
        if self._check_ids_per_batch:
            self._check_batch_ids(ids)
        return ids

    def _check_batch_ids(self, ids: torch.Tensor) -> None:
        """Refuse ids outside the table or seen before in this epoch (two samples sharing one target), with one
        host sync. Under several processes a process's first batch of an epoch is not held against it: the
        sampler pads the epoch's last batches with the epoch's first samples."""
        state = self.elr_state
        num_samples = state.shape[0]
        # A streamed set's passes are Trainer's epochs, but its state.epoch (sized by max_steps) does not count them.
        epoch = int(self.state.epoch or 0) if has_length(self.train_dataset) else self._passes.passes
        first = epoch != state.seen_epoch
        state.seen_epoch = epoch
        safe = ids.clamp(0, num_samples)  # the sink row for ids outside, refused below
        previous = state.seen.index_select(0, safe)
        repeated = previous == 2 * epoch + 2
        if not self._exchange_updates:
            repeated |= previous == 2 * epoch + 1
        found = torch.where(repeated, ids, -1).max()
        if len(ids) > 1 and not (self._exchange_updates and first):  # the same id twice in this batch
            ordered = torch.sort(safe).values
            found = torch.maximum(found, torch.where(ordered[1:] == ordered[:-1], ordered[1:], -1).max())
        low, high, repeat = (int(v) for v in torch.stack([ids.min(), ids.max(), found]).tolist())
        if low < 0 or high >= num_samples:
            raise ValueError(
                f"A training batch has {SAMPLE_ID_COLUMN} values in [{low}, {high}] but ELR's targets have "
                f"{num_samples} rows: ids must lie in [0, {num_samples}). Set elr_num_samples to the number of "
                "samples (the largest id + 1)."
            )
        if repeat >= 0:
            raise ValueError(
                f"Two training examples of epoch {epoch} carry {SAMPLE_ID_COLUMN} {repeat}: they would share one ELR "
                "target. Ids must be unique across the whole training set; parts joined together (a torch "
                "ConcatDataset, concatenated streams) that were each numbered from 0 repeat them: offset each later "
                "part's ids by the sizes of the parts before it (e.g. part.map(lambda r: {'sample_id': "
                "r['sample_id'] + offset})), or join datasets.Dataset parts first and number the result."
            )
        state.seen.index_fill_(0, safe, 2 * epoch + (1 if first else 2))

    def _write_targets(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Store the batch's updated targets; under several processes every process's rows, on every process."""
        state = self.elr_state
        if self._exchange_updates:
            ids, rows = self._gather_updates(ids, rows)
            ids = ids.to(state.device)
        if rows.device != state.device:
            rows = rows.to(state.device)
        state.table.index_copy_(0, ids, rows)
        state.updates += 1

    def _gather_updates(self, ids: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every process's ``(ids, rows)``, in one collective of a fixed shape and without a host sync: each
        process pads its batch to the per-device batch size with the table's sink row, ids and rows travel in one
        float64 tensor (exact for both), and a sample sent by two processes (the sampler pads the last batch with
        samples from the start) keeps the rows of the last one, the same choice on every process."""
        state = self.elr_state
        sink = state.shape[0]
        bound = self._train_batch_size
        count = ids.shape[0]
        if count > bound:
            raise ValueError(
                f"A training batch has {count} examples, more than the per-device batch size {bound}: ELR sizes its "
                "cross-process exchange by the batch size. Keep the collator from adding examples."
            )
        packed = torch.full((bound, rows.shape[1] + 1), float(sink), dtype=torch.float64, device=rows.device)
        packed[:count, 0] = ids.to(rows.device, torch.float64)
        packed[:count, 1:] = rows
        gathered = self.accelerator.gather(packed)
        ids, rows = gathered[:, 0].long(), gathered[:, 1:].float()
        ordered, order = torch.sort(ids, stable=True)
        shadowed = torch.zeros_like(ids, dtype=torch.bool)
        shadowed[:-1] = ordered[:-1] == ordered[1:]  # a later copy of the same id follows
        shadowed = torch.empty_like(shadowed).scatter_(0, order, shadowed)
        return torch.where(shadowed, sink, ids), rows

    # ---- BaseTrainer hooks ----------------------------------------------------------------------------------

    def before_train(self, *, resumed: bool) -> None:
        if self.train_dataset is None:
            raise ValueError("ELRTrainer.train() needs a train_dataset.")
        if self.train_dataset is not self._identified_set:  # assigned after construction
            self.check_train_dataset(self.train_dataset)
            self.train_dataset, self._num_samples = _identified(
                self.train_dataset, self.args.elr_num_samples, unformat=self._default_collator
            )
            self._identified_set = self.train_dataset
        num_classes = self._probe_num_classes()
        num_samples = self._num_samples
        state = self.elr_state
        origin = f"checkpoint {self.resumed_from}" if resumed else "an earlier train() call"
        if state.table is not None and state.shape != (num_samples, num_classes):
            raise ValueError(
                f"ELR's targets are {state.shape} (samples, classes), from {origin}, but this training set has "
                f"{num_samples} samples and the model {num_classes} classes: resume with the training set and model "
                "of that run, or build a new ELRTrainer."
            )
        fingerprint = _label_fingerprint(self.train_dataset, num_samples)
        if state.table is not None:
            if fingerprint is not None and state.fingerprint is not None and fingerprint != state.fingerprint:
                raise ValueError(
                    f"ELR's targets, from {origin}, were built for another training set: this one has the same size "
                    f"but other labels at the same {SAMPLE_ID_COLUMN}s, so every target would belong to another "
                    "sample. Resume with that run's training set (the same rows, split with the same seed), or "
                    "build a new ELRTrainer and train from scratch."
                )
            if resumed and not state.fingerprint_saved:
                logger.warning(
                    "%s predates ELR's training-set fingerprint: that the training set is the checkpoint's cannot "
                    "be checked (only its size is).", origin[0].upper() + origin[1:],
                )  # fmt: skip
        state.fingerprint = fingerprint
        self._check_target_memory(num_samples, num_classes)
        if state.table is None:
            state.allocate(num_samples, num_classes)
        # A resume restores this process's record of the ids it saw in the current epoch, unless the checkpoint has
        # none (older, or another number of processes) or is past a stream's first pass (Trainer then restarts the
        # stream, and the pass does not continue): the ids are then checked from here on.
        restore = resumed and state.seen is not None and state.seen.shape[0] == num_samples + 1
        if not has_length(self.train_dataset) and state.seen_epoch not in (None, 0):
            restore = False
        if not self._check_ids_per_batch:
            state.seen = None
        elif not restore:
            state.seen = torch.zeros(num_samples + 1, dtype=torch.int32, device=state.device)
            state.seen_epoch = None

    def restart_loop(self) -> None:
        # The ids the abandoned loop saw are not repeats in this one.
        if self.elr_state.seen is not None:
            self.elr_state.seen.zero_()
            self.elr_state.seen_epoch = None

    def _probe_num_classes(self) -> int:
        """The width of the logits (BaseTrainer's probe forward on the training set, its labels then checked in
        full where they can be read cheaply), before the first step."""
        if self._num_classes is not None:
            return self._num_classes
        if not self.can_probe:
            num_classes = getattr(getattr(self.model, "config", None), "num_labels", None)
            if not num_classes:
                raise ValueError(
                    "ELR needs the number of classes before training; with DeepSpeed or FSDP it is read from "
                    "model.config.num_labels: set it."
                )
            return num_classes

        def has_ids(examples: list[Any]) -> None:
            if examples and isinstance(examples[0], Mapping) and SAMPLE_ID_COLUMN not in examples[0]:
                raise ValueError(_missing_ids_message(type(self.train_dataset).__name__, list(examples[0])))

        num_classes, _ = self.probe_num_classes(self.train_dataset, name="train_dataset", inspect=has_ids)
        self.check_train_labels(num_classes)
        return num_classes

    def _check_target_memory(self, num_samples: int, num_classes: int) -> None:
        """Refuse targets that would not leave the training step room where they live (`MEMORY_SHARE`)."""
        state = self.elr_state
        device = state.device
        free = free_memory_bytes(device)
        if free is None:
            return
        needed = (num_samples + 1) * num_classes * 4
        if state.table is not None:  # restored from a checkpoint: already in the free figure
            free += state.table.numel() * 4
        copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1
        if copies * needed <= MEMORY_SHARE * free:
            return
        per = f", one copy per process: {copies} on this machine" if copies > 1 else ""
        where = "host memory" if device.type == "cpu" else f"{device}"
        fix = (
            "Set elr_targets_on_cpu=True to keep them in host memory (each batch's rows are then copied to the device "
            "and back), or train on fewer samples."
            if device.type != "cpu"
            else "Free host memory, run fewer processes per machine, or train on fewer samples."
        )
        raise ValueError(
            f"ELR's targets need {_size(copies * needed)} ({num_samples:,} samples × {num_classes} classes × 4 "
            f"bytes{per}) but {where} has {_size(free)} free, and ELR takes at most {MEMORY_SHARE:.0%} of it "
            f"so that the training step keeps room. {fix}"
        )

    def model_card_values(self) -> dict[str, Any]:
        args = self.args
        state = self.elr_state
        settings: dict[str, Any] = {
            "λ (weight of the regulariser)": args.elr_lambda,
            "β (weight of the old target in the running average)": args.elr_beta,
        }
        facts = []
        if state.shape is not None:
            num_samples, num_classes = state.shape
            settings["targets"] = (
                f"{num_samples:,} samples × {num_classes} classes, float32 "
                f"({format_value(num_samples * num_classes * 4 / 2**20)} MiB, {'CPU' if args.elr_targets_on_cpu else 'model device'})"
            )
            facts.append(f"Training batches that updated the targets: {state.updates}.")
        return {
            "method_description": (
                "Early-learning regularisation: each training sample keeps a running average `t` of the model's own "
                "predictions for it, and its loss adds `λ·log(1 − ⟨p, t⟩)` to the cross-entropy, so that the model "
                "keeps what it learnt early from the clean majority instead of memorising wrong labels."
            ),
            "base_loss": "cross_entropy" + (f" (label smoothing {args.label_smoothing_factor})" if args.label_smoothing_factor else ""),
            "method_facts": facts,
            "method_settings": settings,
            "citation": ELR_CITATION,
            "train_snippet": (
                "from hf_lilaw import ELRConfig, ELRTrainer\n\n"
                f'args = ELRConfig(output_dir="my-model", {settings_as_code(args, prefix="elr_", always=["elr_lambda", "elr_beta"])})\n'
                "trainer = ELRTrainer(model=model, args=args, train_dataset=train, eval_dataset=test)\n"
                "trainer.train()"
            ),
        }


class _CountPasses(TrainerCallback):
    """The number of the epoch under way in Trainer's loop (from 0): a streamed set's pass."""

    def __init__(self) -> None:
        self.passes = -1

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.passes = -1

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.passes += 1


def _identified(train_dataset: Any, num_samples: int | None, *, unformat: bool) -> tuple[Any, int]:
    """``(train_dataset with sample ids, rows of the target table)``; refuses what ELR cannot index. ``unformat``:
    the ids of a torch-formatted set come out as ints (`_ids_unformatted`)."""
    if isinstance(train_dataset, datasets.Dataset):
        train_dataset = with_sample_id(train_dataset)
        if unformat:
            train_dataset = _ids_unformatted(train_dataset)
        ids = unique_sample_ids(train_dataset, name="train_dataset", shared="one ELR target")
        high = int(ids.max())
        if num_samples is not None and num_samples <= high:
            raise ValueError(
                f"elr_num_samples={num_samples} but train_dataset has {SAMPLE_ID_COLUMN} {high}: set it to at least "
                f"{high + 1}, or None to read it from the data."
            )
        return train_dataset, num_samples or high + 1
    names = getattr(train_dataset, "column_names", None)
    if isinstance(train_dataset, datasets.IterableDataset) and names is not None and SAMPLE_ID_COLUMN not in names:
        raise ValueError(_missing_ids_message(type(train_dataset).__name__, names))
    if num_samples is None:
        if not has_length(train_dataset):
            raise ValueError(
                "train_dataset is streamed (it has no length), so ELR cannot size its targets: set elr_num_samples "
                f"to the number of samples (every '{SAMPLE_ID_COLUMN}' lies in [0, elr_num_samples))."
            )
        num_samples = len(train_dataset)
    return train_dataset, num_samples


def _label_fingerprint(dataset: Any, num_samples: int) -> str | None:
    """A hash of a `datasets.Dataset`'s labels in sample-id order (one column read), or ``None`` for a set whose
    labels cannot be read up front."""
    if not isinstance(dataset, datasets.Dataset):
        return None
    try:
        labels = column_array(dataset)
    except ValueError:  # no label column before the transform
        return None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return None
    by_id = np.full(num_samples, -1, dtype=np.int64)
    by_id[column_array(dataset, SAMPLE_ID_COLUMN)] = labels
    return hashlib.sha256(by_id.tobytes()).hexdigest()


def _ids_unformatted(dataset: Any) -> Any:
    """A torch-formatted ``dataset`` whose sample ids come out as Python ints instead of one 0-dim tensor per row
    (most of what carrying the ids costs a training batch); the collator stacks them into the same int64 tensor.
    Left as it is where that would also let other columns out unformatted."""
    if not isinstance(dataset, datasets.Dataset):
        return dataset
    form = dataset.format
    if form["type"] != "torch" or form["output_all_columns"] or set(form["columns"]) != set(dataset.column_names):
        return dataset
    columns = [c for c in dataset.column_names if c != SAMPLE_ID_COLUMN]
    return dataset.with_format("torch", columns=columns, output_all_columns=True, **form["format_kwargs"])


def _size(num_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.2f} {unit}"
    return f"{num_bytes:.0f} B"


def _missing_ids_message(kind: str, columns: list[str]) -> str:
    return (
        f"ELR indexes its targets by '{SAMPLE_ID_COLUMN}', but the training examples ({kind}, columns {columns}) "
        "carry none. Add the ids before streaming, e.g. hf_lilaw.core.with_sample_id(dataset).to_iterable_dataset(), "
        f"or yield a '{SAMPLE_ID_COLUMN}' in [0, elr_num_samples) with each example. Ids must be unique across the "
        "whole training set: parts joined together must not each be numbered from 0 (offset each later part's ids "
        "by the sizes of the parts before it)."
    )
