"""Per-sample statistics of one batch of logits: the raw material of every hardness score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX
from .weighting import lilaw_weights

STATISTICS = ("prob_label", "prob_max", "margin", "el2n", "loss", "correct")
WEIGHTS = ("w_alpha", "w_beta", "w_delta")


@torch.no_grad()
def per_sample_statistics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float | torch.Tensor | None = None,
    beta: float | torch.Tensor | None = None,
    delta: float | torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-sample statistics of one batch, the raw material of every score.

    Args:
        logits: shape ``(batch, num_classes)``, any float dtype; the math runs in float32.
        labels: observed labels, shape ``(batch,)``; rows labelled ``-100`` get NaN everywhere.
        alpha, beta, delta: the current LiLAW scalars; give all three to add the three weights.

    Returns:
        Detached float32 tensors of shape ``(batch,)`` on the logits' device: ``prob_label`` (``s_y``),
        ``prob_max`` (``max_j s_j``), ``margin`` (``z_y − max_{j≠y} z_j``), ``el2n``
        (``‖s − onehot(y)‖₂``, the L2 norm, not squared), ``loss`` (cross-entropy, whatever loss trained
        the model), ``correct`` (1.0 where ``argmax z = y``, else 0.0) and, with α, β, δ, ``w_alpha``,
        ``w_beta``, ``w_delta``.
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (batch, num_classes ≥ 2), got {tuple(logits.shape)}.")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}.")
    given = [p is not None for p in (alpha, beta, delta)]
    if any(given) and not all(given):
        raise ValueError("Pass all of alpha, beta, delta (to record the LiLAW weights) or none of them.")
    z = logits.detach().float()
    num_classes = z.shape[1]
    labels = labels.detach().long().to(z.device)
    seen = labels != IGNORE_INDEX
    y = torch.where(seen, labels, 0)
    if bool(((y < 0) | (y >= num_classes)).any()):
        raise ValueError(f"labels must lie in [0, {num_classes}) or be {IGNORE_INDEX} for unlabelled rows.")

    log_s = z.log_softmax(dim=1)
    s = log_s.exp()
    onehot = F.one_hot(y, num_classes).bool()
    stats = {
        "prob_label": s.gather(1, y[:, None]).squeeze(1),
        "prob_max": s.amax(dim=1),
        "margin": z.gather(1, y[:, None]).squeeze(1) - z.masked_fill(onehot, -torch.inf).amax(dim=1),
        "el2n": (s - onehot.float()).norm(dim=1),
        "loss": -log_s.gather(1, y[:, None]).squeeze(1),
        "correct": (z.argmax(dim=1) == y).float(),
    }
    if all(given):
        w = lilaw_weights(s, y, alpha=alpha, beta=beta, delta=delta)
        stats.update(w_alpha=w.w_alpha, w_beta=w.w_beta, w_delta=w.w_delta)
    nan = torch.tensor(float("nan"), device=z.device)
    return {name: torch.where(seen, value.detach(), nan) for name, value in stats.items()}
