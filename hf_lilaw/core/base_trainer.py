"""`BaseTrainer`: the `transformers.Trainer` machinery that every hf_lilaw method family shares, one place each."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.modelcard import extract_hyperparameters_from_trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_pt_utils import LabelSmoother
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, has_length, rotate_checkpoints
from transformers.utils import is_sagemaker_mp_enabled, is_torch_xla_available

from ..functional.losses import mean_over_items
from .checkpoint import (
    FSDP_OPTIMIZER_FILES,
    OPTIMIZER_FILE,
    RNG_STATE_FILES,
    SCHEDULER_FILE,
    TRAINER_STATE_NAME,
    begin_checkpoint,
    checkpoint_problem,
    find_resumable_checkpoint,
    missing_files,
    resume_advice,
    write_manifest,
)
from .columns import (
    BOOKKEEPING_COLUMNS,
    CLEAN_LABEL_COLUMN,
    LABEL_COLUMNS,
    NOISY_FLAG_COLUMN,
    SAMPLE_ID_COLUMN,
    check_one_label_column,
    column_array,
    has_transform,
    unique_sample_ids,
    with_sample_id,
)
from .labels import (
    check_class_labels,
    check_class_names,
    check_finite_columns,
    check_label_feature,
    check_single_label_model,
)
from .model_card import library_of, loading_snippet, noise_description, render_model_card, starting_weights
from .observers import RECORDING_TRAINERS, TrainingDynamicsObserver
from .outputs import extract_logits
from .rng import preserved_global_rng
from .side_set import SideBatchSampler, SideSet, WithSideSets, make_side_sampler, refuse_dataset_dict, split_labels
from .tensor_cache import TensorBatchCache
from .training_state import (
    TrainingState,
    load_training_state,
    per_rank_file_name,
    save_training_state,
    shared_file_name,
)
from .validation import (
    check_batch,
    describe_rows,
    explain_collate_failure,
    explain_forward_failure,
    label_column_of,
    scan_dataset,
)

logger = logging.getLogger(__name__)

_LABEL_FIX = "Fix the labels, or give the model one output per class (num_labels, or the width of its last layer)."


class BaseTrainer(Trainer):
    """A `transformers.Trainer` with what LiLAW and meta label correction both need, so a family adds only its own.

    A family subclasses it, sets the class attributes below, registers its one state object with
    `register_training_state`, and overrides the hooks it needs (`before_train`, `training_log_values`,
    `model_card_values`). The base owns:

    - ``args``: a plain `TrainingArguments` is coerced into the family's ``config_class``; ``self.args`` is that
      config object.
    - tags (``_tag_names``) added to the model, so Hub cards carry them.
    - extra training state in checkpoints: the shared part once, each process's part beside it, written
      atomically; restored on resume under any number of processes.
    - a manifest (sizes and checksums) of every checkpoint, written last; ``resume_from_checkpoint=True`` takes the
      newest checkpoint that verifies, a named one is verified first.
    - ``load_best_model_at_end``: the registered state is restored from the best checkpoint with the model.
    - side sets (meta or clean): `register_side_set` binds a `hf_lilaw.core.side_set.SideSet` (its checks,
      batches, randomness, cache and stream position) to the trainer; the first one gets the pre-flight probe.
    - the pre-flight probe forward and label checks, before the first training step.
    - metrics summed on the device (`accumulate_metrics`), reduced across processes and flushed into training logs.
    - per-sample statistics for `TrainingDynamicsObserver` callbacks (`record_dynamics`).
    - `create_model_card`, rendered from plain values by `hf_lilaw.core.model_card`.
    """

    config_class: ClassVar[type[TrainingArguments]] = TrainingArguments
    """The family's `TrainingArguments` subclass; a plain `TrainingArguments` is converted to it."""
    method_name: ClassVar[str] = "hf_lilaw"
    """The method as named in model cards (``"LiLAW"``, ``"EBOMLC"``)."""
    _tag_names: ClassVar[list[str]] = ["hf_lilaw"]
    _records_training_dynamics: ClassVar[bool] = False
    """Whether the family hands per-sample statistics to `TrainingDynamicsObserver` callbacks (`record_dynamics`)."""
    _records_lilaw_weights: ClassVar[bool] = False
    """Whether `TrainingDynamicsObserver` callbacks are started with room for the LiLAW weights."""
    owned_loss: ClassVar[tuple[str, str, str] | None] = None
    """A family whose loss is its own (the ``compute_loss_func`` it passes to Trainer): ``(what that loss is, what
    would still look right while the model trained on another, how to choose or keep the loss)``. Then a training
    step whose loss did not go through it (`mark_owned_loss`: a ``compute_loss`` override returning another loss, a
    ``compute_loss_func`` replaced after construction) is refused before its optimizer step."""
    resume_free_settings: ClassVar[frozenset[str]] = frozenset()
    """The family's settings that change how fast a step runs, not what it computes (caches, compilation): a
    resumed run may set them differently; every other setting of `resume_settings` must match the checkpoint's."""

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
        args = self.coerce_args(args)
        check_best_metric_direction(args)
        self.check_train_dataset(train_dataset)
        smoothing = args.label_smoothing_factor
        # Trainer.__init__ reads model.config.problem_type when label smoothing is on: an AttributeError for a plain
        # nn.Module, which the families support, also one that model_init builds inside that call (model is None
        # here). Its label smoother is made after the call instead; a multi-label config is refused below anyway.
        smoothing_later = smoothing != 0 and not hasattr(model, "config")
        if smoothing_later:
            args.label_smoothing_factor = 0.0
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                model_init=model_init,
                compute_loss_func=compute_loss_func,
                compute_metrics=compute_metrics,
                callbacks=callbacks,
                optimizers=optimizers,
                optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
                preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            )
        finally:
            args.label_smoothing_factor = smoothing
        if smoothing_later:
            self.label_smoother = LabelSmoother(epsilon=smoothing)
        self._owned_loss_fn = compute_loss_func if self.owned_loss else None
        self._owned_loss_ran = False
        if not self.label_names:
            # A plain nn.Module whose forward takes no labels: the collator still yields them as "labels".
            self.label_names = ["labels"]
        if self.model is not None:
            check_single_label_model(self.model)
        check_label_feature(self.train_dataset, name="train_dataset")
        if self.model is not None:
            check_class_names(self.model, self.train_dataset, name="train_dataset")
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(list(self._tag_names))  # so push_to_hub's card carries them
        self._training_state: TrainingState | None = None
        self._in_training_step = False  # True while training_step runs: compute_loss sees a training batch
        self._trained = False  # train() has started once: with model_init, a second call is refused
        self.resumed_from: str | None = None  # the checkpoint the running train() resumed from
        self._logits_only = False  # True while a scoring pass predicts: outputs reduced to {"logits": ...}
        self._training_state_name = ""
        self._training_state_what = ""
        self._metric_sums: dict[tuple[str, ...], torch.Tensor] = {}
        self._dynamics_observers: list[TrainingDynamicsObserver] = []
        self._batch_sample_ids: torch.Tensor | None = None
        self._side_sets: dict[str, SideSet] = {}  # registered, in order: the first gets the pre-flight probe
        self._adopted_sets: dict[str, SideSet] = {}  # built for the (dataset, sampler, name) helpers and probes
        self._saved_side_sets: list[tuple[SideSet, str, Callable[[], int]]] = []  # (side set, state key, count)
        self._num_classes: int | None = None  # the width of the logits, once the pre-flight has seen it
        self._scanned_eval_sets: set[tuple[str, int | None]] = set()  # (fingerprint, classes) of scanned eval sets
        self._eval_batch_check: Callable[[Mapping[str, Any]], None] | None = None
        self._first_batch_checked = False
        self._restored_best = False  # the model (and state) were restored from the best checkpoint at the end
        self._loops_started = 0  # starts of Trainer's training loop in this train() call
        self.add_callback(_LoopStarts(self._on_loop_start))
        self._built_settings = self.resume_settings()  # the family sets its state up from these, now

    # ---- arguments and data ---------------------------------------------------------------------------------

    @classmethod
    def coerce_args(cls, args: TrainingArguments | None) -> TrainingArguments:
        """``args`` as the family's config: as is, its defaults for ``None``, or a plain `TrainingArguments`
        converted field by field (the family's own fields take their defaults)."""
        if args is None:
            return cls.config_class(output_dir="trainer_output")
        if isinstance(args, cls.config_class):
            cls.validate_config(args)  # a field set after the config was built skipped its __post_init__ checks
            return args
        if not isinstance(args, TrainingArguments):
            raise TypeError(f"args must be a {cls.config_class.__name__} or a TrainingArguments, got {type(args).__name__}.")
        values = args.to_dict()
        values["hub_token"] = args.hub_token  # to_dict() masks it
        accepted = {f.name for f in dataclasses.fields(cls.config_class) if f.init}
        return cls.config_class(**{k: v for k, v in values.items() if k in accepted})  # another family's fields go

    @classmethod
    def validate_config(cls, args: TrainingArguments) -> None:
        """Hook: check the family's settings of a config built by the user (its ``__post_init__`` checks do not
        see a field set afterwards, e.g. ``args.lilaw_lr = -1``)."""

    @staticmethod
    def check_train_dataset(train_dataset: Any) -> None:
        """Refuse an empty training set, or a `DatasetDict` of splits, before anything is split off it."""
        refuse_dataset_dict(train_dataset, name="train_dataset")
        if train_dataset is not None and has_length(train_dataset) and len(train_dataset) == 0:
            raise ValueError(
                "train_dataset is empty (0 rows): pass the labelled training data, e.g. dataset['train'] after "
                "checking that filtering or splitting left rows in it."
            )

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        # remove_unused_columns must keep a row's identity for training dynamics; compute_loss pops it again.
        if SAMPLE_ID_COLUMN not in self._signature_columns:
            self._signature_columns.append(SAMPLE_ID_COLUMN)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """`Trainer.compute_loss` on the batch without its bookkeeping columns (kept aside for `record_dynamics`).

        A family that weights or regularises the loss registers its loss as ``compute_loss_func``, so Trainer's
        ``num_items_in_batch`` bookkeeping (counts over the whole accumulated batch and across processes) holds.
        The outputs go back in the form Trainer's ``prediction_step`` reads right: a bare tensor as
        ``{"logits": ...}`` (it would slice a tensor as if it were a tuple), and a tuple or list computed without the
        labels (Trainer takes them out for ``compute_loss_func``) with the loss in front (it drops a tuple's first item
        as the loss).
        """
        self._batch_sample_ids = inputs.get(SAMPLE_ID_COLUMN)
        inputs = {k: v for k, v in inputs.items() if k not in BOOKKEEPING_COLUMNS}
        had_labels = "labels" in inputs
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not return_outputs:
            return result
        loss, outputs = result
        if isinstance(outputs, torch.Tensor):
            return loss, {"logits": outputs}
        if self._logits_only:
            return loss, {"logits": extract_logits(outputs)}
        if isinstance(outputs, (tuple, list)) and had_labels and "labels" not in inputs:  # a list as extract_logits
            return loss, (loss, *outputs)
        return result

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """`Trainer.training_step`, with ``self._in_training_step`` set while it runs (evaluation also calls
        `compute_loss`; a family's loss updates its state only for training batches); a family's `owned_loss`
        must have made the step's loss."""
        self._in_training_step, self._owned_loss_ran = True, False
        try:
            loss = super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._in_training_step = False
        if self._owned_loss_fn is not None and not self._owned_loss_ran:  # before the optimizer step uses it
            self._refuse_bypassed_loss()
        return loss

    def mark_owned_loss(self) -> None:
        """Called by a family's `owned_loss` when it computes a training step's loss."""
        self._owned_loss_ran = True

    def reduce_owned_loss(
        self, losses: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
    ) -> torch.Tensor:
        """A family's per-sample ``losses`` as the loss Trainer expects: their sum over ``num_items_in_batch`` (the
        count over the whole accumulated batch) where given, else a per-batch mean, divided in training by the
        accumulation steps (Trainer scales a loss computed without the count for accumulation that way)."""
        mean = mean_over_items(losses.sum(), labels, num_items_in_batch)
        if num_items_in_batch is None and self._in_training_step:
            mean = mean / self.current_gradient_accumulation_steps
        return mean

    def _refuse_bypassed_loss(self) -> None:
        family = next(c for c in type(self).__mro__ if "owned_loss" in vars(c))  # the class that owns the loss
        what, still_moving, advice = self.owned_loss
        if type(self).compute_loss is not family.compute_loss:
            cause = (
                f"{type(self).__name__} overrides compute_loss and its loss did not come from "
                f"{family.__name__}.compute_loss (super().compute_loss)"
            )
        elif self.compute_loss_func != self._owned_loss_fn:
            cause = f"compute_loss_func was replaced after {family.__name__} was built"
        else:
            cause = f"{what} was not called"
        raise RuntimeError(
            f"{family.__name__}'s training loss did not go through {what}: {cause}. The model would train on that "
            f"loss while {still_moving}; stopped at step {self.state.global_step + 1}, before its optimizer step. "
            f"{advice}"
        )

    # ---- side sets ------------------------------------------------------------------------------------------

    def register_side_set(
        self, side_set: SideSet, *, state_key: str | None = None, batches_drawn: Callable[[], int] | None = None
    ) -> SideSet:
        """Draw side batches (meta or clean) from ``side_set``: it is bound to this trainer's collator and device,
        and the first one registered gets the pre-flight probe. Returns ``side_set``.

        Args:
            state_key: where its position goes in each process's file of the registered training state
                (`register_training_state`): saved in every checkpoint, restored on resume and, with
                ``load_best_model_at_end``, with the best model. ``None``: not saved.
            batches_drawn: the number of batches drawn so far, from the family's restored counters: where the set
                moves on a resume under another number of processes (no per-process part to restore).
        """
        if (state_key is None) != (batches_drawn is None):
            raise ValueError("register_side_set takes state_key and batches_drawn together (or neither).")
        side_set.bind(self)
        self._side_sets[side_set.name] = side_set
        if state_key is not None:
            self._saved_side_sets.append((side_set, state_key, batches_drawn))
        return side_set

    @property
    def side_sets(self) -> dict[str, SideSet]:
        """The registered side sets, by name."""
        return dict(self._side_sets)

    def _side_set_for(self, dataset: Any, *, name: str, sampler: SideBatchSampler | None = None) -> SideSet:
        # The side set registered as ``name``, or one adopted around ``dataset`` (and ``sampler``) for the
        # (dataset, sampler, name) helpers below and for probing a set that is no side set (ELR's training set).
        side = self._side_sets.get(name) or self._adopted_sets.get(name)
        if side is None:
            side = SideSet.adopt(dataset, name=name, sampler=sampler)
            side.bind(self)
            self._adopted_sets[name] = side
        elif sampler is not None and side.sampler is None:
            side.sampler = sampler
        return side

    side_batch_sampler = staticmethod(make_side_sampler)
    split_labels = staticmethod(split_labels)

    def next_side_batch(self, dataset: Any, sampler: SideBatchSampler, *, name: str) -> tuple[dict[str, Any], torch.Tensor]:
        """`SideSet.next_batch` (read and collated, never from a cache) of the side set ``name``, for a family that
        keeps its own sampler: ``(inputs, labels)`` on the device, the global RNGs left as they were."""
        return self._side_set_for(dataset, name=name, sampler=sampler).next_batch(use_cache=False)

    def side_batch_cache(self, dataset: Any, sampler: SideBatchSampler, *, name: str, mode: str) -> TensorBatchCache | None:
        """`SideSet.batch_cache` of the side set ``name`` (decided on the first call and kept)."""
        return self._side_set_for(dataset, name=name, sampler=sampler).batch_cache(mode)

    def compiled(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` under `torch.compile` with the Trainer's ``torch_compile_backend`` (default inductor) and
        ``torch_compile_mode``: for a family's per-step math, whose eager time on small tensors is mostly dispatch."""
        return torch.compile(fn, backend=self.args.torch_compile_backend or "inductor", mode=self.args.torch_compile_mode)

    @torch.no_grad()
    def probe_forward(
        self,
        model: nn.Module,
        inputs: Mapping[str, Any],
        *,
        train_mode: bool = False,
        name: str | None = None,
        side: SideSet | None = None,
    ) -> Any:
        """A no-grad forward of ``model`` in ``train_mode`` (its previous mode is restored), under the
        Trainer's autocast context; returns the raw output. With ``name`` (a side set's), a forward that refuses
        the batch because the set's columns are not the forward's arguments fails with a message that says so;
        ``side`` is the set the batch came from when it is not registered under ``name``."""
        was_training = model.training
        model.train(train_mode)
        try:
            with self.compute_loss_context_manager():
                return model(**inputs)
        except (TypeError, ValueError) as error:
            problem = None
            if name is not None:
                unwrapped = self.accelerator.unwrap_model(model)
                side = side or self._side_sets.get(name) or self._adopted_sets.get(name)
                columns = side.columns if side is not None else None
                problem = explain_forward_failure(unwrapped, inputs, columns, name=name)
            if problem is None:
                raise
            raise ValueError(f"{problem} (The forward said: {error})") from error
        finally:
            model.train(was_training)

    # ---- pre-flight -----------------------------------------------------------------------------------------

    def preflight_side_set(self) -> SideSet | tuple[Any, str] | None:
        """Hook: the side set of the pre-flight forward (default: the first registered), or ``None`` to skip it.
        A ``(data set, name)`` pair is accepted from families that keep their own sampler."""
        return next(iter(self._side_sets.values()), None)

    def _warn_if_a_side_set_is_the_training_set(self) -> None:
        """A side set that is the training set itself (the same object, or a `datasets.Dataset` with the same
        fingerprint) holds no row the model does not train on: MLC's trusted labels would be the noisy ones."""
        train = [t for t in (self.train_dataset, self.train_dataset_as_passed()) if t is not None]
        for side in self._side_sets.values():
            fingerprint = getattr(side.dataset, "_fingerprint", None)
            same = (side.dataset is t or (fingerprint and fingerprint == getattr(t, "_fingerprint", None)) for t in train)
            if any(same):
                logger.warning(
                    "%s is the training set itself: none of its rows is held out, so the method's side step sees only "
                    "rows the model trains on, with their (possibly noisy) labels. Pass a separate set: for LiLAW a "
                    "held-out split (noisy labels are fine; leave meta_dataset out for an automatic 15%% split), for "
                    "the MLC trainers rows whose labels you trust.",
                    side.name,
                )

    def _warn_about_missing_classes(self, side: SideSet, num_classes: int) -> None:
        """A side set read in full that holds no row of some classes the training set has (of the model's classes
        where the training set cannot be read cheaply): its step never sees their labels."""
        if not isinstance(side.dataset, datasets.Dataset):
            return

        def classes(dataset: datasets.Dataset, name: str) -> set[int]:
            return {int(y) for y in np.unique(column_array(dataset, label_column_of(dataset, name=name))) if y >= 0}

        train = self.train_dataset_as_passed()
        trained = classes(train, "train_dataset") if isinstance(train, datasets.Dataset) else set(range(num_classes))
        missing = sorted(trained - classes(side.dataset, side.name))
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            logger.warning(
                "%s has no row of %d of the %d classes trained on (%s): the method's side step never sees a label of "
                "those classes. Add rows of them to it (under LiLAWTrainer's automatic meta split: a larger "
                "lilaw_meta_fraction, or a meta_dataset= of your own).",
                side.name, len(missing), len(trained), shown,
            )  # fmt: skip

    def preflight(self) -> None:
        """Fail before the first training step on what the first steps would hit: one no-grad forward on two
        side-set examples, then every label of a `datasets.Dataset` training set (first: a side set may be drawn
        from it) and of the side set checked against the real width of the logits; then, for every family, the
        evaluation sets that can be read cheaply (labels against that width, or ``config.num_labels`` without a
        probe, and values finite). First of all, the transforms of the training and evaluation sets must not need
        the columns that Trainer removes (`check_transform_columns`), and the training set's values must be finite
        (`check_train_values`)."""
        for name, dataset in (("train_dataset", self.train_dataset), *self._eval_sets()):
            self.check_transform_columns(dataset, name=name)
        self.check_train_values()
        side = self.preflight_side_set()
        # With model_init or DeepSpeed/FSDP the model is built or sharded inside train(): no probe forward, the
        # first side batches check the same things.
        if side is not None and self.model_init is None and self.can_probe:
            if not isinstance(side, SideSet):
                dataset, name = side
                side = self._side_set_for(dataset, name=name)
            num_classes, labels = self.probe_num_classes(side.dataset, name=side.name)
            self.check_train_labels(num_classes)
            scan = scan_dataset(side.dataset, name=side.name, num_classes=num_classes, finite=side.scan is None)
            if scan is None:  # read batch by batch: the first rows now, each batch as it is drawn
                check_class_labels(labels, num_classes=num_classes, name=side.name, fix=_LABEL_FIX)
            else:
                side.scan = scan
                self._warn_about_missing_classes(side, num_classes)
        for eval_name, eval_set in self._eval_sets():
            self._scan_eval_set(eval_set, name=eval_name)
            if self.args.eval_strategy != "no" and self.model_init is None and self.can_probe:
                self._probe_eval_set(eval_set, name=eval_name)

    def _probe_eval_set(self, dataset: Any, *, name: str) -> None:
        """A no-grad forward of the first two rows of a labelled `datasets.Dataset` evaluation set: a set the model
        cannot read fails now, not at the first evaluation with the training steps before it lost."""
        if not (isinstance(dataset, datasets.Dataset) and len(dataset)):
            return
        if not any(column in dataset.column_names for column in ("labels", *LABEL_COLUMNS)):
            return
        side = SideSet.adopt(dataset, name=name)  # not kept: a later eval_dataset is probed afresh
        side.bind(self)
        inputs, _ = side.probe_batch()
        self.probe_forward(self.model, inputs, name=name, side=side)

    def check_transform_columns(self, dataset: Any, *, name: str) -> None:
        """Refuse a `datasets.Dataset` whose transform (``with_transform``/``set_transform``) reads a column that
        ``remove_unused_columns`` removes: Trainer removes the columns the model's forward does not take before the
        transform runs, so the first batch would fail with a bare ``KeyError``. The transform runs on the first row
        with and without those columns (the global RNGs left as they were). Side sets are not checked: their
        columns are removed after the transform, by the collator."""
        if not (self.args.remove_unused_columns and has_transform(dataset) and len(dataset)):
            return
        self._set_signature_columns_if_needed()  # Trainer's own choice of columns (`Trainer._remove_unused_columns`)
        removed = [c for c in dataset.column_names if c not in self._signature_columns]
        if not removed or len(removed) == len(dataset.column_names):  # nothing removed, or Trainer refuses the set
            return
        with preserved_global_rng():
            try:
                dataset[:1]
            except Exception:
                return  # the transform fails on the full row too: not this problem, training shows its own error
            try:
                dataset.remove_columns(removed)[:1]
                return
            except Exception as error:
                failure = error
        key = failure.args[0] if isinstance(failure, KeyError) and failure.args else None
        needed = f"the column {key!r}" if key in removed else f"one of the columns {removed}"
        model = type(self.accelerator.unwrap_model(self.model)).__name__
        raise ValueError(
            f"{name}'s transform (with_transform/set_transform) reads {needed}, which Trainer removes before the "
            f"transform runs because {model}.forward takes no argument of that name (remove_unused_columns=True, "
            f"the default); without it the transform fails with {type(failure).__name__}: {failure}. Set "
            "remove_unused_columns=False in the TrainingArguments (the transform's output then reaches the model "
            "as it is)."
        ) from failure

    @property
    def can_probe(self) -> bool:
        """Whether the model can run `probe_num_classes` before `train`: it exists and DeepSpeed/FSDP will not shard
        it."""
        return self.model is not None and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)

    def probe_num_classes(
        self, dataset: Any, *, name: str, inspect: Callable[[list[Any]], None] | None = None
    ) -> tuple[int, torch.Tensor]:
        """``(width of the logits, the probe batch's labels)`` from one no-grad forward of the first two examples
        of ``dataset`` (`SideSet.probe_batch`: the set's randomness, the global RNGs untouched); the width is kept
        for later checks. ``inspect`` sees the examples as read, before they are collated."""
        inputs, labels = self._side_set_for(dataset, name=name).probe_batch(inspect=inspect)
        self._num_classes = extract_logits(self.probe_forward(self.model, inputs, name=name)).shape[-1]
        return self._num_classes, labels

    def check_first_batch(self, logits: torch.Tensor, labels: torch.Tensor) -> bool:
        """The labels of the first batch a family's loss sees (after `train` starts) checked against the model's
        real output width: one host sync, once. Whether this call checked."""
        if self._first_batch_checked:
            return False
        check_class_labels(labels, num_classes=logits.shape[-1], name="train_dataset")
        self._first_batch_checked = True
        return True

    def train_dataset_as_passed(self) -> Any:
        """The training set in the row numbering of the set the user passed, which errors name; a family that
        splits rows off it (LiLAW's automatic meta split) returns the set before the split."""
        return self.train_dataset

    def check_train_labels(self, num_classes: int) -> None:
        """Every label of a training set whose labels can be read cheaply (a `datasets.Dataset`: one column)
        checked against ``num_classes``, a bad one named by its row (`train_dataset_as_passed`); other sets are
        checked batch by batch (`get_batch_samples`)."""
        dataset = self.train_dataset_as_passed()
        if isinstance(dataset, datasets.Dataset):
            scan_dataset(dataset, name="train_dataset", num_classes=num_classes, finite=False)

    def check_train_values(self) -> None:
        """Every floating-point value of a `datasets.Dataset` training set finite, read by column before training
        (no transform runs); other training sets are checked batch by batch (`get_batch_samples`). Trainer trains
        on a non-finite row without a word: its loss is NaN, the weights turn NaN at the next optimizer step, and
        the logged loss leaves the NaN out (``logging_nan_inf_filter``). A training set already read in full as a
        probed set (ELR's, in `before_train`) had its values checked there."""
        dataset = self.train_dataset_as_passed()
        probed = self._adopted_sets.get("train_dataset")
        if probed is not None and probed.dataset is dataset and probed.scan is not None:
            return
        check_finite_columns(dataset, name="train_dataset")

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """`Trainer.get_batch_samples`, with every batch of a training set that is not read up front (a torch
        ``Dataset``, a list, a stream: not a `datasets.Dataset`) checked before the step runs on it: labels (dtype,
        shape, range) and floating-point values finite. A bad label fails naming the set and the step, not as an
        index error (a device-side assert on a GPU) inside the loss; a non-finite value before it makes the model
        NaN. One host sync for the labels and one per floating-point tensor, per batch."""
        try:
            batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        except TypeError as error:
            self._explain_row_type(error)
            raise
        if not isinstance(self.train_dataset, datasets.Dataset):
            step, count = self.state.global_step + 1, len(batches)
            process = f" of process {self.args.process_index}" if self.args.world_size > 1 else ""
            for i, batch in enumerate(batches):
                if not isinstance(batch, Mapping):
                    continue
                where = (f"step {step}'s batch" if count == 1 else f"batch {i + 1} of {count} of step {step}") + process
                size = next((len(v) for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim), 0)
                check_batch(batch, name="train_dataset", rows=describe_rows(None, size, batch=where),
                            num_classes=self._known_num_classes, require_labelled=False)  # fmt: skip
        return batches, num_items_in_batch

    def _explain_row_type(self, error: TypeError) -> None:
        """Raise a `ValueError` naming the fix when a map-style training set's rows are not dicts (e.g. ``(x, y)``
        tuples of a torch ``Dataset``), which transformers' collators fail on with a bare ``TypeError``."""
        dataset, collator = self.train_dataset, self.data_collator
        if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)) or not hasattr(dataset, "__getitem__"):
            return
        if not getattr(collator, "__module__", "").startswith("transformers."):
            return  # a collator of the user's own may take any rows: the failure is its own
        try:
            row = dataset[0]
        except Exception:  # not even its first row reads: the original error is the better one
            return
        if not isinstance(row, Mapping):
            raise ValueError(explain_collate_failure([row], name="train_dataset", rows=["row 0"])) from error

    def check_label_columns(self, dataset: Any, *, name: str) -> None:
        """Refuse a set whose examples reach the collator with more than one label column (`check_one_label_column`):
        the columns of a `datasets` set (those ``remove_unused_columns`` keeps) or of a list of dicts' first row."""
        if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)):
            columns = list(dataset.column_names or [])
        elif isinstance(dataset, (list, tuple)) and dataset and isinstance(dataset[0], Mapping):
            columns = list(dataset[0])
        else:  # a torch Dataset or a stream: its columns are not known before it is read
            return
        if self.args.remove_unused_columns:
            self._set_signature_columns_if_needed()  # the columns Trainer keeps (`Trainer._remove_unused_columns`)
            columns = [c for c in columns if c in self._signature_columns]
        check_one_label_column(columns, name=name)

    @property
    def _known_num_classes(self) -> int | None:
        """The width of the logits once the pre-flight has seen it, else the model config's ``num_labels``."""
        return self._num_classes or getattr(getattr(self.model, "config", None), "num_labels", None)

    def _eval_sets(self) -> list[tuple[str, Any]]:
        if self.eval_dataset is None:
            return []
        if isinstance(self.eval_dataset, dict):
            return [(f"eval_dataset[{key!r}]", value) for key, value in self.eval_dataset.items()]
        return [("eval_dataset", self.eval_dataset)]

    def _scan_eval_set(self, dataset: Any, *, name: str) -> bool:
        """Check an evaluation set in full (labels and finite values) when it can be read cheaply, once per
        `datasets.Dataset` fingerprint and number of classes; whether it could."""
        self.check_label_columns(dataset, name=name)
        num_classes = self._known_num_classes
        fingerprint = getattr(dataset, "_fingerprint", None) if isinstance(dataset, datasets.Dataset) else None
        key = None if fingerprint is None else (fingerprint, num_classes)
        if key is not None and key in self._scanned_eval_sets:
            return True
        scan = scan_dataset(dataset, name=name, num_classes=num_classes, labels_required=False)
        if scan is None or scan.transformed:
            return False
        if key is not None:
            self._scanned_eval_sets.add(key)
        return True

    def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
        """Trainer's evaluation sampler, but never a `LengthGroupedSampler`: under
        ``train_sampling_strategy="group_by_length"`` Trainer would hand one to evaluation and prediction too, and
        `predict` would return the rows in another order than the data set's. Cleaning, scoring and per-group
        metrics match predictions to rows by position, so evaluation reads the set in order."""
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_eval_sampler(eval_dataset)
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        # As Trainer without length grouping: in order on one process, accelerate's in-order shards on several.
        return torch.utils.data.SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def evaluation_loop(
        self,
        dataloader: torch.utils.data.DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ):
        """`Trainer.evaluation_loop` (so `evaluate` and `predict`), with the set's labels checked against the
        model's classes and its inputs for being finite first: in full where the set can be read cheaply, else
        batch by batch (one sync per batch). Trainer would drop a batch with a non-finite loss from the mean
        (``logging_nan_inf_filter``), so a NaN input would silently leave out its whole batch."""
        name = "eval_dataset" if metric_key_prefix == "eval" else f"the {metric_key_prefix} dataset"
        dataset = getattr(dataloader, "dataset", None)
        if dataset is not None and self._known_num_classes is None and self.can_probe:
            # Before train(), a model without config.num_labels gives no width to check the labels against: an
            # out-of-range label would fail as an index error inside the loss (a device-side assert on a GPU).
            self.probe_num_classes(dataset, name=name)
        if dataset is None or self._scan_eval_set(dataset, name=name):
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        num_classes = self._known_num_classes
        # One process reads a map-style set in order (Trainer's SequentialSampler): batches name their dataset rows.
        in_order = self.args.world_size <= 1 and has_length(dataset)
        batches, offset = itertools.count(), [0]

        def check(inputs: Mapping[str, Any]) -> None:
            size = next((len(v) for v in inputs.values() if isinstance(v, torch.Tensor) and v.ndim), 0)
            where = f"evaluation batch {next(batches)} of process {self.args.process_index}"
            rows = describe_rows(range(offset[0], offset[0] + size) if in_order else None, size, batch=where)
            offset[0] += size
            check_batch(inputs, name=name, rows=rows, num_classes=num_classes, require_labelled=False)

        self._eval_batch_check = check
        try:
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        finally:
            self._eval_batch_check = None

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        if self._eval_batch_check is not None:
            self._eval_batch_check(inputs)
        # Without labels Trainer takes a bare tensor output for a tuple and keeps its first element when it has one
        # (a one-row batch loses its batch dimension): the output is read as {"logits": ...}, as compute_loss does.
        hook = model.register_forward_hook(_tensor_output_as_logits)
        label_names = self.label_names
        # A forward that names its label argument `label` makes Trainer's label_names ['label'] while the default
        # collator yields 'labels', which training reads: Trainer would see no labels here and pass 'labels' to the
        # forward. The families' losses take them out as in training.
        if inputs.get("labels") is not None and not any(inputs.get(name) is not None for name in label_names):
            self.label_names = ["labels"]
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        finally:
            self.label_names = label_names
            hook.remove()

    # ---- extra training state -------------------------------------------------------------------------------

    checkpoint_checksums: bool = True
    """Whether each checkpoint's manifest records a CRC-32 of every file (read once more after the save, and
    once before a resume) or only the file sizes. Set it on the trainer (``trainer.checkpoint_checksums = False``)
    where reading the checkpoint again costs too much; docs/checkpoints.md gives the cost measured."""

    def register_training_state(self, state: TrainingState, *, name: str, what: str) -> None:
        """Save ``state`` in every checkpoint as ``<name>.pt`` (shared) and ``<name>_rank<r>.pt`` (per process),
        and restore it on resume and, with ``load_best_model_at_end``, from the best checkpoint. ``what`` names it
        in messages (``"LiLAW state"``)."""
        if not isinstance(state, TrainingState):
            raise TypeError(f"{type(state).__name__} needs state_dict() and load_state_dict() to be saved in checkpoints.")
        self._training_state, self._training_state_name, self._training_state_what = state, name, what

    def resume_settings(self) -> dict[str, Any]:
        """The method and its settings as a checkpoint records them, compared on resume (`load_training_state`): the
        fields the family's `config_class` adds to `TrainingArguments`, less `resume_free_settings` and less those
        whose value is not a plain JSON value (a function's text would name its address, different in every
        process)."""
        base = {f.name for f in dataclasses.fields(TrainingArguments)}
        settings: dict[str, Any] = {"method": self.method_name}
        for f in dataclasses.fields(self.config_class):
            if f.name in base or f.name in self.resume_free_settings or not hasattr(self.args, f.name):
                continue
            try:
                settings[f.name] = json.loads(json.dumps(getattr(self.args, f.name)))  # tuples as lists, as saved
            except (TypeError, ValueError):
                continue
        return settings

    def _checkpointed_state(self) -> TrainingState:
        """The registered training state, with the positions of the side sets registered with a state key."""
        if not self._saved_side_sets:
            return self._training_state
        return WithSideSets(self._training_state, self._saved_side_sets)

    def checkpoint_files(self) -> list[str]:
        """The files (glob patterns) a complete checkpoint of this trainer must have: the `resume_files` Trainer
        saves and those of the registered training state."""
        files = self.resume_files()
        if self._training_state is None:
            return files
        return files + [shared_file_name(self._training_state_name), per_rank_file_name(self._training_state_name, "*")]

    def optimizer_files(self) -> list[str]:
        """The files (glob patterns) of the optimizer and LR scheduler states `Trainer` saves in a checkpoint and
        needs to resume the run as it would have gone on (a checkpoint without them resumes silently with a fresh
        optimizer and schedule). None with ``save_only_model`` (its checkpoints hold the weights only), nor under
        DeepSpeed (inside its own checkpoint folder), XLA or SageMaker model parallelism (their own names)."""
        if self.args.save_only_model or self.is_deepspeed_enabled:
            return []
        if is_torch_xla_available() or is_sagemaker_mp_enabled():
            return []
        return [FSDP_OPTIMIZER_FILES if self.is_fsdp_enabled else OPTIMIZER_FILE, SCHEDULER_FILE]

    def resume_files(self) -> list[str]:
        """The files (glob patterns) Trainer saves in a checkpoint and needs to resume the run as it would have gone
        on: the `optimizer_files` and the RNG state (without it Trainer resumes silently with fresh RNGs: another
        dropout, another data order). None with ``save_only_model`` (its checkpoints hold the weights only)."""
        if self.args.save_only_model:
            return []
        return [*self.optimizer_files(), RNG_STATE_FILES]

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        # The manifest is the checkpoint's last file: a pending one first (a folder reused by a later save never
        # keeps the manifest of the earlier one), the family's files and the card (before the parent's, so a
        # plain-Trainer reader finds them complete next to trainer_state.json), the parent's files, then the
        # manifest of them all. Only then are older checkpoints deleted and the folder pushed to the Hub, so a
        # kill at any moment leaves an older checkpoint that verifies and the Hub never gets an unfinished one.
        run_dir = self._get_output_dir(trial=trial)
        checkpoint_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            begin_checkpoint(checkpoint_dir)
        if self._training_state is not None:
            save_training_state(
                self._checkpointed_state(), checkpoint_dir, name=self._training_state_name,
                process_index=self.args.process_index, world_size=self.args.world_size, save_shared=self.args.should_save,
                settings=self.resume_settings(),
            )
        if self.args.should_save and self.describes_itself():
            self.write_model_card(checkpoint_dir)
        args = self.args
        save_total_limit, push_to_hub = args.save_total_limit, args.push_to_hub
        args.save_total_limit, args.push_to_hub = None, False  # done below, after the manifest
        try:
            super()._save_checkpoint(model, trial)
        finally:
            args.save_total_limit, args.push_to_hub = save_total_limit, push_to_hub
        if args.should_save:  # the parent pickled the args with both settings blanked: the run's own values
            torch.save(args, os.path.join(checkpoint_dir, TRAINING_ARGS_NAME))
        self.accelerator.wait_for_everyone()  # every process's files are written
        if args.should_save:
            write_manifest(checkpoint_dir, checksums=self.checkpoint_checksums)
        if push_to_hub:
            self._push_from_checkpoint(checkpoint_dir)
        if args.should_save:
            rotate_checkpoints(
                output_dir=run_dir, save_total_limit=save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True,
            )  # fmt: skip

    def _load_best_model(self) -> None:
        # Trainer restores the model only: the family's state (LiLAW's α, β, δ, a meta model, the counters) must
        # come from the same checkpoint, or the trainer would pair the best model with the last step's state.
        super()._load_best_model()
        self._restored_best = True
        if self._training_state is None:
            return
        checkpoint = self.state.best_model_checkpoint
        if not os.path.isfile(os.path.join(checkpoint, shared_file_name(self._training_state_name))):
            logger.warning(
                "The best checkpoint %s has no %s: the model is the best checkpoint's, the %s stays at the last "
                "step's.", checkpoint, shared_file_name(self._training_state_name), self._training_state_what,
            )  # fmt: skip
            return
        load_training_state(
            self._checkpointed_state(), checkpoint, name=self._training_state_name,
            process_index=self.args.process_index, world_size=self.args.world_size, what=self._training_state_what,
        )

    def before_train(self, *, resumed: bool) -> None:
        """Hook, called by `train` after the training state was restored (``resumed``) and before the pre-flight."""

    def restart_loop(self) -> None:
        """Hook, called when Trainer starts its training loop again within one `train` call (``auto_find_batch_size``
        retrying a smaller batch after an out-of-memory error): forget the abandoned loop's step bookkeeping."""

    def _on_loop_start(self) -> None:
        self._loops_started += 1
        if self._loops_started > 1:
            self.restart_loop()

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ):
        """`Trainer.train`; ``resume_from_checkpoint=True`` takes the newest checkpoint that verifies (see
        `hf_lilaw.core.checkpoint`), a named checkpoint must verify, and the registered training state is restored
        from the checkpoint resumed from."""
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            resume_from_checkpoint = find_resumable_checkpoint(self.args.output_dir, required_files=self.checkpoint_files())
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"No checkpoint in the output directory {self.args.output_dir} verifies (each one skipped is "
                    "logged above, with why): train from scratch, without resume_from_checkpoint."
                )
        elif resume_from_checkpoint:
            # The family's own state may be absent (a plain Trainer checkpoint: it starts fresh, with a warning);
            # the optimizer's, scheduler's and RNGs' may not, or Trainer would silently restart them.
            problem = checkpoint_problem(resume_from_checkpoint, required_files=self.resume_files())
            if problem is not None:
                weights_only = bool(missing_files(resume_from_checkpoint, self.optimizer_files()))
                raise ValueError(
                    f"Cannot resume from {resume_from_checkpoint}: {problem}. "
                    + resume_advice(resume_from_checkpoint, required_files=self.checkpoint_files())
                    + (
                        " If the checkpoint was saved with save_only_model=True (weights only), set "
                        "save_only_model=True to resume from its weights with a fresh optimizer and LR schedule."
                        if weights_only
                        else ""
                    )
                )
        if (
            self.args.save_only_model
            and resume_from_checkpoint
            and missing_files(resume_from_checkpoint, [FSDP_OPTIMIZER_FILES])
        ):
            logger.warning(
                "Resuming from %s, which holds no optimizer state (saved with save_only_model=True?): the optimizer "
                "and LR schedule start fresh%s, so the run does not continue as an uninterrupted one would.",
                resume_from_checkpoint,
                ", and so does the RNG state" if missing_files(resume_from_checkpoint, [RNG_STATE_FILES]) else "",
            )
        if trial is not None:
            raise ValueError(self._no_search_message())
        self._refuse_settings_changed_since_built()
        resumed = bool(resume_from_checkpoint)
        if self._trained and self.model_init is not None and not resumed:
            raise ValueError(
                f"{type(self).__name__}.train() already ran on this trainer: with model_init the model starts anew, "
                f"but the method's learned state ({self._training_state_what or 'its state'}) would carry over from "
                f"that run. Build a new {type(self).__name__} for each run, or resume from one of its checkpoints."
            )
        if resumed and self._training_state is not None:
            load_training_state(
                self._checkpointed_state(), str(resume_from_checkpoint), name=self._training_state_name,
                process_index=self.args.process_index, world_size=self.args.world_size, what=self._training_state_what,
                settings=self.resume_settings(),
            )
        self.resumed_from = str(resume_from_checkpoint) if resumed else None
        if resumed:
            self._warn_if_a_random_transform_resumes_mid_epoch(str(resume_from_checkpoint))
        if resumed and isinstance(self.train_dataset, (datasets.IterableDataset, torch.utils.data.IterableDataset)):
            logger.warning(
                "Resuming with a streamed training set: Trainer skips the batches already trained from the start of "
                "the stream, so the run continues exactly only from a checkpoint inside the stream's first pass; "
                "past it the resumed run trains other batches than the uninterrupted one would (plain Trainer does "
                "the same). For an exact resume, train on a map-style datasets.Dataset."
            )
        self._first_batch_checked = False
        self._restored_best = False
        self._loops_started = 0
        self._metric_sums.clear()  # steps after an earlier run's last log are not this run's (Trainer drops them too)
        side_sets = [(side.name, side.dataset) for side in self._side_sets.values()]
        for name, dataset in (("train_dataset", self.train_dataset), *side_sets):
            self.check_label_columns(dataset, name=name)
        self._warn_if_a_side_set_is_the_training_set()
        self.before_train(resumed=resumed)
        self.preflight()
        self._start_dynamics_observers()
        self._trained = True
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint or None, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs
        )

    def _refuse_settings_changed_since_built(self) -> None:
        """Refuse method settings set on ``trainer.args`` after the trainer was built: the family set its state up
        from the earlier values, while checkpoints and the model card would name the new ones."""
        self.validate_config(self.args)
        now = self.resume_settings()
        changed = [f"{k} {v!r} -> {now.get(k)!r}" for k, v in self._built_settings.items() if now.get(k) != v]
        if changed:
            name = type(self).__name__
            raise ValueError(
                f"trainer.args changed after {name} was built ({'; '.join(changed)}), but {name} sets its method up "
                "from these settings when it is built, so this run would not follow them while its checkpoints and "
                f"model card name the new values. Build a new {name} with the new settings."
            )

    def _warn_if_a_random_transform_resumes_mid_epoch(self, checkpoint: str) -> None:
        if not has_transform(self.train_dataset):
            return
        epoch = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE_NAME)).epoch or 0.0
        if epoch != round(epoch):
            logger.warning(
                "Resuming from %s, saved mid-epoch (epoch %.2f), with a training set transform (set_transform / "
                "with_transform): Trainer restores the checkpoint's RNG state only after it fetched the first "
                "resumed batch, so if the transform draws random numbers (augmentation) that batch, and the run from "
                "it on, differ from the uninterrupted run (plain Trainer's too). A checkpoint saved at an epoch's end "
                "(save_strategy=\"epoch\") resumes exactly.", checkpoint, epoch,
            )  # fmt: skip

    def hyperparameter_search(
        self,
        hp_space: Callable[[Any], dict[str, float]] | None = None,
        compute_objective: Callable[[dict[str, float]], float] | None = None,
        n_trials: int = 20,
        direction: str | list[str] = "minimize",
        backend: Any = None,
        hp_name: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Refused: see the message."""
        raise ValueError(self._no_search_message())

    def _no_search_message(self) -> str:
        return (
            f"{type(self).__name__} does not support hyperparameter_search: it reads its method settings when it is "
            "built, so a trial's values would be ignored, and each trial would start from the learned state of the "
            f"one before. Search in your own loop that builds a new {type(self).__name__} for each trial."
        )

    # ---- metrics ----------------------------------------------------------------------------------------------

    def accumulate_metrics(self, values: Mapping[str, torch.Tensor], *, count: torch.Tensor | float = 1.0) -> None:
        """Add ``values`` (sums over ``count`` items) to device-side running sums, without a host sync.

        The next training log reports each name as its sum over all processes divided by the summed count.
        Every process must accumulate the same names (the reduction is collective).
        """
        parts = [v.detach().float().reshape(()) for v in values.values()]
        count = torch.as_tensor(count, dtype=torch.float32, device=parts[0].device).reshape(())
        self.accumulate_metric_sums(tuple(values), torch.stack([*parts, count]))

    def accumulate_metric_sums(self, names: tuple[str, ...], sums: torch.Tensor) -> None:
        """`accumulate_metrics` for values already in one float32 vector: the sums of ``names``, then the count
        (one addition per step where a step logs several values)."""
        if sums.shape != (len(names) + 1,):
            raise ValueError(f"sums must hold {len(names)} sums and the count, got shape {tuple(sums.shape)}.")
        total = self._metric_sums.get(names)
        self._metric_sums[names] = sums if total is None else total + sums

    @staticmethod
    def is_training_log(logs: Mapping[str, float]) -> bool:
        """The one rule: Trainer's periodic training log is the one with ``loss`` (evaluation logs have
        ``eval_loss``, the end-of-training summary ``train_loss``); every process reaches it together."""
        return "loss" in logs

    def training_log_values(self) -> dict[str, float]:
        """Hook: instantaneous values added to each training log (e.g. the current α, β, δ)."""
        return {}

    def _flush_metrics(self) -> dict[str, float]:
        if not self._metric_sums:
            return {}
        groups = list(self._metric_sums.items())
        flat = torch.cat(list(self._metric_sums.values()))
        if self.accelerator.num_processes > 1:
            flat = self.accelerator.reduce(flat, reduction="sum")
        values = flat.tolist()
        logs: dict[str, float] = {}
        offset = 0
        for names, _ in groups:
            count = values[offset + len(names)]
            if count > 0:
                logs.update({name: values[offset + i] / count for i, name in enumerate(names)})
            offset += len(names) + 1
        self._metric_sums.clear()
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.is_training_log(logs):
            logs = {**logs, **self.training_log_values(), **self._flush_metrics()}
        super().log(logs, start_time)

    # ---- training dynamics -------------------------------------------------------------------------------------

    def _start_dynamics_observers(self) -> None:
        self._dynamics_observers = [
            cb for cb in self.callback_handler.callbacks if isinstance(cb, TrainingDynamicsObserver)
        ]
        if not self._dynamics_observers:
            return
        if not self._records_training_dynamics:
            raise ValueError(
                f"{type(self).__name__} does not record per-sample statistics, so "
                f"{type(self._dynamics_observers[0]).__name__} would end the run empty: record the dynamics with "
                f"{RECORDING_TRAINERS}, or remove the callback."
            )
        train = self.train_dataset
        if not isinstance(train, datasets.Dataset):
            raise ValueError(
                f"{type(self._dynamics_observers[0]).__name__} needs a map-style datasets.Dataset as train_dataset "
                "(streamed data has no stable sample ids)."
            )
        self.train_dataset = train = with_sample_id(train)
        ids = unique_sample_ids(train, name="train_dataset", shared="one column of the recorded training dynamics")
        passed = self.train_dataset_as_passed()
        if passed is not train and SAMPLE_ID_COLUMN in getattr(passed, "column_names", ()):
            # Sized by the set the user passed (LiLAW's automatic meta split numbered it): rows split off keep their
            # columns, NaN, even where the highest ids went to the meta set.
            ids = column_array(passed, SAMPLE_ID_COLUMN)
        num_samples = int(ids.max()) + 1
        for observer in self._dynamics_observers:
            observer.begin(num_samples, weights=self._records_lilaw_weights)

    @property
    def records_dynamics(self) -> bool:
        """Whether a `TrainingDynamicsObserver` is watching this run (then call `record_dynamics`)."""
        return bool(self._dynamics_observers)

    def record_dynamics(self, stats: dict[str, torch.Tensor]) -> None:
        """Hand the current training micro-batch's per-sample statistics to every observer."""
        if self._batch_sample_ids is None:
            raise ValueError(
                f"Recording training dynamics needs each training batch to carry '{SAMPLE_ID_COLUMN}'. With "
                "set_transform/with_transform, return that column from your transform (hf_lilaw.data.image_transforms "
                "passes it through)."
            )
        epoch = int(self.state.epoch or 0)
        for observer in self._dynamics_observers:
            observer.record(self._batch_sample_ids, stats, epoch=epoch)

    # ---- model cards --------------------------------------------------------------------------------------------

    @classmethod
    def describes_itself(cls) -> bool:
        """Whether the family implements `model_card_values` (then every checkpoint carries a card)."""
        return cls.model_card_values is not BaseTrainer.model_card_values

    def model_card_values(self) -> dict[str, Any]:
        """Hook: the family's part of the card, as keyword arguments of `render_model_card`
        (``method_description``, ``base_loss``, ``citation``, ``train_snippet`` and any of ``method_table``,
        ``method_facts``, ``method_settings``, ``side_sets``), plus an optional ``plot``: a function
        ``plot(output_dir) -> file name or None`` that draws the figure shown in the card."""
        raise NotImplementedError(f"{type(self).__name__} does not describe itself in a model card.")

    def write_model_card(
        self,
        output_dir: str,
        *,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        dataset: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        language: str | list[str] | None = None,
        license: str | None = None,
        noise_type: str | None = None,
        noise_rate: float | None = None,
        comparison: Mapping[str, Mapping[str, float]] | None = None,
        plot: bool = True,
        task: str | None = None,
    ) -> str:
        """Write ``README.md`` (and the family's plot) into ``output_dir``; the main process writes, every process
        gets the path.

        Args:
            output_dir: folder of the card; created if missing.
            model_name: title; defaults to the Hub model id's name or ``output_dir``'s name.
            finetuned_from: the base model's Hub id; by default read from the model (`starting_weights`: the
                Hub id it was loaded from, or the Hub counterpart a local checkpoint names); a model built from a
                config is described as trained from scratch.
            dataset: Hub id(s) of the training data (metadata) or a description of it.
            tags: extra metadata tags.
            language, license: metadata.
            noise_type, noise_rate: the label noise put into the training data. Without a rate, the realised
                rate is read from the training set's ``is_noisy`` column when it has one.
            comparison: ``{run: {metric: value}}`` of runs with and without the method, shown as a table.
            plot: draw the family's plot next to the card.
            task: the Hub task id (``image-classification``, ...): with a Hub data set in ``dataset``, the
                evaluation results go into the card's ``model-index`` metadata.
        """
        path = os.path.join(output_dir, "README.md")
        if not self.is_world_process_zero():
            return path
        model = self.model
        base_model, pretrained_from = (finetuned_from, None) if finetuned_from else starting_weights(model)
        hub_id = getattr(self, "hub_model_id", None) or self.args.hub_model_id
        if model_name is None:
            model_name = hub_id.split("/")[-1] if hub_id else Path(output_dir).absolute().name
        realised = inputs = None
        realised_from = NOISY_FLAG_COLUMN
        train = self.train_dataset
        columns = train.column_names if isinstance(train, datasets.Dataset) and len(train) else []
        flags = column_array(train, NOISY_FLAG_COLUMN).astype(bool) if NOISY_FLAG_COLUMN in columns else None
        if CLEAN_LABEL_COLUMN in columns and any(c in columns for c in LABEL_COLUMNS):
            # Labels against the clean ones: is_noisy marks the rows a noise function hit, which under input noise
            # are corrupted inputs with their labels kept, no label noise at all.
            changed = column_array(train) != column_array(train, CLEAN_LABEL_COLUMN)
            realised, realised_from = float(np.mean(changed)), CLEAN_LABEL_COLUMN
            inputs = float(np.mean(flags & ~changed)) if flags is not None else None
        elif flags is not None:
            realised = float(np.mean(flags))
        best_checkpoint = None
        if self._restored_best:  # the card describes the restored model: its evaluation, not the last one logged
            step = self.state.best_global_step or int(Path(self.state.best_model_checkpoint).name.rsplit("-", 1)[-1])
            best_checkpoint = (step, self.args.metric_for_best_model)
        values = dict(self.model_card_values())
        draw = values.pop("plot", None)
        os.makedirs(output_dir, exist_ok=True)
        plot_file = draw(output_dir) if (plot and draw is not None) else None
        extra_tags = [tags] if isinstance(tags, str) else list(tags or [])
        return render_model_card(
            path,
            method=self.method_name,
            model_name=model_name,
            base_model=base_model,
            pretrained_from=pretrained_from,
            dataset=dataset,
            tags=[*extra_tags, *(getattr(model, "model_tags", None) or [])],
            language=language,
            license=license,
            noise_text=noise_description(
                noise_type=noise_type, noise_rate=noise_rate, realised_rate=realised, inputs_rate=inputs,
                realised_from=realised_from,
            ),
            hyperparameters={k: getattr(v, "value", v) for k, v in extract_hyperparameters_from_trainer(self).items()},
            log_history=self.state.log_history,
            comparison=comparison,
            usage=loading_snippet(model, repo_id=hub_id or model_name),
            library_name=library_of(model),
            plot_file=plot_file,
            best_checkpoint=best_checkpoint,
            task=task,
            **values,
        )

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        *,
        noise_type: str | None = None,
        noise_rate: float | None = None,
        comparison: dict[str, dict[str, float]] | None = None,
    ) -> None:
        """Write ``README.md`` and the family's plot into ``output_dir`` (see `write_model_card`).

        ``tasks``: the Hub task id (the first of a list), which with a Hub data set in
        ``dataset`` puts the evaluation results into the ``model-index`` metadata. ``dataset_tags`` and
        ``dataset_args`` are accepted for the parent's signature and not used. `push_to_hub(**kwargs)` passes its
        keyword arguments here.
        """
        task = tasks if isinstance(tasks, str) or tasks is None else next(iter(tasks), None)
        self.write_model_card(
            self.args.output_dir, model_name=model_name, finetuned_from=finetuned_from, dataset=dataset, tags=tags,
            language=language, license=license, noise_type=noise_type, noise_rate=noise_rate, comparison=comparison,
            task=task,
        )


class _LoopStarts(TrainerCallback):
    """Calls ``started`` at each start of Trainer's training loop (``on_train_begin``: once per loop, so twice in a
    `train` call whose first loop ``auto_find_batch_size`` abandoned)."""

    def __init__(self, started: Callable[[], None]) -> None:
        self.started = started

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.started()


def _tensor_output_as_logits(module: nn.Module, args: Any, output: Any) -> Any:
    return {"logits": output} if isinstance(output, torch.Tensor) else None


# The between-group gaps of `hf_lilaw.make_fairness_compute_metrics`: lower is better.
GAP_METRICS = ("accuracy_difference", "demographic_parity_difference", "equalized_odds_difference")


def check_best_metric_direction(args: TrainingArguments) -> None:
    """Refuse a fairness gap as ``metric_for_best_model`` with ``greater_is_better`` true: Trainer infers the
    direction from whether the name ends in ``loss``, so it would keep the least fair checkpoint."""
    name = args.metric_for_best_model
    if name and args.greater_is_better and name.endswith(GAP_METRICS):
        raise ValueError(
            f"metric_for_best_model={name!r} is a gap between groups (lower is better), but greater_is_better is "
            "True (Trainer infers it from whether the name ends in 'loss'), so load_best_model_at_end would keep the "
            "least fair checkpoint. Set greater_is_better=False."
        )
