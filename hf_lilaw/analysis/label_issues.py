"""Find likely mislabelled samples from hardness scores, in the manner of ``cleanlab.filter``."""

from __future__ import annotations

import logging
import math
from typing import Literal, NamedTuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ..metrics import finite_ranks
from .dynamics import TrainingDynamics
from .scores import HARDNESS_SCORES

logger = logging.getLogger(__name__)

# √n · dip above which the automatic split calls the scores bimodal. Calibrated on a peaked unimodal reference,
# the Gaussian: above its 99th percentile for n ≥ 1,500 (simulated: 0.39 at n = 1,500, 0.33 at 10,000). Scores of
# clean labels are peaked (J- or bell-shaped), not flat; the flat uniform, the dip test's least favourable case,
# exceeds 0.40 in about a third of samples, which is why a second condition (the group size) guards the split.
DIP_CRITICAL_VALUE = 0.40
# The smallest second group the automatic split flags, as a fraction of the scored samples.
MIN_GROUP_FRACTION = 0.05
# The largest: a group of most of the data is easy classes against hard ones, not right labels against wrong ones.
# Measured on Fashion-MNIST: under uniform noise up to 60 % every score's split held at most 68 % of the rows (the
# noise itself, 54-68 %); under the class-conditional rule map, which leaves two classes clean, a CE run's AUM split
# held 83 % (those two classes against all eight others), and retraining on the rest scored 27 % instead of 75 %.
MAX_GROUP_FRACTION = 0.75


def otsu_threshold(scores: np.ndarray) -> float:
    """Otsu's split of 1-D scores: the cut maximising the between-class variance.

    Exact over the sorted values (no histogram bins); equivalent to the global optimum of 2-means in 1-D.
    Returns the largest value of the lower class, so ``scores > threshold`` is the upper class, or
    ``inf`` when there is nothing to split (fewer than two distinct values). NaN and infinite values are ignored
    (one infinite value would make every between-class variance infinite or NaN).
    """
    s = np.asarray(scores, dtype=np.float64)
    s = np.sort(s[np.isfinite(s)])
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


def _spread_ties(values: np.ndarray) -> np.ndarray:
    """Sorted ``values`` with each run of equal values spread evenly over the interval halfway to its neighbours.

    A count (``forgetting``) then reads as a histogram with one bin per count instead of a row of point
    masses, each of which the dip would take for a mode of its own. Values that occur once stay put.
    """
    s = np.sort(values)
    distinct, start, counts = np.unique(s, return_index=True, return_counts=True)
    if distinct.size < 2 or counts.max() == 1:
        return s
    gaps = np.diff(distinct) / 2
    below = np.concatenate([gaps[:1], gaps])  # the ends borrow the one half-gap they have
    above = np.concatenate([gaps, gaps[-1:]])
    out = s.copy()
    for j in np.flatnonzero(counts > 1):
        c = counts[j]
        out[start[j] : start[j] + c] = distinct[j] - below[j] + (np.arange(c) + 0.5) / c * (below[j] + above[j])
    return out


def _hull_links(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours on the hulls of the points ``(x_i, i)``, ``x`` sorted.

    ``left[j]`` is the vertex before ``j`` on the greatest convex minorant of points ``0..j``; ``right[k]`` the
    vertex after ``k`` on the least concave majorant of points ``k..n-1``.
    """
    n = x.size
    left = np.zeros(n, dtype=np.int64)
    for j in range(1, n):
        a = j - 1
        while a > 0 and (x[j] - x[a]) * (a - left[a]) >= (x[a] - x[left[a]]) * (j - a):
            a = left[a]
        left[j] = a
    right = np.full(n, n - 1, dtype=np.int64)
    for k in range(n - 2, -1, -1):
        a = k + 1
        while a < n - 1 and (x[k] - x[a]) * (a - right[a]) >= (x[a] - x[right[a]]) * (k - a):
            a = right[a]
        right[k] = a
    return left, right


def _largest_gap(x: np.ndarray, segments: np.ndarray, *, minorant: bool) -> float:
    """Largest distance (in samples) between the empirical CDF and a hull, over the hull's ``segments``."""
    largest = 0.0
    for a, b in zip(segments[:-1], segments[1:]):
        if b - a > 1 and x[b] != x[a]:
            j = np.arange(a, b + 1)
            line = (x[j] - x[a]) * (b - a) / (x[b] - x[a])
            gap = (j - a + 1) - line if minorant else line - (j - a - 1)
            largest = max(largest, float(gap.max()))
    return max(largest, 1.0)


def dip_statistic(scores: np.ndarray) -> float:
    """Hartigan's dip (Hartigan & Hartigan, 1985): the distance from the empirical CDF to the closest unimodal one.

    Computed by Hartigan's algorithm (AS 217): shrink the modal interval, alternating between the greatest
    convex minorant left of it and the least concave majorant right of it, until their largest gap no longer
    exceeds the dip found. Two well-separated groups holding fractions ``p ≤ 1/2`` and ``1 − p`` give a dip of
    about ``p/2`` when flat, about ``0.38 · p`` when bell-shaped; a unimodal sample gives one of order ``1/√n``.
    NaN and infinite values are ignored; fewer than 4 values, or all equal, give 0. Ties are spread halfway to their neighbouring
    values first (see ``_spread_ties``).
    """
    x = np.asarray(scores, dtype=np.float64)
    x = _spread_ties(x[np.isfinite(x)])
    n = x.size
    if n < 4 or x[0] == x[-1]:
        return 0.0
    left, right = _hull_links(x)
    low, high, dip = 0, n - 1, 0.0
    while True:
        minorant = [high]
        while minorant[-1] > low:
            minorant.append(int(left[minorant[-1]]))
        minorant.reverse()
        majorant = [low]
        while majorant[-1] < high:
            majorant.append(int(right[majorant[-1]]))
        g, m = np.asarray(minorant), np.asarray(majorant)
        # The largest gap between the two hulls, at the vertices strictly inside [low, high], in x order; it
        # names the next, narrower modal interval.
        gap, new_g, new_m = 0.0, len(minorant) - 1, 0
        vertices = sorted([(int(v), 0) for v in g[1:-1]] + [(int(v), 1) for v in m[1:-1]])
        for v, on_majorant in vertices:
            if on_majorant:  # above the minorant's segment [a, b]
                k = int(np.searchsorted(g, v))
                a, b = g[k - 1], g[k]
                d = (v - a + 1) - (x[v] - x[a]) * (b - a) / (x[b] - x[a])
                at = (k - 1, majorant.index(v))
            else:  # below the majorant's segment [a, b]
                k = int(np.searchsorted(m, v))
                a, b = m[k - 1], m[k]
                d = (x[v] - x[a]) * (b - a) / (x[b] - x[a]) - (v - a - 1)
                at = (minorant.index(v), k)
            if d >= gap:
                gap, (new_g, new_m) = d, at
        if gap < dip:
            break
        dip = max(dip, _largest_gap(x, g[: new_g + 1], minorant=True), _largest_gap(x, m[new_m:], minorant=False))
        if (g[new_g], m[new_m]) == (low, high):
            break
        low, high = int(g[new_g]), int(m[new_m])
    return dip / (2 * n)


class AutomaticSplit(NamedTuple):
    """What the automatic split of `find_label_issues` decided, and why."""

    threshold: float
    """Scores above it are flagged; ``inf`` when the split refuses."""
    dip: float
    """Hartigan's dip of the scores (see `dip_statistic`)."""
    upper_fraction: float
    """Fraction of the scored samples above Otsu's cut: the estimated noise rate when the split is made."""
    reason: str
    """The decision in words."""

    @property
    def refused(self) -> bool:
        return math.isinf(self.threshold)


def automatic_threshold(scores: np.ndarray) -> AutomaticSplit:
    """Otsu's two-class split of ``scores``, made only when the scores hold a second group.

    The split is made when both hold:

    1. **The scores are bimodal**: Hartigan's dip exceeds what a peaked unimodal sample shows,
       ``√n · dip > DIP_CRITICAL_VALUE`` (0.40: above the 99th percentile of Gaussian samples of 1,500 or
       more). On clean labels every score is unimodal, often J-shaped (a peak at the clean end, a tail of
       hard samples), and Otsu's split would cut that tail or even the middle of the peak; label noise adds
       a second peak, which the dip measures. On small sets one peaked group is still cut now and then (in about
       4–6 % of samples of 50–100 scores, under 2 % from 300, measured by ``benchmarks/dip_false_splits.py``),
       and such a cut flags a large share of the rows; ``frac_issues=`` does not use this rule.
    2. **The upper group is not tiny**: Otsu's upper class holds at least ``MIN_GROUP_FRACTION`` (5 %) of the
       scored samples. Clean data have small groups of their own: the samples a model never learns (which
       ``forgetting`` and ``data_iq`` place apart by construction) or learns confidently wrong. Below 5 %,
       pass the rate you expect as ``frac_issues=`` instead.
    3. **Nor most of the data**: it holds at most ``MAX_GROUP_FRACTION`` (75 %). Two groups that large are
       classes the model finds easy against classes it finds hard (class-dependent noise that leaves some
       classes clean does this), and pruning the upper one removes whole classes. Above 75 %, pass the rate you
       expect as ``frac_issues=``.

    Otherwise the threshold is ``inf`` (nothing flagged) and ``reason`` says which condition failed.
    NaN are ignored. Infinite scores (a ``-log p`` where ``p`` underflowed to 0) take no part in the split or the
    dip test but count in the group they belong to: ``+inf`` in the upper one (flagged whenever the split is
    made), ``-inf`` in the lower one.
    """
    values = np.asarray(scores, dtype=np.float64)
    values = values[~np.isnan(values)]
    finite = values[np.isfinite(values)]
    cut = otsu_threshold(finite)
    if math.isinf(cut):
        return AutomaticSplit(
            math.inf, 0.0, 0.0, "the finite scores hold fewer than two distinct values: nothing to split"
        )
    dip = dip_statistic(finite)
    upper = float((values > cut).mean())
    statistic = math.sqrt(finite.size) * dip
    if statistic <= DIP_CRITICAL_VALUE and np.unique(finite).size == 2:
        top = float((values > finite.min()).mean())
        reason = (
            f"the finite scores take two values only, which the dip test cannot tell apart from one group "
            f"(√n·dip = {statistic:.2f}); nothing flagged. If the higher value marks the mislabelled rows "
            f"({top:.1%} of them), pass frac_issues={top:.3g} (or threshold=)."
        )
        return AutomaticSplit(math.inf, dip, upper, reason)
    if statistic <= DIP_CRITICAL_VALUE:
        reason = (
            f"the scores show one group, not two (dip test: √n·dip = {statistic:.2f} ≤ {DIP_CRITICAL_VALUE}), as on "
            "clean labels; nothing flagged. If you know the noise rate, pass frac_issues= (or threshold=)."
        )
        return AutomaticSplit(math.inf, dip, upper, reason)
    if upper < MIN_GROUP_FRACTION:
        reason = (
            f"the upper group holds {upper:.1%} of the scored samples (above Otsu's cut at {cut:.4g}, which a few "
            f"extreme scores pull up), under {MIN_GROUP_FRACTION:.0%}: too small to tell label noise from the samples "
            "a model never learns; nothing flagged. If you expect more noise, pass frac_issues= (or threshold=)."
        )
        return AutomaticSplit(math.inf, dip, upper, reason)
    if upper > MAX_GROUP_FRACTION:
        reason = (
            f"the upper group holds {upper:.1%} of the scored samples, over {MAX_GROUP_FRACTION:.0%}: groups that large "
            "are more likely easy classes against hard ones than right labels against wrong ones, and pruning it "
            "would remove whole classes; nothing flagged. If you expect that much noise, pass frac_issues= (or "
            "threshold=)."
        )
        return AutomaticSplit(math.inf, dip, upper, reason)
    reason = f"two groups (dip test: √n·dip = {statistic:.2f}); the upper {upper:.1%} flagged by Otsu's split"
    return AutomaticSplit(cut, dip, upper, reason)


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
    max_fraction: float | None = None,
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
    - none of them: the automatic split (`automatic_threshold`): Otsu's two-class split of the scores, the
      upper class flagged, made only when the scores hold a second group: Hartigan's dip test finds them
      bimodal and the upper class holds at least 5 % of the samples. Otherwise nothing is flagged and the
      reason is logged (on clean labels the scores show one group; Otsu's split alone would always cut
      them in two). LiLAW's W_α is bimodal under label noise (clean samples near 1, mislabelled ones far
      lower; paper Table 16, AUROC 0.98), the case a two-class split is made for. Under a few % of noise,
      or whenever you know the rate, prefer ``frac_issues``.

    ``max_fraction`` caps the automatic split or ``threshold`` at the highest ``round(max_fraction · n)``
    scores, e.g. at a noise rate you know cannot be exceeded.

    Args:
        dynamics: recorded `TrainingDynamics`; the score is computed from them.
        scores: precomputed per-sample scores, higher = more likely mislabelled; instead of ``dynamics``.
        score: name in `HARDNESS_SCORES` to compute from ``dynamics``; ignored with ``scores``.
        epoch: score as known at the end of this epoch (0-based row; default: all recorded rows).
        return_indices_ranked_by: ``None`` for a mask, ``"score"`` for ranked indices.
        threshold, num_issues, frac_issues: the selection rule, see above.
        max_fraction: the most that ``threshold`` or the automatic split may flag, a fraction of the scored
            samples.
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
    if max_fraction is not None:
        if num_issues is not None or frac_issues is not None:
            raise ValueError(
                "max_fraction= caps threshold= or the automatic split; num_issues= and frac_issues= already fix "
                "how many are flagged, so pass one or the other."
            )
        if isinstance(max_fraction, bool) or not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction!r} (a fraction of the scored samples).")

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
        if threshold is None:
            split = automatic_threshold(values)
            if split.refused:
                logger.warning("find_label_issues flagged nothing: %s", split.reason)
            cut = split.threshold
        else:
            cut = threshold
        flagged = order[values[order] > cut]
        if max_fraction is not None:
            flagged = flagged[: int(round(max_fraction * order.size))]

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
    scores = finite_ranks(scores)  # both metrics depend on the order alone: ±inf just beyond the finite scores
    return {"auroc": float(roc_auc_score(flags, scores)), "auprc": float(average_precision_score(flags, scores))}
