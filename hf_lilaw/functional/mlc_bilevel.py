"""What the meta label correction steps share: their inputs, the lower loss `G` and the gradient plumbing.

Gradients are lists of per-parameter tensors in a fixed order (the main block `w`: the main model's parameters
that require grad; the meta block `a`: the meta model's parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import Tensor, nn

from .barrier import lower_loss

__all__ = [
    "Batch",
    "Forward",
    "MetaStepInputs",
    "MetaStepResult",
    "Reduce",
    "corrected_lower_loss",
    "gradients",
    "mean_across_processes_in_graph",
    "set_gradients",
    "step_meta_model",
]

Batch = tuple[dict[str, Any], Tensor]
"""A batch as the steps take it: the model inputs without the labels, and the labels."""

Reduce = Callable[[Sequence[Tensor]], list[Tensor]]
"""Averages a gradient list across processes (`list` on one process)."""


class Forward(Protocol):
    """How a step runs the main model (the trainer's captures the classification head's input with a hook)."""

    def __call__(self, inputs: Mapping[str, Any], params: Mapping[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """`(logits, penultimate features)` of the main model on `inputs`, at `params` (a functional copy of its
        named parameters) when given."""
        ...


class MetaStepInputs(NamedTuple):
    """What every step takes: the two models, the meta optimizer, how to run the main model, the step's batches."""

    net: nn.Module
    """The main model; its parameters that require grad form `w`."""
    meta_model: nn.Module
    """The label correction network `(features, noisy labels) → corrected labels`; it detaches the features."""
    meta_optimizer: torch.optim.Optimizer
    """Steps the meta model, once per step."""
    forward: Forward
    """Runs `net`: logits and pooled penultimate features, at a functional copy of its parameters when given."""
    noisy: Batch
    upper: Batch
    """The clean half of the upper loss."""
    lower: Batch | None
    """The clean half that joins `G` (`None`: `G` has no clean term)."""
    lower_loss_weights: Sequence[float] | None = None
    """`(noisy, clean)` weights of `G`; `None` weights the two terms by their batch sizes."""
    reduce: Reduce = list
    """Averages a gradient list across processes (`list`: one process)."""


class MetaStepResult(NamedTuple):
    """What a step reports: its losses (still attached to the graph) and λ."""

    lower_loss: Tensor
    """`G` at the parameters the step started from."""
    upper_loss: Tensor
    barrier: Tensor | None = None
    """The barrier coefficient λ (`None` for MLC, which has none)."""
    label_kept: Tensor | None = None
    """The corrected labels' mean mass on the given labels of the noisy batch, at the step's start (detached): 1 when
    the meta model keeps every label, about 1 − the noise rate when it corrects exactly the wrong ones."""
    clean_loss: Tensor | None = None
    """The main model's plain cross-entropy on the upper clean batch (detached), where `upper_loss` is not that
    (EBOMLC's mixture, which the meta model alone can drive to 0); `None` where `upper_loss` is it (MLC, MLC-D)."""

    def metrics(self) -> dict[str, Tensor]:
        values = {} if self.barrier is None else {"lambda": self.barrier}
        clean = {} if self.clean_loss is None else {"clean_loss": self.clean_loss}
        kept = {} if self.label_kept is None else {"label_kept": self.label_kept}
        return {**values, "upper_loss": self.upper_loss, **clean, "lower_loss": self.lower_loss, **kept}


def corrected_lower_loss(
    inputs: MetaStepInputs,
    params: Mapping[str, Tensor] | None = None,
    *,
    with_clean: bool = True,
    stats: dict[str, Tensor] | None = None,
) -> Tensor:
    """The lower loss `G(w, a)`: soft CE against the meta model's corrected labels on the noisy batch, mixed with
    plain CE on the clean half `inputs.lower` (see `lower_loss`), at the model's parameters or at `params`.

    Args:
        with_clean: `False` leaves out the clean term, scaled so that the meta gradient equals `G`'s (the clean
            term does not depend on the meta model), one forward fewer.
        stats: When given, receives ``"label_kept"``, the corrected labels' mean mass on the given labels
            (`MetaStepResult.label_kept`).
    """
    noisy, lower, weights = inputs.noisy, inputs.lower, inputs.lower_loss_weights
    logits, features = inputs.forward(noisy[0], params)
    soft_labels = inputs.meta_model(features, noisy[1])
    if stats is not None:
        stats["label_kept"] = soft_labels.detach().gather(1, noisy[1][:, None]).mean()
    if weights is None:
        weights = (float(noisy[1].shape[0]), float(lower[1].shape[0]) if lower is not None else 0.0)
    if lower is None or weights[1] == 0:
        return lower_loss(logits, soft_labels, weights=weights)
    if not with_clean:
        return lower_loss(logits, soft_labels, weights=weights) * (weights[0] / sum(weights))
    clean_logits, _ = inputs.forward(lower[0], params)
    return lower_loss(logits, soft_labels, clean_logits, lower[1], weights=weights)


def gradients(
    loss: Tensor, tensors: Sequence[Tensor], *, create_graph: bool = False
) -> tuple[list[Tensor], list[bool]]:
    """Gradients of `loss` (zeros where unused) and which tensors it uses."""
    grads = torch.autograd.grad(loss, list(tensors), allow_unused=True, create_graph=create_graph)
    used = [g is not None for g in grads]
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)], used


def mean_across_processes_in_graph(grads: Sequence[Tensor]) -> list[Tensor]:
    """`grads` averaged across the processes of `torch.distributed`'s default group, kept in the graph (its backward
    sums the incoming gradients across processes), so every process holds the gradient the optimizer will apply;
    `list(grads)` without an initialised group of more than one process. Every process must call it (and
    differentiate through it) together."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(grads)
    flat = dist_nn.all_reduce(torch.cat([g.reshape(-1) for g in grads])) / dist.get_world_size()
    return [t.view_as(g) for t, g in zip(flat.split([g.numel() for g in grads]), grads)]


def set_gradients(
    params: Sequence[Tensor], grads: Sequence[Tensor], used: Sequence[bool], *, copy: bool = False
) -> None:
    """Install `grads` as the parameters' `.grad`; `copy` where the caller reuses them (an optimizer's clipping and
    steps work in place). Unused parameters keep grad None, as after a normal backward, so optimizers skip them."""
    for p, g, u in zip(params, grads, used):
        if not u:
            p.grad = None
            continue
        g = g.detach().to(p.dtype)
        p.grad = g.clone() if copy else g


def step_meta_model(inputs: MetaStepInputs, grads: Sequence[Tensor]) -> None:
    """One step of the meta optimizer along `grads` (one per meta parameter), its gradients cleared after."""
    meta_params = list(inputs.meta_model.parameters())
    set_gradients(meta_params, grads, [True] * len(meta_params))
    inputs.meta_optimizer.step()
    inputs.meta_optimizer.zero_grad(set_to_none=True)
