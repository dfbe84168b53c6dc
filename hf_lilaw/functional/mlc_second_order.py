"""MLC's bilevel step: a one-step look-ahead kept in the graph and a second-order hypergradient to the meta model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .mlc_bilevel import (
    MetaStepInputs,
    MetaStepResult,
    corrected_lower_loss,
    gradients,
    mean_across_processes_in_graph,
    set_gradients,
    step_meta_model,
)
from .mlc_lookahead import lookahead_steps

__all__ = ["mlc_step"]


def mlc_step(
    inputs: MetaStepInputs, *, optimizer: torch.optim.Optimizer, inner_lr: float, max_grad_norm: float | None = 0.0
) -> MetaStepResult:
    """One MLC step: `w' = w − s(∇_w G(w, a))` kept in the graph, where `s` is `optimizer`'s own step when it is SGD
    (momentum, weight decay, Nesterov) and a plain gradient step of `inner_lr` otherwise (see `lookahead_steps`),
    the clean CE of `inputs.upper` at `w'`, its second-order hypergradient to the meta model (one meta optimizer
    step), then `∇_w G(w, a)` left in the main parameters' `.grad` for the caller's optimizer step.

    The look-ahead's gradient is the one the caller's optimizer will apply: averaged across processes under
    `torch.distributed` (`mean_across_processes_in_graph`) and, with SGD, clipped to `max_grad_norm` when that is
    positive, as the Trainer clips its own steps (see `lookahead_steps`).

    The fused SDPA kernels have no double backward, so attention runs on the math kernel here.

    Args:
        optimizer: The main optimizer, read for the look-ahead, never stepped.
        inner_lr: The look-ahead's step size when `optimizer` is not SGD.
        max_grad_norm: The norm the caller clips the gradient of the main model's trainable parameters to before its
            step; `0` or `None`: no clipping.
    """
    with sdpa_kernel(SDPBackend.MATH):
        named = [(name, p) for name, p in inputs.net.named_parameters() if p.requires_grad]
        params = [p for _, p in named]

        stats: dict[str, torch.Tensor] = {}
        lower_0 = corrected_lower_loss(inputs, stats=stats)
        grads, used = gradients(lower_0, params, create_graph=True)
        # The meta gradients stay per process (`inputs.reduce` averages them below): through this mean they add up
        # to the gradient of the processes' mean upper loss.
        step_grads = mean_across_processes_in_graph(grads)
        steps = lookahead_steps(optimizer, params, step_grads, fallback_lr=inner_lr, max_grad_norm=max_grad_norm)
        ahead = {name: p - step for (name, p), step in zip(named, steps)}

        x_up, y_up = inputs.upper
        logits, _ = inputs.forward(x_up, ahead)
        upper_loss = F.cross_entropy(logits.float(), y_up)
        hypergrad, _ = gradients(upper_loss, list(inputs.meta_model.parameters()))
        step_meta_model(inputs, inputs.reduce(hypergrad))
        del ahead, hypergrad, steps, step_grads

        set_gradients(params, inputs.reduce([g.detach() for g in grads]), used)
    return MetaStepResult(lower_loss=lower_0, upper_loss=upper_loss, label_kept=stats["label_kept"])
