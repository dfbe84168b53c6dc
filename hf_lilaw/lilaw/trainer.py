"""`LiLAWTrainer`: `transformers.Trainer` with LiLAW per-sample loss weighting and its meta step."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn
from transformers import TrainingArguments
from transformers.trainer_utils import has_length

from ..core.base_trainer import BaseTrainer
from ..core.columns import has_transform, with_sample_id
from ..core.labels import check_label_feature
from ..core.model_card import format_value, settings_as_code
from ..core.outputs import extract_logits
from ..core.sampler import IndexBatchSampler
from ..core.splits import split_meta_set
from ..core.side_set import SideSet
from ..core.validation import label_column_of, scan_dataset
from ..functional.lilaw_step import BaseLossSettings, guarded_meta_update, meta_gradient, training_loss_terms
from ..functional.losses import IGNORE_INDEX, per_sample_loss
from ..functional.statistics import per_sample_statistics
from .config import LiLAWConfig
from .plot import plot_lilaw_parameters
from .state import PARAMETER_NAMES, LiLAWState

logger = logging.getLogger(__name__)

LILAW_STATE_NAME = "lilaw_state.pt"
"""The shared LiLAW state file of a checkpoint; each process's part is ``lilaw_state_rank<r>.pt`` beside it."""


LILAW_CITATION = """\
@article{moturu2025lilaw,
  title   = {{LiLAW}: Lightweight Learnable Adaptive Weighting to Meta-Learn Sample Difficulty and Improve Noisy Training},
  author  = {Moturu, Abhishek and Goldenberg, Anna and Taati, Babak},
  journal = {arXiv preprint arXiv:2509.20786},
  year    = {2025}
}"""

PLOT_FILE = "lilaw_parameters.png"
_WEIGHT_NAMES = ("lilaw/w_alpha", "lilaw/w_beta", "lilaw/w_delta", "lilaw/w")


class LiLAWTrainer(BaseTrainer):
    """A drop-in `Trainer` that weights each sample's loss with LiLAW (method page: ``docs/lilaw.md``).

    Each training loss is ``mean(W_i · ℓ_i)`` with ``W = W_α + W_β + W_δ`` computed from the model's own
    softmax and three learned scalars α, β, δ, and ``ℓ`` LiLAW's per-sample base loss of the logits
    (``lilaw_base_loss``, cross-entropy by default): the labels are kept out of the forward, so a loss the model
    computes itself (e.g. a class-weighted one) is not used, not even during the warm-up. After every optimizer
    step past the warm-up, one meta step updates α, β, δ on a random batch of the meta set: a no-grad forward, the
    gradient of ``mean(W·ℓ)`` (``ℓ`` unsmoothed) in the three scalars (averaged across processes), SGD with weight
    decay, then ``α ≥ 1`` and ``δ ≥ β``. The scalars live outside the model: its optimizer, scheduler, clipping and
    weight decay never see them.

    Args:
        meta_dataset: the meta (validation) set, with labels, noisy or clean. When ``None``, a seeded,
            class-stratified ``lilaw_meta_fraction`` of ``train_dataset`` is split off and used instead. Its rows
            are numbered first (a ``sample_id`` column, unless it has one), so recorded training dynamics index the
            data set you passed: ``clean_labels(train_dataset, ...)`` keeps the meta rows (they score NaN, never
            flagged).
        All other arguments are those of `transformers.Trainer`. ``args`` may be a `LiLAWConfig` or a plain
        `TrainingArguments` (converted to a `LiLAWConfig` with LiLAW's defaults). ``compute_loss_func`` is not
        accepted, and a subclass's ``compute_loss`` must return ``super().compute_loss(...)`` (checked at the first
        training step): LiLAW owns the loss (see ``lilaw_base_loss``).
    """

    config_class = LiLAWConfig
    method_name = "LiLAW"
    resume_free_settings = frozenset({"lilaw_meta_cache", "lilaw_compile"})
    owned_loss = (
        "LiLAW's per-sample weighting",
        "α, β, δ still moved in the logs",
        "LiLAW weights the per-sample base loss of the logits itself: choose it with lilaw_base_loss ('cross_entropy', "
        "'focal', 'gce' or 'sce') and label_smoothing_factor, and remove the override (or return "
        "super().compute_loss(...) from it); for another loss (e.g. class-weighted cross-entropy) use "
        "transformers.Trainer.",
    )
    _tag_names = ["lilaw", "hf_lilaw"]
    _records_training_dynamics = True
    _records_lilaw_weights = True
    args: LiLAWConfig

    @classmethod
    def validate_config(cls, args: TrainingArguments) -> None:
        args._validate_lilaw()

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
        args = self.coerce_args(args)
        self.check_train_dataset(train_dataset)
        seed = args.seed if args.lilaw_seed is None else args.lilaw_seed

        if meta_dataset is None and train_dataset is not None:
            if not isinstance(train_dataset, datasets.Dataset):
                raise ValueError(
                    f"LiLAWTrainer can only split a meta set off a datasets.Dataset, not {type(train_dataset).__name__}. "
                    "Pass meta_dataset= (a few hundred labelled samples, noisy labels are fine)."
                )
            # Checked before the split, so a bad label is named by its row in the data set the user passed.
            scan_dataset(train_dataset, name="train_dataset", finite=False)
            fraction = args.lilaw_meta_fraction
            full_size = len(train_dataset)
            # Number the rows of the data set the user holds before the split (unless it has sample_id already):
            # training dynamics and clean_labels then index it, the meta rows score NaN (never flagged), and
            # clean_labels(train, ...) keeps them. The ids travel as a bookkeeping column, never reaching the model.
            train_dataset = with_sample_id(train_dataset)
            self._split_from = train_dataset
            train_dataset, meta_dataset = split_meta_set(train_dataset, fraction=fraction, seed=seed)
            self._split_part = train_dataset
            logger.warning(
                "LiLAW: no meta_dataset given, so a class-stratified %.0f%% split (seed %d) of train_dataset is the "
                "meta set: %d meta samples, %d of %d left for training. Pass meta_dataset= to choose it yourself.",
                100 * fraction, seed, len(meta_dataset), len(train_dataset), full_size,
            )
        else:
            self._split_from = self._split_part = None
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
        self._check_streamed_warmup()
        if self.meta_dataset is not None:
            self._check_meta_dataset()

        args = self.args
        self._base_loss = BaseLossSettings(
            kind=args.lilaw_base_loss,
            focal_gamma=args.lilaw_focal_gamma,
            gce_q=args.lilaw_gce_q,
            sce_alpha=args.lilaw_sce_alpha,
            sce_beta=args.lilaw_sce_beta,
        )
        # The per-step math, each function compiled as a whole under lilaw_compile (eager otherwise).
        step_math = (training_loss_terms, meta_gradient, guarded_meta_update)
        if args.lilaw_compiles:
            step_math = tuple(self.compiled(fn) for fn in step_math)
        self._training_loss_terms, self._meta_gradient, self._guarded_meta_update = step_math
        device = self.args.device
        self._meta_lr = torch.tensor(self.args.lilaw_per_parameter("lr"), dtype=torch.float32, device=device)
        self._meta_weight_decay = torch.tensor(
            self.args.lilaw_per_parameter("weight_decay"), dtype=torch.float32, device=device
        )
        meta_batch_size, setting = self.args.lilaw_meta_batch()
        meta_seed = seed + self.args.process_index  # each process draws its own meta batches
        if self.meta_dataset is not None:
            meta_set = SideSet(self.meta_dataset, name="meta_dataset", batch_size=meta_batch_size, seed=meta_seed,
                               cache=self.args.lilaw_meta_cache, setting=setting, unlabelled_batches=True)  # fmt: skip
        else:  # no data at all: train() refuses to start
            sampler = IndexBatchSampler(1, 1, seed=meta_seed, name="meta_dataset")
            meta_set = SideSet.adopt(None, name="meta_dataset", sampler=sampler, cache=self.args.lilaw_meta_cache)
        # One meta batch per meta step: a resume under another number of processes moves to meta_steps batches.
        self.meta_set = self.register_side_set(
            meta_set, state_key="sampler", batches_drawn=lambda: self.lilaw_state.meta_steps
        )
        initial = (self.args.lilaw_alpha, self.args.lilaw_beta, self.args.lilaw_delta)
        self.lilaw_state = LiLAWState(initial, meta_set, device)
        self.register_training_state(self.lilaw_state, name=LILAW_STATE_NAME.removesuffix(".pt"), what="LiLAW state")
        self._skipped_at_last_log = 0

    # ---- public API -------------------------------------------------------------------------------------

    def lilaw_parameters(self) -> dict[str, float]:
        """The current ``{"alpha": α, "beta": β, "delta": δ}``."""
        return self.lilaw_state.parameters()

    @property
    def meta_steps(self) -> int:
        """Meta steps taken so far (including skipped non-finite ones), restored on resume."""
        return self.lilaw_state.meta_steps

    @property
    def skipped_meta_steps(self) -> int:
        """Meta steps whose gradient was not finite or whose batch held no labelled row, so α, β, δ were left
        unchanged (one host sync)."""
        return int(self.lilaw_state.skipped_meta_steps)

    def next_meta_batch(self) -> tuple[dict[str, Any], torch.Tensor]:
        """``(inputs, labels)`` of the next meta batch, collated and on the device (advances the meta sampler)."""
        return self.meta_set.next_batch(use_cache=False)

    def score_samples(self, dataset: Any = None) -> datasets.Dataset:
        """Per-sample LiLAW scores of ``dataset`` (default: the training set) under the current model and α, β, δ.

        Rows are scored in the dataset's order whatever ``train_sampling_strategy``; a streamed set (no length) is
        read in the main process (``dataloader_num_workers`` ignored), so its rows come in the order it yields
        them. Score the training rows as evaluation sees them: by default they go through the training set's
        transform, and one that augments at random scores other random views at each call (a warning says so when
        the default set has a ``set_transform``/``with_transform``); pass ``train.with_transform(eval_transform)``.

        Returns:
            A `datasets.Dataset` with one row per input row, in the same order: ``prob_label`` (``s_y``),
            ``prob_max``, ``prediction``, ``loss`` (cross-entropy), ``w_alpha``, ``w_beta``, ``w_delta``, ``w`` and
            ``difficulty``: ``"easy"``, ``"moderate"`` or ``"hard"`` by which of W_α, W_δ, W_β dominates (``None`` for
            rows labelled -100). Low ``w_alpha`` flags likely label errors (see `hf_lilaw.find_label_issues`).
        """
        if dataset is None:
            dataset = self.train_dataset
            # A warning, not an error: the transform may be deterministic (the tabular and time-series examples
            # train on one), and nothing tells it apart from random augmentation without running it.
            if has_transform(dataset):
                warnings.warn(
                    "score_samples() scores the training set through its transform (set_transform/with_transform): if "
                    "that transform augments at random, as training transforms do, each call scores other random "
                    "views, and find_label_issues or clean_labels built on the scores change with them. Pass the "
                    "training rows under the evaluation transform, e.g. trainer.score_samples(train.with_transform("
                    "image_transforms(model, train=False))); if the transform is deterministic, pass the set itself "
                    "to score it without this warning.",
                    UserWarning,
                    stacklevel=2,
                )
        if dataset is None:
            raise ValueError("score_samples needs a dataset (or a trainer built with train_dataset).")
        with self._scoring_pass(dataset):
            output = self.predict(dataset, metric_key_prefix="score")
        if output.label_ids is None:
            raise ValueError("score_samples needs labels: give the data set a 'label' column.")
        logits = torch.as_tensor(output.predictions)
        if has_length(dataset) and len(logits) != len(dataset):
            raise RuntimeError(f"score_samples scored {len(logits)} rows of a data set of {len(dataset)}; please report this.")
        stats = per_sample_statistics(logits, torch.as_tensor(output.label_ids), **self.lilaw_parameters())
        columns = {name: stats[name].numpy() for name in ("prob_label", "prob_max", "loss", "w_alpha", "w_beta", "w_delta")}
        columns["w"] = columns["w_alpha"] + columns["w_beta"] + columns["w_delta"]
        columns["prediction"] = logits.argmax(dim=-1).numpy()
        dominant = np.stack([columns["w_alpha"], columns["w_delta"], columns["w_beta"]]).argmax(axis=0)
        names = np.array(["easy", "moderate", "hard"], dtype=object)
        columns["difficulty"] = np.where(np.isnan(columns["w"]), None, names[dominant]).tolist()
        order = ("prob_label", "prob_max", "prediction", "loss", "w_alpha", "w_beta", "w_delta", "w", "difficulty")
        return datasets.Dataset.from_dict({name: columns[name] for name in order})

    @contextlib.contextmanager
    def _scoring_pass(self, dataset: Any) -> Iterator[None]:
        """`predict` as scoring needs it, whatever the user's settings: every row (no dropped last batch), the
        logits even under ``prediction_loss_only``, one array of them, no metric pass, and the rows in the order
        of ``dataset`` (the sampler is sequential, see `BaseTrainer._get_eval_sampler`): batches in order from the
        workers, and for a streamed set (no length) no worker processes, since each worker streams its own shards
        and the batches interleave differently from the stream's own order. All restored on exit."""
        overrides = {
            "dataloader_drop_last": False,
            "prediction_loss_only": False,
            "eval_do_concat_batches": True,
            "dataloader_in_order": True,
        }
        if isinstance(dataset, torch.utils.data.IterableDataset) or not has_length(dataset):
            overrides |= {"dataloader_num_workers": 0, "dataloader_persistent_workers": False}
            overrides["dataloader_prefetch_factor"] = None  # DataLoader refuses a prefetch factor without workers
        saved_args = {name: getattr(self.args, name) for name in overrides}
        saved = self.compute_metrics, self.preprocess_logits_for_metrics
        try:
            for name, value in overrides.items():
                setattr(self.args, name, value)
            self.compute_metrics = self.preprocess_logits_for_metrics = None
            self._logits_only = True  # the logits as training reads them, whatever else the forward returns
            yield
        finally:
            for name, value in saved_args.items():
                setattr(self.args, name, value)
            self.compute_metrics, self.preprocess_logits_for_metrics = saved
            self._logits_only = False

    # ---- Trainer overrides ------------------------------------------------------------------------------

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
                self.meta_step(model)
            state.last_step_seen = self.state.global_step
            state.current_step_weighted = not self._in_warmup()
        # the base marks it a training batch and refuses a loss that bypassed LiLAW's (in warm-up too)
        return super().training_step(model, inputs, num_items_in_batch)

    # ---- the meta step (one optimizer step's update of α, β, δ) -------------------------------------------

    def meta_step(self, model: nn.Module | None = None) -> None:
        """One meta step: the next meta batch, a no-grad forward of ``model`` (default: the trainer's), the
        gradient of the weighted meta loss in α, β, δ averaged across processes, then SGD with weight decay and
        the constraints. Run by `training_step` once per weighted optimizer step. The model's mode is restored;
        drawing the meta batch leaves the global RNGs as they were, and so does the forward in the default
        ``lilaw_meta_forward_mode="eval"``. In ``"train"`` mode its dropout draws from the global torch RNG, so what
        draws from it later (training dropout, a random augmentation of the training set) differs from a plain
        `Trainer` run's."""
        model = self.model if model is None else model
        # From the cache: no Arrow read, collation, copy or RNG save/restore, and no -100 rows to mask.
        cached = self.meta_set.batch_cache() is not None
        inputs, labels = self.meta_set.next_batch()
        outputs = self.probe_forward(model, inputs, train_mode=self.args.lilaw_meta_forward_mode == "train")
        logits = extract_logits(outputs)
        if not cached:
            labelled = labels != IGNORE_INDEX  # boolean indexing: one host sync per step
            logits, labels = logits[labelled], labels[labelled]
        state = self.lilaw_state
        grad = self._meta_gradient(logits, labels, state.params, loss=self._base_loss)
        # The one place α, β, δ change: average across processes, then SGD + constraints, unless non-finite.
        if self.accelerator.num_processes > 1:
            grad = self.accelerator.reduce(grad, reduction="mean")
        state.params, state.skipped_meta_steps = self._guarded_meta_update(
            state.params, grad, state.skipped_meta_steps, lr=self._meta_lr, weight_decay=self._meta_weight_decay
        )
        state.meta_steps += 1

    # ---- the weighted loss --------------------------------------------------------------------------------

    def _lilaw_loss(
        self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        if labels is None:
            raise ValueError(
                "LiLAWTrainer got a batch without labels. Keep the label column (named 'label' or 'labels') in "
                "the data set; with a custom collator, return it as 'labels'."
            )
        logits = extract_logits(outputs)
        self.check_first_batch(logits, labels)
        state = self.lilaw_state
        if self._in_training_step:
            self.mark_owned_loss()
            losses, sums = self._training_loss_terms(
                logits,
                labels,
                state.params,
                loss=self._base_loss,
                label_smoothing=self.args.label_smoothing_factor,
                weighted=state.current_step_weighted,  # past the warm-up
                detach_weights=self.args.lilaw_detach_weights,
            )
            self.accumulate_metric_sums(_WEIGHT_NAMES, sums)
            if self.records_dynamics:
                alpha, beta, delta = state.params
                self.record_dynamics(per_sample_statistics(logits, labels, alpha=alpha, beta=beta, delta=delta))
        else:
            losses = per_sample_loss(
                logits, labels, **self._base_loss._asdict(), label_smoothing=self.args.label_smoothing_factor
            )
        return self.reduce_owned_loss(losses, labels, num_items_in_batch)

    def _in_warmup(self) -> bool:
        steps = self.args.lilaw_warmup_steps
        if steps is not None:
            return self.state.global_step < steps
        # 1e-9: state.epoch is a float sum of step fractions.
        return (self.state.epoch or 0.0) < self.args.lilaw_warmup_epochs - 1e-9

    # ---- BaseTrainer hooks ----------------------------------------------------------------------------------

    def train_dataset_as_passed(self) -> Any:
        # Under the automatic meta split, rows are named by their index in the set the user passed; a training set
        # assigned after construction is its own (the split's source would be stale: checked and sized instead of it).
        if self._split_from is not None and self.train_dataset is self._split_part:
            return self._split_from
        return self.train_dataset

    def before_train(self, *, resumed: bool) -> None:
        if self.meta_dataset is None:
            raise ValueError("LiLAWTrainer.train() needs a train_dataset or a meta_dataset to draw meta batches from.")
        if not resumed:
            self.lilaw_state.restart()
        self._warn_if_warmup_covers_the_run()

    def restart_loop(self) -> None:
        # The abandoned loop's last step owes no meta step to this loop's first.
        self.lilaw_state.restart()

    def training_log_values(self) -> dict[str, float]:
        logs: dict[str, float] = {f"lilaw/{name}": value for name, value in self.lilaw_parameters().items()}
        logs["lilaw/meta_steps"] = self.meta_steps
        skipped = self.skipped_meta_steps
        logs["lilaw/skipped_meta_steps"] = skipped
        if skipped > self._skipped_at_last_log:
            logger.warning(
                "LiLAW skipped %d meta step(s) since the last log because the meta loss or its gradient was not "
                "finite (or the meta batch held no labelled row); α, β, δ were left unchanged for those steps.",
                skipped - self._skipped_at_last_log,
            )
            self._skipped_at_last_log = skipped
        return logs

    def model_card_values(self) -> dict[str, Any]:
        args = self.args
        meta = self.meta_dataset
        meta_size = f"{len(meta)} samples" if has_length(meta) else "a stream"
        symbols = {"alpha": "α (easy)", "beta": "β (hard)", "delta": "δ (moderate)"}
        initial = {name: format_value(float(getattr(args, f"lilaw_{name}"))) for name in PARAMETER_NAMES}
        final = {name: format_value(value) for name, value in self.lilaw_parameters().items()}
        table = "\n".join([
            "| | " + " | ".join(symbols[n] for n in PARAMETER_NAMES) + " |",
            "|:--|--:|--:|--:|",
            "| initial | " + " | ".join(initial[n] for n in PARAMETER_NAMES) + " |",
            "| final | " + " | ".join(final[n] for n in PARAMETER_NAMES) + " |",
        ])
        skipped = self.skipped_meta_steps
        facts = [
            f"Meta steps taken: {self.meta_steps}"
            + (f" ({skipped} skipped: a meta loss not finite, or no labelled row in the batch)" if skipped else "")
            + "."
        ]
        warmup = (
            f"{args.lilaw_warmup_steps} optimizer steps"
            if args.lilaw_warmup_steps is not None
            else f"{args.lilaw_warmup_epochs:g} epoch(s)"
        )
        per_parameter = {
            f"{key} ({name})": getattr(args, f"lilaw_{name}_{key}")
            for key in ("lr", "weight_decay")
            for name in PARAMETER_NAMES
            if getattr(args, f"lilaw_{name}_{key}") is not None
        }
        settings = {
            "meta learning rate (SGD)": args.lilaw_lr,
            "meta weight decay": args.lilaw_weight_decay,
            **per_parameter,
            "warm-up (unweighted, no meta steps)": warmup,
            "meta batch size": self.meta_set.sampler.batch_size if meta is not None else args.lilaw_meta_batch()[0],
            "meta fraction (when no meta set is given)": args.lilaw_meta_fraction,
            "weights detached in the model's backward": args.lilaw_detach_weights,
            "meta forward mode": args.lilaw_meta_forward_mode,
            "per-step math compiled (torch.compile)": args.lilaw_compiles,
        }
        details = [f"γ = {args.lilaw_focal_gamma}"] if args.lilaw_base_loss == "focal" else []
        if args.label_smoothing_factor:
            details.append(f"label smoothing {args.label_smoothing_factor}")
        base_loss = args.lilaw_base_loss + (f" ({', '.join(details)})" if details else "")

        def plot(output_dir: str) -> str | None:
            try:
                plot_lilaw_parameters(self.state.log_history, f"{output_dir}/{PLOT_FILE}")
            except ValueError:  # no LiLAW log yet (no training, or fewer steps than logging_steps)
                logger.info("No LiLAW parameters in the log history yet; the model card has no plot of α, β, δ.")
                return None
            return PLOT_FILE

        return {
            "method_description": (
                "Each sample's loss is weighted by `W = W_α + W_β + W_δ`, computed from the model's own softmax and "
                "three learned scalars α, β, δ that one cheap meta step per optimizer step updates on a held-out "
                "meta set."
            ),
            "base_loss": base_loss,
            "method_table": table,
            "method_facts": facts,
            "method_settings": settings,
            "side_sets": {"Meta set": f"{meta_size}, which LiLAW's meta steps draw from" if meta is not None else "none yet"},
            "citation": LILAW_CITATION,
            "train_snippet": (
                "from hf_lilaw import LiLAWConfig, LiLAWTrainer\n\n"
                f'args = LiLAWConfig(output_dir="my-model", {self._lilaw_settings_as_code()})\n'
                "trainer = LiLAWTrainer(model=model, args=args, train_dataset=train, eval_dataset=test, meta_dataset=meta)\n"
                "trainer.train()"
            ),
            "plot": plot,
        }

    def _lilaw_settings_as_code(self) -> str:
        """This run's α, β, δ and every other LiLAW field off its default, as keyword arguments of `LiLAWConfig`."""
        return settings_as_code(self.args, prefix="lilaw_", always=[f"lilaw_{name}" for name in PARAMETER_NAMES])

    # ---- checks -----------------------------------------------------------------------------------------------

    def _check_streamed_warmup(self) -> None:
        if (
            self.train_dataset is not None
            and not has_length(self.train_dataset)
            and self.args.lilaw_warmup_steps is None
            and self.args.lilaw_warmup_epochs > 0
        ):
            raise ValueError(
                "train_dataset is streamed (it has no length), so LiLAW cannot count warm-up epochs. "
                "Set lilaw_warmup_steps (e.g. the number of optimizer steps in one pass over your data), or 0."
            )

    def _check_meta_dataset(self) -> None:
        meta = self.meta_dataset
        if has_length(meta) and len(meta) == 0:
            raise ValueError("meta_dataset is empty; pass a few hundred labelled samples, or omit it to split one off.")
        if isinstance(meta, (datasets.Dataset, datasets.IterableDataset)) and meta.column_names is not None:
            label_column_of(meta, name="meta_dataset")
        check_label_feature(meta, name="meta_dataset")
        if self.train_dataset is not None and has_length(self.train_dataset) and has_length(meta) and len(meta) > len(self.train_dataset):
            raise ValueError(
                f"meta_dataset ({len(meta)} samples) is larger than train_dataset ({len(self.train_dataset)}). "
                "LiLAW's meta set is a small validation set (the paper uses 15% of the data): swap them or shrink it."
            )

    def _total_optimizer_steps(self) -> int | None:
        """Optimizer steps `train()` will take, as Trainer counts them; ``None`` when unknown."""
        args = self.args
        if args.max_steps > 0:
            return args.max_steps
        if not has_length(self.train_dataset):
            return None
        return math.ceil(args.num_train_epochs * self._optimizer_steps_per_epoch())

    def _optimizer_steps_per_epoch(self) -> int:
        args = self.args
        per_step = args.per_device_train_batch_size * max(args.world_size, 1)
        batches = len(self.train_dataset) / per_step
        batches = math.floor(batches) if args.dataloader_drop_last else math.ceil(batches)
        return max(math.ceil(batches / args.gradient_accumulation_steps), 1)

    def _warn_if_warmup_covers_the_run(self) -> None:
        total = self._total_optimizer_steps()
        if total is None:
            return
        args = self.args
        if args.lilaw_warmup_steps is not None:
            warmup, what = args.lilaw_warmup_steps, f"lilaw_warmup_steps={args.lilaw_warmup_steps}"
        elif args.lilaw_warmup_epochs == 0 or not has_length(self.train_dataset):
            return  # no warm-up, or none that can be counted (streamed data needs lilaw_warmup_steps)
        else:
            warmup = math.ceil(args.lilaw_warmup_epochs * self._optimizer_steps_per_epoch() - 1e-9)
            what = f"lilaw_warmup_epochs={args.lilaw_warmup_epochs:g} (about {warmup} optimizer steps)"
        # Weighted steps are those from `warmup` on; each but the last is followed by a meta step.
        if total - warmup - 1 <= 0:
            logger.warning(
                "LiLAW WILL DO NOTHING IN THIS RUN: the warm-up, %s, covers the whole run of %d optimizer steps, so "
                "no meta step will ever happen and α, β, δ stay at their initial values. Lower lilaw_warmup_steps or "
                "lilaw_warmup_epochs (e.g. --lilaw_warmup_steps %d), or train for longer.",
                what, total, max(total // 4, 0),
            )
