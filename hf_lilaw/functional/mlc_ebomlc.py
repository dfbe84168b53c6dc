"""EBOMLC's bilevel step, first order: a kept inner step, a mixture upper loss and the alignment-aware barrier.

Two readings: `ebomlc_step` is the spec's clean one, `ebomlc_released_step` the authors' released step (the
differences are listed in `docs/ebomlc.md`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .barrier import alignment_barrier_coefficient, mixture_upper_loss
from .mlc_bilevel import MetaStepInputs, MetaStepResult, corrected_lower_loss, gradients, set_gradients, step_meta_model
from .mlc_lookahead import lookahead_steps

__all__ = ["ebomlc_released_step", "ebomlc_step"]


def ebomlc_step(
    inputs: MetaStepInputs,
    *,
    optimizer: torch.optim.Optimizer,
    rho: float,
    barrier_threshold: float,
    barrier_scale: float,
    mixture_space: Literal["log_probs", "probs"] = "log_probs",
    max_grad_norm: float = 0.0,
    clip_grad_norm: Callable[[Sequence[Tensor], float], Any] = torch.nn.utils.clip_grad_norm_,
) -> MetaStepResult:
    """The spec's EBOMLC step (three forwards and three backwards).

    `w' = w − η·d(∇_w G(w, a))` is a real step of `optimizer` (clipped to `max_grad_norm` with `clip_grad_norm`
    when it is positive, as the Trainer clips its own steps; no scheduler step), `∇q = ∇G(w, a) − ∇G(w', a)`, the
    upper loss `f` is `mixture_upper_loss` of the main logits and the meta model's log-probabilities (or
    probabilities, `mixture_space`) on `inputs.upper` at `w'`, and both blocks move along `∇f + λ·∇q` with λ from
    `alignment_barrier_coefficient`: the main block's direction is left in `.grad` (applied from `w'` by the
    caller's optimizer step), the meta block takes one meta optimizer step.

    Args:
        optimizer: The main optimizer; it takes the inner step.
        rho: ρ of the mixture.
        barrier_threshold: δ_b of the barrier.
        barrier_scale: ξ of the barrier.
    """
    params = [p for p in inputs.net.parameters() if p.requires_grad]
    n = len(params)

    def optimizer_step(grads: list[Tensor], used: list[bool]) -> None:
        # ∇G(w, a) enters ∇q too, and clipping works in place: the optimizer gets a copy.
        set_gradients(params, grads, used, copy=True)
        if max_grad_norm > 0:
            clip_grad_norm(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    stats: dict[str, Tensor] = {}
    lower_0, grad_q, used = _lower_loss_gap(inputs, params, optimizer_step, stats)
    upper_loss, clean_loss, grad_f, used_f = _mixture_upper_loss(inputs, params, rho=rho, space=mixture_space)

    lam = alignment_barrier_coefficient(
        grad_f_main=grad_f[:n],
        grad_q_main=grad_q[:n],
        grad_q_meta=grad_q[n:],
        threshold=barrier_threshold,
        scale=barrier_scale,
    )
    direction = [f + lam * q for f, q in zip(grad_f, grad_q)]
    set_gradients(params, direction[:n], [a or b for a, b in zip(used[:n], used_f[:n])])
    step_meta_model(inputs, direction[n:])
    return MetaStepResult(
        lower_loss=lower_0, upper_loss=upper_loss, barrier=lam, label_kept=stats["label_kept"], clean_loss=clean_loss
    )


def ebomlc_released_step(
    inputs: MetaStepInputs,
    *,
    optimizer: torch.optim.Optimizer,
    inner_lr: float,
    rho: float,
    barrier_threshold: float,
    barrier_scale: float,
) -> MetaStepResult:
    """EBOMLC as the authors' released step.

    The upper loss at `w` with the meta model's probabilities; the look-ahead `w' = w − η·d(∇_w G)` (`optimizer`'s
    rule, its state untouched; see `lookahead_steps`) kept; `∇q` between `w` and `w'`; the alignment term taken
    with the optimizer step `−η·d(∇_w f)`; the main direction `λ·∇_w q − η·d(∇_w f)` left in `.grad`, applied from
    `w'` by the caller's optimizer step; the meta block one meta optimizer step along `λ·∇_a q + ∇_a f`.

    Args:
        optimizer: The main optimizer, read for the look-ahead, not stepped.
        inner_lr: The look-ahead's step size when `optimizer` is not SGD.
        rho, barrier_threshold, barrier_scale: As in `ebomlc_step`.
    """
    params = [p for p in inputs.net.parameters() if p.requires_grad]
    n = len(params)

    upper_loss, clean_loss, grad_f, used_f = _mixture_upper_loss(inputs, params, rho=rho, space="probs")
    step_f = lookahead_steps(optimizer, params, grad_f[:n], fallback_lr=inner_lr)

    def lookahead(grads: list[Tensor], used: list[bool]) -> None:
        with torch.no_grad():
            for p, step in zip(params, lookahead_steps(optimizer, params, grads, fallback_lr=inner_lr)):
                p.sub_(step.to(p.dtype))

    stats: dict[str, Tensor] = {}
    lower_0, grad_q, used = _lower_loss_gap(inputs, params, lookahead, stats)

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
    step_meta_model(inputs, [lam * q + f for q, f in zip(grad_q[n:], grad_f[n:])])
    return MetaStepResult(
        lower_loss=lower_0, upper_loss=upper_loss, barrier=lam, label_kept=stats["label_kept"], clean_loss=clean_loss
    )


def _lower_loss_gap(
    inputs: MetaStepInputs,
    params: list[Tensor],
    move: Callable[[list[Tensor], list[bool]], None],
    stats: dict[str, Tensor],
) -> tuple[Tensor, list[Tensor], list[bool]]:
    """`(G(w, a), ∇q, which of the main and meta parameters G uses)` with `∇q = ∇G(w, a) − ∇G(w', a)` over both
    blocks, where `move` takes the main model from `w` to `w'` given the main block of `∇G(w, a)` and its use;
    `stats` receives `corrected_lower_loss`'s at `w`."""
    tensors, n = params + list(inputs.meta_model.parameters()), len(params)
    lower_0 = corrected_lower_loss(inputs, stats=stats)
    g0, used = gradients(lower_0, tensors)
    g0 = inputs.reduce(g0)
    move(g0[:n], used[:n])
    g1, _ = gradients(corrected_lower_loss(inputs), tensors)
    g1 = inputs.reduce(g1)
    return lower_0, [a - b for a, b in zip(g0, g1)], used


def _mixture_upper_loss(
    inputs: MetaStepInputs, params: list[Tensor], *, rho: float, space: Literal["log_probs", "probs"]
) -> tuple[Tensor, Tensor, list[Tensor], list[bool]]:
    """The mixture upper loss on `inputs.upper` at the model's current parameters, the main model's own
    cross-entropy there (`MetaStepResult.clean_loss`, detached), the mixture's gradients over both blocks (averaged
    across processes) and which parameters it uses."""
    x_up, y_up = inputs.upper
    logits, features = inputs.forward(x_up)
    meta_log_probs = inputs.meta_model.log_probs(features, y_up)
    upper_loss = mixture_upper_loss(logits, meta_log_probs, y_up, rho=rho, space=space)
    clean_loss = F.cross_entropy(logits.detach().float(), y_up)
    grad_f, used_f = gradients(upper_loss, params + list(inputs.meta_model.parameters()))
    return upper_loss, clean_loss, inputs.reduce(grad_f), used_f
