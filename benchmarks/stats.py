"""The statistics behind every benchmark table: one paired comparison, one multiple-comparison adjustment, one
way to say what a comparison shows, and one early-stopping rule.

A comparison pairs two methods run on the same seeds (same split, noise draw and initial weights), so the unit of
analysis is the per-seed difference ``d_s = a_s − b_s``. `paired_difference` gives its mean, the Student-t
confidence interval, the two-sided paired t-test p-value and the smallest effect the test could detect;
`adjust` fills in Benjamini–Hochberg-adjusted p-values over one table; `reading` turns a comparison into words
("ahead by 1.2", or "no effect larger than 3.4 detected" where the data cannot tell the methods apart).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as _st

from hf_lilaw.comparison import paired_difference as library_paired_difference

__all__ = [
    "PairedComparison",
    "adjust",
    "benjamini_hochberg",
    "best_epoch",
    "format_interval",
    "format_p",
    "minimum_detectable_effect",
    "paired_difference",
    "paired_over_seeds",
    "reading",
]


@dataclass(frozen=True)
class PairedComparison:
    """A paired comparison of ``a`` against ``b`` over ``n`` seeds (differences are ``a − b``).

    Attributes:
        n: number of pairs.
        mean: mean difference.
        sd: sample standard deviation of the differences (n − 1 in the denominator).
        low, high: the confidence interval of the mean difference (Student t, n − 1 degrees of freedom).
        half_width: ``(high − low) / 2``.
        p: two-sided paired t-test p-value.
        detectable: the minimum detectable effect: the smallest true mean difference the test finds with
            probability ``power`` at level ``1 − confidence``, given the observed ``sd`` (`minimum_detectable_effect`).
        confidence, power: the levels used.
        p_adjusted: the Benjamini–Hochberg-adjusted p-value over the table this comparison belongs to (`adjust`);
            ``None`` until adjusted.

    The interval and p are `hf_lilaw.comparison.paired_difference`'s, the one place the rule for every seed giving
    the same difference lives (``sd`` 0; p the exact sign-flip test's, 1 where that difference is 0; the interval
    unbounded while that p exceeds ``1 − confidence``): there ``detectable`` is the interval's half width (0 or ∞).
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    half_width: float
    p: float
    detectable: float
    confidence: float = 0.95
    power: float = 0.8
    p_adjusted: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return dataclasses.asdict(self)

    @property
    def p_table(self) -> float:
        """The p-value a table reads: the adjusted one where there is one."""
        return self.p if self.p_adjusted is None else self.p_adjusted


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, power: float = 0.8
) -> PairedComparison:
    """The paired comparison of ``a`` against ``b`` (equal-length sequences, element ``s`` of each from seed ``s``)."""
    if not 1 - confidence < power < 1:
        raise ValueError(
            f"power must lie in (1 − confidence, 1) = ({1 - confidence:g}, 1), got {power}: a test at level "
            f"{1 - confidence:g} already rejects that often with no effect at all."
        )
    d = library_paired_difference(a, b, confidence=confidence)
    detectable = d.half_width if d.sd == 0 else minimum_detectable_effect(d.sd, d.n, alpha=1 - confidence, power=power)
    return PairedComparison(d.n, d.mean, d.sd, d.ci_low, d.ci_high, d.half_width, d.p_value, detectable, confidence, power)


def paired_over_seeds(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], *, confidence: float = 0.95, power: float = 0.8
) -> PairedComparison | None:
    """`paired_difference` of ``a`` against ``b`` (``{seed: value}`` each) over the seeds both have, in sorted
    order; ``None`` where they share fewer than 2 seeds (no comparison to make)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds], confidence=confidence, power=power)


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level ``alpha`` over ``n`` pairs detects with
    probability ``power``, when the differences have standard deviation ``sd``.

    Exact (noncentral t): the noncentrality ``λ`` solving ``P(|T_{n−1, λ}| > t_{1−α/2, n−1}) = power``, times
    ``sd / √n``. With the observed ``sd`` plugged in, it is itself an estimate; over 5 seeds it is about 1.35 times
    the 95 % interval's half-width (``λ ≈ 3.76`` against ``t ≈ 2.78``).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}.")
    if not alpha < power < 1:
        raise ValueError(f"power must lie in (alpha, 1) = ({alpha:g}, 1), got {power}.")
    if sd == 0:
        return 0.0
    df = n - 1
    critical = _st.t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:
        # The far tail is below 1e-8 wherever it matters, and scipy returns NaN for some of its tiny values.
        far = float(np.nan_to_num(_st.nct.cdf(-critical, df, nc)))
        return float(_st.nct.sf(critical, df, nc)) + far - power

    upper = critical + _st.norm.ppf(power)
    while shortfall(upper) <= 0:
        upper *= 2
    nc = optimize.brentq(shortfall, 0.0, upper, xtol=1e-10)
    return float(nc * sd / math.sqrt(n))


def benjamini_hochberg(p_values: Iterable[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), in the input order.

    NaN entries (comparisons without a p-value) stay NaN and do not count towards the number of tests.
    """
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[valid].min()} .. {p[valid].max()}.")
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    ranked = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    return out


def adjust(comparisons: Sequence[PairedComparison]) -> list[PairedComparison]:
    """The comparisons of one table with ``p_adjusted`` set by Benjamini–Hochberg over all of them."""
    adjusted = benjamini_hochberg(c.p for c in comparisons)
    return [dataclasses.replace(c, p_adjusted=float(q)) for c, q in zip(comparisons, adjusted)]


def format_p(p: float | None) -> str:
    """``0.012``, ``<0.001``; empty for ``None``."""
    if p is None or math.isnan(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_interval(c: PairedComparison, *, digits: int = 1, alpha: float = 0.05) -> str:
    """``+1.2 [+0.3, +2.1] ‡``: the mean difference and its interval; ‡ marks an adjusted p < ``alpha``, † an
    unadjusted p < ``alpha`` whose adjusted p is not."""
    mark = " ‡" if c.p_table < alpha else " †" if c.p < alpha else ""
    return f"{c.mean:+.{digits}f} [{c.low:+.{digits}f}, {c.high:+.{digits}f}]{mark}"


def reading(c: PairedComparison, *, digits: int = 1, alpha: float = 0.05) -> str:
    """What a comparison shows, in words.

    Where the table's p (adjusted if `adjust` ran) is below ``alpha``: ``"ahead by 1.2"`` / ``"behind by 1.2"``.
    Otherwise ``"no effect larger than X detected"``, where X is the largest magnitude the confidence interval
    leaves possible (``max(|low|, |high|)``): larger effects in either direction are excluded at that confidence;
    where the interval is unbounded (every seed the same difference, 0 included, over too few seeds) it says so.
    Never "tie": a test over few seeds cannot show two methods equal.
    """
    if c.p_table < alpha:
        return f"{'ahead' if c.mean > 0 else 'behind'} by {abs(c.mean):.{digits}f}"
    if math.isinf(c.half_width):
        if c.sd == 0 and c.p == 1:  # every difference 0 (up to rounding)
            return "identical in every seed; none excluded (too few seeds to bound a difference)"
        return "no effect detected, none excluded (every seed the same difference: too few seeds to bound it)"
    return f"no effect larger than {max(abs(c.low), abs(c.high)):.{digits}f} detected"


def best_epoch(scores: Sequence[float], *, higher_is_better: bool = True) -> int:
    """Early stopping: the index of the best score (e.g. validation accuracy per epoch), ties to the LATEST epoch.

    Ties go to the latest epoch because a tie on a small validation set is not evidence that training stopped
    helping; picking the earliest of tied epochs would stop systematically early. NaN scores are skipped.
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or values.size == 0 or np.isnan(values).all():
        raise ValueError(f"best_epoch needs at least one non-NaN score, got {list(scores)!r}.")
    values = values if higher_is_better else -values
    latest_best = np.flatnonzero(values == np.nanmax(values))[-1]  # a NaN never equals the max: never picked
    return int(latest_best)
