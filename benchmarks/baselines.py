"""Noise-robust baselines for plain `transformers.Trainer`: the losses of `hf_lilaw.losses`, and pruning rules.

The losses (``compute_loss_func``s) are hf_lilaw's own, re-exported under the names the benchmarks use:
`cross_entropy` (plain CE), `FocalLoss` (γ = 2), `GeneralizedCrossEntropy` (q = 0.7) and
`SymmetricCrossEntropy` (α = 0.1, β = 1.0, A = log 1e-4 as in Wang et al.'s released code); `make_loss` picks one
by its ``lilaw_base_loss`` name.

Pruning (for prune-then-retrain): `cleanlab_issues` (cleanlab's ``find_label_issues`` on out-of-fold
probabilities; optional dependency) and `small_loss_issues` (drop the largest out-of-fold losses, as many as
the estimated noise rate).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from hf_lilaw.losses import CrossEntropy, FocalLoss, GeneralizedCrossEntropy, SymmetricCrossEntropy, make_loss

__all__ = [
    "CrossEntropy", "FocalLoss", "GeneralizedCrossEntropy", "SymmetricCrossEntropy", "cross_entropy", "make_loss",
    "cleanlab_issues", "small_loss_issues", "PRUNERS",
]  # fmt: skip

cross_entropy = CrossEntropy()
"""Plain cross-entropy as a ``compute_loss_func`` (the reference every method is compared with)."""


# ------------------------------------------------------------------------------------------------ pruning


def cleanlab_issues(labels: np.ndarray, pred_probs: np.ndarray, **options: Any) -> np.ndarray:
    """Boolean mask of likely label issues by cleanlab (``cleanlab.filter.find_label_issues``).

    ``pred_probs`` must be out-of-sample (cross-validated) probabilities. Default options are cleanlab's
    (``filter_by="prune_by_noise_rate"``).
    """
    try:
        with warnings.catch_warnings():  # importing cleanlab turns every warning off, process-wide, for good
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
