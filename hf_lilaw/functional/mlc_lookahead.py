"""The main optimizer's next step as a differentiable function of a gradient (MLC's look-ahead)."""

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["is_sgd", "lookahead_steps"]

CLIP_EPS = 1e-6
"""`torch.nn.utils.clip_grad_norm_`'s epsilon: the gradient is scaled by `min(1, max_norm / (‖g‖ + CLIP_EPS))`."""


def _unwrap(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    # accelerate's AcceleratedOptimizer keeps the real optimizer (and its state) in `.optimizer`.
    while hasattr(optimizer, "optimizer") and isinstance(optimizer.optimizer, torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def is_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer` (possibly wrapped by accelerate) is `torch.optim.SGD`."""
    return isinstance(_unwrap(optimizer), torch.optim.SGD)


def lookahead_steps(
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    *,
    fallback_lr: float | None = None,
    max_grad_norm: float | None = 0.0,
) -> list[Tensor]:
    """The steps `s` such that the optimizer would move `params` to `params − s` given `grads`.

    For `torch.optim.SGD` this is SGD's own rule per parameter group: `d = g + wd·w`; with momentum
    `b = μ·buf + (1 − dampening)·d` (`b = d` on the first step, as PyTorch does), `d = b`, or `d + μ·b` with
    Nesterov; `s = lr·d` (with `maximize`, `g` is negated first). The optimizer's state is read, never changed. For any other
    optimizer the step is the plain gradient step `fallback_lr·g`: an adaptive optimizer's step is not a smooth
    function of this gradient (Adam's first step is `lr·sign(g)`), so MLC's hypergradient through it would vanish.

    With SGD and a positive `max_grad_norm` the gradients are first clipped as the Trainer clips them before its
    step (`torch.nn.utils.clip_grad_norm_` over `grads`, which must then be all the gradients the Trainer clips),
    so the step is the one SGD takes; the clipping factor enters as a constant. The plain gradient step of other
    optimizers is a surrogate whose size `fallback_lr` sets, and stays unclipped.

    `grads` may carry a graph (MLC's second-order hypergradient differentiates through the step); `params` and the
    optimizer state enter as constants.

    Args:
        optimizer: The main optimizer (accelerate's wrapper is looked through).
        params: The parameters, in the order of `grads`.
        grads: Their gradients.
        fallback_lr: Step size when the optimizer is not SGD (e.g. the optimizer's current learning rate).
        max_grad_norm: The Trainer's `max_grad_norm` (SGD only); `0` or `None`: no clipping.
    """
    if len(params) != len(grads):
        raise ValueError(f"{len(params)} parameters but {len(grads)} gradients.")
    optimizer = _unwrap(optimizer)
    if not isinstance(optimizer, torch.optim.SGD):
        if fallback_lr is None:
            raise ValueError(f"{type(optimizer).__name__} is not SGD: pass fallback_lr for a plain gradient step.")
        return [fallback_lr * g for g in grads]
    if max_grad_norm and max_grad_norm > 0 and grads:
        total_norm = torch.nn.utils.get_total_norm([g.detach() for g in grads])
        scale = torch.clamp(max_grad_norm / (total_norm + CLIP_EPS), max=1.0)
        grads = [g * scale.to(g.device, g.dtype) for g in grads]
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    steps = []
    for p, g in zip(params, grads, strict=True):
        group = group_of.get(id(p))
        if group is None:
            raise ValueError("A parameter of the look-ahead is not in the main optimizer's parameter groups.")
        d = -g if group.get("maximize", False) else g
        if group["weight_decay"] != 0:
            d = d + group["weight_decay"] * p.detach()
        momentum = group["momentum"]
        if momentum != 0:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            b = d if buf is None else momentum * buf + (1.0 - group["dampening"]) * d
            d = d + momentum * b if group["nesterov"] else b
        steps.append(group["lr"] * d)
    return steps
