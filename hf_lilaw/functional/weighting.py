"""LiLAW math: the three per-sample weights and the meta gradient and update of α, β, δ.

Pure tensor code, no Trainer: paper eqs. 2–6 and Algorithm 1 lines 12–19, with the choices fixed by
``docs/lilaw.md`` (float32 math, constraints ``α ≥ 1`` and ``δ ≥ β`` after each meta step).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .losses import IGNORE_INDEX


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
    s_y = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)
    m = probs.max(dim=1).values
    w_alpha = torch.sigmoid(alpha * s_y - m)
    w_beta = torch.sigmoid(-(beta * s_y - m))
    w_delta = torch.exp(-((delta * s_y - m) ** 2) / 2)
    return LiLAWWeights(w_alpha, w_beta, w_delta, w_alpha + w_beta + w_delta)


def lilaw_meta_gradient(
    probs: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """Gradient of the meta loss ``mean(W · ℓ)`` with respect to ``(α, β, δ)`` only, in closed form.

    ``probs`` and ``losses`` are constants here (they come from a no-grad forward), so the gradient in the three
    scalars is a sum over the batch of elementwise terms (appendix A.2 of the paper):

    - ``∂L/∂α = mean(ℓ · σ_α (1 − σ_α) · s_y)`` with ``σ_α = sigmoid(α s_y − m)``;
    - ``∂L/∂β = −mean(ℓ · σ_β (1 − σ_β) · s_y)`` with ``σ_β = sigmoid(−(β s_y − m))``;
    - ``∂L/∂δ = −mean(ℓ · W_δ (δ s_y − m) · s_y)``.

    Every intermediate value is the one autograd's backward forms (the same sigmoids, the same order of
    products, the same rounded ``1/batch``), so on CPU the result equals `lilaw_meta_gradient_autograd` bit for
    bit in practice (and to float32 rounding in any case), without building a graph.

    Args:
        probs: meta-batch probabilities, ``(batch, num_classes)``, labelled rows only.
        labels: meta-batch labels, ``(batch,)``.
        losses: per-sample base losses, ``(batch,)``.
        params: the float32 tensor ``[α, β, δ]``.

    Returns:
        A float32 tensor of shape ``(3,)``: ``[∂L/∂α, ∂L/∂β, ∂L/∂δ]``.
    """
    # torch.rsub / Tensor.neg rather than `1 - t` / `-t`: the same kernels without Python's reflected-operator
    # wrapper, which costs more than the arithmetic on a meta batch.
    probs, losses, params = (t.detach().float() for t in (probs, losses, params))
    s_y = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)
    m = probs.max(dim=1).values
    x = params.unsqueeze(1) * s_y - m  # (3, batch): α s_y − m, β s_y − m, δ s_y − m
    # ∂L/∂W_i of the batch mean, as autograd forms it: the rounded 1/batch times ℓ_i (not ℓ_i / batch).
    upstream = losses * (1.0 / s_y.numel())
    sig_alpha = torch.sigmoid(x[0])
    sig_beta = torch.sigmoid(x[1].neg())
    x_delta = x[2]
    w_delta = torch.exp(x_delta.pow(2).neg() / 2)
    terms = torch.stack(
        [
            upstream * torch.rsub(sig_alpha, 1) * sig_alpha,
            (upstream * torch.rsub(sig_beta, 1) * sig_beta).neg(),
            ((upstream * w_delta / 2) * (x_delta * 2)).neg(),
        ]
    )
    return (terms * s_y).sum(dim=1)


def lilaw_meta_gradient_autograd(
    probs: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """`lilaw_meta_gradient` through autograd: the reference the closed form is tested against."""
    with torch.enable_grad():
        p = params.detach().float().requires_grad_(True)
        w = lilaw_weights(probs.detach(), labels, alpha=p[0], beta=p[1], delta=p[2]).total
        meta_loss = (w * losses.detach().float()).mean()
        (grad,) = torch.autograd.grad(meta_loss, p)
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
