"""LiLAW math: the three per-sample weights and the meta gradient and update of α, β, δ.

Pure tensor code, no Trainer: paper eqs. 2–6 and Algorithm 1 lines 12–19, with the choices fixed by
``docs/lilaw.md`` (float32 math, constraints ``α ≥ 1`` and ``δ ≥ β`` after each meta step).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

_SIGNS: dict[torch.device, torch.Tensor] = {}


def _signs(device: torch.device) -> torch.Tensor:
    """``[[1], [−1]]`` on ``device`` (kept per device: no host-to-device copy per step): the signs of the α and
    β rows' sigmoid slopes; multiplying by ±1 is exact, so each row equals its one-weight computation."""
    if torch.compiler.is_compiling():  # a constant of the graph; mutating the cache would break it
        return torch.tensor([[1.0], [-1.0]], device=device)
    signs = _SIGNS.get(device)
    if signs is None:
        with torch.inference_mode(False):  # a normal tensor even when first asked for under inference mode
            signs = _SIGNS[device] = torch.tensor([[1.0], [-1.0]], device=device)
    return signs


class LiLAWWeights(NamedTuple):
    """Per-sample weights; each field has shape ``(batch,)`` and dtype float32."""

    w_alpha: torch.Tensor
    w_beta: torch.Tensor
    w_delta: torch.Tensor
    total: torch.Tensor


def _scores(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s_y, m)``: the probability of the given label and the largest probability, per row."""
    return probs.gather(1, labels.long().unsqueeze(1)).squeeze(1), probs.max(dim=1).values


def _weight_parts(
    s_y: torch.Tensor, m: torch.Tensor, params: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_α, W_β, δ s_y − m, W_δ)`` with the operations of `lilaw_weights`, so with its values bit for bit.

    Sigmoid and exp run one row at a time: a vectorised kernel's tail elements take a scalar path whose rounding
    can differ, so only same-length inputs give `lilaw_weights`'s values exactly.
    """
    x = params.unsqueeze(1) * s_y - m  # (3, batch): α s_y − m, β s_y − m, δ s_y − m
    x_delta = x[2]
    return torch.sigmoid(x[0]), torch.sigmoid(x[1].neg()), x_delta, torch.exp(x_delta.pow(2).neg() / 2)


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
    s_y, m = _scores(probs.float(), labels)
    w_alpha = torch.sigmoid(alpha * s_y - m)
    w_beta = torch.sigmoid(-(beta * s_y - m))
    w_delta = torch.exp(-((delta * s_y - m) ** 2) / 2)
    return LiLAWWeights(w_alpha, w_beta, w_delta, w_alpha + w_beta + w_delta)


class _WeightsOfScores(torch.autograd.Function):
    """The three weights from ``s_y`` and ``m`` as one graph node.

    The values are `lilaw_weights`'s; the backward forms the gradients in ``s_y`` and ``m`` with the very operations
    autograd runs through `lilaw_weights`'s ~16 nodes, in the order its engine runs them (the δ chain, then β, then
    α: later-created nodes first), so the result is the same bit for bit, from one node.
    """

    @staticmethod
    def forward(ctx, s_y: torch.Tensor, m: torch.Tensor, params: torch.Tensor):
        w_alpha, w_beta, x_delta, w_delta = _weight_parts(s_y, m, params)
        ctx.save_for_backward(torch.stack([w_alpha, w_beta]), x_delta, w_delta, params)
        ctx.mark_non_differentiable(w_alpha, w_beta, w_delta)
        return w_alpha, w_beta, w_delta, w_alpha + w_beta + w_delta

    @staticmethod
    def backward(ctx, _ga, _gb, _gd, grad_total: torch.Tensor):
        sig, x_delta, w_delta, params = ctx.saved_tensors
        # exp, /2, neg, pow(2) backwards; sigmoid's is grad·(1 − σ)·σ; the β row then passes a neg.
        g_delta = ((grad_total * w_delta) / 2).neg() * (2 * x_delta)
        g_ab = grad_total * torch.rsub(sig, 1) * sig * _signs(sig.device)
        g_alpha, g_beta = g_ab.unbind()
        d_s_y = (g_delta * params[2] + g_beta * params[1]) + g_alpha * params[0]
        d_m = ((g_delta + g_beta) + g_alpha).neg()  # the sum of the three −g of a − b; negation is exact
        return d_s_y, d_m, None


def lilaw_training_weights(probs: torch.Tensor, labels: torch.Tensor, params: torch.Tensor) -> LiLAWWeights:
    """`lilaw_weights` for the training loss: differentiable in ``probs`` (not in α, β, δ), with a short graph.

    Values and gradients are `lilaw_weights`'s bit for bit (tested), but the part after ``s_y`` and ``m`` is one
    graph node instead of about sixteen: on a small model the backward's cost is mostly per node.
    ``w_alpha``, ``w_beta`` and ``w_delta`` come back without a graph (they are logged, not differentiated).

    Args:
        probs: class probabilities, ``(batch, num_classes)``, float32.
        labels: observed labels, ``(batch,)``, each in ``[0, num_classes)``.
        params: the float32 tensor ``[α, β, δ]`` (a constant here).
    """
    s_y, m = _scores(probs, labels)
    return LiLAWWeights(*_WeightsOfScores.apply(s_y, m, params.detach()))


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
    s_y, m = _scores(probs, labels)
    w_alpha, w_beta, x_delta, w_delta = _weight_parts(s_y, m, params)
    # ∂L/∂W_i of the batch mean, as autograd forms it: the rounded 1/batch times ℓ_i (not ℓ_i / batch).
    upstream = losses * (1.0 / s_y.numel())
    # Rows α and β together from here on: products only, exact whatever the layout.
    signs = _signs(s_y.device)
    sig = torch.stack([w_alpha, w_beta])
    terms = torch.cat(
        [
            upstream * torch.rsub(sig, 1) * sig * signs,
            ((upstream * w_delta / 2) * (x_delta * 2)).neg().unsqueeze(0),
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
