"""LiLAW math: the three per-sample weights and the meta gradient and update of α, β, δ.

Pure tensor code, no Trainer: paper eqs. 2–6 and Algorithm 1 lines 12–19, with the choices fixed by
``docs/lilaw.md`` (float32 math, constraints ``α ≥ 1`` and ``δ ≥ β`` after each meta step).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class LiLAWWeights(NamedTuple):
    """Per-sample weights; each field has shape ``(batch,)`` and dtype float32."""

    w_alpha: torch.Tensor
    w_beta: torch.Tensor
    w_delta: torch.Tensor
    total: torch.Tensor


def lilaw_weights(
    probs: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float | torch.Tensor,
    beta: float | torch.Tensor,
    delta: float | torch.Tensor,
) -> LiLAWWeights:
    """LiLAW weights of eqs. 2–5.

    Args:
        probs: class probabilities ``softmax(z)``, shape ``(batch, num_classes)``; any float dtype, the math
            runs in float32.
        labels: observed labels, shape ``(batch,)``, each in ``[0, num_classes)``.
        alpha, beta, delta: the three learnable scalars (floats or 0-d tensors; gradients flow through tensors).

    Returns:
        ``(w_alpha, w_beta, w_delta, total)``, differentiable in ``probs`` and in the three scalars.
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (batch, num_classes), got {tuple(probs.shape)}.")
    if labels.shape != probs.shape[:1]:
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(labels.shape)}.")
    probs = probs.float()
    s_y = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)  # probability of the given label
    m = probs.max(dim=1).values  # largest probability
    w_alpha = torch.sigmoid(alpha * s_y - m)
    w_beta = torch.sigmoid(-(beta * s_y - m))
    w_delta = torch.exp(-((delta * s_y - m) ** 2) / 2)
    return LiLAWWeights(w_alpha, w_beta, w_delta, w_alpha + w_beta + w_delta)


def lilaw_meta_loss(
    probs: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """The meta loss ``mean(W · ℓ)`` of a meta batch as a function of ``params = [α, β, δ]`` alone (``probs`` and
    ``losses`` are taken as constants: they come from a no-grad forward)."""
    weights = lilaw_weights(probs.detach(), labels, alpha=params[0], beta=params[1], delta=params[2])
    return (weights.total * losses.detach().float()).mean()


def lilaw_meta_gradient(
    probs: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """Gradient of `lilaw_meta_loss` in ``(α, β, δ)`` (appendix A.2 of the paper), also under ``torch.no_grad``.

    Args:
        probs: meta-batch probabilities, ``(batch, num_classes)``, labelled rows only.
        labels: meta-batch labels, ``(batch,)``.
        losses: per-sample base losses, ``(batch,)``.
        params: the float32 tensor ``[α, β, δ]``.

    Returns:
        A float32 tensor of shape ``(3,)``: ``[∂L/∂α, ∂L/∂β, ∂L/∂δ]``.
    """
    with torch.enable_grad():
        p = params.detach().float().requires_grad_(True)
        (grad,) = torch.autograd.grad(lilaw_meta_loss(probs, labels, losses, p), p)
    return grad


def lilaw_meta_update(
    params: torch.Tensor, grad: torch.Tensor, *, lr: torch.Tensor, weight_decay: torch.Tensor
) -> torch.Tensor:
    """One SGD step with weight decay per parameter, then the constraints ``α ≥ 1`` and ``δ ≥ β``.

    ``p ← p − lr_p · (∂L/∂p + wd_p · p)`` (Algorithm 1, lines 17–19). ``lr`` and ``weight_decay`` are
    length-3 tensors (one value per scalar).
    """
    new = params - lr * (grad + weight_decay * params)
    alpha = new[0].clamp_min(1.0)
    delta = torch.maximum(new[2], new[1])
    return torch.stack([alpha, new[1], delta])
