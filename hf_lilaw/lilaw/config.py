"""`LiLAWConfig`: the LiLAW knobs on top of `transformers.TrainingArguments`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

from ..core.settings import check_flag, is_finite_number
from ..functional.losses import BASE_LOSSES


@dataclass
class LiLAWConfig(TrainingArguments):
    r"""
    Configuration class for [`LiLAWTrainer`].

    Only the LiLAW parameters are listed here; every [`~transformers.TrainingArguments`] field works as usual.
    Through [`~transformers.HfArgumentParser`] each field is a command-line flag (`--lilaw_alpha 10`).
    A [`LiLAWTrainer`] given a plain `TrainingArguments` converts it to a `LiLAWConfig` with the defaults below.

    Parameters:
        > Initial values of the three learnable scalars (paper §4.2)

        lilaw_alpha (`float`, *optional*, defaults to `10.0`):
            α, scale of the "easy" weight `W_α = sigmoid(α·s_y − max s)`. Kept ≥ 1.
        lilaw_beta (`float`, *optional*, defaults to `2.0`):
            β, scale of the "hard" weight `W_β = sigmoid(−(β·s_y − max s))`.
        lilaw_delta (`float`, *optional*, defaults to `6.0`):
            δ, scale of the "moderate" weight `W_δ = exp(−(δ·s_y − max s)²/2)`. Kept ≥ β.

        > Meta optimisation (plain SGD with weight decay, one step per optimizer step)

        lilaw_lr (`float`, *optional*, defaults to `0.005`):
            Learning rate of α, β and δ.
        lilaw_weight_decay (`float`, *optional*, defaults to `1e-4`):
            Weight decay of α, β and δ.
        lilaw_alpha_lr, lilaw_beta_lr, lilaw_delta_lr (`float` or `None`, *optional*):
            Per-parameter learning rates; `None` uses `lilaw_lr`.
        lilaw_alpha_weight_decay, lilaw_beta_weight_decay, lilaw_delta_weight_decay (`float` or `None`, *optional*):
            Per-parameter weight decays; `None` uses `lilaw_weight_decay`.

        > Schedule

        lilaw_warmup_epochs (`float`, *optional*, defaults to `1.0`):
            Epochs of plain, unweighted training before LiLAW starts (no meta steps meanwhile).
        lilaw_warmup_steps (`int` or `None`, *optional*):
            Warm-up in optimizer steps instead; overrides `lilaw_warmup_epochs`. Required for streamed data.

        > Meta data

        lilaw_meta_batch_size (`int` or `None`, *optional*):
            Meta batch size per device; `None` uses `per_device_train_batch_size × gradient_accumulation_steps`
            (the rows of one optimizer step, so batch 16 × 1 and 8 × 2 draw the same meta batches). Capped, with a
            warning, at the size of a meta set that has a length.
        lilaw_meta_fraction (`float`, *optional*, defaults to `0.15`):
            Fraction of `train_dataset`'s labelled rows carved off (seeded, class-stratified) as the meta set when
            no `meta_dataset` is given; rows labelled -100 stay in training.
        lilaw_seed (`int` or `None`, *optional*):
            Seed of the meta split and the meta sampler; `None` uses `seed`.

        > Loss and meta forward

        lilaw_base_loss (`str`, *optional*, defaults to `"cross_entropy"`):
            Per-sample base loss: `"cross_entropy"`, `"focal"`, `"gce"` or `"sce"`. `label_smoothing_factor`
            smooths the cross-entropy term of all but `"gce"`, which refuses it.
        lilaw_focal_gamma (`float`, *optional*, defaults to `2.0`):
            γ of the focal loss.
        lilaw_gce_q (`float`, *optional*, defaults to `0.7`):
            q of the generalized cross-entropy `(1 − p_y^q) / q`, in (0, 1].
        lilaw_sce_alpha, lilaw_sce_beta (`float`, *optional*, default to `0.1` and `1.0`):
            Weights of cross-entropy and reverse cross-entropy in the symmetric cross-entropy.
        lilaw_detach_weights (`bool`, *optional*, defaults to `False`):
            Treat the weights as constants in the model's backward. The authors' code does not detach them.
        lilaw_meta_forward_mode (`str`, *optional*, defaults to `"eval"`):
            Mode of the model during the meta forward: `"eval"` (no dropout, BatchNorm statistics untouched by
            meta data) or `"train"`. The model's previous mode is restored afterwards.
        lilaw_meta_cache (`str`, *optional*, defaults to `"auto"`):
            `"auto"` collates the meta set once into device tensors and indexes it every step when that is known
            to give exactly the per-step batches: a `datasets.Dataset` without a format transform, a row-wise
            collator (`default_data_collator`), no `-100` labels, at most 64 MiB, probe batches equal. `"force"`
            trusts a custom data set or collator to be deterministic and row-wise; `"off"` reads, collates and
            copies every meta batch.
        lilaw_compile (`bool`, *optional*, defaults to `None`):
            Run LiLAW's per-step math (the weighted training loss, the meta gradient, the guarded update) through
            `torch.compile`, with `torch_compile_backend` / `torch_compile_mode`. `None` follows `torch_compile`.
            On small tensors eager time is mostly per-operation dispatch, which compiling cuts, after a one-off
            compile per new batch shape; it pays on small models only (measured in ``docs/benchmarks.md`` §1).
    """

    # Initial values
    lilaw_alpha: float = field(default=10.0, metadata={"help": "Initial α (easy-sample scale). Kept >= 1."})
    lilaw_beta: float = field(default=2.0, metadata={"help": "Initial β (hard-sample scale)."})
    lilaw_delta: float = field(default=6.0, metadata={"help": "Initial δ (moderate-sample scale). Kept >= β."})

    # Meta optimisation
    lilaw_lr: float = field(default=0.005, metadata={"help": "SGD learning rate of α, β, δ."})
    lilaw_weight_decay: float = field(default=1e-4, metadata={"help": "SGD weight decay of α, β, δ."})
    lilaw_alpha_lr: float | None = field(default=None, metadata={"help": "Learning rate of α (default: lilaw_lr)."})
    lilaw_beta_lr: float | None = field(default=None, metadata={"help": "Learning rate of β (default: lilaw_lr)."})
    lilaw_delta_lr: float | None = field(default=None, metadata={"help": "Learning rate of δ (default: lilaw_lr)."})
    lilaw_alpha_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of α (default: lilaw_weight_decay)."}
    )
    lilaw_beta_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of β (default: lilaw_weight_decay)."}
    )
    lilaw_delta_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of δ (default: lilaw_weight_decay)."}
    )

    # Schedule
    lilaw_warmup_epochs: float = field(
        default=1.0, metadata={"help": "Epochs of plain unweighted training (no meta steps) before LiLAW starts."}
    )
    lilaw_warmup_steps: int | None = field(
        default=None,
        metadata={"help": "Warm-up in optimizer steps; overrides lilaw_warmup_epochs. Required for streamed data."},
    )

    # Meta data
    lilaw_meta_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Meta batch size per device (default: per_device_train_batch_size × gradient_accumulation_steps)."
        },
    )
    lilaw_meta_fraction: float = field(
        default=0.15,
        metadata={"help": "Fraction of train_dataset split off as the meta set when no meta_dataset is given."},
    )
    lilaw_seed: int | None = field(
        default=None, metadata={"help": "Seed of the meta split and meta sampler (default: seed)."}
    )

    # Loss and meta forward
    lilaw_base_loss: Literal["cross_entropy", "focal", "gce", "sce"] = field(
        default="cross_entropy",
        metadata={"help": "Per-sample base loss: cross_entropy, focal, gce (generalized CE) or sce (symmetric CE)."},
    )
    lilaw_focal_gamma: float = field(default=2.0, metadata={"help": "Gamma of the focal base loss."})
    lilaw_gce_q: float = field(default=0.7, metadata={"help": "q of the generalized cross-entropy base loss, in (0, 1]."})
    lilaw_sce_alpha: float = field(default=0.1, metadata={"help": "Weight of CE in the symmetric cross-entropy."})
    lilaw_sce_beta: float = field(default=1.0, metadata={"help": "Weight of reverse CE in the symmetric cross-entropy."})
    lilaw_detach_weights: bool = field(
        default=False, metadata={"help": "Treat the LiLAW weights as constants in the model's backward."}
    )
    lilaw_meta_forward_mode: Literal["eval", "train"] = field(
        default="eval", metadata={"help": "Model mode during the meta forward (restored afterwards)."}
    )
    lilaw_meta_cache: Literal["auto", "force", "off"] = field(
        default="auto",
        metadata={"help": "Keep the meta set collated once in device memory: auto (when known exact and <= 64 MiB), force, off."},
    )

    lilaw_compile: bool | None = field(
        default=None,
        metadata={"help": "torch.compile LiLAW's per-step math (None: follow torch_compile)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._validate_lilaw()

    @property
    def lilaw_compiles(self) -> bool:
        """Whether LiLAW's per-step math runs compiled: ``lilaw_compile``, else ``torch_compile``."""
        return self.torch_compile if self.lilaw_compile is None else self.lilaw_compile

    def lilaw_meta_batch(self) -> tuple[int, str]:
        """``(meta batch size per device, the setting it comes from)``: ``lilaw_meta_batch_size``, else one optimizer
        step's rows, ``per_device_train_batch_size × gradient_accumulation_steps``."""
        if self.lilaw_meta_batch_size:
            return self.lilaw_meta_batch_size, "lilaw_meta_batch_size"
        if self.gradient_accumulation_steps == 1:
            return self.per_device_train_batch_size, "per_device_train_batch_size"
        setting = "lilaw_meta_batch_size (default: per_device_train_batch_size × gradient_accumulation_steps)"
        return self.per_device_train_batch_size * self.gradient_accumulation_steps, setting

    def lilaw_per_parameter(self, setting: Literal["lr", "weight_decay"]) -> list[float]:
        """``[α's, β's, δ's]`` learning rate or weight decay: the per-parameter value, else the common one."""
        common = getattr(self, f"lilaw_{setting}")
        values = (getattr(self, f"lilaw_{name}_{setting}") for name in ("alpha", "beta", "delta"))
        return [common if value is None else value for value in values]

    def _validate_lilaw(self) -> None:
        """Raise ``ValueError`` naming the field and a valid value for any bad LiLAW option."""
        per_parameter = [f"lilaw_{name}_{key}" for key in ("lr", "weight_decay") for name in ("alpha", "beta", "delta")]
        for name in (
            "lilaw_alpha", "lilaw_beta", "lilaw_delta", "lilaw_focal_gamma", "lilaw_sce_alpha", "lilaw_sce_beta",
            "lilaw_warmup_epochs", "lilaw_lr", "lilaw_weight_decay", "lilaw_meta_fraction", "lilaw_gce_q",
            *per_parameter,
        ):
            value = getattr(self, name)
            if value is None and name in per_parameter:
                continue
            if not is_finite_number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if self.lilaw_alpha < 1:
            raise ValueError(f"lilaw_alpha must be >= 1 (LiLAW keeps α >= 1), got {self.lilaw_alpha}.")
        if self.lilaw_delta < self.lilaw_beta:
            raise ValueError(
                f"lilaw_delta ({self.lilaw_delta}) must be >= lilaw_beta ({self.lilaw_beta}): "
                "LiLAW keeps δ >= β. Raise lilaw_delta or lower lilaw_beta."
            )
        if not 0 < self.lilaw_meta_fraction < 1:
            raise ValueError(
                f"lilaw_meta_fraction must be in (0, 1), got {self.lilaw_meta_fraction}; "
                "the paper's default is 0.15, or pass meta_dataset= to LiLAWTrainer."
            )
        for name in ("lilaw_warmup_steps", "lilaw_meta_batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}.")
        if self.lilaw_meta_batch_size == 0:
            raise ValueError(
                "lilaw_meta_batch_size must be >= 1, or None to use per_device_train_batch_size × "
                "gradient_accumulation_steps."
            )
        if self.lilaw_base_loss not in BASE_LOSSES:
            raise ValueError(f"lilaw_base_loss must be one of {', '.join(BASE_LOSSES)}, got {self.lilaw_base_loss!r}.")
        if not 0 < self.lilaw_gce_q <= 1:
            raise ValueError(f"lilaw_gce_q must be in (0, 1], got {self.lilaw_gce_q!r}.")
        if self.lilaw_base_loss == "gce" and self.label_smoothing_factor:
            raise ValueError(
                f"label_smoothing_factor={self.label_smoothing_factor} has no effect with lilaw_base_loss='gce': the "
                "generalized cross-entropy has no cross-entropy term to smooth. Set label_smoothing_factor=0, or pick "
                "a base loss that smooths its cross-entropy term ('cross_entropy', 'focal' or 'sce')."
            )
        if self.lilaw_meta_cache not in ("auto", "force", "off"):
            raise ValueError(f"lilaw_meta_cache must be 'auto', 'force' or 'off', got {self.lilaw_meta_cache!r}.")
        check_flag(self.lilaw_detach_weights, name="lilaw_detach_weights")
        if self.lilaw_compile not in (None, True, False):
            raise ValueError(f"lilaw_compile must be True, False or None (follow torch_compile), got {self.lilaw_compile!r}.")
        if self.lilaw_meta_forward_mode not in ("eval", "train"):
            raise ValueError(
                f"lilaw_meta_forward_mode must be 'eval' or 'train', got {self.lilaw_meta_forward_mode!r}."
            )
