"""Configuration of the meta label correction trainers (EBOMLC, MLC-D, MLC)."""

import math
import numbers
from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

from ..core.settings import check_flag, is_finite_number

MLC_METHODS = ("ebomlc", "mlc_d", "mlc")
# Where the skip gate starts unless told otherwise: the given labels nearly as they are (docs/ebomlc.md).
DEFAULT_SKIP_GATE_INIT = 0.98


@dataclass
class MetaLabelCorrectionConfig(TrainingArguments):
    r"""
    Configuration of [`MetaLabelCorrectionTrainer`].

    Only the parameters specific to meta label correction are listed here; see
    [`~transformers.TrainingArguments`] for the rest. [`~transformers.HfArgumentParser`] turns this class into
    command-line arguments.

    Parameters:
        > Method

        mlc_method (`str`, *optional*, defaults to `"ebomlc"`):
            `"ebomlc"`: one kept inner step, mixture upper loss, alignment-aware barrier (first order).
            `"mlc_d"`: MLC solved with BOME's dynamic barrier after `mlc_inner_steps` discarded inner steps.
            `"mlc"`: the original MLC, a one-step look-ahead with a second-order hypergradient.
        mlc_rho (`float`, *optional*, defaults to `0.2`):
            EBOMLC's mixture weight of the main model in the upper loss
            `CE(ρ·main_logits + (1−ρ)·meta_output, y)`.
        mlc_ebomlc_variant (`str`, *optional*, defaults to `"spec"`):
            `"spec"`: the clean reading of EBOMLC (upper loss at the look-ahead `w'` with the meta model's
            log-probabilities, BOME's alignment sign, main direction `∇_w f + λ·∇_w q`). `"released"`: the authors'
            released step (upper loss at `w` with the meta model's probabilities, alignment term taken with the
            optimizer step `−η·d(∇_w f)`, main direction `λ·∇_w q − η·d(∇_w f)`, N(0, 1) label embedding). See
            `docs/ebomlc.md`.
        mlc_mixture_space (`str` or `None`, *optional*, defaults to `None`):
            How the meta output enters the spec variant's mixture: `"log_probs"` (same scale as logits) or
            `"probs"`. `None`: `"log_probs"` for `"spec"`, `"probs"` for `"released"` (which only allows `"probs"`).

        > Dynamic barrier

        mlc_barrier_threshold (`float`, *optional*, defaults to `0.25`):
            EBOMLC's δ_b in `λ = ξ·max((δ_b·‖∇q‖² − ⟨∇_w q, ∇_w f⟩)/(‖∇q‖² + ε), 0)`.
        mlc_barrier_scale (`float`, *optional*, defaults to `0.5`):
            EBOMLC's ξ in the formula above.
        mlc_barrier_eta (`float`, *optional*, defaults to `0.5`):
            MLC-D's η_b in BOME's `φ = η_b·‖∇q‖²`.
        mlc_inner_steps (`int`, *optional*, defaults to `1`):
            MLC-D's number T of inner steps on the lower loss. EBOMLC and MLC take exactly one.
        mlc_inner_lr (`float` or `None`, *optional*, defaults to `None`):
            Step size of MLC-D's inner steps, and of MLC's look-ahead (and the released EBOMLC's) when the main
            optimizer is not `torch.optim.SGD`: the look-ahead is then a plain gradient step `w − η·∇G`. With SGD the
            look-ahead applies SGD's own rule (per-group learning rate, momentum buffer, dampening, weight decay,
            Nesterov) and this value is not used. `None` uses the main optimizer's current learning rate. Refused with
            the spec EBOMLC, whose look-ahead is always a step of the main optimizer.

        > Meta model (label correction network)

        mlc_meta_lr (`float`, *optional*, defaults to `1e-5`):
            Learning rate of the meta model's Adam optimizer. MLC's published commands use `3e-4` (its script's
            default is `3e-5`): on Fashion-MNIST that moves the meta model fast enough to override labels that were
            right (`docs/ebomlc.md`).
        mlc_meta_weight_decay (`float`, *optional*, defaults to `0.0`):
            Weight decay (L2) of the meta model's Adam optimizer.
        mlc_meta_amsgrad (`bool`, *optional*, defaults to `True`):
            Whether the meta optimizer uses AMSGrad.
        mlc_label_embedding_dim (`int`, *optional*, defaults to `128`):
            Size of the noisy-label embedding fed to the meta model.
        mlc_meta_hidden_dim (`int`, *optional*, defaults to `128`):
            Width of the meta model's two hidden layers.
        mlc_skip_gate (`bool` or `None`, *optional*, defaults to `None`):
            MLC's optional skip gate: corrected label `(1−g)·softmax + g·onehot(ỹ)` with a learned gate `g`.
            `None`: on for `mlc_method="mlc"` (without it MLC collapses under adaptive optimizers such as the
            Trainer's default AdamW); on for `"ebomlc"` unless the main optimizer is `torch.optim.SGD` (`optim="sgd"`,
            or an SGD passed to the trainer with `optimizers=` or `optimizer_cls_and_kwargs=`) or
            `mlc_ebomlc_variant="released"` (ungated, EBOMLC gains most at heavy noise with a large clean set but
            loses badly on cleaner data under AdamW); off for `"mlc_d"`.
        mlc_skip_gate_init (`float` or `None`, *optional*, defaults to `None`):
            With the skip gate, its initial value `g₀` in (0, 1) (the gate output's bias starts at `logit(g₀)`).
            `None`: `0.98` when the gate is on, so training starts from the given labels. `0.5` is MLC's released
            initialisation (a zero bias): training then starts on labels with about half their mass away from the
            given label. Setting it where the gate is off is an error.
        mlc_label_embedding_init (`str` or `None`, *optional*, defaults to `None`):
            `"xavier_uniform"` (MLC's released code) or `"normal"` (N(0, 1), EBOMLC's released code). `None`:
            `"normal"` for `mlc_ebomlc_variant="released"` with EBOMLC, else `"xavier_uniform"`.

        > Data and features

        mlc_clean_batch_size (`int` or `None`, *optional*, defaults to `None`):
            Clean examples drawn per step and process; half feed the upper loss, half the lower loss. `None` uses
            `per_device_train_batch_size`.
        mlc_lower_loss_weights (`list[float]` or `None`, *optional*, defaults to `None`):
            Weights (noisy, clean) of the lower loss, normalised by their sum. `None`: proportional to the two batch
            sizes of each step (as in the released code), i.e. the mean over all rows of the lower loss. `[1.0, 0.0]`
            leaves the clean rows out of the lower loss (the whole clean batch feeds the upper loss). With
            `mlc_method="mlc"` that keeps them for the meta model only: a network trained from scratch then cannot
            memorise the clean set (which would silence the meta model's signal). EBOMLC's and MLC-D's main update
            also descends the upper loss on the clean batch (EBOMLC's mixture through `mlc_rho`'s share of the main
            logits, MLC-D's plain cross-entropy), so their main model still trains on the clean rows.
        mlc_feature_module (`str` or `None`, *optional*, defaults to `None`):
            Dotted name of the classification head; its *input* is the penultimate feature fed to the meta model.
            `None` detects it (`classifier`, a timm model's `get_classifier()`, else the last `nn.Linear`). A head
            that receives a token sequence (e.g. Roberta's) gives the input of its last inner `nn.Linear`; a detected
            head whose output width differs from the logits' is refused.
        mlc_clean_cache (`str`, *optional*, defaults to `"auto"`):
            `"auto"` collates the clean set once into device tensors and indexes it every step when that is known
            to give exactly the per-step batches (as `lilaw_meta_cache`: a `datasets.Dataset` without a format
            transform, a row-wise collator, no `-100` labels, at most 64 MiB); `"force"` trusts a custom data set
            or collator; `"off"` reads and collates every clean batch.

    Defaults that differ from [`~transformers.TrainingArguments`]:
        - `logging_steps`: 10 instead of 500, so that short runs log the `mlc/*` metrics.

    Not supported (rejected here): `gradient_accumulation_steps > 1` (every step is a bilevel step with its own
    clean batch and meta update), `fp16` (the gradients are formed by hand, outside the gradient scaler; use
    `bf16`) and `label_smoothing_factor` (the model trains on the corrected soft labels).
    """

    # Parameters whose defaults are overridden from TrainingArguments
    logging_steps: float = field(
        default=10,
        metadata={"help": "Log every X update steps (an integer), or every ratio of the total steps if < 1."},
    )

    # Method
    mlc_method: Literal["ebomlc", "mlc_d", "mlc"] = field(
        default="ebomlc",
        metadata={"help": "Meta label correction algorithm: 'ebomlc' (default), 'mlc_d' or 'mlc'."},
    )
    mlc_rho: float = field(
        default=0.2,
        metadata={"help": "EBOMLC: weight of the main model's logits in the mixture upper loss, in [0, 1]."},
    )
    mlc_ebomlc_variant: Literal["spec", "released"] = field(
        default="spec",
        metadata={"help": "EBOMLC: 'spec' (the clean reading, default) or 'released' (the authors' released step)."},
    )
    mlc_mixture_space: Literal["log_probs", "probs"] | None = field(
        default=None,
        metadata={
            "help": "EBOMLC: mix the meta output as 'log_probs' or 'probs' (default: log_probs for the spec "
            "variant, probs for the released one)."
        },
    )

    # Dynamic barrier
    mlc_barrier_threshold: float = field(
        default=0.25, metadata={"help": "EBOMLC: threshold delta_b of the alignment-aware barrier."}
    )
    mlc_barrier_scale: float = field(
        default=0.5, metadata={"help": "EBOMLC: scale xi of the alignment-aware barrier."}
    )
    mlc_barrier_eta: float = field(
        default=0.5, metadata={"help": "MLC-D: eta_b of BOME's dynamic barrier, phi = eta_b * ||grad q||^2."}
    )
    mlc_inner_steps: int = field(
        default=1, metadata={"help": "MLC-D: number of inner steps T on the lower loss (EBOMLC and MLC use 1)."}
    )
    mlc_inner_lr: float | None = field(
        default=None,
        metadata={
            "help": "MLC-D inner step size, and the look-ahead step size when the main optimizer is not SGD "
            "(default: the main learning rate)."
        },
    )

    # Meta model
    mlc_meta_lr: float = field(
        default=1e-5, metadata={"help": "Learning rate of the meta model's Adam (MLC's published commands: 3e-4)."}
    )
    mlc_meta_weight_decay: float = field(
        default=0.0, metadata={"help": "Weight decay (L2) of the meta model's Adam."}
    )
    mlc_meta_amsgrad: bool = field(default=True, metadata={"help": "Use AMSGrad in the meta model's Adam."})
    mlc_label_embedding_dim: int = field(
        default=128, metadata={"help": "Size of the noisy-label embedding of the meta model."}
    )
    mlc_meta_hidden_dim: int = field(default=128, metadata={"help": "Width of the meta model's hidden layers."})
    mlc_skip_gate: bool | None = field(
        default=None,
        metadata={
            "help": "MLC's skip gate (1-g)*softmax + g*onehot(label) in the meta model (default: on for 'mlc'; on "
            "for 'ebomlc' unless the main optimizer is SGD or the released variant; off for 'mlc_d')."
        },
    )
    mlc_skip_gate_init: float | None = field(
        default=None,
        metadata={
            "help": "Initial value of the skip gate g in (0, 1) (default: 0.98 when the gate is on, i.e. start from "
            "the given labels; 0.5 is MLC's released initialisation)."
        },
    )
    mlc_label_embedding_init: Literal["xavier_uniform", "normal"] | None = field(
        default=None,
        metadata={
            "help": "Init of the meta model's label embedding: 'xavier_uniform' or 'normal' (default: normal for "
            "the released EBOMLC variant, else xavier_uniform)."
        },
    )

    # Data and features
    mlc_clean_batch_size: int | None = field(
        default=None,
        metadata={"help": "Clean examples per step and process (default: per_device_train_batch_size)."},
    )
    mlc_lower_loss_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Weights (noisy clean) of the lower loss, normalised by their sum (default: proportional to "
            "the two batch sizes); 1 0 keeps the clean rows for the meta model only with mlc_method='mlc' (EBOMLC's "
            "and MLC-D's main update also descends the upper loss on them)."
        },
    )
    mlc_feature_module: str | None = field(
        default=None,
        metadata={
            "help": "Dotted name of the classification head whose input is the penultimate feature "
            "(default: detected, e.g. 'classifier' or 'fc')."
        },
    )

    mlc_clean_cache: Literal["auto", "force", "off"] = field(
        default="auto",
        metadata={"help": "Keep the clean set collated once in device memory: auto (when known exact and <= 64 MiB), force, off."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mlc_clean_batch_size is None:
            self.mlc_clean_batch_size = self.per_device_train_batch_size
        if self.mlc_lower_loss_weights is not None:
            self.mlc_lower_loss_weights = [float(w) for w in self.mlc_lower_loss_weights]
        # Left at its default, the method is the trainer's to set (MLCTrainer runs "mlc"): the checks that depend on
        # it wait for the trainer, which validates the config again with its method.
        self._validate_mlc(method_known=self.mlc_method != MetaLabelCorrectionConfig.mlc_method)

    def _validate_mlc(self, *, method_known: bool = True) -> None:
        """Raise ``ValueError`` naming the field and a valid value for any bad meta label correction option; the
        checks that depend on `mlc_method` only where it is ``method_known``."""
        check_flag(self.mlc_meta_amsgrad, name="mlc_meta_amsgrad")
        check_flag(
            self.mlc_skip_gate, name="mlc_skip_gate", allowed=(None, True, False), text="True, False or None (per method)"
        )
        if self.gradient_checkpointing and (self.gradient_checkpointing_kwargs or {}).get("use_reentrant") is True:
            # torch's reentrant checkpoint cannot be differentiated by torch.autograd.grad: it would fail at step 1.
            raise ValueError(
                "gradient_checkpointing_kwargs={'use_reentrant': True} cannot be used with meta label correction: its "
                "meta step differentiates the model's forward with torch.autograd.grad, which reentrant checkpointing "
                "does not support. Set use_reentrant to False (transformers' default) or leave it out."
            )
        if self.mlc_clean_cache not in ("auto", "force", "off"):
            raise ValueError(f"mlc_clean_cache must be 'auto', 'force' or 'off', got {self.mlc_clean_cache!r}.")
        if self.mlc_method not in MLC_METHODS:
            raise ValueError(f"mlc_method must be one of {MLC_METHODS}, got {self.mlc_method!r}.")
        if self.mlc_ebomlc_variant not in ("spec", "released"):
            raise ValueError(f"mlc_ebomlc_variant must be 'spec' or 'released', got {self.mlc_ebomlc_variant!r}.")
        if self.mlc_mixture_space not in (None, "log_probs", "probs"):
            raise ValueError(
                f"mlc_mixture_space must be 'log_probs', 'probs' or None, got {self.mlc_mixture_space!r}."
            )
        if self.mlc_ebomlc_variant == "released" and self.mlc_mixture_space == "log_probs":
            raise ValueError(
                "mlc_ebomlc_variant='released' mixes the meta model's probabilities: drop mlc_mixture_space or use "
                "mlc_ebomlc_variant='spec'."
            )
        if self.mlc_label_embedding_init not in (None, "xavier_uniform", "normal"):
            raise ValueError(
                "mlc_label_embedding_init must be 'xavier_uniform', 'normal' or None, got "
                f"{self.mlc_label_embedding_init!r}."
            )
        optional = ("mlc_inner_lr", "mlc_skip_gate_init")
        for name in ("mlc_rho", "mlc_barrier_threshold", "mlc_barrier_scale", "mlc_barrier_eta", "mlc_meta_lr",
                     "mlc_meta_weight_decay", *optional):  # fmt: skip
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if not is_finite_number(value):
                raise ValueError(
                    f"{name} must be a finite number{' or None' if name in optional else ''}, got {value!r}."
                )
        if not 0.0 <= self.mlc_rho <= 1.0:
            raise ValueError(f"mlc_rho must lie in [0, 1], got {self.mlc_rho}.")
        for name in ("mlc_barrier_threshold", "mlc_barrier_scale", "mlc_barrier_eta", "mlc_meta_weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("mlc_inner_steps", "mlc_label_embedding_dim", "mlc_meta_hidden_dim", "mlc_clean_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if self.mlc_inner_steps < 1:
            raise ValueError(f"mlc_inner_steps must be >= 1, got {self.mlc_inner_steps}.")
        if method_known and self.mlc_method != "mlc_d" and self.mlc_inner_steps != 1:
            raise ValueError(
                f"mlc_method={self.mlc_method!r} takes exactly one inner step: set mlc_inner_steps=1, "
                "or use mlc_method='mlc_d' for T > 1 inner steps."
            )
        if self.mlc_inner_lr is not None and self.mlc_inner_lr <= 0:
            raise ValueError(f"mlc_inner_lr must be > 0 or None (the main learning rate), got {self.mlc_inner_lr}.")
        if method_known and self.mlc_inner_lr is not None and (self.mlc_method, self.mlc_ebomlc_variant) == (
            "ebomlc", "spec"
        ):
            raise ValueError(
                f"mlc_inner_lr={self.mlc_inner_lr} is not used by EBOMLC's spec variant, whose look-ahead is a step "
                "of the main optimizer at its own learning rate: drop mlc_inner_lr, or use "
                "mlc_ebomlc_variant='released', mlc_method='mlc' or mlc_method='mlc_d', which take it."
            )
        if self.mlc_skip_gate_init is not None:
            if not 0.0 < self.mlc_skip_gate_init < 1.0:
                raise ValueError(
                    f"mlc_skip_gate_init must lie strictly between 0 and 1 (e.g. 0.98), got {self.mlc_skip_gate_init}."
                )
            if (method_known or self.mlc_skip_gate is not None) and not self.resolved_skip_gate:
                raise ValueError(
                    "mlc_skip_gate_init is set but the skip gate is off for this configuration: set "
                    "mlc_skip_gate=True, or drop mlc_skip_gate_init."
                )
        if self.mlc_meta_lr <= 0:
            raise ValueError(f"mlc_meta_lr must be > 0, got {self.mlc_meta_lr}.")
        for name in ("mlc_label_embedding_dim", "mlc_meta_hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        weights = self.mlc_lower_loss_weights
        if weights is not None and (
            len(weights) != 2 or not all(map(math.isfinite, weights)) or min(weights) < 0 or weights[0] == 0
        ):
            raise ValueError(
                "mlc_lower_loss_weights must be two finite non-negative weights (noisy, clean) with a positive noisy "
                f"weight, e.g. [1.0, 0.5], or None (proportional to the batch sizes); got {weights}."
            )
        min_clean = 2 if self.clean_rows_in_lower_loss else 1
        if self.mlc_clean_batch_size < min_clean:
            raise ValueError(
                f"mlc_clean_batch_size must be >= {min_clean} (the clean batch is split between the upper and the "
                f"lower loss), got {self.mlc_clean_batch_size}."
            )
        if self.gradient_accumulation_steps != 1:
            raise ValueError(
                "Meta label correction makes one bilevel step (with its own clean batch and meta update) per "
                f"optimizer step and does not support gradient_accumulation_steps={self.gradient_accumulation_steps}"
                ": a meta update between micro-batches would change the corrected labels mid-step, so the result "
                "would not equal the larger batch. Set gradient_accumulation_steps=1 and raise "
                "per_device_train_batch_size instead."
            )
        if self.fp16:
            raise ValueError(
                "fp16 is not supported by meta label correction (its gradients bypass the fp16 gradient scaler): "
                "use bf16=True or full precision."
            )
        if self.label_smoothing_factor:
            raise ValueError(
                f"label_smoothing_factor={self.label_smoothing_factor} is not supported by meta label correction: "
                "the model trains on the soft corrected labels of the correction network, which smoothing would "
                "override. Set label_smoothing_factor=0."
            )

    @property
    def resolved_skip_gate(self) -> bool:
        """`mlc_skip_gate`, with `None` resolved for `mlc_method` and `optim` (the trainer pins `mlc_skip_gate` in
        its copy of the config where the optimizer passed to it decides otherwise)."""
        return self.skip_gate_for(sgd=self.optim_name == "sgd")

    def skip_gate_for(self, *, sgd: bool) -> bool:
        """`mlc_skip_gate`, with `None` resolved for `mlc_method` and whether the main optimizer is
        `torch.optim.SGD`."""
        if self.mlc_skip_gate is not None:
            return self.mlc_skip_gate
        if self.mlc_method == "mlc":
            return True
        # EBOMLC without the gate gains most at heavy noise but loses badly on cleaner data under an adaptive
        # optimizer (docs/benchmarks.md §4); the SGD recipe and the released step are the authors' ungated setting.
        return self.mlc_method == "ebomlc" and self.mlc_ebomlc_variant == "spec" and not sgd

    @property
    def resolved_skip_gate_init(self) -> float | None:
        """`mlc_skip_gate_init`, with `None` resolved to `0.98` when the skip gate is on (`None` without the gate)."""
        if not self.resolved_skip_gate:
            return None
        return DEFAULT_SKIP_GATE_INIT if self.mlc_skip_gate_init is None else self.mlc_skip_gate_init

    @property
    def clean_rows_in_lower_loss(self) -> bool:
        """Whether the main model trains on part of each clean batch (`False` when `mlc_lower_loss_weights` gives the
        clean rows weight 0: the whole clean batch then feeds the upper loss)."""
        return self.mlc_lower_loss_weights is None or self.mlc_lower_loss_weights[1] != 0

    @property
    def optim_name(self) -> str:
        """`optim` as a plain string (`TrainingArguments` may hold it as an `OptimizerNames` member)."""
        return getattr(self.optim, "value", self.optim)

    @property
    def resolved_mixture_space(self) -> str:
        """`mlc_mixture_space`, with `None` resolved for `mlc_ebomlc_variant`."""
        if self.mlc_mixture_space is not None:
            return self.mlc_mixture_space
        return "probs" if self.mlc_ebomlc_variant == "released" else "log_probs"

    @property
    def resolved_label_embedding_init(self) -> str:
        """`mlc_label_embedding_init`, with `None` resolved for the method and EBOMLC variant."""
        if self.mlc_label_embedding_init is not None:
            return self.mlc_label_embedding_init
        released = self.mlc_method == "ebomlc" and self.mlc_ebomlc_variant == "released"
        return "normal" if released else "xavier_uniform"
