"""What the meta label correction steps share: the batches, the lower loss `G` and the gradient plumbing.

A step sees the main model `net` (its trainable parameters are the main block `w`), a `forward` that runs it (at
its own parameters or at a functional copy) and returns the logits with the pooled penultimate features, and the
meta model (its parameters are the meta block `a`). Gradients are lists of per-parameter tensors in a fixed order;
`reduce` is where a step averages them across processes (the identity on one process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from .barrier import lower_loss

__all__ = [
    "Batch",
    "Forward",
    "MetaStepResult",
    "Reduce",
    "corrected_lower_loss",
    "gradients",
    "set_gradients",
    "step_meta_model",
]

Batch = tuple[dict[str, Any], Tensor]
"""A batch as the steps take it: the model inputs without the labels, and the labels."""

Reduce = Callable[[Sequence[Tensor]], list[Tensor]]
"""Averages a gradient list across processes (`list` on one process)."""


class Forward(Protocol):
    def __call__(self, inputs: Mapping[str, Any], params: Mapping[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """`(logits, penultimate features)` of the main model on `inputs`, at `params` (a functional copy of its
        named parameters) when given."""
        ...


class MetaStepResult(NamedTuple):
    """What a step reports (detached or not, the trainer only logs them)."""

    lower_loss: Tensor
    """`G` at the parameters the step started from."""
    upper_loss: Tensor
    barrier: Tensor | None = None
    """The barrier coefficient λ (`None` for MLC, which has none)."""

    def metrics(self) -> dict[str, Tensor]:
        values = {} if self.barrier is None else {"lambda": self.barrier}
        return {**values, "upper_loss": self.upper_loss, "lower_loss": self.lower_loss}


def corrected_lower_loss(
    forward: Forward,
    meta_model: nn.Module,
    noisy: Batch,
    lower: Batch | None,
    *,
    weights: Sequence[float] | None,
    params: Mapping[str, Tensor] | None = None,
    with_clean: bool = True,
) -> Tensor:
    """The lower loss `G(w, a)`: soft CE against the meta model's corrected labels on the noisy batch, mixed with
    plain CE on the clean half `lower` (see `lower_loss`), at the model's parameters or at `params`.

    Args:
        weights: `(noisy, clean)`; `None` weights the two terms by their batch sizes (the mean over every row).
        with_clean: `False` leaves out the clean term, scaled so that the meta gradient equals `G`'s (the clean
            term does not depend on the meta model), one forward fewer.
    """
    logits, features = forward(noisy[0], params)
    soft_labels = meta_model(features, noisy[1])
    if weights is None:
        weights = (float(noisy[1].shape[0]), float(lower[1].shape[0]) if lower is not None else 0.0)
    if lower is None or weights[1] == 0:
        return lower_loss(logits, soft_labels, weights=weights)
    if not with_clean:
        return lower_loss(logits, soft_labels, weights=weights) * (weights[0] / sum(weights))
    clean_logits, _ = forward(lower[0], params)
    return lower_loss(logits, soft_labels, clean_logits, lower[1], weights=weights)


def gradients(loss: Tensor, tensors: Sequence[Tensor], *, create_graph: bool = False) -> tuple[list[Tensor], list[bool]]:
    """Gradients of `loss` (zeros where unused) and which tensors it uses."""
    grads = torch.autograd.grad(loss, list(tensors), allow_unused=True, create_graph=create_graph)
    used = [g is not None for g in grads]
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)], used


def set_gradients(params: Sequence[Tensor], grads: Sequence[Tensor], used: Sequence[bool], *, copy: bool = False) -> None:
    """Install `grads` as the parameters' `.grad`; `copy` where the caller reuses them (an optimizer's clipping and
    steps work in place). Unused parameters keep grad None, as after a normal backward, so optimizers skip them."""
    for p, g, u in zip(params, grads, used):
        if not u:
            p.grad = None
            continue
        g = g.detach().to(p.dtype)
        p.grad = g.clone() if copy else g


def step_meta_model(meta_model: nn.Module, meta_optimizer: torch.optim.Optimizer, grads: Sequence[Tensor]) -> None:
    """One step of the meta optimizer along `grads` (one per meta parameter), its gradients cleared after."""
    meta_params = list(meta_model.parameters())
    set_gradients(meta_params, grads, [True] * len(meta_params))
    meta_optimizer.step()
    meta_optimizer.zero_grad(set_to_none=True)
