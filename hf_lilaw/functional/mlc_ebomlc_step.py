"""EBOMLC's bilevel step, first order: a kept inner step, a mixture upper loss and the alignment-aware barrier.

Two readings: `ebomlc_step` is the spec's clean one, `ebomlc_released_step` the authors' released step (the
differences are listed in `docs/ebomlc.md`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .barrier import alignment_barrier_coefficient, mixture_upper_loss
from .mlc_bilevel import Batch, Forward, MetaStepResult, Reduce, corrected_lower_loss, gradients, set_gradients, step_meta_model
from .mlc_lookahead import lookahead_steps

__all__ = ["ebomlc_released_step", "ebomlc_step"]


def ebomlc_step(
    net: nn.Module,
    meta_model: nn.Module,
    *,
    forward: Forward,
    optimizer: torch.optim.Optimizer,
    meta_optimizer: torch.optim.Optimizer,
    noisy: Batch,
    upper: Batch,
    lower: Batch | None,
    rho: float,
    barrier_threshold: float,
    barrier_scale: float,
    mixture_space: Literal["log_probs", "probs"] = "log_probs",
    max_grad_norm: float = 0.0,
    clip_grad_norm: Callable[[Sequence[Tensor], float], Any] = torch.nn.utils.clip_grad_norm_,
    lower_loss_weights: Sequence[float] | None = None,
    reduce: Reduce = list,
) -> MetaStepResult:
    """The spec's EBOMLC step (three forwards and three backwards).

    `w' = w − η·d(∇_w G(w, a))` is a real step of `optimizer` (clipped to `max_grad_norm` with `clip_grad_norm`
    when it is positive, as the Trainer clips its own steps; no scheduler step), `∇q = ∇G(w, a) − ∇G(w', a)`, the
    upper loss `f` is `mixture_upper_loss` of the main logits and the meta model's log-probabilities (or
    probabilities, `mixture_space`) on `upper` at `w'`, and both blocks move along `∇f + λ·∇q` with λ from
    `alignment_barrier_coefficient`: the main block's direction is left in `.grad` (applied from `w'` by the
    caller's optimizer step), the meta block takes one `meta_optimizer` step.

    Args:
        rho: ρ of the mixture; barrier_threshold, barrier_scale: δ_b and ξ of the barrier.
        Others: as in `mlc_step`.
    """
    params, meta, lower_at = _blocks(net, meta_model, forward, noisy, lower, lower_loss_weights)
    n = len(params)

    def optimizer_step(grads: list[Tensor], used: list[bool]) -> None:
        # ∇G(w, a) enters ∇q too, and clipping works in place: the optimizer gets a copy.
        set_gradients(params, grads, used, copy=True)
        if max_grad_norm > 0:
            clip_grad_norm(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    lower_0, grad_q, used = _lower_loss_gap(lower_at, params + meta, n, reduce, optimizer_step)
    upper_loss, grad_f, used_f = _upper(forward, meta_model, upper, params + meta, reduce, rho=rho, space=mixture_space)

    lam = alignment_barrier_coefficient(
        grad_f_main=grad_f[:n],
        grad_q_main=grad_q[:n],
        grad_q_meta=grad_q[n:],
        threshold=barrier_threshold,
        scale=barrier_scale,
    )
    direction = [f + lam * q for f, q in zip(grad_f, grad_q)]
    set_gradients(params, direction[:n], [a or b for a, b in zip(used[:n], used_f[:n])])
    step_meta_model(meta_model, meta_optimizer, direction[n:])
    return MetaStepResult(lower_loss=lower_0, upper_loss=upper_loss, barrier=lam)


def ebomlc_released_step(
    net: nn.Module,
    meta_model: nn.Module,
    *,
    forward: Forward,
    optimizer: torch.optim.Optimizer,
    meta_optimizer: torch.optim.Optimizer,
    noisy: Batch,
    upper: Batch,
    lower: Batch | None,
    inner_lr: float,
    rho: float,
    barrier_threshold: float,
    barrier_scale: float,
    lower_loss_weights: Sequence[float] | None = None,
    reduce: Reduce = list,
) -> MetaStepResult:
    """EBOMLC as the authors' released step.

    The upper loss at `w` with the meta model's probabilities; the look-ahead `w' = w − η·d(∇_w G)` (`optimizer`'s
    rule, its state untouched; see `lookahead_steps`) kept; `∇q` between `w` and `w'`; the alignment term taken
    with the optimizer step `−η·d(∇_w f)`; the main direction `λ·∇_w q − η·d(∇_w f)` left in `.grad`, applied from
    `w'` by the caller's optimizer step; the meta block one `meta_optimizer` step along `λ·∇_a q + ∇_a f`.

    Args:
        inner_lr: The look-ahead's step size when `optimizer` is not SGD.
        Others: as in `ebomlc_step`.
    """
    params, meta, lower_at = _blocks(net, meta_model, forward, noisy, lower, lower_loss_weights)
    n = len(params)

    upper_loss, grad_f, used_f = _upper(forward, meta_model, upper, params + meta, reduce, rho=rho, space="probs")
    step_f = lookahead_steps(optimizer, params, grad_f[:n], fallback_lr=inner_lr)

    def lookahead(grads: list[Tensor], used: list[bool]) -> None:
        with torch.no_grad():
            for p, step in zip(params, lookahead_steps(optimizer, params, grads, fallback_lr=inner_lr)):
                p.sub_(step.to(p.dtype))

    lower_0, grad_q, used = _lower_loss_gap(lower_at, params + meta, n, reduce, lookahead)

    descent_f = [-step for step in step_f]
    lam = alignment_barrier_coefficient(
        grad_f_main=descent_f,
        grad_q_main=grad_q[:n],
        grad_q_meta=grad_q[n:],
        threshold=barrier_threshold,
        scale=barrier_scale,
    )
    main = [lam * q + f for q, f in zip(grad_q[:n], descent_f)]
    set_gradients(params, main, [a or b for a, b in zip(used[:n], used_f[:n])])
    step_meta_model(meta_model, meta_optimizer, [lam * q + f for q, f in zip(grad_q[n:], grad_f[n:])])
    return MetaStepResult(lower_loss=lower_0, upper_loss=upper_loss, barrier=lam)


def _blocks(
    net: nn.Module, meta_model: nn.Module, forward: Forward, noisy: Batch, lower: Batch | None, weights: Sequence[float] | None
) -> tuple[list[Tensor], list[Tensor], Callable[[], Tensor]]:
    """The main block, the meta block, and `G` at the model's current parameters."""
    params = [p for p in net.parameters() if p.requires_grad]

    def lower_at() -> Tensor:
        return corrected_lower_loss(forward, meta_model, noisy, lower, weights=weights)

    return params, list(meta_model.parameters()), lower_at


def _lower_loss_gap(
    lower_at: Callable[[], Tensor],
    tensors: list[Tensor],
    n: int,
    reduce: Reduce,
    move: Callable[[list[Tensor], list[bool]], None],
) -> tuple[Tensor, list[Tensor], list[bool]]:
    """`(G(w, a), ∇q, which tensors G uses)` with `∇q = ∇G(w, a) − ∇G(w', a)`, where `move` takes the main model
    from `w` to `w'` given the main block of `∇G(w, a)` and which of its parameters `G` uses."""
    lower_0 = lower_at()
    g0, used = gradients(lower_0, tensors)
    g0 = reduce(g0)
    move(g0[:n], used[:n])
    g1, _ = gradients(lower_at(), tensors)
    g1 = reduce(g1)
    return lower_0, [a - b for a, b in zip(g0, g1)], used


def _upper(
    forward: Forward,
    meta_model: nn.Module,
    upper: Batch,
    tensors: list[Tensor],
    reduce: Reduce,
    *,
    rho: float,
    space: Literal["log_probs", "probs"],
) -> tuple[Tensor, list[Tensor], list[bool]]:
    """The mixture upper loss on `upper` at the model's current parameters, its averaged gradients and their use."""
    x_up, y_up = upper
    logits, features = forward(x_up)
    upper_loss = mixture_upper_loss(logits, meta_model.log_probs(features, y_up), y_up, rho=rho, space=space)
    grad_f, used_f = gradients(upper_loss, tensors)
    return upper_loss, reduce(grad_f), used_f
