"""Find likely mislabelled samples from hardness scores, in the manner of ``cleanlab.filter``."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from .dynamics import TrainingDynamics
from .scores import HARDNESS_SCORES


def otsu_threshold(scores: np.ndarray) -> float:
    """Otsu's split of 1-D scores: the cut maximising the between-class variance.

    Exact over the sorted values (no histogram bins); equivalent to the global optimum of 2-means in 1-D.
    Returns the largest value of the lower class, so ``scores > threshold`` is the upper class, or
    ``inf`` when there is nothing to split (fewer than two distinct values). NaN are ignored.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64)[~np.isnan(scores)])
    n = s.size
    if n < 2 or s[0] == s[-1]:
        return math.inf
    k = np.arange(1, n)  # size of the lower class
    csum = np.cumsum(s)[:-1]
    mean_low = csum / k
    mean_high = (s.sum() - csum) / (n - k)
    between = k * (n - k) * (mean_low - mean_high) ** 2
    between[s[:-1] == s[1:]] = -1.0  # a cut must fall between distinct values
    return float(s[int(np.argmax(between))])


def find_label_issues(
    *,
    dynamics: TrainingDynamics | None = None,
    scores: np.ndarray | None = None,
    score: str = "w_alpha",
    epoch: int | None = None,
    return_indices_ranked_by: Literal["score"] | None = None,
    threshold: float | None = None,
    num_issues: int | None = None,
    frac_issues: float | None = None,
) -> np.ndarray:
    """Flag samples whose labels are likely wrong.

    Returns a boolean mask over all samples (``True`` = likely mislabelled), or, with
    ``return_indices_ranked_by="score"``, the indices of the flagged samples, most likely wrong first
    (ties in dataset order). Samples with a NaN score (never seen in training, e.g. the meta split) are
    never flagged.

    Which samples are flagged, by at most one of:

    - ``threshold``: those whose score exceeds it. Scores are oriented higher = worse, so for
      ``score="w_alpha"`` (which is −W_α) ``threshold=-0.5`` flags W_α < 0.5.
    - ``num_issues``: the ``num_issues`` highest scores.
    - ``frac_issues``: the highest ``round(frac_issues · n)`` of the ``n`` scored samples; pass the
      noise rate when it is known.
    - none of them: Otsu's two-class split of the scores (`otsu_threshold`), the upper class flagged.
      It needs no guess of the noise rate and suits any score, and LiLAW's W_α is bimodal under label
      noise (clean samples near 1, mislabelled ones far lower; paper Table 16, AUROC 0.98), which is
      the case a two-class split is made for. Like any two-means split it leans towards the larger
      class when one class is small (a few % of noise); prefer ``frac_issues`` there.

    Args:
        dynamics: recorded `TrainingDynamics`; the score is computed from them.
        scores: precomputed per-sample scores, higher = more likely mislabelled; instead of ``dynamics``.
        score: name in `HARDNESS_SCORES` to compute from ``dynamics``; ignored with ``scores``.
        epoch: score as known at the end of this epoch (0-based row; default: all recorded rows).
        return_indices_ranked_by: ``None`` for a mask, ``"score"`` for ranked indices.
        threshold, num_issues, frac_issues: the selection rule, see above.
    """
    if (dynamics is None) == (scores is None):
        raise ValueError(
            "Pass exactly one of dynamics= (recorded TrainingDynamics) or scores= "
            "(a per-sample array, higher = more likely mislabelled)."
        )
    if return_indices_ranked_by not in (None, "score"):
        raise ValueError(
            f"return_indices_ranked_by={return_indices_ranked_by!r} is not supported; pass None for a boolean "
            "mask or 'score' for the flagged indices ranked most likely mislabelled first."
        )
    rules = {"threshold": threshold, "num_issues": num_issues, "frac_issues": frac_issues}
    chosen = [name for name, value in rules.items() if value is not None]
    if len(chosen) > 1:
        raise ValueError(f"Pass at most one of threshold=, num_issues=, frac_issues=; got {', '.join(chosen)}.")
    if threshold is not None and math.isnan(threshold):
        raise ValueError("threshold is NaN; pass a number, or leave it None for the automatic split.")
    if num_issues is not None and (isinstance(num_issues, bool) or int(num_issues) != num_issues or num_issues < 0):
        raise ValueError(
            f"num_issues must be a whole number ≥ 0, got {num_issues!r}; use frac_issues= for a fraction."
        )
    if frac_issues is not None and not 0.0 <= frac_issues <= 1.0:
        raise ValueError(f"frac_issues must lie in [0, 1], got {frac_issues!r}; use num_issues= for a count.")

    if dynamics is not None:
        if score not in HARDNESS_SCORES:
            raise ValueError(f"Unknown score {score!r}; use one of {sorted(HARDNESS_SCORES)} or pass scores=.")
        values = np.asarray(HARDNESS_SCORES[score](dynamics, epoch=epoch), dtype=np.float64)
    else:
        if epoch is not None:
            raise ValueError("epoch= selects rows of dynamics=; compute your scores= at the epoch you want instead.")
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"scores must have shape (num_samples,), got {values.shape}.")
    scored = ~np.isnan(values)
    if not scored.any():
        raise ValueError("Every score is NaN: no sample was recorded in the epochs used; check the recorder or epoch=.")

    # Rank the scored samples, worst first; a stable sort keeps ties in dataset order.
    order = np.flatnonzero(scored)[np.argsort(-values[scored], kind="stable")]
    if num_issues is not None:
        flagged = order[: int(num_issues)]
    elif frac_issues is not None:
        flagged = order[: int(round(frac_issues * order.size))]
    else:
        cut = otsu_threshold(values) if threshold is None else threshold
        flagged = order[values[order] > cut]

    if return_indices_ranked_by == "score":
        return flagged
    mask = np.zeros(values.size, dtype=bool)
    mask[flagged] = True
    return mask


def label_issue_metrics(scores: np.ndarray, is_noisy: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC of ``scores`` (higher = more likely mislabelled) against the true noise flags.

    AUPRC is scikit-learn's average precision with the mislabelled samples as positives; its chance
    level is the noise rate.

    Args:
        scores: per-sample scores, e.g. from `HARDNESS_SCORES`; drop NaN (unseen) samples first.
        is_noisy: ``True`` where the label was corrupted (the ``is_noisy`` column of the noisy data set).
    """
    scores = np.asarray(scores, dtype=np.float64)
    flags = np.asarray(is_noisy)
    if scores.ndim != 1 or scores.shape != flags.shape:
        raise ValueError(f"scores and is_noisy must be 1-D of equal length, got {scores.shape} and {flags.shape}.")
    if not np.isin(flags, (0, 1)).all():
        raise ValueError(
            "is_noisy must hold booleans (or 0/1); did you swap the arguments? The order is (scores, is_noisy)."
        )
    if np.isnan(scores).any():
        raise ValueError(
            "scores contain NaN (samples never seen, e.g. the meta split); drop them first: "
            "keep = ~np.isnan(scores), then pass scores[keep], is_noisy[keep]."
        )
    flags = flags.astype(bool)
    if flags.all() or not flags.any():
        raise ValueError(
            "is_noisy holds a single class, so AUROC is undefined; evaluate on data with both clean and noisy labels."
        )
    return {"auroc": float(roc_auc_score(flags, scores)), "auprc": float(average_precision_score(flags, scores))}
