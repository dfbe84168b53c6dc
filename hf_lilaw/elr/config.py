"""`ELRConfig`: the early-learning regularisation knobs on top of `transformers.TrainingArguments`."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..core.settings import is_finite_number


@dataclass
class ELRConfig(TrainingArguments):
    r"""
    Configuration class for [`ELRTrainer`].

    Only the ELR parameters are listed here; every [`~transformers.TrainingArguments`] field works as usual.
    Through [`~transformers.HfArgumentParser`] each field is a command-line flag (`--elr_lambda 3`).
    An [`ELRTrainer`] given a plain `TrainingArguments` converts it to an `ELRConfig` with the defaults below.

    Parameters:
        > The regulariser (Liu et al. 2020, §4; defaults: the authors' CIFAR-10 setting)

        elr_lambda (`float`, *optional*, defaults to `3.0`):
            λ, weight of the regulariser `log(1 − ⟨p_i, t_i⟩)` added to each sample's cross-entropy. `0` is plain
            cross-entropy.
        elr_beta (`float`, *optional*, defaults to `0.7`):
            β, weight of the old target in the running average `t_i ← β·t_i + (1 − β)·p_i`, in `[0, 1)`.

        > The targets (one row of `num_classes` float32 values per training sample)

        elr_num_samples (`int` or `None`, *optional*):
            Number of rows of the target table: every `sample_id` of the training data lies in
            `[0, elr_num_samples)`. Required for a streamed `train_dataset` (it has no length); `None` reads it
            from the `sample_id` column of a `datasets.Dataset`, or takes the length of another map-style set.
        elr_targets_on_cpu (`bool`, *optional*, defaults to `False`):
            Keep the targets in host memory instead of on the model's device: for a table too large for the
            accelerator, at the price of copying each batch's rows to the device and back (a host sync per step).
    """

    # The regulariser
    elr_lambda: float = field(
        default=3.0, metadata={"help": "λ: weight of the regulariser log(1 - <p, t>) added to the cross-entropy."}
    )
    elr_beta: float = field(
        default=0.7, metadata={"help": "β: weight of the old target in the running average of predictions, in [0, 1)."}
    )

    # The targets
    elr_num_samples: int | None = field(
        default=None,
        metadata={"help": "Rows of the target table (sample ids lie in [0, elr_num_samples)). Required for streamed data."},
    )
    elr_targets_on_cpu: bool = field(
        default=False,
        metadata={"help": "Keep the N x K targets in host memory (slower: rows copied to the device every step)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._validate_elr()

    def _validate_elr(self) -> None:
        """Raise ``ValueError`` naming the field and a valid value for any bad ELR option."""
        lam = self.elr_lambda
        if not is_finite_number(lam) or lam < 0:
            raise ValueError(f"elr_lambda must be a finite number >= 0 (the authors use 3 to 7), got {lam!r}.")
        beta = self.elr_beta
        if not is_finite_number(beta) or not 0 <= beta < 1:
            raise ValueError(
                f"elr_beta must be in [0, 1) (the authors use 0.7 to 0.9), got {beta!r}: with β = 1 the targets "
                "would never move from zero and ELR would do nothing."
            )
        n = self.elr_num_samples
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"elr_num_samples must be a positive integer or None, got {n!r}.")
        if self.elr_targets_on_cpu not in (True, False):
            raise ValueError(f"elr_targets_on_cpu must be True or False, got {self.elr_targets_on_cpu!r}.")
