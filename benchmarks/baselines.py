"""Noise-robust baselines for plain `transformers.Trainer`: losses as ``compute_loss_func`` and pruning rules.

Every loss has the signature ``(outputs, labels, num_items_in_batch=None) -> loss`` that
``Trainer(compute_loss_func=...)`` expects. With ``num_items_in_batch`` (what Trainer passes during
training) the per-sample losses are summed and divided by it, as Trainer's own loss does, so gradient
accumulation and multi-process training scale the same way for every method; without it, a mean.
Rows labelled -100 are ignored. Probabilities are computed in float32 whatever the model's precision.

- `cross_entropy`: the reference (plain CE).
- `FocalLoss(gamma=2)`: Lin et al. 2017, ``(1 − p_y)^γ · CE``.
- `GeneralizedCrossEntropy(q=0.7)`: Zhang & Sabuncu 2018, ``(1 − p_y^q) / q``.
- `SymmetricCrossEntropy(alpha=0.1, beta=1.0)`: Wang et al. 2019, ``α·CE + β·RCE`` with
  ``RCE = −Σ_k p_k · log(clamp(onehot_k, 1e-4))``, i.e. ``A = log(1e-4)`` as in the authors' released code
  (the paper's text writes A = −4); α = 0.1, β = 1.0 are the paper's CIFAR-10 values.

Pruning (for prune-then-retrain): `cleanlab_issues` (cleanlab's ``find_label_issues`` on out-of-fold
probabilities; optional dependency) and `small_loss_issues` (drop the largest out-of-fold losses, as many as
the estimated noise rate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

LossFunc = Callable[..., torch.Tensor]


def _logits(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and outputs.get("logits") is not None:
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)) and outputs:
        return outputs[0]
    raise TypeError(f"No logits in the model output ({type(outputs).__name__}).")


def _reduce(per_sample: torch.Tensor, mask: torch.Tensor, num_items_in_batch: Any) -> torch.Tensor:
    total = (per_sample * mask).sum()
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / mask.sum().clamp_min(1)


def _prepare(outputs: Any, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = _logits(outputs).float()
    mask = labels != IGNORE_INDEX
    return F.log_softmax(logits, dim=-1), labels.clamp_min(0), mask.float()


def cross_entropy(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Plain cross-entropy."""
    log_probs, y, mask = _prepare(outputs, labels)
    return _reduce(-log_probs.gather(1, y[:, None]).squeeze(1), mask, num_items_in_batch)


class FocalLoss:
    """Focal loss ``(1 − p_y)^γ · CE`` (Lin et al. 2017)."""

    def __init__(self, gamma: float = 2.0) -> None:
        self.gamma = gamma

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        log_probs, y, mask = _prepare(outputs, labels)
        log_py = log_probs.gather(1, y[:, None]).squeeze(1)
        return _reduce(-((1 - log_py.exp()) ** self.gamma) * log_py, mask, num_items_in_batch)


class GeneralizedCrossEntropy:
    """Generalized cross-entropy ``(1 − p_y^q) / q`` (Zhang & Sabuncu 2018): CE as q → 0, MAE at q = 1."""

    def __init__(self, q: float = 0.7) -> None:
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q}.")
        self.q = q

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        log_probs, y, mask = _prepare(outputs, labels)
        p_y_q = (self.q * log_probs.gather(1, y[:, None]).squeeze(1)).exp()
        return _reduce((1 - p_y_q) / self.q, mask, num_items_in_batch)


class SymmetricCrossEntropy:
    """Symmetric cross-entropy ``α·CE + β·RCE`` (Wang et al. 2019).

    ``RCE = −Σ_k p_k log q_k`` with the one-hot label ``q`` clamped to ``[label_clamp, 1]`` (the released code's
    1e-4), which reduces to ``−log(label_clamp) · (1 − p_y)``.
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, label_clamp: float = 1e-4) -> None:
        self.alpha, self.beta, self.label_clamp = alpha, beta, label_clamp

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        log_probs, y, mask = _prepare(outputs, labels)
        log_py = log_probs.gather(1, y[:, None]).squeeze(1)
        probs = log_probs.exp().clamp(min=1e-7, max=1.0)  # the released code clamps the prediction too
        p_y = probs.gather(1, y[:, None]).squeeze(1)
        rce = -np.log(self.label_clamp) * (probs.sum(dim=1) - p_y)
        return _reduce(self.alpha * (-log_py) + self.beta * rce, mask, num_items_in_batch)


LOSSES: dict[str, Callable[..., LossFunc]] = {
    "cross_entropy": lambda: cross_entropy,
    "focal": FocalLoss,
    "gce": GeneralizedCrossEntropy,
    "sce": SymmetricCrossEntropy,
}


def make_loss(name: str, **options: Any) -> LossFunc:
    """A ``compute_loss_func`` by name (``cross_entropy``, ``focal``, ``gce``, ``sce``) with its options."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; pick one of {sorted(LOSSES)}.")
    return LOSSES[name](**options)


# ------------------------------------------------------------------------------------------------ pruning


def cleanlab_issues(labels: np.ndarray, pred_probs: np.ndarray, **options: Any) -> np.ndarray:
    """Boolean mask of likely label issues by cleanlab (``cleanlab.filter.find_label_issues``).

    ``pred_probs`` must be out-of-sample (cross-validated) probabilities. Default options are cleanlab's
    (``filter_by="prune_by_noise_rate"``).
    """
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as err:  # optional dependency
        raise ImportError("The cleanlab baseline needs cleanlab: pip install 'hf_lilaw[cleanlab]'.") from err
    return np.asarray(find_label_issues(labels=np.asarray(labels), pred_probs=np.asarray(pred_probs), **options))


def small_loss_issues(labels: np.ndarray, pred_probs: np.ndarray, *, rate: float | None = None) -> np.ndarray:
    """Boolean mask of the largest out-of-fold cross-entropies, as many as ``rate`` of the rows.

    ``rate=None`` estimates the noise rate as the out-of-fold disagreement ``mean(argmax p ≠ label)``.
    """
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if rate is None:
        rate = float(np.mean(pred_probs.argmax(1) != labels))
    losses = -np.log(np.clip(pred_probs[np.arange(len(labels)), labels], 1e-12, 1.0))
    flagged = np.zeros(len(labels), dtype=bool)
    count = int(round(rate * len(labels)))
    if count:
        flagged[np.argsort(-losses, kind="stable")[:count]] = True
    return flagged


PRUNERS: dict[str, Callable[..., np.ndarray]] = {"cleanlab": cleanlab_issues, "small_loss": small_loss_issues}
