"""Trainer glue for meta label correction: EBOMLC, MLC-D and MLC on hf_lilaw's shared base trainer.

The bilevel steps themselves are pure functions in `hf_lilaw.functional` (`mlc_step`, `mlc_d_step`, `ebomlc_step`,
`ebomlc_released_step`); this module feeds them the Trainer's batches, models and optimizers.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from transformers import TrainingArguments
from transformers.trainer_utils import has_length

from ..core.base_trainer import BaseTrainer
from ..core.columns import BOOKKEEPING_COLUMNS, LABEL_COLUMNS
from ..core.labels import dataset_labels
from ..core.model_card import settings_as_code
from ..core.outputs import extract_logits
from ..core.side_set import SideSet
from ..functional.losses import IGNORE_INDEX
from ..functional.mlc_bilevel import Batch, MetaStepInputs, MetaStepResult
from ..functional.mlc_bome import mlc_d_step
from ..functional.mlc_ebomlc import ebomlc_released_step, ebomlc_step
from ..functional.mlc_lookahead import is_sgd
from ..functional.mlc_second_order import mlc_step
from .config import MetaLabelCorrectionConfig
from .features import PenultimateFeatures
from .meta_model import LabelCorrectionNetwork
from .state import MetaLabelCorrectionState

__all__ = [
    "EBOMLCTrainer",
    "MLCDTrainer",
    "MLCTrainer",
    "MetaLabelCorrectionTrainer",
]

MLC_STATE_NAME = "mlc_state.pt"
"""The checkpoint file of the meta model and its optimizer; each process's clean-stream position is beside it in
``mlc_state_rank<r>.pt``."""

METHOD_NAMES = {"ebomlc": "EBOMLC", "mlc_d": "MLC-D", "mlc": "MLC"}

CLEAN_SET_FITTED_LOSS = 0.01
"""A training log's mean cross-entropy of the main model on the upper clean batches (MLC's `mlc/upper_loss`,
EBOMLC's `mlc/clean_loss`) below which the trainer warns, once, that the main model has memorised the clean set: the
meta model's only signal is then nearly gone (about 99 % probability on every clean label)."""

MLC_CITATION = """@inproceedings{zheng2021mlc,
  title={Meta Label Correction for Noisy Label Learning},
  author={Zheng, Guoqing and Awadallah, Ahmed Hassan and Dumais, Susan},
  booktitle={AAAI},
  year={2021}
}"""


CHECKPOINTING_FLAGS = ("gradient_checkpointing", "grad_checkpointing")
"""The attributes by which transformers' layers and timm's models turn gradient checkpointing on."""


@contextlib.contextmanager
def checkpointing_off(net: nn.Module):
    """Gradient checkpointing off in ``net`` (transformers and timm layers) for the forwards inside.

    A checkpointed layer recomputes its forward during the backward, after `functional_call` has put the module's own
    parameters back: a forward at a functional copy (MLC's look-ahead ``w'``) would be differentiated with the
    activations of ``w``, a silently wrong hypergradient. Only that forward keeps its activations."""
    flags = [(m, a) for m in net.modules() for a in CHECKPOINTING_FLAGS if getattr(m, a, None) is True]
    for module, attribute in flags:
        setattr(module, attribute, False)
    try:
        yield
    finally:
        for module, attribute in flags:
            setattr(module, attribute, True)


class MetaLabelCorrectionTrainer(BaseTrainer):
    """Trains a classifier on noisy labels with a meta model that corrects them, guided by a small clean set
    (method page: ``docs/ebomlc.md``).

    Every optimizer step is one bilevel step of `args.mlc_method` (see [`MetaLabelCorrectionConfig`]) on the noisy
    batch of the Trainer's loop and a fresh clean batch of `mlc_clean_batch_size` examples: its first half feeds the
    upper loss, its second half joins the lower loss, weighted by the two batch sizes unless `mlc_lower_loss_weights`
    says otherwise (with a zero clean weight the whole clean batch feeds the upper loss; only MLC's main update then
    leaves out the clean rows, EBOMLC's and MLC-D's also descend the upper loss on them). The meta model (Xavier-normal
    layers, zero biases, optional skip gate) and its Adam live outside the main optimizer: the main optimizer,
    scheduler, clipping and weight decay never see them. Evaluation reports the plain cross-entropy.

    Look-ahead: MLC (and the released EBOMLC variant) differentiate through one step of the main optimizer. With
    `torch.optim.SGD` that step is SGD's own rule (momentum buffer, dampening, weight decay, Nesterov, per-group
    learning rate); with any other optimizer it is a plain gradient step of `mlc_inner_lr` (default: the current
    learning rate), see `hf_lilaw.functional.mlc_lookahead.lookahead_steps`. MLC's look-ahead takes the gradient the
    optimizer will apply: averaged across processes, and with SGD clipped to `max_grad_norm`. MLC keeps the skip gate on by
    default: without it, MLC under an adaptive optimizer is known to collapse to near-uniform corrected labels, and
    construction warns.

    MLC-D is an ablation (its meta step has no clean-set term) and warns at construction. `load_best_model_at_end`
    restores the meta model and its optimizer of the best checkpoint too.

    Supported: single-label classifiers whose head takes the penultimate features (transformers image and text
    classifiers, `TimmWrapperForImageClassification`, timm models, plain `nn.Module`s returning logits), one process
    or DDP, fp32 or bf16. Every row of the training and the clean set needs a label: rows labelled -100 are refused
    before the first step in a `datasets.Dataset` or a list or tuple of rows, and at the first batch that holds one
    in a torch `Dataset` or a stream (reading every item of a torch `Dataset` up front would run its transforms).
    Not supported:
    `gradient_accumulation_steps > 1` (refused by the config), fp16, DeepSpeed and FSDP (gradients are taken with
    `torch.autograd.grad` on the unwrapped model and averaged across processes by hand), `model_init`,
    `compute_loss_func` (the method owns its losses).

    The shared machinery (config coercion, tags, checkpointed state, the clean-batch sampler, the pre-flight checks,
    metric logging, model cards) comes from `hf_lilaw.core.BaseTrainer`.

    Args:
        clean_dataset: The small trusted set (the MLC paper uses 2 % of the data, class-balanced), same columns as
            `train_dataset`. Required.
        All other arguments are those of `transformers.Trainer` (``model`` is required, ``model_init`` is not
        supported). ``args`` may be a `MetaLabelCorrectionConfig` or a plain `TrainingArguments` (converted with
        the ``mlc_*`` defaults); ``data_collator`` also collates the clean set; ``train_dataset`` is the noisy
        training set.
    """

    config_class: ClassVar[type[TrainingArguments]] = MetaLabelCorrectionConfig
    resume_free_settings = frozenset({"mlc_clean_cache"})
    _method: ClassVar[str | None] = None
    _tag_names: ClassVar[list[str]] = ["hf_lilaw", "meta-label-correction"]
    args: MetaLabelCorrectionConfig

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
        clean_dataset: Any = None,
    ) -> None:
        if model is None or model_init is not None:
            raise ValueError(f"{type(self).__name__} needs model= (model_init is not supported).")
        if compute_loss_func is not None:
            raise ValueError(
                f"{type(self).__name__} trains on the corrected labels with its own losses, so it does not take "
                "compute_loss_func. Drop it, or use transformers.Trainer for a custom loss."
            )
        if clean_dataset is None:
            raise ValueError(
                f"{type(self).__name__} needs a small clean (trusted) set: pass clean_dataset=, e.g. a "
                "class-balanced ~2 % split of your data whose labels were verified."
            )
        if has_length(clean_dataset) and len(clean_dataset) == 0:
            raise ValueError("clean_dataset is empty: pass at least mlc_clean_batch_size clean examples.")
        args = self.coerce_args(args)
        gate = args.skip_gate_for(sgd=self._main_optimizer_is_sgd(args, optimizers, optimizer_cls_and_kwargs))
        if gate != args.resolved_skip_gate:  # `optim` names another optimizer than the one passed: pin the gate used
            args = copy.copy(args)
            args.mlc_skip_gate = gate
            args._validate_mlc()
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
        args = self.args
        self.clean_dataset = clean_dataset
        self.clean_set = self.register_side_set(
            SideSet(
                clean_dataset,
                name="clean_dataset",
                batch_size=args.mlc_clean_batch_size,
                seed=args.seed + args.process_index,
                cache=args.mlc_clean_cache,
                strict=True,
                setting="mlc_clean_batch_size",
            ),
            state_key="clean_sampler",
            batches_drawn=lambda: self.mlc_state.steps,  # one clean batch per step
        )
        self._features = PenultimateFeatures(self.model, module_name=args.mlc_feature_module)
        feature_dim, num_labels = self._probe_model()
        self._warn_known_failures(optimizers, optimizer_cls_and_kwargs)
        meta_model = LabelCorrectionNetwork(
            feature_dim=feature_dim,
            num_labels=num_labels,
            label_embedding_dim=args.mlc_label_embedding_dim,
            hidden_dim=args.mlc_meta_hidden_dim,
            skip_gate=args.resolved_skip_gate,
            skip_gate_init=args.resolved_skip_gate_init,
            label_embedding_init=args.resolved_label_embedding_init,
        ).to(args.device)
        meta_optimizer = torch.optim.Adam(
            meta_model.parameters(),
            lr=args.mlc_meta_lr,
            weight_decay=args.mlc_meta_weight_decay,
            amsgrad=args.mlc_meta_amsgrad,
        )
        self.mlc_state = MetaLabelCorrectionState(
            meta_model=meta_model, meta_optimizer=meta_optimizer, clean_set=self.clean_set
        )
        self.register_training_state(
            self.mlc_state, name=MLC_STATE_NAME.removesuffix(".pt"), what="meta label correction state"
        )
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags([args.mlc_method])
        self._warned_clean_set_fitted = False
        self._unlabelled_checks: set[str] = set()  # reset by before_train

    @property
    def method_name(self) -> str:  # type: ignore[override]
        return METHOD_NAMES[self.args.mlc_method]

    @property
    def meta_model(self) -> LabelCorrectionNetwork:
        return self.mlc_state.meta_model

    @property
    def meta_optimizer(self) -> torch.optim.Optimizer:
        return self.mlc_state.meta_optimizer

    # ---- set-up -------------------------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, args: TrainingArguments) -> None:
        # Before `coerce_args` sets a method-specific trainer's method, the checks that depend on it wait.
        args._validate_mlc(method_known=cls._method is None or args.mlc_method == cls._method)

    @classmethod
    def coerce_args(cls, args: TrainingArguments | None) -> MetaLabelCorrectionConfig:
        """`BaseTrainer.coerce_args`, then the method of a method-specific trainer (`MLCTrainer`...), and the config
        validated again with it: also a field set after the config was built (``args.gradient_accumulation_steps =
        2`` would otherwise reach the trainer unchecked)."""
        args = super().coerce_args(args)
        if cls._method is not None and args.mlc_method != cls._method:
            if args.mlc_method != MetaLabelCorrectionConfig.mlc_method:
                raise ValueError(
                    f"{cls.__name__} runs mlc_method={cls._method!r} but args.mlc_method={args.mlc_method!r}: "
                    f"drop the setting or use MetaLabelCorrectionTrainer."
                )
            args = copy.copy(args)
            args.mlc_method = cls._method
        args._validate_mlc()
        return args

    @staticmethod
    def _main_optimizer_is_sgd(
        args: MetaLabelCorrectionConfig, optimizers: Any, optimizer_cls_and_kwargs: Any
    ) -> bool:
        """Whether the main optimizer is `torch.optim.SGD`: the one passed in `optimizers`, else the class in
        `optimizer_cls_and_kwargs`, else `args.optim`."""
        optimizer = optimizers[0] if optimizers else None
        if optimizer is not None:
            return is_sgd(optimizer)
        if optimizer_cls_and_kwargs is not None:
            return issubclass(optimizer_cls_and_kwargs[0], torch.optim.SGD)
        return args.optim_name == "sgd"

    def _warn_known_failures(self, optimizers: Any, optimizer_cls_and_kwargs: Any) -> None:
        """Warn, before training, about settings under which a method is known to fail."""
        args = self.args
        if args.mlc_method == "mlc_d":
            warnings.warn(
                "MLC-D is kept as an ablation: its meta step has no clean-set term (the upper loss does not depend on "
                "the meta model and BOME's barrier only pulls the lower-loss gap), so the label correction network "
                "gets no signal from the clean set and the method can drift to near-uniform labels. Use "
                "mlc_method='ebomlc' or 'mlc' to train a model.",
                UserWarning,
                stacklevel=3,
            )
        optimizer = optimizers[0] if optimizers else None
        sgd = self._main_optimizer_is_sgd(args, optimizers, optimizer_cls_and_kwargs)
        name = args.optim_name if optimizer is None else type(optimizer).__name__
        if args.mlc_method == "mlc" and not args.resolved_skip_gate and not sgd:
            warnings.warn(
                f"MLC without the skip gate (mlc_skip_gate=False) with an adaptive main optimizer ({name}) is known "
                "to collapse: the label correction network drifts to near-uniform labels, far below cross-entropy "
                "even on clean labels (docs/benchmarks.md §4 has the measurements and their commands). Keep "
                "mlc_skip_gate on, or train with optim='sgd' and the authors' recipe (lr 0.1, momentum 0.9, weight "
                "decay 5e-4).",
                UserWarning,
                stacklevel=3,
            )
        if args.mlc_method == "ebomlc" and args.mlc_ebomlc_variant == "spec" and not args.resolved_skip_gate and not sgd:
            warnings.warn(
                f"EBOMLC without the skip gate (mlc_skip_gate=False) with an adaptive main optimizer ({name}) gains "
                "most under heavy noise with a large clean set, but is known to lose badly where the labels are "
                "cleaner than feared or the clean set is small (docs/benchmarks.md §4 has the measurements and their "
                "commands). Keep the gate on (the default under AdamW) unless you have measured that your data needs "
                "it off.",
                UserWarning,
                stacklevel=3,
            )
        if args.mlc_method == "ebomlc" and args.mlc_ebomlc_variant == "released" and not sgd:
            warnings.warn(
                f"The released EBOMLC step with a non-SGD main optimizer ({name}) is known to diverge "
                "(docs/benchmarks.md §4): its main direction ascends the upper loss. Use mlc_ebomlc_variant='spec', "
                "or optim='sgd' as in the authors' recipe.",
                UserWarning,
                stacklevel=3,
            )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        if self.state.log_history:
            self._warn_if_clean_set_fitted(self.state.log_history[-1])

    def _warn_if_clean_set_fitted(self, logged: dict[str, Any]) -> None:
        """Warn once a run when the main model fits the clean batches almost exactly (a training log's main-model
        cross-entropy on them below `CLEAN_SET_FITTED_LOSS`)."""
        method = self.args.mlc_method
        # EBOMLC's `mlc/upper_loss` is the mixture, which the meta model alone can drive to 0; MLC's is the main
        # model's clean cross-entropy after the look-ahead.
        key = "mlc/clean_loss" if method == "ebomlc" else "mlc/upper_loss"
        loss = logged.get(key)
        if loss is None or not loss < CLEAN_SET_FITTED_LOSS or self._warned_clean_set_fitted:  # NaN: not fitted
            return
        self._warned_clean_set_fitted = True
        if method == "mlc_d" or not self.is_world_process_zero():  # MLC-D already warns: no clean term
            return
        # Only MLC's main update leaves out the clean rows that the lower loss leaves out; EBOMLC's also descends
        # the mixture upper loss on them.
        if method == "mlc" and not self.args.clean_rows_in_lower_loss:
            return
        kept = logged.get("mlc/label_kept")
        kept_text = "" if kept is None else f" (the corrected labels put {kept:.1%} of their mass on the given labels)"
        if method == "mlc":
            remedy = (
                "With a clean set of several hundred rows, keep them for the meta model only with "
                "mlc_lower_loss_weights=[1.0, 0.0]; either way compare"
            )
        else:
            remedy = (
                "EBOMLC's main update also descends the mixture upper loss on the clean rows, so "
                "mlc_lower_loss_weights=[1.0, 0.0] does not keep them out of it (it does with mlc_method='mlc'). "
                "Compare"
            )
        warnings.warn(
            f"The main model fits the clean set almost exactly ({key} {loss:.2g} at step "
            f"{self.state.global_step}). The meta model learns from the clean batches' loss, so from here on the label "
            f"corrections barely move{kept_text} and the run trains like cross-entropy on the training rows plus the "
            "clean rows. A network that can memorise (trained from scratch, or a large model fine-tuned) memorises a "
            f"small clean set early. {remedy} with cross-entropy on train + clean and on the clean rows alone before "
            "relying on the corrections (docs/ebomlc.md, 'From scratch: the clean set is memorised').",
            UserWarning,
            stacklevel=2,
        )

    def _probe_model(self) -> tuple[int, int]:
        """One no-grad forward on clean examples: checks the head hook and returns (feature dim, num labels).

        A detected head must output the logits' width: the fallback to the last registered `nn.Linear` can pick a
        body layer (a model registering its head first), whose input is not the penultimate feature. A head named by
        `mlc_feature_module` is taken as given."""
        x, _ = self.clean_set.probe_batch()
        with self._features.capturing():
            logits = extract_logits(self.probe_forward(self.model, x, name="clean_dataset"))
            features = self._features.pop()
        num_labels, width = logits.shape[-1], self._features.output_width
        self._num_classes = num_labels  # what the other checks (an evaluation before train()) compare labels with
        if self.args.mlc_feature_module is None and width is not None and width != num_labels:
            name = self._features.source_name
            modules = self.model.named_modules()
            heads = [n for n, m in modules if isinstance(m, nn.Linear) and m.out_features == num_labels]
            raise ValueError(
                f"The detected classification head {name!r} outputs {width} values per row but the logits have "
                f"{num_labels} classes, so its input is not the penultimate feature. Pass "
                f"mlc_feature_module='<dotted name of the head>' (the module that outputs the logits"
                f"{f'; nn.Linear modules with {num_labels} outputs: {heads}' if heads else ''})."
            )
        return features.shape[-1], num_labels

    def before_train(self, *, resumed: bool) -> None:
        # The sets whose labels the pre-flight cannot read up front are checked batch by batch.
        self._unlabelled_checks = {"train_dataset", "clean_dataset"}

    def check_train_labels(self, num_classes: int) -> None:
        """`BaseTrainer.check_train_labels`, then no row of the training or the clean set may be labelled -100 (the
        sets that can be read up front now, the others batch by batch)."""
        super().check_train_labels(num_classes)
        for name, dataset in (("train_dataset", self.train_dataset), ("clean_dataset", self.clean_dataset)):
            labels = dataset_labels(dataset, name=name, read_rows=isinstance(dataset, (list, tuple)))
            if labels is not None:
                self._refuse_unlabelled_rows(labels, name=name)
                self._unlabelled_checks.discard(name)

    def _refuse_unlabelled_rows(self, labels: Any, *, name: str, batch: str | None = None) -> None:
        """Refuse rows labelled -100 in `name` (all its labels, or those of one `batch`): the label correction
        network maps every noisy label to a corrected one, and the clean labels are the trusted signal, so no
        method of the family can skip a row."""
        rows = torch.as_tensor(labels).eq(IGNORE_INDEX).nonzero()  # one host sync for a batch on the device
        if not len(rows):
            return
        i = int(rows[0, 0])
        where = f"row {i}" if batch is None else f"example {i} of {batch}"
        role = (
            "its meta model corrects every training label and cannot skip a row"
            if name == "train_dataset"
            else "its clean rows are the trusted labels that every step learns from"
        )
        raise ValueError(
            f"{name} {where} is labelled -100 (unlabelled; {len(rows)} such rows"
            f"{'' if batch is None else ' in that batch'}), but {self.method_name} needs a label on every row: "
            f"{role}. Drop the rows labelled -100 from {name} (e.g. {name}.filter(lambda row: row['label'] != -100)) "
            "or label them."
        )

    # ---- batches and forwards -----------------------------------------------------------------------------------

    def _next_clean_batches(self) -> tuple[Batch, Batch | None]:
        """(upper batch, lower batch): the two halves of the next clean batch."""
        clean = self.clean_set
        cache = clean.batch_cache()
        if cache is not None:  # the same batches without a read, collation or copy per step
            rows = clean.sampler.next_indices()
            return self._split_clean_batch(rows, lambda part, _: self.split_labels(cache.batch(part), name=clean.name))
        # One draw of the clean set's own randomness for the read and both halves' collation.
        with clean.randomness(clean.batches_drawn):
            examples, names = clean.read_next()

            def collate(part: Any, part_names: Any) -> Batch:
                return clean.collate(lambda: part, rows=part_names, draw=None)

            return self._split_clean_batch(examples, collate, names)

    def _split_clean_batch(self, rows: Any, collate: Any, names: Any = None) -> tuple[Batch, Batch | None]:
        if not self.args.clean_rows_in_lower_loss:
            return collate(rows, names), None
        half = len(rows) // 2
        upper = collate(rows[:half], names and names[:half])
        return upper, collate(rows[half:], names and names[half:])

    def _forward(
        self, net: nn.Module, inputs: dict[str, Any], params: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits and pooled penultimate features, at `params` (a functional copy) when given."""
        with self._features.capturing():
            if params is None:
                outputs = net(**inputs)
            else:
                with checkpointing_off(net):
                    outputs = functional_call(net, params, args=(), kwargs=inputs)
            features = self._features.pop()
        return extract_logits(outputs), features

    # ---- the bilevel steps --------------------------------------------------------------------------------------

    def _mean_across_processes(self, grads: Sequence[Tensor]) -> list[Tensor]:
        """The one place where gradients are averaged across processes (main and meta blocks alike)."""
        if self.accelerator.num_processes == 1:
            return list(grads)
        flat = self.accelerator.reduce(torch.cat([g.detach().float().reshape(-1) for g in grads]), reduction="mean")
        return [t.view_as(g).to(g.dtype) for t, g in zip(flat.split([g.numel() for g in grads]), grads)]

    def _inner_lr(self) -> float:
        if self.args.mlc_inner_lr is not None:
            return self.args.mlc_inner_lr
        return self.optimizer.param_groups[0]["lr"]

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Tensor | Any],
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        """One bilevel step of `args.mlc_method` on the noisy batch `inputs` and the next clean batch.

        It leaves the main model's update direction in the parameters' `.grad`; the Trainer's loop then clips, steps
        the main optimizer and the scheduler and zeroes the gradients as usual. The meta optimizer steps here.
        `super().training_step` is not called: every method needs per-block gradients (taken with
        `torch.autograd.grad` and averaged across processes before λ is formed), and the EBOMLC and MLC-D directions
        combine gradients taken at two points, so no single backward produces them; re-running the parent's
        forward-backward would only add cost. `num_items_in_batch` is unused: losses are per-batch means and
        gradient accumulation is 1.

        Returns:
            The lower loss at the parameters the step started from (detached), for the Trainer's `loss` log.
        """
        # What Trainer.training_step does first: this step replaces it.
        model.train()
        self.meta_model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        net = self.accelerator.unwrap_model(model)
        inputs = {k: v for k, v in self._prepare_inputs(inputs).items() if k not in BOOKKEEPING_COLUMNS}
        noisy = self.split_labels(inputs, name="train_dataset")
        upper, lower = self._next_clean_batches()
        if self._unlabelled_checks:
            step = self.state.global_step + 1
            if "train_dataset" in self._unlabelled_checks:
                self._refuse_unlabelled_rows(noisy[1], name="train_dataset", batch=f"the batch of step {step}")
            if "clean_dataset" in self._unlabelled_checks:
                clean_labels = upper[1] if lower is None else torch.cat([upper[1], lower[1]])
                self._refuse_unlabelled_rows(clean_labels, name="clean_dataset", batch=f"the clean batch of step {step}")
        self.mlc_state.steps += 1
        with self.compute_loss_context_manager():
            result = self._bilevel_step(net, noisy, upper, lower)
            # Device-side sums; the base reduces them over steps and processes at the next training log.
            self.accumulate_metrics({f"mlc/{k}": v for k, v in result.metrics().items()}, count=1.0)
        return result.lower_loss.detach()

    def _bilevel_step(self, net: nn.Module, noisy: Batch, upper: Batch, lower: Batch | None) -> MetaStepResult:
        """`args.mlc_method`'s step (`hf_lilaw.functional`) on these batches, the Trainer's models and optimizers."""
        args = self.args
        inputs = MetaStepInputs(
            net=net,
            meta_model=self.meta_model,
            meta_optimizer=self.meta_optimizer,
            forward=functools.partial(self._forward, net),
            noisy=noisy,
            upper=upper,
            lower=lower,
            lower_loss_weights=args.mlc_lower_loss_weights,
            reduce=self._mean_across_processes,
        )
        if args.mlc_method == "mlc":
            return mlc_step(
                inputs, optimizer=self.optimizer, inner_lr=self._inner_lr(), max_grad_norm=args.max_grad_norm
            )
        if args.mlc_method == "mlc_d":
            return mlc_d_step(
                inputs, inner_lr=self._inner_lr(), inner_steps=args.mlc_inner_steps, barrier_eta=args.mlc_barrier_eta
            )
        barrier = dict(
            rho=args.mlc_rho, barrier_threshold=args.mlc_barrier_threshold, barrier_scale=args.mlc_barrier_scale
        )
        if args.mlc_ebomlc_variant == "released":
            return ebomlc_released_step(inputs, optimizer=self.optimizer, inner_lr=self._inner_lr(), **barrier)
        return ebomlc_step(
            inputs,
            optimizer=self.optimizer,
            mixture_space=args.resolved_mixture_space,
            max_grad_norm=args.max_grad_norm,
            clip_grad_norm=self.accelerator.clip_grad_norm_,
            **barrier,
        )

    # ---- evaluation, logging, checkpoints, model card ----------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        """Plain cross-entropy of the logits (used by evaluation; training goes through `training_step`).

        The outputs go back as `BaseTrainer.compute_loss` gives them without the labels: a dict as it is, a tuple
        with the loss in front (Trainer's ``prediction_step`` drops a tuple's first item as the loss), a bare
        tensor as ``{"logits": ...}``."""
        if not any(k in inputs for k in ("labels", *LABEL_COLUMNS)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = {k: v for k, v in inputs.items() if k not in BOOKKEEPING_COLUMNS}
        x, labels = self.split_labels(inputs, name="eval_dataset")
        outputs = model(**x)
        logits = extract_logits(outputs)
        loss = F.cross_entropy(logits.float(), labels)
        if not return_outputs:
            return loss
        if isinstance(outputs, tuple):  # the model never saw the labels: no loss of its own in front
            return loss, (loss, *outputs)
        return loss, outputs if isinstance(outputs, dict) else {"logits": logits}

    def model_card_values(self) -> dict[str, Any]:
        args = self.args
        clean = self.clean_dataset
        clean_size = f"{len(clean)} examples" if has_length(clean) else "a stream"
        descriptions = {
            "ebomlc": "EBOMLC: a label correction network turns each noisy label into a soft corrected label; the "
            "model and the network take one first-order bilevel step per optimizer step (mixture upper loss on a "
            "small clean set, alignment-aware dynamic barrier).",
            "mlc": "MLC: a label correction network turns each noisy label into a soft corrected label, trained "
            "through a one-step look-ahead of the model so that training on the corrected labels lowers the loss on a "
            "small clean set.",
            "mlc_d": "MLC-D (an ablation): MLC solved with BOME's dynamic barrier; its meta step has no clean-set term.",
        }
        lookahead = self._lookahead_description()
        settings = {
            "method": args.mlc_method,
            "clean batch size": args.mlc_clean_batch_size,
            "lower-loss weights (noisy, clean)": args.mlc_lower_loss_weights or "proportional to the batch sizes",
            "meta learning rate (Adam)": args.mlc_meta_lr,
            "meta weight decay": args.mlc_meta_weight_decay,
            "meta AMSGrad": args.mlc_meta_amsgrad,
            "meta model (label embedding, hidden width)": f"{args.mlc_label_embedding_dim}, {args.mlc_meta_hidden_dim}",
            "label embedding init": args.resolved_label_embedding_init,
            "skip gate": args.resolved_skip_gate,
            **({"skip gate init": args.resolved_skip_gate_init} if args.resolved_skip_gate else {}),
            "classification head (its input is the meta model's feature)": (
                args.mlc_feature_module or f"{self._features.source_name} (detected)"
            ),
        }
        if args.mlc_method == "ebomlc":
            settings.update({
                "EBOMLC variant": args.mlc_ebomlc_variant,
                "ρ (mixture)": args.mlc_rho,
                "mixture space": args.resolved_mixture_space,
                "δ_b (barrier threshold)": args.mlc_barrier_threshold,
                "ξ (barrier scale)": args.mlc_barrier_scale,
                **({"look-ahead step": lookahead} if args.mlc_ebomlc_variant == "released" else {}),
            })
        elif args.mlc_method == "mlc_d":
            inner_lr = args.mlc_inner_lr if args.mlc_inner_lr is not None else "the main learning rate"
            settings.update({
                "T (inner steps)": args.mlc_inner_steps,
                "inner step size": inner_lr,
                "η_b (barrier)": args.mlc_barrier_eta,
            })
        else:
            settings["look-ahead step"] = lookahead
        return {
            "method_description": descriptions[args.mlc_method],
            "base_loss": "soft cross-entropy against the corrected labels (+ cross-entropy on clean examples)",
            "method_facts": [f"Bilevel steps taken: {self.mlc_state.steps}."],
            "method_settings": settings,
            "side_sets": {"Clean set": f"{clean_size}, labels trusted, used by the meta steps"},
            "citation": MLC_CITATION,
            "train_snippet": (
                "from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer\n\n"
                f'args = MetaLabelCorrectionConfig(output_dir="my-model", {self._mlc_settings_as_code()})\n'
                "trainer = MetaLabelCorrectionTrainer(model=model, args=args, train_dataset=noisy, "
                "clean_dataset=clean)\n"
                "trainer.train()"
            ),
        }

    def _lookahead_description(self) -> str:
        """The look-ahead step of MLC and released EBOMLC, as the card names it: SGD's own rule, else a plain
        gradient step of `mlc_inner_lr` (default: the current learning rate)."""
        args = self.args
        sgd = is_sgd(self.optimizer) if self.optimizer is not None else args.optim_name == "sgd"
        if sgd:
            return "the main SGD's own update (momentum, weight decay, per-group learning rate)"
        size = args.mlc_inner_lr if args.mlc_inner_lr is not None else "the main learning rate"
        return f"a plain gradient step of {size}"

    def _mlc_settings_as_code(self) -> str:
        """The method and every other ``mlc_*`` field off its default, as keyword arguments of the config."""
        return settings_as_code(self.args, prefix="mlc_", always=["mlc_method"])


class EBOMLCTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="ebomlc"`."""

    _method = "ebomlc"


class MLCDTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="mlc_d"` (MLC with BOME's dynamic barrier, an ablation)."""

    _method = "mlc_d"


class MLCTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="mlc"` (the original second-order MLC)."""

    _method = "mlc"
