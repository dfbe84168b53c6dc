"""Per-sample hardness scores from recorded training dynamics.

The score functions read the rows of a `TrainingDynamics` (see `hf_lilaw.analysis.dynamics`).
Pure NumPy/torch, no Trainer.

Every score is oriented so that **higher = more likely mislabelled / harder**, the orientation
`find_label_issues` and AUROC against an ``is_noisy`` flag expect. Where the original definition points
the other way the sign is flipped:

| score | original: high means | returned |
|---|---|---|
| `aum` (Pleiss et al., 2020) | clean | −AUM |
| `el2n` (Paul et al., 2021) | hard | EL2N |
| `forgetting` (Toneva et al., 2019) | hard | count, never-learned samples above every count |
| `data_maps` (Swayamdipta et al., 2020) | easy (confidence) | −confidence |
| `data_iq` (Seedat et al., 2022) | easy (confidence) | −confidence, +1 for the "hard" group |
| `loss` (small-loss trick) | hard | mean loss |
| `lilaw_w_alpha` (LiLAW eq. 2) | easy | −W_α |
| `lilaw_w_beta`, `lilaw_w_delta`, `lilaw_w` (eqs. 3–5) | hard / moderate | W_β, W_δ, W |

Epochs are 0-based row indices of the dynamics (negative values count from the end). Snapshot scores
(EL2N, the LiLAW weights) take ``epoch=k`` (each sample's value as of row ``k``) or
``up_to_epoch=k`` (mean over rows ``0..k``); trajectory scores (AUM, Forgetting, Data Maps, Data-IQ,
loss) take ``up_to_epoch=k``. Samples never seen in the rows used (e.g. the meta split) score NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..functional.statistics import WEIGHTS
from .dynamics import TrainingDynamics

# ---- row selection -------------------------------------------------------------------------------


def _stop(num_epochs: int, epoch: int | None, name: str) -> int:
    """Exclusive end of rows ``0..epoch``."""
    if num_epochs == 0:
        raise ValueError("No epochs recorded yet; record at least one epoch before scoring.")
    if epoch is None:
        return num_epochs
    if not -num_epochs <= epoch < num_epochs:
        raise IndexError(
            f"{name}={epoch} is out of range for {num_epochs} recorded epochs; "
            f"use 0..{num_epochs - 1} or {-num_epochs}..-1."
        )
    return epoch % num_epochs + 1


def _rows(values: np.ndarray, up_to_epoch: int | None) -> np.ndarray:
    return values[: _stop(values.shape[0], up_to_epoch, "up_to_epoch")].astype(np.float64)


def _nanmean(rows: np.ndarray) -> np.ndarray:
    # np.nanmean warns on all-NaN columns; unseen samples are expected here, not an accident.
    seen = (~np.isnan(rows)).sum(axis=0)
    return np.where(seen > 0, np.nansum(rows, axis=0) / np.maximum(seen, 1), np.nan)


def _snapshot(values: np.ndarray, epoch: int | None, up_to_epoch: int | None) -> np.ndarray:
    if epoch is not None and up_to_epoch is not None:
        raise ValueError(
            "Pass epoch= (the value as of one epoch) or up_to_epoch= (the mean over epochs 0..k), not both."
        )
    if up_to_epoch is not None:
        return _nanmean(_rows(values, up_to_epoch))
    rows = values[: _stop(values.shape[0], epoch, "epoch")].astype(np.float64)
    # "As of epoch k": a sample missing from row k (a partial last epoch) keeps its latest earlier value.
    latest = np.full(rows.shape[1], np.nan)
    for row in rows:
        latest = np.where(np.isnan(row), latest, row)
    return latest


def _required(dynamics: TrainingDynamics, name: str) -> np.ndarray:
    values = getattr(dynamics, name)
    if values is None:
        raise ValueError(f"These dynamics hold no {name!r}; record it (TrainingDynamics.empty(..., weights=True)).")
    return values


# ---- scores --------------------------------------------------------------------------------------


def aum(dynamics: TrainingDynamics, *, up_to_epoch: int | None = None) -> np.ndarray:
    """Negated area under the margin (Pleiss et al., 2020).

    AUM is the mean over epochs of the assigned logit minus the largest other logit; mislabelled samples
    have low, often negative AUM, so this returns −AUM.
    """
    return -_nanmean(_rows(dynamics.margin, up_to_epoch))


def el2n(
    dynamics: TrainingDynamics,
    *,
    epoch: int | None = None,
    up_to_epoch: int | None = None,
    squared: bool = False,
) -> np.ndarray:
    """EL2N, ``‖softmax − onehot(y)‖₂`` (Paul et al., 2021), as of ``epoch`` (default: the last).

    Paul et al. use the L2 norm early in training; ``up_to_epoch`` averages the early epochs instead.
    ``squared=True`` gives H-CAT's variant, ``‖·‖²`` (same ranking at a single epoch).
    """
    values = dynamics.el2n.astype(np.float64) ** 2 if squared else dynamics.el2n
    return _snapshot(values, epoch, up_to_epoch)


def forgetting(dynamics: TrainingDynamics, *, up_to_epoch: int | None = None) -> np.ndarray:
    """Forgetting events (Toneva et al., 2019): correct → wrong transitions between consecutive epochs.

    Epochs where a sample was not seen are skipped. A sample never classified correctly gets the number
    of epochs used, more than any sample can forget in them: Toneva et al. rank never-learned samples as
    forgotten infinitely often, and a finite stand-in keeps AUROC computable.
    """
    correct = _rows(dynamics.correct, up_to_epoch)
    previous = np.full(correct.shape[1], np.nan)
    events = np.zeros(correct.shape[1])
    for row in correct:
        events += (previous == 1) & (row == 0)
        previous = np.where(np.isnan(row), previous, row)
    out = np.where((correct == 1).any(axis=0), events, float(correct.shape[0]))
    return np.where(np.isnan(correct).all(axis=0), np.nan, out)


class DataMaps(NamedTuple):
    """Data Maps coordinates; ``hardness`` is −confidence."""

    confidence: np.ndarray
    variability: np.ndarray
    hardness: np.ndarray


def data_maps(dynamics: TrainingDynamics, *, up_to_epoch: int | None = None) -> DataMaps:
    """Data Maps (Swayamdipta et al., 2020) over epochs ``0..up_to_epoch``.

    Confidence is the mean probability of the given label over epochs, variability its standard deviation
    (population, ``ddof=0``, as in the paper). Low confidence marks the "hard-to-learn" region, where
    mislabelled samples sit, so ``hardness = −confidence``.
    """
    p = _rows(dynamics.prob_label, up_to_epoch)
    confidence = _nanmean(p)
    variability = np.sqrt(_nanmean((p - confidence) ** 2))
    return DataMaps(confidence, variability, -confidence)


class DataIQ(NamedTuple):
    """Data-IQ characterisation; ``group`` is ``"easy"``, ``"ambiguous"``, ``"hard"`` or ``"unseen"``."""

    confidence: np.ndarray
    aleatoric: np.ndarray
    group: np.ndarray
    hardness: np.ndarray


def data_iq(
    dynamics: TrainingDynamics,
    *,
    up_to_epoch: int | None = None,
    confidence_threshold: float = 0.2,
    aleatoric_threshold: float = 0.15,
) -> DataIQ:
    """Data-IQ (Seedat et al., 2022) over epochs ``0..up_to_epoch``.

    Confidence is the mean probability ``p`` of the given label over epochs; aleatoric uncertainty is
    the mean of ``p(1 − p)``. Groups as in H-CAT (``src/utils.py::get_groups``): "hard" where
    confidence ≤ ``confidence_threshold`` and aleatoric ≤ ``aleatoric_threshold``, "easy" where
    confidence ≥ ``1 − confidence_threshold`` with the same aleatoric bound, "ambiguous" otherwise.
    ``hardness = −confidence + 1`` for the hard group and ``−confidence`` elsewhere: the hard group ranks
    first (confidence lies in [0, 1]), each group ordered by confidence.
    """
    p = _rows(dynamics.prob_label, up_to_epoch)
    confidence = _nanmean(p)
    aleatoric = _nanmean(p * (1 - p))
    certain = aleatoric <= aleatoric_threshold
    hard = (confidence <= confidence_threshold) & certain
    easy = (confidence >= 1 - confidence_threshold) & certain
    group = np.select([np.isnan(confidence), hard, easy], ["unseen", "hard", "easy"], "ambiguous")
    return DataIQ(confidence, aleatoric, group, -confidence + hard)


def loss(dynamics: TrainingDynamics, *, up_to_epoch: int | None = None) -> np.ndarray:
    """Mean cross-entropy over epochs ``0..up_to_epoch`` (the small-loss criterion: noisy = large loss)."""
    return _nanmean(_rows(dynamics.loss, up_to_epoch))


def lilaw_w_alpha(
    dynamics: TrainingDynamics, *, epoch: int | None = None, up_to_epoch: int | None = None
) -> np.ndarray:
    """−W_α as of ``epoch`` (default: the last), or its mean over ``0..up_to_epoch``.

    W_α is high for correct, confident samples, so a low W_α flags a likely mislabel (paper Table 16:
    the best score, AUROC 0.984 at epoch 3 on CIFAR-100 with 50 % uniform noise).
    """
    return -_snapshot(_required(dynamics, "w_alpha"), epoch, up_to_epoch)


def lilaw_w_beta(
    dynamics: TrainingDynamics, *, epoch: int | None = None, up_to_epoch: int | None = None
) -> np.ndarray:
    """W_β (high for confidently wrong, "hard" samples) as of ``epoch``, or its mean over ``0..up_to_epoch``."""
    return _snapshot(_required(dynamics, "w_beta"), epoch, up_to_epoch)


def lilaw_w_delta(
    dynamics: TrainingDynamics, *, epoch: int | None = None, up_to_epoch: int | None = None
) -> np.ndarray:
    """W_δ as of ``epoch``, or its mean over ``0..up_to_epoch``.

    High for unconfident samples and, with δ > 1, for confidently wrong ones, near 0 for confident
    correct ones, so it is used as is.
    """
    return _snapshot(_required(dynamics, "w_delta"), epoch, up_to_epoch)


def lilaw_w(dynamics: TrainingDynamics, *, epoch: int | None = None, up_to_epoch: int | None = None) -> np.ndarray:
    """W = W_α + W_β + W_δ as of ``epoch``, or its mean over ``0..up_to_epoch``; used as is (Table 16)."""
    parts = [_required(dynamics, name).astype(np.float64) for name in WEIGHTS]
    total = parts[0] + parts[1] + parts[2]
    return _snapshot(total, epoch, up_to_epoch)


# ---- registry ------------------------------------------------------------------------------------

ScoreFn = Callable[..., np.ndarray]


def _as_of(fn: Callable[..., Any], *, keyword: str, field: str | None = None) -> ScoreFn:
    """Adapt a score to ``(dynamics, *, epoch=None)``: the score as known at the end of row ``epoch``."""

    def score(dynamics: TrainingDynamics, *, epoch: int | None = None) -> np.ndarray:
        result = fn(dynamics, **{keyword: epoch})
        return getattr(result, field) if field else result

    score.__name__ = fn.__name__
    score.__doc__ = fn.__doc__
    return score


HARDNESS_SCORES: dict[str, ScoreFn] = {
    "w_alpha": _as_of(lilaw_w_alpha, keyword="epoch"),
    "w_beta": _as_of(lilaw_w_beta, keyword="epoch"),
    "w_delta": _as_of(lilaw_w_delta, keyword="epoch"),
    "w": _as_of(lilaw_w, keyword="epoch"),
    "aum": _as_of(aum, keyword="up_to_epoch"),
    "el2n": _as_of(el2n, keyword="epoch"),
    "forgetting": _as_of(forgetting, keyword="up_to_epoch"),
    "data_maps": _as_of(data_maps, keyword="up_to_epoch", field="hardness"),
    "data_iq": _as_of(data_iq, keyword="up_to_epoch", field="hardness"),
    "loss": _as_of(loss, keyword="up_to_epoch"),
}
"""Every score as ``fn(dynamics, *, epoch=None) -> (num_samples,)`` array, higher = more likely mislabelled.

``epoch=k`` means "as known at the end of row k": snapshot scores read each sample's value as of row
``k``, trajectory scores use rows ``0..k``; ``None`` uses all recorded rows.
"""
