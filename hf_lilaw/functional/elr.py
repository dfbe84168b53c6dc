"""Early-learning regularisation (ELR; Liu et al., NeurIPS 2020): the per-sample loss and the target update.

ELR keeps, per training sample, a running average ``t_i`` of the model's own predictions and adds
``λ · log(1 − ⟨p_i, t_i⟩)`` to the cross-entropy. Early in training the predictions follow the clean signal;
the term pulls later predictions towards them, so the model does not memorise a wrong label. All math runs in
float32 on clamped probabilities, as in the authors' code; the targets never carry a gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX

ELR_CLAMP = 1e-4
"""Probabilities are clamped to ``[ELR_CLAMP, 1 − ELR_CLAMP]`` (the authors' constant): keeps ``log(1 − ⟨p, t⟩)``
finite and bounds its gradient."""


class ELRTerms(NamedTuple):
    """One batch of ELR: float32 tensors of shape ``(batch,)``, and the updated targets."""

    loss: torch.Tensor
    """``ce + λ·reg`` per sample (0 for rows labelled -100)."""
    ce: torch.Tensor
    """Cross-entropy per sample (0 for rows labelled -100)."""
    reg: torch.Tensor
    """``log(1 − ⟨p, t⟩)`` per sample, with the updated target (0 for rows labelled -100); at most 0."""
    targets: torch.Tensor
    """The batch's targets after this step's update, ``(batch, num_classes)``; rows labelled -100 unchanged."""


def elr_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)`` in float32, clamped to ``[1e-4, 1 − 1e-4]``."""
    return logits.float().log_softmax(dim=-1).exp().clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)


@torch.no_grad()
def elr_target_update(targets: torch.Tensor, probabilities: torch.Tensor, *, beta: float) -> torch.Tensor:
    """``β·t + (1 − β)·p / Σp``: one step of the running average (detached; ``p`` renormalised after the clamp).

    Args:
        targets: the batch's current targets ``t``, ``(batch, num_classes)``, float32.
        probabilities: `elr_probabilities` of the batch, ``(batch, num_classes)``.
        beta: the weight of the old target, in ``[0, 1)``.
    """
    return _target_update(_float(targets), _float(probabilities.detach()), beta)


def _target_update(targets: torch.Tensor, p: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.lerp(targets, p / p.sum(dim=-1, keepdim=True), 1.0 - beta)


def _float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.dtype == torch.float32 else tensor.float()


def elr_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    elr_lambda: float,
    beta: float,
    label_smoothing: float = 0.0,
) -> ELRTerms:
    """One training batch of ELR, in the authors' order: update the batch's targets with the current
    predictions, then ``ce + λ · log(1 − ⟨p, t⟩)`` per sample with the updated targets.

    Args:
        logits: ``(batch, num_classes)``, any float dtype (the math runs in float32).
        labels: ``(batch,)``; ``-100`` marks a row that is not trained on: no loss, target unchanged.
        targets: the batch's current targets, ``(batch, num_classes)`` (zeros for a sample not seen yet).
        elr_lambda: λ, the weight of the regulariser.
        beta: β of `elr_target_update`.
        label_smoothing: as in ``torch.nn.functional.cross_entropy``, for the cross-entropy term.

    Returns:
        `ELRTerms`. The caller normalises ``loss.sum()`` (by the batch's labelled rows, or Trainer's
        ``num_items_in_batch``) and writes ``targets`` back.
    """
    # Few operations and autograd nodes on purpose: on small models their dispatch is most of ELR's cost per step.
    # Each choice below gives the same values and gradients to the bit as the plain spelling: hardtanh is the clamp
    # with the clamp's gradient (none at the bounds) in one backward kernel; ⟨p, −t⟩ is −⟨p, t⟩ without a negation
    # node; a -100 row's term is log1p(⟨p, 0⟩) = 0, masked in the constant rather than by a node of the graph; no
    # conversion of what is float32 / int64 already.
    if labels.dtype != torch.long:
        labels = labels.long()
    ignored = (labels == IGNORE_INDEX)[:, None]
    log_p = _float(logits).log_softmax(dim=-1)
    p = F.hardtanh(log_p.exp(), ELR_CLAMP, 1.0 - ELR_CLAMP)
    targets = _float(targets)
    updated = torch.where(ignored, targets, _target_update(targets, p.detach(), beta))
    if label_smoothing:  # a float copy of its own, as F.cross_entropy(logits.float()) makes
        ce = F.cross_entropy(
            _float(logits), labels, reduction="none", ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
        )
    else:  # cross_entropy is exactly this; the log-softmax is shared with p
        ce = F.nll_loss(log_p, labels, reduction="none", ignore_index=IGNORE_INDEX)
    reg = torch.log1p(torch.linalg.vecdot(p, updated.neg().masked_fill_(ignored, 0.0)))
    return ELRTerms(loss=torch.add(ce, reg, alpha=elr_lambda), ce=ce, reg=reg, targets=updated)
