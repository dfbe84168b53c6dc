"""LiLAW's per-step computations as pure functions of tensors: the units `LiLAWTrainer` runs each step, each
compiled as a whole under ``lilaw_compile`` (eager otherwise; the only switch between two ways of running them).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .losses import IGNORE_INDEX, BaseLoss, per_sample_loss
from .weighting import lilaw_meta_gradient, lilaw_meta_loss, lilaw_meta_update, lilaw_weights


class BaseLossSettings(NamedTuple):
    """The base loss ``ℓ`` and its options (see `per_sample_loss`)."""

    kind: BaseLoss = "cross_entropy"
    focal_gamma: float = 2.0
    gce_q: float = 0.7
    sce_alpha: float = 0.1
    sce_beta: float = 1.0


def training_loss_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    params: torch.Tensor,
    *,
    loss: BaseLossSettings,
    label_smoothing: float = 0.0,
    weighted: bool = True,
    detach_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample training losses and the sums that LiLAWTrainer logs.

    Args:
        logits: ``(batch, num_classes)``; labels: ``(batch,)``, ``-100`` for unlabelled rows.
        params: the float32 tensor ``[α, β, δ]`` (a constant here).
        weighted: ``W_i · ℓ_i`` when true (past the warm-up), plain ``ℓ_i`` otherwise.
        detach_weights: no gradient through the weights into the model.

    Returns:
        ``(losses, sums)``: the per-sample losses (0 on unlabelled rows, so their sum is the batch's loss) and, over
        the labelled rows, ``[Σ w_α, Σ w_β, Σ w_δ, Σ W, count]`` (no graph).
    """
    losses = per_sample_loss(logits, labels, **loss._asdict(), label_smoothing=label_smoothing)
    probs = logits.float().softmax(dim=-1)
    if detach_weights:
        probs = probs.detach()
    alpha, beta, delta = params.detach()
    weights = lilaw_weights(probs, labels.clamp_min(0), alpha=alpha, beta=beta, delta=delta)
    with torch.no_grad():
        mask = (labels != IGNORE_INDEX).float()
        # [Σ w_α, Σ w_β, Σ w_δ, Σ W, count] over labelled rows, in one product.
        sums = torch.stack([weights.w_alpha, weights.w_beta, weights.w_delta, weights.total, mask]) @ mask
    # Unlabelled rows: their base loss is 0 and their weight finite, so they add exactly 0 to the sum.
    return (weights.total * losses if weighted else losses), sums


def meta_gradient(
    logits: torch.Tensor, labels: torch.Tensor, params: torch.Tensor, *, loss: BaseLossSettings
) -> torch.Tensor:
    """``[∂L/∂α, ∂L/∂β, ∂L/∂δ]`` of the meta loss ``mean(W · ℓ)`` of a meta batch's logits (labelled rows only).

    ``ℓ`` is the base loss without label smoothing, whatever ``label_smoothing_factor`` the training loss uses: the
    meta loss measures the fit to the given labels. A batch without a labelled row has no meta loss: its gradient
    is NaN, so `guarded_meta_update` skips the step and counts it (its mean over no rows would be a zero gradient,
    a weight-decay-only step).
    """
    logits = logits.float()
    losses = per_sample_loss(logits, labels, **loss._asdict())
    probs = logits.softmax(dim=-1)
    if torch.compiler.is_compiling():  # lilaw_compile: func.grad is traced into the graph, autograd.grad splits it
        grad = torch.func.grad(lambda p: lilaw_meta_loss(probs, labels, losses, p))(params.detach())
    else:
        grad = lilaw_meta_gradient(probs, labels, losses, params)
    labelled = (labels != IGNORE_INDEX).any()  # a tensor, not a bool: no host sync
    return torch.where(labelled, grad, torch.full_like(grad, float("nan")))


def guarded_meta_update(
    params: torch.Tensor,
    grad: torch.Tensor,
    skipped: torch.Tensor,
    *,
    lr: torch.Tensor,
    weight_decay: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`lilaw_meta_update` unless the gradient has a non-finite entry; then ``params`` unchanged and ``skipped``
    counted up. ``torch.where`` rather than an ``if``: no host sync on accelerators.

    Returns:
        ``(new params, new skipped count)``.
    """
    finite = torch.isfinite(grad).all()
    updated = lilaw_meta_update(params, grad, lr=lr, weight_decay=weight_decay)
    return torch.where(finite, updated, params), skipped + (~finite).long()
