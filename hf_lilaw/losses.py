"""Noise-robust classification losses for plain `transformers.Trainer`, as ``compute_loss_func``.

Each class is a callable with the signature ``Trainer(compute_loss_func=...)`` expects,
``(outputs, labels, num_items_in_batch=None) -> loss``::

    trainer = Trainer(model=model, args=args, train_dataset=noisy, compute_loss_func=SymmetricCrossEntropy())

The same losses are LiLAW's per-sample base loss: ``LiLAWConfig(lilaw_base_loss="sce")`` (or ``"gce"``,
``"focal"``) weights ``SymmetricCrossEntropy``'s per-sample values. The math lives once, in
`hf_lilaw.functional.losses.per_sample_loss`; these classes only choose its options and reduce.

Reduction, as Trainer's own loss: with ``num_items_in_batch`` (what Trainer passes during training: the
labelled rows of the whole accumulated, all-process batch) the per-sample losses are summed and divided by it,
so gradient accumulation and multi-process training give the gradients of one big batch; without it, the
mean over labelled rows. Rows labelled ``-100`` carry no loss. Probabilities are float32 whatever the model's
precision.

Label smoothing: pass ``label_smoothing=`` to the loss. Trainer ignores ``TrainingArguments.label_smoothing_factor``
whenever ``compute_loss_func`` is given, and a loss cannot see the arguments.

| class | loss of one sample (``p_y``: softmax probability of the label) | reference |
|---|---|---|
| `CrossEntropy` | ``−log p_y`` | |
| `FocalLoss` | ``(1 − p_y)^γ · (−log p_y)`` | Lin et al. 2017 |
| `GeneralizedCrossEntropy` | ``(1 − p_y^q) / q`` (CE as q → 0, MAE at q = 1) | Zhang & Sabuncu 2018 |
| `SymmetricCrossEntropy` | ``α·(−log p_y) + β·(−log 1e-4)·(1 − p_y)`` (CE + reverse CE) | Wang et al. 2019 |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .functional.losses import mean_over_items, per_sample_loss


__all__ = ["ClassificationLoss", "CrossEntropy", "FocalLoss", "GeneralizedCrossEntropy", "SymmetricCrossEntropy", "make_loss"]


def _logits(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and isinstance(outputs.get("logits"), torch.Tensor):
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise ValueError(
        f"No logits in the model output ({type(outputs).__name__}); return a tensor, a tuple whose first item is "
        "the logits, or an output with a 'logits' field."
    )


class ClassificationLoss:
    """Base of the losses: a per-sample loss from `per_sample_loss`, reduced as Trainer reduces its own loss."""

    kind: str = "cross_entropy"

    def __init__(self, *, label_smoothing: float = 0.0, **options: Any) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
        self.options = {"label_smoothing": label_smoothing, **options}

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample losses in float32, shape ``(batch,)``, 0 on rows labelled -100."""
        return per_sample_loss(logits, labels, kind=self.kind, **self.options)

    def __call__(self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: Any = None) -> torch.Tensor:
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels; give the data set a 'label' (or 'labels') column.")
        logits = _logits(outputs)
        if logits.ndim < 2 or logits.shape[:-1] != labels.shape:
            raise ValueError(
                f"logits of shape {tuple(logits.shape)} do not fit labels of shape {tuple(labels.shape)}; expected "
                "logits (..., num_classes) and labels (...) of integer class indices."
            )
        if labels.is_floating_point():
            raise ValueError("Labels must be integer class indices; cast the label column to int (ClassLabel).")
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        return mean_over_items(self.per_sample(logits, labels).sum(), labels, num_items_in_batch)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({options})"


class CrossEntropy(ClassificationLoss):
    """Cross-entropy ``−log p_y``, Trainer's default loss; the reference the robust losses are compared with."""

    kind = "cross_entropy"

    def __init__(self, *, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing=label_smoothing)


class FocalLoss(ClassificationLoss):
    """Focal loss ``(1 − p_y)^γ · CE`` (Lin et al. 2017): down-weights samples the model already gets right.

    ``1 − p_y`` is clamped at 1e-6 (for γ < 1 its power has an infinite slope where a confident row reaches
    ``p_y = 1``); the value changes by less than 1e-6 of a cross-entropy that is itself below 1e-6 there."""

    kind = "focal"

    def __init__(self, *, gamma: float = 2.0, label_smoothing: float = 0.0) -> None:
        if not gamma >= 0:
            raise ValueError(f"gamma must be ≥ 0 (0 is cross-entropy), got {gamma!r}.")
        super().__init__(label_smoothing=label_smoothing, focal_gamma=gamma)


class GeneralizedCrossEntropy(ClassificationLoss):
    """Generalized cross-entropy ``(1 − p_y^q) / q`` (Zhang & Sabuncu 2018); bounded, so wrong labels pull less.

    ``q`` → 0 is cross-entropy, ``q = 1`` the mean absolute error; 0.7 is the paper's choice.
    """

    kind = "gce"

    def __init__(self, *, q: float = 0.7) -> None:
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1] (q → 0 is cross-entropy, 1 is MAE), got {q!r}.")
        super().__init__(gce_q=q)


class SymmetricCrossEntropy(ClassificationLoss):
    """Symmetric cross-entropy ``α·CE + β·RCE`` (Wang et al. 2019).

    The reverse cross-entropy ``RCE = −Σ_k p_k log onehot_k`` takes ``log 0`` as ``log 1e-4`` (the authors'
    released code), so ``RCE = −log(1e-4)·(1 − p_y)``. α = 0.1, β = 1.0 are the paper's CIFAR-10 values. As in
    that code every probability is first clamped at 1e-7, so ``1 − p_y`` reads ``Σ_{k≠y} max(p_k, 1e-7)``: at most
    ``(C − 1)·1e-7`` more (RCE 0.003 higher per sample with 1,000 classes, 0.03 with 50,000).
    ``label_smoothing`` applies to the CE term.
    """

    kind = "sce"

    def __init__(self, *, alpha: float = 0.1, beta: float = 1.0, label_smoothing: float = 0.0) -> None:
        if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
            raise ValueError(f"alpha and beta must be ≥ 0 and not both 0, got alpha={alpha!r}, beta={beta!r}.")
        super().__init__(label_smoothing=label_smoothing, sce_alpha=alpha, sce_beta=beta)


LOSSES: dict[str, type[ClassificationLoss]] = {
    "cross_entropy": CrossEntropy,
    "focal": FocalLoss,
    "gce": GeneralizedCrossEntropy,
    "sce": SymmetricCrossEntropy,
}
"""The losses by the names ``LiLAWConfig.lilaw_base_loss`` uses."""


def make_loss(name: str, **options: Any) -> ClassificationLoss:
    """A loss by its ``lilaw_base_loss`` name (``cross_entropy``, ``focal``, ``gce``, ``sce``) and keyword options."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; pick one of {', '.join(LOSSES)}.")
    if name == "gce" and options.get("label_smoothing"):
        raise ValueError("gce has no cross-entropy term to smooth: drop label_smoothing, or pick cross_entropy, focal or sce.")
    return LOSSES[name](**{k: v for k, v in options.items() if not (name == "gce" and k == "label_smoothing")})
