"""Per-sample classification losses in float32: the base loss ``ℓ_i`` that LiLAW weights, and the robust losses.

- ``cross_entropy``: the reference.
- ``focal`` (Lin et al. 2017): ``(1 − p_y)^γ · CE``.
- ``gce`` (Zhang & Sabuncu 2018): ``(1 − p_y^q) / q``; cross-entropy as q → 0, MAE at q = 1.
- ``sce`` (Wang et al. 2019): ``α·CE + β·RCE`` with ``RCE = −Σ_k p_k log(clamp(onehot_k, 1e-4))``, which is
  ``−log(1e-4) · (1 − p_y)`` (the authors' released constant; the paper's text writes A = −4).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label of a row that carries no loss (the transformers convention)."""
FOCAL_CLAMP = 1e-6
"""The least ``1 − p_y`` the focal factor ``(1 − p_y)^γ`` sees: finite slopes for γ < 1."""

BaseLoss = Literal["cross_entropy", "focal", "gce", "sce"]
BASE_LOSSES: tuple[str, ...] = ("cross_entropy", "focal", "gce", "sce")

SCE_LABEL_CLAMP = 1e-4


def per_sample_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    kind: BaseLoss = "cross_entropy",
    focal_gamma: float = 2.0,
    gce_q: float = 0.7,
    sce_alpha: float = 0.1,
    sce_beta: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Per-sample loss ``ℓ_i`` in float32, shape ``(batch,)``; rows whose label is ``-100`` get 0.

    Args:
        logits: shape ``(batch, num_classes)``, any float dtype.
        labels: shape ``(batch,)``; ``-100`` marks an unlabelled row.
        kind: ``"cross_entropy"``, ``"focal"``, ``"gce"`` or ``"sce"``.
        focal_gamma: γ of the focal loss.
        gce_q: q of the generalized cross-entropy, in ``(0, 1]``.
        sce_alpha, sce_beta: weights of CE and reverse CE in the symmetric cross-entropy.
        label_smoothing: as in ``torch.nn.functional.cross_entropy``; applies to the CE term of every kind
            except ``gce``.
    """
    if kind not in BASE_LOSSES:
        raise ValueError(f"Unknown loss {kind!r}; use one of {', '.join(BASE_LOSSES)}.")
    logits = logits.float()
    labels = labels.long()
    if kind == "cross_entropy":  # first: the common case needs none of the masks below
        return F.cross_entropy(
            logits, labels, reduction="none", ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
        )
    labelled = labels != IGNORE_INDEX
    # -100 rows index class 0 (masked below); any other negative label stays out of range and fails as in CE.
    safe = torch.where(labelled, labels, 0).unsqueeze(1)
    if kind == "gce":
        if not 0 < gce_q <= 1:
            raise ValueError(f"gce_q must be in (0, 1], got {gce_q}.")
        q_log_p_y = gce_q * logits.log_softmax(dim=1).gather(1, safe).squeeze(1)
        # 1 − p^q cancels to nothing in float32 as q → 0 (q = 1e-7 read a CE of 0.05 as 0); expm1 keeps the digits.
        # From q = 0.1 on the direct form is as exact, and it is what the recorded benchmarks ran.
        loss = -torch.expm1(q_log_p_y) if gce_q < 0.1 else 1 - q_log_p_y.exp()
        return torch.where(labelled, loss / gce_q, 0.0)
    ce = F.cross_entropy(logits, labels, reduction="none", ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
    if kind == "focal":
        p_y = logits.softmax(dim=1).gather(1, safe).squeeze(1)
        # (1 − p)^γ with γ < 1 has an infinite slope at p = 1, which float32 reaches once a row is confident: the
        # clamp keeps the gradient finite (the factor it changes multiplies a cross-entropy below 1e-6).
        return torch.where(labelled, (1 - p_y).clamp_min(FOCAL_CLAMP).pow(focal_gamma) * ce, 0.0)
    # sce: the released code clamps the prediction to [1e-7, 1] before the reverse term.
    probs = logits.softmax(dim=1).clamp(min=1e-7, max=1.0)
    p_y = probs.gather(1, safe).squeeze(1)
    rce = -math.log(SCE_LABEL_CLAMP) * (probs.sum(dim=1) - p_y)
    return torch.where(labelled, sce_alpha * ce + sce_beta * rce, 0.0)


def mean_over_items(total: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """``total``, a sum of per-sample losses, over the labelled items: Trainer's ``num_items_in_batch`` where given
    (the count over the whole accumulated batch and every process), else this batch's rows not labelled -100.

    A count of 0 gives 0 for a loss that will be backpropagated (``total`` has a graph): an optimizer step whose
    rows are all -100 would otherwise take a NaN gradient and make the model NaN. Without a graph (evaluation) it
    gives NaN, as torch's cross-entropy does, so Trainer leaves the batch out of ``eval_loss`` instead of
    averaging a 0 in."""
    count = (labels != IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
    if total.requires_grad:
        count = count.clamp_min(1) if isinstance(count, torch.Tensor) else max(count, 1)
    return total / count
