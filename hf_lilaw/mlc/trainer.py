"""Trainer glue for meta label correction: EBOMLC, MLC-D and MLC on hf_lilaw's shared base trainer."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import TrainingArguments

from ..core.base_trainer import BaseTrainer
from ..core.columns import BOOKKEEPING_COLUMNS, LABEL_COLUMNS
from ..core.outputs import extract_logits
from ..core.sampler import IndexBatchSampler, StreamedBatches
from ..core.training_state import shared_file_name
from ..functional.barrier import (
    alignment_barrier_coefficient,
    dynamic_barrier_coefficient,
    lower_loss,
    mixture_upper_loss,
)
from .config import MetaLabelCorrectionConfig
from .features import PenultimateFeatures
from .lookahead import is_sgd, lookahead_steps
from .meta_model import LabelCorrectionNetwork

__all__ = [
    "MLC_STATE_NAME",
    "EBOMLCTrainer",
    "MLCDTrainer",
    "MLCTrainer",
    "MetaLabelCorrectionState",
    "MetaLabelCorrectionTrainer",
]


_STATE_NAME = "mlc_state"
MLC_STATE_NAME = shared_file_name(_STATE_NAME)
"""The checkpoint file of the meta model and its optimizer (`mlc_state.pt`); each process's clean-stream position
is beside it in `mlc_state_rank<r>.pt`."""

METHOD_NAMES = {"ebomlc": "EBOMLC", "mlc_d": "MLC-D", "mlc": "MLC"}

MLC_CITATION = """@inproceedings{zheng2021mlc,
  title={Meta Label Correction for Noisy Label Learning},
  author={Zheng, Guoqing and Awadallah, Ahmed Hassan and Dumais, Susan},
  booktitle={AAAI},
  year={2021}
}"""

Batch = tuple[dict[str, Any], Tensor]  # model inputs without the labels, labels


class MetaLabelCorrectionState:
    """Everything of meta label correction that must survive a resume, split for `BaseTrainer`'s checkpoints.

    The meta model, its optimizer and the number of bilevel steps are identical on every process (`"shared"`,
    saved once); the clean stream is seeded per process (`"per_rank"`). Resumed under another number of processes,
    the stream moves to where its own sequence stands after `steps` batches (one clean batch per step).

    Args:
        meta_model: The label correction network.
        meta_optimizer: Its optimizer.
        clean_sampler: This process's clean-batch stream.
    """

    def __init__(
        self,
        *,
        meta_model: LabelCorrectionNetwork,
        meta_optimizer: torch.optim.Optimizer,
        clean_sampler: IndexBatchSampler | StreamedBatches,
    ):
        self.meta_model = meta_model
        self.meta_optimizer = meta_optimizer
        self.clean_sampler = clean_sampler
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "shared": {
                "meta_model": self.meta_model.state_dict(),
                "meta_optimizer": self.meta_optimizer.state_dict(),
                "steps": self.steps,
            },
            "per_rank": {"clean_sampler": self.clean_sampler.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shared = state["shared"]
        self.meta_model.load_state_dict(shared["meta_model"])
        self.meta_optimizer.load_state_dict(shared["meta_optimizer"])
        self.steps = int(shared["steps"])
        if state["per_rank"] is not None:
            self.clean_sampler.load_state_dict(state["per_rank"]["clean_sampler"])
        else:
            self.clean_sampler.fast_forward(self.steps)


class MetaLabelCorrectionTrainer(BaseTrainer):
    """Trains a classifier on noisy labels with a meta model that corrects them, guided by a small clean set.

    Every optimizer step is one bilevel step of `args.mlc_method` (see [`MetaLabelCorrectionConfig`]) on the noisy
    batch of the Trainer's loop and a fresh clean batch of `mlc_clean_batch_size` examples: its first half feeds the
    upper loss, its second half joins the lower loss, weighted by the two batch sizes unless `mlc_lower_loss_weights`
    says otherwise (with a zero clean weight the whole clean batch feeds the upper loss). The meta model (Xavier-normal
    layers, zero biases, optional skip gate) and its Adam live outside the main optimizer: the main optimizer,
    scheduler, clipping and weight decay never see them. Evaluation reports the plain cross-entropy.

    Look-ahead: MLC (and the released EBOMLC variant) differentiate through one step of the main optimizer. With
    `torch.optim.SGD` that step is SGD's own rule (momentum buffer, dampening, weight decay, Nesterov, per-group
    learning rate); with any other optimizer it is a plain gradient step of `mlc_inner_lr` (default: the current
    learning rate), see [`lookahead_steps`]. MLC keeps the skip gate on by default: without it, MLC under an adaptive
    optimizer is known to collapse to near-uniform corrected labels, and construction warns.

    MLC-D is an ablation (its meta step has no clean-set term) and warns at construction. `load_best_model_at_end`
    restores the meta model and its optimizer of the best checkpoint too.

    Supported: single-label classifiers whose head takes the penultimate features (transformers image and text
    classifiers, `TimmWrapperForImageClassification`, timm models, plain `nn.Module`s returning logits), one process
    or DDP, fp32 or bf16. Not supported: `gradient_accumulation_steps > 1` (refused by the config), fp16, DeepSpeed
    and FSDP (gradients are taken with `torch.autograd.grad` on the unwrapped model and averaged across processes by
    hand), `model_init`.

    The shared machinery (config coercion, tags, checkpointed state, the clean-batch sampler, the pre-flight checks,
    metric logging, model cards) comes from `hf_lilaw.core.BaseTrainer`.

    Args:
        model: The classifier to train.
        args: A [`MetaLabelCorrectionConfig`]; a plain `TrainingArguments` is converted with the `mlc_*` defaults.
        data_collator: As in `Trainer`; also used for the clean set.
        train_dataset: The noisy training set.
        eval_dataset: As in `Trainer`.
        processing_class: As in `Trainer`.
        clean_dataset: The small trusted set (MLC uses 2 % of the data, class-balanced), same columns as
            `train_dataset`.
        **kwargs: Passed to `Trainer`.
    """

    config_class: ClassVar[type[TrainingArguments]] = MetaLabelCorrectionConfig
    _method: ClassVar[str | None] = None
    _tag_names: ClassVar[list[str]] = ["hf_lilaw", "meta-label-correction"]

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        *,
        clean_dataset: Any = None,
        **kwargs: Any,
    ):
        if model is None or kwargs.get("model_init") is not None:
            raise ValueError(f"{type(self).__name__} needs model= (model_init is not supported).")
        if clean_dataset is None:
            raise ValueError(
                f"{type(self).__name__} needs a small clean (trusted) set: pass clean_dataset=, e.g. a "
                "class-balanced ~2 % split of your data whose labels were verified."
            )
        if hasattr(clean_dataset, "__len__") and len(clean_dataset) == 0:
            raise ValueError("clean_dataset is empty: pass at least mlc_clean_batch_size clean examples.")
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        args = self.args
        self.clean_dataset = clean_dataset
        self.check_side_set(clean_dataset, name="clean_dataset")
        self._features = PenultimateFeatures(self.model, module_name=args.mlc_feature_module)
        sampler = self.side_batch_sampler(
            clean_dataset,
            batch_size=args.mlc_clean_batch_size,
            seed=args.seed + args.process_index,
            name="clean_dataset",
            strict=True,
            setting="mlc_clean_batch_size",
        )
        feature_dim, num_labels = self._probe_model()
        self._warn_known_failures(kwargs.get("optimizers"), kwargs.get("optimizer_cls_and_kwargs"))
        meta_model = LabelCorrectionNetwork(
            feature_dim=feature_dim,
            num_labels=num_labels,
            label_embedding_dim=args.mlc_label_embedding_dim,
            hidden_dim=args.mlc_meta_hidden_dim,
            skip_gate=args.resolved_skip_gate,
            label_embedding_init=args.resolved_label_embedding_init,
        ).to(args.device)
        meta_optimizer = torch.optim.Adam(
            meta_model.parameters(),
            lr=args.mlc_meta_lr,
            weight_decay=args.mlc_meta_weight_decay,
            amsgrad=args.mlc_meta_amsgrad,
        )
        self.mlc_state = MetaLabelCorrectionState(
            meta_model=meta_model, meta_optimizer=meta_optimizer, clean_sampler=sampler
        )
        self.register_training_state(self.mlc_state, name=_STATE_NAME, what="meta label correction state")
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags([args.mlc_method])

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
    def coerce_args(cls, args: TrainingArguments | None) -> MetaLabelCorrectionConfig:
        """`BaseTrainer.coerce_args`, then the method of a method-specific trainer (`MLCTrainer`...)."""
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
        if optimizer is not None:
            sgd = is_sgd(optimizer)
        elif optimizer_cls_and_kwargs is not None:
            sgd = issubclass(optimizer_cls_and_kwargs[0], torch.optim.SGD)
        else:
            sgd = args.optim_name == "sgd"
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

    def _probe_model(self) -> tuple[int, int]:
        """One no-grad forward on clean examples: checks the head hook and returns (feature dim, num labels)."""
        dataset = self.clean_dataset

        def first_examples() -> list[Any]:
            if hasattr(dataset, "__len__"):
                return [dataset[i] for i in range(min(2, len(dataset)))]
            return [example for _, example in zip(range(2), dataset)]

        x, _ = self.collate_side_examples(dataset, first_examples, name="clean_dataset")
        with self._features.capturing():
            logits = extract_logits(self.probe_forward(self.model, x, name="clean_dataset"))
            features = self._features.pop()
        return features.shape[-1], logits.shape[-1]

    def _preflight_side_set(self) -> tuple[Any, str] | None:
        return self.clean_dataset, "clean_dataset"

    # ---- batches and forwards -----------------------------------------------------------------------------------

    def _next_clean_batches(self) -> tuple[Batch, Batch | None]:
        """(upper batch, lower batch): the two halves of the next clean batch."""
        dataset, sampler = self.clean_dataset, self.mlc_state.clean_sampler
        cache = self.side_batch_cache(dataset, sampler, name="clean_dataset", mode=self.args.mlc_clean_cache)
        if cache is not None:  # the same batches without a read, collation or copy per step
            rows = sampler.next_indices()
            return self._split_clean_batch(rows, lambda part, _: self.split_labels(cache.batch(part), name="clean_dataset"))
        # One draw of the clean set's own randomness for the read and both halves' collation.
        with self.side_randomness("clean_dataset", sampler.batches_drawn, seed=sampler.seed):
            examples, names = self._read_side_examples(dataset, sampler, name="clean_dataset")

            def collate(part: Any, part_names: Any) -> Batch:
                return self.collate_side_examples(dataset, lambda: part, name="clean_dataset", rows=part_names, draw=None)

            return self._split_clean_batch(examples, collate, names)

    def _split_clean_batch(self, rows: Any, collate: Any, names: Any = None) -> tuple[Batch, Batch | None]:
        weights = self.args.mlc_lower_loss_weights
        if weights is not None and weights[1] == 0:
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
                outputs = functional_call(net, params, args=(), kwargs=inputs)
            features = self._features.pop()
        return extract_logits(outputs), features

    def _lower(
        self,
        net: nn.Module,
        noisy: Batch,
        lower: Batch | None,
        params: dict[str, Tensor] | None = None,
        *,
        with_clean: bool = True,
    ) -> Tensor:
        """The lower loss G at the model's parameters or at `params`."""
        logits, features = self._forward(net, noisy[0], params)
        soft_labels = self.meta_model(features, noisy[1])
        weights = self.args.mlc_lower_loss_weights
        if weights is None:
            # Proportional to the batch sizes: the mean over every row of the lower loss.
            weights = (float(noisy[1].shape[0]), float(lower[1].shape[0]) if lower is not None else 0.0)
        if lower is None or weights[1] == 0:
            return lower_loss(logits, soft_labels, weights=weights)
        if not with_clean:
            # The clean term does not depend on the meta model: same meta gradient as G, one forward fewer.
            return lower_loss(logits, soft_labels, weights=weights) * (weights[0] / sum(weights))
        clean_logits, _ = self._forward(net, lower[0], params)
        return lower_loss(logits, soft_labels, clean_logits, lower[1], weights=weights)

    # ---- gradients ----------------------------------------------------------------------------------------------

    @staticmethod
    def _grads(
        loss: Tensor, tensors: Sequence[Tensor], *, create_graph: bool = False
    ) -> tuple[list[Tensor], list[bool]]:
        """Gradients of `loss` (zeros where unused) and which tensors it uses."""
        grads = torch.autograd.grad(loss, list(tensors), allow_unused=True, create_graph=create_graph)
        used = [g is not None for g in grads]
        return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)], used

    def _mean_across_processes(self, grads: Sequence[Tensor]) -> list[Tensor]:
        """The one place where gradients are averaged across processes (main and meta blocks alike)."""
        if self.accelerator.num_processes == 1:
            return list(grads)
        flat = self.accelerator.reduce(torch.cat([g.detach().float().reshape(-1) for g in grads]), reduction="mean")
        return [t.view_as(g).to(g.dtype) for t, g in zip(flat.split([g.numel() for g in grads]), grads)]

    @staticmethod
    def _set_grads(params: Sequence[Tensor], grads: Sequence[Tensor], used: Sequence[bool], *, copy: bool = False) -> None:
        """Install `grads` as the parameters' `.grad`; `copy` where the caller reuses them (the optimizer's
        clipping and steps work in place). Unused parameters keep grad None, as after a normal backward, so the
        optimizer skips them."""
        for p, g, u in zip(params, grads, used):
            if not u:
                p.grad = None
                continue
            g = g.detach().to(p.dtype)
            p.grad = g.clone() if copy else g

    def _meta_step(self, grads: Sequence[Tensor]) -> None:
        meta_params = list(self.meta_model.parameters())
        self._set_grads(meta_params, grads, [True] * len(meta_params))
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)

    def _inner_lr(self) -> float:
        if self.args.mlc_inner_lr is not None:
            return self.args.mlc_inner_lr
        return self.optimizer.param_groups[0]["lr"]

    # ---- the bilevel steps --------------------------------------------------------------------------------------

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
        self.mlc_state.steps += 1
        step = {"ebomlc": self._ebomlc_step, "mlc_d": self._mlc_d_step, "mlc": self._mlc_step}[self.args.mlc_method]
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.compute_loss_context_manager())
            if self.args.mlc_method == "mlc":
                # The fused SDPA kernels have no double backward; MLC's hypergradient needs one.
                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            loss = step(net, noisy, upper, lower)
        return loss.detach()

    def _ebomlc_step(self, net: nn.Module, noisy: Batch, upper: Batch, lower: Batch | None) -> Tensor:
        """The spec's clean reading of one EBOMLC step (first order, three forwards and three backwards)."""
        args = self.args
        if args.mlc_ebomlc_variant == "released":
            return self._ebomlc_released_step(net, noisy, upper, lower)
        params = [p for p in net.parameters() if p.requires_grad]
        meta = list(self.meta_model.parameters())
        n = len(params)

        lower_0 = self._lower(net, noisy, lower)
        g0, used = self._grads(lower_0, params + meta)
        g0 = self._mean_across_processes(g0)

        # w' = w − η·(main optimizer step with g0_w): EBOMLC keeps it as a real update of the main model, so it is
        # clipped like the Trainer's own step. The scheduler advances once per training step, not here.
        self._set_grads(params, g0[:n], used[:n], copy=True)  # g0 enters ∇q below; clipping works in place
        if args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(params, args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

        g1, _ = self._grads(self._lower(net, noisy, lower), params + meta)
        g1 = self._mean_across_processes(g1)
        grad_q = [a - b for a, b in zip(g0, g1)]
        del g0, g1

        x_up, y_up = upper
        logits, features = self._forward(net, x_up)
        upper_loss = mixture_upper_loss(
            logits,
            self.meta_model.log_probs(features, y_up),
            y_up,
            rho=args.mlc_rho,
            space=args.resolved_mixture_space,
        )
        grad_f, used_f = self._grads(upper_loss, params + meta)
        grad_f = self._mean_across_processes(grad_f)

        lam = alignment_barrier_coefficient(
            grad_f_main=grad_f[:n],
            grad_q_main=grad_q[:n],
            grad_q_meta=grad_q[n:],
            threshold=args.mlc_barrier_threshold,
            scale=args.mlc_barrier_scale,
        )
        direction = [f + lam * q for f, q in zip(grad_f, grad_q)]
        self._set_grads(params, direction[:n], [a or b for a, b in zip(used[:n], used_f[:n])])
        self._meta_step(direction[n:])
        self._record({"lambda": lam, "upper_loss": upper_loss, "lower_loss": lower_0})
        return lower_0

    def _ebomlc_released_step(self, net: nn.Module, noisy: Batch, upper: Batch, lower: Batch | None) -> Tensor:
        """EBOMLC as the authors' released step: the upper loss at `w` with the meta model's probabilities, the
        look-ahead `w' = w − η·d(∇_w G)` (the optimizer's rule, its state untouched) kept, `∇q` between `w` and
        `w'`, the alignment term with the optimizer step `−η·d(∇_w f)` and the main direction
        `λ·∇_w q − η·d(∇_w f)`, applied from `w'` by the Trainer's optimizer step."""
        args = self.args
        params = [p for p in net.parameters() if p.requires_grad]
        meta = list(self.meta_model.parameters())
        n = len(params)
        lr = self._inner_lr()

        x_up, y_up = upper
        logits, features = self._forward(net, x_up)
        upper_loss = mixture_upper_loss(
            logits, self.meta_model.log_probs(features, y_up), y_up, rho=args.mlc_rho, space="probs"
        )
        grad_f, used_f = self._grads(upper_loss, params + meta)
        grad_f = self._mean_across_processes(grad_f)
        step_f = lookahead_steps(self.optimizer, params, grad_f[:n], fallback_lr=lr)

        lower_0 = self._lower(net, noisy, lower)
        g0, used = self._grads(lower_0, params + meta)
        g0 = self._mean_across_processes(g0)
        with torch.no_grad():
            for p, step in zip(params, lookahead_steps(self.optimizer, params, g0[:n], fallback_lr=lr)):
                p.sub_(step.to(p.dtype))

        g1, _ = self._grads(self._lower(net, noisy, lower), params + meta)
        g1 = self._mean_across_processes(g1)
        grad_q = [a - b for a, b in zip(g0, g1)]
        del g0, g1

        descent_f = [-step for step in step_f]
        lam = alignment_barrier_coefficient(
            grad_f_main=descent_f,
            grad_q_main=grad_q[:n],
            grad_q_meta=grad_q[n:],
            threshold=args.mlc_barrier_threshold,
            scale=args.mlc_barrier_scale,
        )
        main = [lam * q + f for q, f in zip(grad_q[:n], descent_f)]
        self._set_grads(params, main, [a or b for a, b in zip(used[:n], used_f[:n])])
        self._meta_step([lam * q + f for q, f in zip(grad_q[n:], grad_f[n:])])
        self._record({"lambda": lam, "upper_loss": upper_loss, "lower_loss": lower_0})
        return lower_0

    def _mlc_d_step(self, net: nn.Module, noisy: Batch, upper: Batch, lower: Batch | None) -> Tensor:
        """MLC with BOME's dynamic barrier: T discarded inner steps, then one first-order step of both blocks.

        `q(w, a) = G(w, a) − G(w_T, a)` with `w_T` a stop-gradient constant (as in BOME), so
        `∇_w q = ∇_w G(w, a)` and `∇_a q = ∇_a G(w, a) − ∇_a G(w_T, a)`. The upper loss is the main model's plain
        CE on the clean batch at `w`, so `∇_a f = 0`. Inner steps are plain SGD on the current noisy batch.
        """
        args = self.args
        named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
        names, params = [name for name, _ in named], [p for _, p in named]
        meta = list(self.meta_model.parameters())
        n = len(params)

        lower_0 = self._lower(net, noisy, lower)
        g0, used = self._grads(lower_0, params + meta)
        g0 = self._mean_across_processes(g0)

        # The first inner step reuses ∇_w G(w, a); the copy is functional, so w itself is never moved.
        lr = self._inner_lr()
        fast = [p.detach() - lr * g for p, g in zip(params, g0[:n])]
        for _ in range(args.mlc_inner_steps - 1):
            fast = [t.requires_grad_() for t in fast]
            grads, _ = self._grads(self._lower(net, noisy, lower, dict(zip(names, fast))), fast)
            grads = self._mean_across_processes(grads)
            fast = [t.detach() - lr * g for t, g in zip(fast, grads)]
        g1_meta, _ = self._grads(self._lower(net, noisy, lower, dict(zip(names, fast)), with_clean=False), meta)
        g1_meta = self._mean_across_processes(g1_meta)
        del fast

        x_up, y_up = upper
        logits, _ = self._forward(net, x_up)
        upper_loss = F.cross_entropy(logits.float(), y_up)
        grad_f, used_f = self._grads(upper_loss, params)
        grad_f = self._mean_across_processes(grad_f)

        grad_q_meta = [a - b for a, b in zip(g0[n:], g1_meta)]
        lam = dynamic_barrier_coefficient(
            grad_f=grad_f + [torch.zeros_like(p) for p in meta],
            grad_q=g0[:n] + grad_q_meta,
            eta=args.mlc_barrier_eta,
        )
        self._set_grads(
            params, [f + lam * q for f, q in zip(grad_f, g0[:n])], [a or b for a, b in zip(used[:n], used_f)]
        )
        self._meta_step([lam * q for q in grad_q_meta])
        self._record({"lambda": lam, "upper_loss": upper_loss, "lower_loss": lower_0})
        return lower_0

    def _mlc_step(self, net: nn.Module, noisy: Batch, upper: Batch, lower: Batch | None) -> Tensor:
        """MLC: a one-step look-ahead `w' = w − s(∇_w G(w, a))` kept in the graph, where `s` is the main optimizer's
        own step when it is SGD (momentum, weight decay, Nesterov) and a plain gradient step otherwise (see
        `lookahead_steps`), the clean CE at `w'`, its second-order hypergradient to the meta model, then the main
        update with `∇_w G(w, a)`."""
        named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
        params = [p for _, p in named]

        lower_0 = self._lower(net, noisy, lower)
        grads, used = self._grads(lower_0, params, create_graph=True)
        steps = lookahead_steps(self.optimizer, params, grads, fallback_lr=self._inner_lr())
        ahead = {name: p - step for (name, p), step in zip(named, steps)}

        x_up, y_up = upper
        logits, _ = self._forward(net, x_up, ahead)
        upper_loss = F.cross_entropy(logits.float(), y_up)
        hypergrad, _ = self._grads(upper_loss, list(self.meta_model.parameters()))
        self._meta_step(self._mean_across_processes(hypergrad))
        del ahead, hypergrad, steps

        self._set_grads(params, self._mean_across_processes([g.detach() for g in grads]), used)
        self._record({"upper_loss": upper_loss, "lower_loss": lower_0})
        return lower_0

    # ---- evaluation, logging, checkpoints, model card ----------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        """Plain cross-entropy of the logits (used by evaluation; training goes through `training_step`)."""
        if not any(k in inputs for k in ("labels", *LABEL_COLUMNS)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = {k: v for k, v in inputs.items() if k not in BOOKKEEPING_COLUMNS}
        x, labels = self.split_labels(inputs, name="eval_dataset")
        outputs = model(**x)
        logits = extract_logits(outputs)
        loss = F.cross_entropy(logits.float(), labels)
        if not return_outputs:
            return loss
        return loss, outputs if isinstance(outputs, dict) else {"logits": logits}

    def _record(self, values: dict[str, Tensor]) -> None:
        # Device-side sums; the base reduces them over steps and processes at the next training log.
        self.accumulate_metrics({f"mlc/{k}": v for k, v in values.items()}, count=1.0)

    def _model_card_values(self) -> dict[str, Any]:
        args = self.args
        clean = self.clean_dataset
        clean_size = f"{len(clean)} examples" if hasattr(clean, "__len__") else "a stream"
        descriptions = {
            "ebomlc": "EBOMLC: a label correction network turns each noisy label into a soft corrected label; the "
            "model and the network take one first-order bilevel step per optimizer step (mixture upper loss on a "
            "small clean set, alignment-aware dynamic barrier).",
            "mlc": "MLC: a label correction network turns each noisy label into a soft corrected label, trained "
            "through a one-step look-ahead of the model so that training on the corrected labels lowers the loss on a "
            "small clean set.",
            "mlc_d": "MLC-D (an ablation): MLC solved with BOME's dynamic barrier; its meta step has no clean-set term.",
        }
        settings = {
            "method": args.mlc_method,
            "clean batch size": args.mlc_clean_batch_size,
            "lower-loss weights (noisy, clean)": args.mlc_lower_loss_weights or "proportional to the batch sizes",
            "meta learning rate (Adam)": args.mlc_meta_lr,
            "skip gate": args.resolved_skip_gate,
        }
        if args.mlc_method == "ebomlc":
            settings.update({
                "EBOMLC variant": args.mlc_ebomlc_variant,
                "ρ (mixture)": args.mlc_rho,
                "δ_b (barrier threshold)": args.mlc_barrier_threshold,
                "ξ (barrier scale)": args.mlc_barrier_scale,
            })
        return {
            "method_description": descriptions[args.mlc_method],
            "base_loss": "soft cross-entropy against the corrected labels (+ cross-entropy on clean examples)",
            "method_facts": [f"Bilevel steps taken: {self.mlc_state.steps}."],
            "method_settings": settings,
            "side_sets": {"Clean set": f"{clean_size}, labels trusted, used by the meta steps"},
            "citation": MLC_CITATION,
            "train_snippet": (
                "from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer\n\n"
                f'args = MetaLabelCorrectionConfig(output_dir="my-model", mlc_method="{args.mlc_method}")\n'
                "trainer = MetaLabelCorrectionTrainer(model=model, args=args, train_dataset=noisy, "
                "clean_dataset=clean)\n"
                "trainer.train()"
            ),
        }


class EBOMLCTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="ebomlc"`."""

    _method = "ebomlc"


class MLCDTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="mlc_d"` (MLC with BOME's dynamic barrier, an ablation)."""

    _method = "mlc_d"


class MLCTrainer(MetaLabelCorrectionTrainer):
    """[`MetaLabelCorrectionTrainer`] with `mlc_method="mlc"` (the original second-order MLC)."""

    _method = "mlc"
