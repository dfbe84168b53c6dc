"""MLC's bilevel step: a one-step look-ahead kept in the graph and a second-order hypergradient to the meta model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .mlc_bilevel import Batch, Forward, MetaStepResult, Reduce, corrected_lower_loss, gradients, set_gradients, step_meta_model
from .mlc_lookahead import lookahead_steps

__all__ = ["mlc_step"]


def mlc_step(
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
    lower_loss_weights: Sequence[float] | None = None,
    reduce: Reduce = list,
) -> MetaStepResult:
    """One MLC step: `w' = w − s(∇_w G(w, a))` kept in the graph, where `s` is `optimizer`'s own step when it is SGD
    (momentum, weight decay, Nesterov) and a plain gradient step of `inner_lr` otherwise (see `lookahead_steps`),
    the clean CE of `upper` at `w'`, its second-order hypergradient to the meta model (one `meta_optimizer` step),
    then `∇_w G(w, a)` left in the main parameters' `.grad` for the caller's optimizer step.

    The fused SDPA kernels have no double backward, so attention runs on the math kernel here.

    Args:
        net: The main model; its parameters that require grad form `w`.
        meta_model: The label correction network `(features, noisy labels) → corrected labels`.
        forward: Runs `net` (see `Forward`).
        optimizer: The main optimizer, read for the look-ahead, never stepped.
        noisy, upper, lower: The noisy batch, the clean half of the upper loss, the clean half joining `G` (or
            `None`).
        inner_lr: The look-ahead's step size when `optimizer` is not SGD.
        lower_loss_weights: `(noisy, clean)` weights of `G`, `None` for the batch sizes.
        reduce: Averages gradients across processes.
    """
    with sdpa_kernel(SDPBackend.MATH):
        named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
        params = [p for _, p in named]

        lower_0 = corrected_lower_loss(forward, meta_model, noisy, lower, weights=lower_loss_weights)
        grads, used = gradients(lower_0, params, create_graph=True)
        steps = lookahead_steps(optimizer, params, grads, fallback_lr=inner_lr)
        ahead = {name: p - step for (name, p), step in zip(named, steps)}

        x_up, y_up = upper
        logits, _ = forward(x_up, ahead)
        upper_loss = F.cross_entropy(logits.float(), y_up)
        hypergrad, _ = gradients(upper_loss, list(meta_model.parameters()))
        step_meta_model(meta_model, meta_optimizer, reduce(hypergrad))
        del ahead, hypergrad, steps

        set_gradients(params, reduce([g.detach() for g in grads]), used)
    return MetaStepResult(lower_loss=lower_0, upper_loss=upper_loss)
