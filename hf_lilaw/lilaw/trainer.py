"""`LiLAWTrainer`: `transformers.Trainer` with LiLAW per-sample loss weighting and its meta step."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, has_length

from ..core.columns import BOOKKEEPING_COLUMNS, LABEL_COLUMNS, SAMPLE_ID_COLUMN, column_array, find_label_column, with_sample_id
from .config import LiLAWConfig, lilaw_options, validate_lilaw_options
from ..analysis.dynamics import TrainingDynamicsRecorder
from ..functional.statistics import per_sample_statistics
from ..core.sampler import MetaBatchSampler, StreamedMetaBatches
from ..core.splits import split_meta_set
from ..core.model_card import write_lilaw_model_card
from .state import PARAMETER_NAMES, LiLAWState
from ..functional.losses import IGNORE_INDEX, per_sample_loss
from ..functional.weighting import lilaw_meta_gradient, lilaw_meta_update, lilaw_weights

logger = logging.getLogger(__name__)

LILAW_STATE_NAME = "lilaw_state.pt"


def extract_logits(outputs: Any) -> torch.Tensor:
    """Logits from a model output: a `ModelOutput`/dict with ``logits``, a tuple (first item) or a tensor."""
    if isinstance(outputs, torch.Tensor):
        logits = outputs
    elif isinstance(outputs, dict):
        logits = outputs.get("logits")
    elif isinstance(outputs, (tuple, list)) and outputs:
        logits = outputs[0]
    else:
        logits = None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(
            "LiLAW needs classification logits of shape (batch, num_classes) from the model's forward, as a "
            f"tensor, a tuple whose first item is the logits, or an output with a 'logits' field; got {type(outputs).__name__}"
            + (f" with logits of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else "")
            + ". Make forward return {'logits': ...}."
        )
    return logits


@contextlib.contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global RNGs on exit.

    Meta batches and the pre-flight forward may run random data transforms (augmentation); without this they
    would shift the RNG stream that shuffles and augments the training data.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


class LiLAWTrainer(Trainer):
    """A drop-in `Trainer` that weights each sample's loss with LiLAW (``spec/lilaw.md``).

    Each training loss is ``mean(W_i · ℓ_i)`` with ``W = W_α + W_β + W_δ`` computed from the model's own
    softmax and three learned scalars α, β, δ. After every optimizer step past the warm-up, one meta step
    updates α, β, δ on a random batch of the meta set: a no-grad forward, the gradient of ``mean(W·ℓ)`` in the
    three scalars (averaged across processes), SGD with weight decay, then ``α ≥ 1`` and ``δ ≥ β``. The scalars
    live outside the model: its optimizer, scheduler, clipping and weight decay never see them.

    Args:
        meta_dataset: the meta (validation) set, with labels, noisy or clean. When ``None``, a seeded,
            class-stratified ``lilaw_meta_fraction`` of ``train_dataset`` is split off and used instead.
        All other arguments are those of `transformers.Trainer`. ``args`` may be a `LiLAWConfig` or a plain
        `TrainingArguments` (then LiLAW uses `LiLAWConfig`'s defaults). ``compute_loss_func`` is not accepted:
        LiLAW owns the loss (see ``lilaw_base_loss``).
    """

    _tag_names = ["lilaw", "hf_lilaw"]

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
        *,
        meta_dataset: Any = None,
    ) -> None:
        if compute_loss_func is not None:
            raise ValueError(
                "LiLAWTrainer computes its own per-sample loss, so it does not take compute_loss_func. "
                "Choose the base loss with lilaw_base_loss ('cross_entropy', 'focal', 'gce' or 'sce'), or use transformers.Trainer."
            )
        if args is None:
            args = LiLAWConfig(output_dir="trainer_output")
        self.lilaw_args = lilaw_options(args)
        validate_lilaw_options(self.lilaw_args)
        seed = args.seed if self.lilaw_args["lilaw_seed"] is None else self.lilaw_args["lilaw_seed"]

        if meta_dataset is None and train_dataset is not None:
            if not isinstance(train_dataset, datasets.Dataset):
                raise ValueError(
                    f"LiLAWTrainer can only split a meta set off a datasets.Dataset, not {type(train_dataset).__name__}. "
                    "Pass meta_dataset= (a few hundred labelled samples, noisy labels are fine)."
                )
            fraction = self.lilaw_args["lilaw_meta_fraction"]
            full_size = len(train_dataset)
            train_dataset, meta_dataset = split_meta_set(train_dataset, fraction=fraction, seed=seed)
            logger.warning(
                "LiLAW: no meta_dataset given, so a class-stratified %.0f%% split (seed %d) of train_dataset is the "
                "meta set: %d meta samples, %d of %d left for training. Pass meta_dataset= to choose it yourself.",
                100 * fraction, seed, len(meta_dataset), len(train_dataset), full_size,
            )
        self.meta_dataset = meta_dataset

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            model_init=model_init,
            compute_loss_func=self._lilaw_loss,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        if not self.label_names:
            # A plain nn.Module whose forward takes no labels: the collator still yields them as "labels".
            self.label_names = ["labels"]
        self._check_task()
        if self.meta_dataset is not None:
            self._check_meta_dataset()

        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names)  # so push_to_hub's card carries them

        opts = self.lilaw_args

        def per_param(key: str, default: float) -> list[float]:
            values = (opts[f"lilaw_{name}_{key}"] for name in PARAMETER_NAMES)
            return [default if value is None else value for value in values]

        device = self.args.device
        self._meta_lr = torch.tensor(per_param("lr", opts["lilaw_lr"]), dtype=torch.float32, device=device)
        self._meta_weight_decay = torch.tensor(
            per_param("weight_decay", opts["lilaw_weight_decay"]), dtype=torch.float32, device=device
        )
        meta_batch_size = opts["lilaw_meta_batch_size"] or self.args.per_device_train_batch_size
        meta_seed = seed + self.args.process_index  # each process draws its own meta batches
        if self.meta_dataset is not None and not has_length(self.meta_dataset):
            sampler: MetaBatchSampler | StreamedMetaBatches = StreamedMetaBatches(
                self.meta_dataset, meta_batch_size, seed=meta_seed
            )
        else:
            num_meta = len(self.meta_dataset) if self.meta_dataset is not None else 1
            sampler = MetaBatchSampler(num_meta, meta_batch_size, seed=meta_seed)
        initial = (opts["lilaw_alpha"], opts["lilaw_beta"], opts["lilaw_delta"])
        self.lilaw_state = LiLAWState(initial, sampler, device)
        self._meta_collator: Callable | None = None
        self._in_training_step = False
        self._first_batch_checked = False
        self._dynamics_recorders: list[TrainingDynamicsRecorder] = []
        self._batch_sample_ids: torch.Tensor | None = None
        # Sums of (w_alpha, w_beta, w_delta, w) and the sample count since the last log, kept on the device.
        self._weight_sums = torch.zeros(5, dtype=torch.float32, device=device)
        self._skipped_at_last_log = 0

    # ---- public API -------------------------------------------------------------------------------------

    def lilaw_parameters(self) -> dict[str, float]:
        """The current ``{"alpha": α, "beta": β, "delta": δ}``."""
        return self.lilaw_state.parameters()

    def score_samples(self, dataset: Any = None) -> datasets.Dataset:
        """Per-sample LiLAW scores of ``dataset`` (default: the training set) under the current model and α, β, δ.

        Returns:
            A `datasets.Dataset` with one row per input row, in the same order: ``prob_label`` (``s_y``),
            ``prob_max``, ``prediction``, ``loss`` (cross-entropy), ``w_alpha``, ``w_beta``, ``w_delta``, ``w`` and
            ``difficulty``: ``"easy"``, ``"moderate"`` or ``"hard"`` by which of W_α, W_δ, W_β dominates (``None`` for
            rows labelled -100). Low ``w_alpha`` flags likely label errors (see `hf_lilaw.find_label_issues`).
        """
        dataset = self.train_dataset if dataset is None else dataset
        if dataset is None:
            raise ValueError("score_samples needs a dataset (or a trainer built with train_dataset).")
        saved = self.compute_metrics, self.preprocess_logits_for_metrics
        self.compute_metrics = self.preprocess_logits_for_metrics = None  # raw logits, no metric pass
        try:
            output = self.predict(dataset, metric_key_prefix="score")
        finally:
            self.compute_metrics, self.preprocess_logits_for_metrics = saved
        if output.label_ids is None:
            raise ValueError("score_samples needs labels: give the data set a 'label' column.")
        predictions = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        logits = torch.as_tensor(predictions)
        stats = per_sample_statistics(logits, torch.as_tensor(output.label_ids), **self.lilaw_parameters())
        columns = {name: stats[name].numpy() for name in ("prob_label", "prob_max", "loss", "w_alpha", "w_beta", "w_delta")}
        columns["w"] = columns["w_alpha"] + columns["w_beta"] + columns["w_delta"]
        columns["prediction"] = logits.argmax(dim=-1).numpy()
        dominant = np.stack([columns["w_alpha"], columns["w_delta"], columns["w_beta"]]).argmax(axis=0)
        names = np.array(["easy", "moderate", "hard"], dtype=object)
        columns["difficulty"] = np.where(np.isnan(columns["w"]), None, names[dominant]).tolist()
        order = ("prob_label", "prob_max", "prediction", "loss", "w_alpha", "w_beta", "w_delta", "w", "difficulty")
        return datasets.Dataset.from_dict({name: columns[name] for name in order})

    # ---- Trainer overrides ------------------------------------------------------------------------------

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ):
        if self.meta_dataset is None:
            raise ValueError("LiLAWTrainer.train() needs a train_dataset or a meta_dataset to draw meta batches from.")
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir}).")
        if resume_from_checkpoint:
            self._load_lilaw_state(resume_from_checkpoint)
        else:
            self.lilaw_state.last_step_seen, self.lilaw_state.current_step_weighted = -1, False
        self._preflight()
        self._start_dynamics_recorders()
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs
        )

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        state = self.lilaw_state
        # Trainer calls training_step once per micro-batch and bumps global_step after each optimizer step, so a
        # new global_step marks the first micro-batch of an optimizer step. The meta step owed by the previous
        # optimizer step runs here, before anything uses α, β, δ again: the paper's order (θ update, then the
        # meta step on the updated θ), once per optimizer step whatever gradient_accumulation_steps is.
        if self.state.global_step != state.last_step_seen:
            if state.current_step_weighted:  # the step that just ended was weighted: its meta step is owed
                self._meta_step(model)
            state.last_step_seen = self.state.global_step
            state.current_step_weighted = not self._in_warmup()
        self._in_training_step = True
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._in_training_step = False

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        # The parent pops the labels, runs the forward and hands (outputs, labels, num_items_in_batch) to
        # _lilaw_loss (registered as compute_loss_func), which applies the weights. Reusing that path keeps the
        # parent's num_items_in_batch bookkeeping: counts over the whole accumulated batch and across processes.
        self._batch_sample_ids = inputs.get(SAMPLE_ID_COLUMN)
        inputs = {k: v for k, v in inputs.items() if k not in BOOKKEEPING_COLUMNS}
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if isinstance(outputs, torch.Tensor):
            outputs = {"logits": outputs}
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log; every process gets here together
            logs.update(self._lilaw_logs())
        super().log(logs, start_time)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        # remove_unused_columns must keep a row's identity for training dynamics; compute_loss pops it again.
        if SAMPLE_ID_COLUMN not in self._signature_columns:
            self._signature_columns.append(SAMPLE_ID_COLUMN)

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
        """Write ``README.md`` and the α, β, δ plot into ``output_dir``: how the model was trained with LiLAW.

        Beyond the parent's arguments (``tasks``, ``dataset_tags`` and ``dataset_args`` are not used by the LiLAW
        card): ``noise_type`` and ``noise_rate`` of the training labels (the rate is read from an ``is_noisy``
        column when not given) and ``comparison``, ``{run: {metric: value}}`` of runs with and without LiLAW.
        `push_to_hub(**kwargs)` passes its keyword arguments here.
        """
        write_lilaw_model_card(
            self, self.args.output_dir, model_name=model_name, finetuned_from=finetuned_from, dataset=dataset,
            tags=tags, language=language, license=license, noise_type=noise_type, noise_rate=noise_rate,
            comparison=comparison,
        )

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        # Written before the parent's files, so a checkpoint pushed to the Hub by the parent includes them.
        run_dir = self._get_output_dir(trial=trial)
        output_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(output_dir, exist_ok=True)
        torch.save(self.lilaw_state.state_dict(), os.path.join(output_dir, self._lilaw_state_file()))
        write_lilaw_model_card(self, output_dir)
        super()._save_checkpoint(model, trial)

    # ---- LiLAW internals ----------------------------------------------------------------------------------

    def _lilaw_loss(
        self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        if labels is None:
            raise ValueError(
                "LiLAWTrainer got a batch without labels. Keep the label column (named 'label' or 'labels') in "
                "the data set; with a custom collator, return it as 'labels'."
            )
        logits = extract_logits(outputs)
        if not self._first_batch_checked:  # one host sync, once: labels vs the model's real output size
            self._check_labels(labels, logits.shape[-1], "train_dataset")
            self._first_batch_checked = True
        opts = self.lilaw_args
        losses = per_sample_loss(
            logits,
            labels,
            kind=opts["lilaw_base_loss"],
            focal_gamma=opts["lilaw_focal_gamma"],
            gce_q=opts["lilaw_gce_q"],
            sce_alpha=opts["lilaw_sce_alpha"],
            sce_beta=opts["lilaw_sce_beta"],
            label_smoothing=self.args.label_smoothing_factor,
        )
        labelled = labels != IGNORE_INDEX
        if self._in_training_step:
            probs = logits.float().softmax(dim=-1)
            alpha, beta, delta = self.lilaw_state.params.detach()
            weights = lilaw_weights(probs, labels.clamp_min(0), alpha=alpha, beta=beta, delta=delta)
            mask = labelled.float()
            with torch.no_grad():
                stacked = torch.stack([*weights, mask], dim=1) * mask.unsqueeze(1)
                self._weight_sums += stacked.sum(dim=0)
            if self._dynamics_recorders:
                self._record_dynamics(logits, labels)
            if self.lilaw_state.current_step_weighted:  # past the warm-up: this step is weighted
                total = weights.total.detach() if opts["lilaw_detach_weights"] else weights.total
                losses = total * losses
        total_loss = (losses * labelled).sum()
        if num_items_in_batch is not None:
            return total_loss / num_items_in_batch
        # No item count (e.g. evaluation): a per-batch mean, which Trainer scales for accumulation itself.
        mean = total_loss / labelled.sum().clamp_min(1)
        if self._in_training_step:
            mean = mean / self.current_gradient_accumulation_steps
        return mean

    def _start_dynamics_recorders(self) -> None:
        self._dynamics_recorders = [
            cb for cb in self.callback_handler.callbacks if isinstance(cb, TrainingDynamicsRecorder)
        ]
        if not self._dynamics_recorders:
            return
        train = self.train_dataset
        if not isinstance(train, datasets.Dataset):
            raise ValueError(
                "TrainingDynamicsRecorder needs a map-style datasets.Dataset as train_dataset (streamed data has no "
                "stable sample ids)."
            )
        self.train_dataset = train = with_sample_id(train)
        num_samples = int(column_array(train, SAMPLE_ID_COLUMN).max()) + 1
        for recorder in self._dynamics_recorders:
            recorder.start(num_samples, weights=True)

    def _record_dynamics(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if self._batch_sample_ids is None:
            raise ValueError(
                f"TrainingDynamicsRecorder needs each training batch to carry '{SAMPLE_ID_COLUMN}'. With "
                "set_transform/with_transform, return that column from your transform (hf_lilaw.image_transforms "
                "passes it through)."
            )
        alpha, beta, delta = self.lilaw_state.params
        stats = per_sample_statistics(logits, labels, alpha=alpha, beta=beta, delta=delta)
        epoch = int(self.state.epoch or 0)
        for recorder in self._dynamics_recorders:
            recorder.record(self._batch_sample_ids, stats, epoch=epoch)

    def _in_warmup(self) -> bool:
        steps = self.lilaw_args["lilaw_warmup_steps"]
        if steps is not None:
            return self.state.global_step < steps
        # 1e-9: state.epoch is a float sum of step fractions.
        return (self.state.epoch or 0.0) < self.lilaw_args["lilaw_warmup_epochs"] - 1e-9

    def _next_meta_examples(self) -> list[Any]:
        sampler = self.lilaw_state.sampler
        if not isinstance(sampler, MetaBatchSampler):
            return sampler.next_batch()
        indices = sampler.next_batch()
        if hasattr(self.meta_dataset, "__getitems__"):  # one batched read: the data set's transform runs once
            return self.meta_dataset.__getitems__(indices)
        return [self.meta_dataset[i] for i in indices]

    @torch.no_grad()
    def _meta_forward(
        self, model: nn.Module, fetch_examples: Callable[[], list[Any]], *, train_mode: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """No-grad forward of ``model`` on a collated meta batch; returns ``(logits, labels)``.

        The model's mode is set to ``train_mode`` for the forward and restored after it.
        """
        if self._meta_collator is None:
            self._meta_collator = self._get_collator_with_removed_columns(self.data_collator, description="meta")
        with preserved_global_rng():
            examples = fetch_examples()
            if not examples:
                raise ValueError("meta_dataset yielded no examples; pass a non-empty meta set.")
            batch = self._prepare_inputs(self._meta_collator(examples))
        for column in BOOKKEEPING_COLUMNS:
            batch.pop(column, None)
        labels = batch.pop("labels", None)
        if labels is None:
            raise ValueError(
                "meta_dataset batches have no labels: give it a 'label' or 'labels' column (and keep it through "
                "your collator)."
            )
        was_training = model.training
        model.train(train_mode)
        try:
            with self.compute_loss_context_manager():
                logits = extract_logits(model(**batch))
        finally:
            model.train(was_training)
        return logits, labels

    def _meta_step(self, model: nn.Module) -> None:
        logits, labels = self._meta_forward(
            model, self._next_meta_examples, train_mode=self.lilaw_args["lilaw_meta_forward_mode"] == "train"
        )
        labelled = labels != IGNORE_INDEX
        logits, labels = logits[labelled].float(), labels[labelled]
        opts = self.lilaw_args
        losses = per_sample_loss(
            logits,
            labels,
            kind=opts["lilaw_base_loss"],
            focal_gamma=opts["lilaw_focal_gamma"],
            gce_q=opts["lilaw_gce_q"],
            sce_alpha=opts["lilaw_sce_alpha"],
            sce_beta=opts["lilaw_sce_beta"],
        )
        grad = lilaw_meta_gradient(logits.softmax(dim=-1), labels, losses, self.lilaw_state.params)
        self._apply_meta_gradient(grad)

    def _apply_meta_gradient(self, grad: torch.Tensor) -> None:
        """The one place α, β, δ change: average across processes, then SGD + constraints, unless non-finite."""
        state = self.lilaw_state
        if self.accelerator.num_processes > 1:
            grad = self.accelerator.reduce(grad, reduction="mean")
        finite = torch.isfinite(grad).all()
        updated = lilaw_meta_update(state.params, grad, lr=self._meta_lr, weight_decay=self._meta_weight_decay)
        # torch.where rather than an `if`: no host sync per step on accelerators.
        state.params = torch.where(finite, updated, state.params)
        state.skipped_meta_steps += (~finite).long()
        state.meta_steps += 1

    def _lilaw_logs(self) -> dict[str, float]:
        state = self.lilaw_state
        sums = self._weight_sums
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums.clone(), reduction="sum")
        count = float(sums[4])
        logs = {f"lilaw/{name}": value for name, value in state.parameters().items()}
        if count > 0:
            for i, name in enumerate(("w_alpha", "w_beta", "w_delta", "w")):
                logs[f"lilaw/{name}"] = float(sums[i]) / count
        logs["lilaw/meta_steps"] = state.meta_steps
        skipped = int(state.skipped_meta_steps)
        logs["lilaw/skipped_meta_steps"] = skipped
        if skipped > self._skipped_at_last_log:
            logger.warning(
                "LiLAW skipped %d meta step(s) since the last log because the meta loss or its gradient was not "
                "finite; α, β, δ were left unchanged for those steps.",
                skipped - self._skipped_at_last_log,
            )
            self._skipped_at_last_log = skipped
        self._weight_sums.zero_()
        return logs

    def _lilaw_state_file(self) -> str:
        if self.args.world_size > 1:
            return LILAW_STATE_NAME.replace(".pt", f"_{self.args.process_index}.pt")
        return LILAW_STATE_NAME

    def _load_lilaw_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, self._lilaw_state_file())
        if not os.path.isfile(path):
            logger.warning(
                "Checkpoint %s has no %s: LiLAW restarts from its initial α, β, δ (was it saved by plain Trainer?).",
                checkpoint, self._lilaw_state_file(),
            )
            return
        self.lilaw_state.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))

    def _check_task(self) -> None:
        config = getattr(self.model, "config", None)
        problem_type = getattr(config, "problem_type", None)
        num_labels = getattr(config, "num_labels", None)
        if problem_type in ("regression", "multi_label_classification") or num_labels == 1:
            raise ValueError(
                f"LiLAW weights single-label classification, but the model is set up for "
                f"{problem_type or 'regression (num_labels=1)'}. Use problem_type='single_label_classification' "
                "with num_labels >= 2 and integer class labels, or train with transformers.Trainer."
            )
        if (
            self.train_dataset is not None
            and not has_length(self.train_dataset)
            and self.lilaw_args["lilaw_warmup_steps"] is None
            and self.lilaw_args["lilaw_warmup_epochs"] > 0
        ):
            raise ValueError(
                "train_dataset is streamed (it has no length), so LiLAW cannot count warm-up epochs. "
                "Set lilaw_warmup_steps (e.g. the number of optimizer steps in one pass over your data), or 0."
            )
        for name, dataset in (("train_dataset", self.train_dataset), ("meta_dataset", self.meta_dataset)):
            features = getattr(dataset, "features", None)
            if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)) and features:
                column = next((c for c in LABEL_COLUMNS if c in features), None)
                feature = features[column] if column else None
                if isinstance(feature, datasets.Value) and not feature.dtype.startswith(("int", "uint")):
                    raise ValueError(
                        f"{name}'s '{column}' column has dtype {feature.dtype}; LiLAW needs integer class indices. "
                        f"Cast it, e.g. dataset.cast_column('{column}', datasets.ClassLabel(num_classes=K))."
                    )
                if feature is not None and not isinstance(feature, (datasets.Value, datasets.ClassLabel)):
                    raise ValueError(
                        f"{name}'s '{column}' column holds {type(feature).__name__} values (multi-label?); LiLAW "
                        "weights single-label classification: give one integer class index per sample."
                    )

    def _preflight(self) -> None:
        """One no-grad forward on two meta examples, so bad data or models fail before any training step."""
        if self.model_init is not None or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return  # the model is built or sharded inside train(); the first batch checks the same things
        meta = self.meta_dataset

        def first_examples() -> list[Any]:
            if has_length(meta):
                return [meta[i] for i in range(min(2, len(meta)))]
            return list(itertools.islice(iter(meta), 2))

        logits, labels = self._meta_forward(self.model, first_examples, train_mode=False)
        self._check_labels(labels, logits.shape[-1], "meta_dataset")

    @staticmethod
    def _check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
        if labels.is_floating_point() or labels.ndim != 1:
            raise ValueError(
                f"LiLAW weights single-label classification: {where} labels must be integer class indices of shape "
                f"(batch,), got dtype {labels.dtype} and shape {tuple(labels.shape)}. Cast the label column to int "
                "(ClassLabel); multi-label and regression targets are not supported."
            )
        labelled = labels[labels != IGNORE_INDEX]
        if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= num_classes):
            raise ValueError(
                f"{where} has labels in [{int(labelled.min())}, {int(labelled.max())}] but the model outputs "
                f"{num_classes} classes: labels must lie in [0, {num_classes}) (or be -100 to ignore a row)."
            )

    def _check_meta_dataset(self) -> None:
        meta = self.meta_dataset
        if hasattr(meta, "__len__") and len(meta) == 0:
            raise ValueError("meta_dataset is empty; pass a few hundred labelled samples, or omit it to split one off.")
        if isinstance(meta, (datasets.Dataset, datasets.IterableDataset)) and meta.column_names is not None:
            find_label_column(meta)
        if (
            self.train_dataset is not None
            and hasattr(self.train_dataset, "__len__")
            and hasattr(meta, "__len__")
            and len(meta) > len(self.train_dataset)
        ):
            raise ValueError(
                f"meta_dataset ({len(meta)} samples) is larger than train_dataset ({len(self.train_dataset)}). "
                "LiLAW's meta set is a small validation set (the paper uses 15% of the data): swap them or shrink it."
            )
        num_labels = getattr(getattr(self.model, "config", None), "num_labels", None)
        if num_labels:
            for name, dataset in (("train_dataset", self.train_dataset), ("meta_dataset", meta)):
                if isinstance(dataset, datasets.Dataset):
                    labels = column_array(dataset)
                    labelled = labels[labels != IGNORE_INDEX]
                    if labelled.size and (labelled.min() < 0 or labelled.max() >= num_labels):
                        raise ValueError(
                            f"{name} has labels in [{labelled.min()}, {labelled.max()}] but the model has "
                            f"num_labels={num_labels}: labels must lie in [0, {num_labels}) (or be -100 to ignore a "
                            "row). Fix the labels, or build the model with the right num_labels."
                        )
