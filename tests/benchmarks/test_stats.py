"""benchmarks/stats.py against scipy and hand-computed values."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.stats import (  # noqa: E402
    adjust,
    benjamini_hochberg,
    best_epoch,
    format_interval,
    format_p,
    minimum_detectable_effect,
    paired_difference,
    paired_over_seeds,
    reading,
)
from hf_lilaw.comparison import compare_runs  # noqa: E402

A = [86.1, 87.4, 85.9, 88.0, 86.6]
B = [85.0, 86.9, 86.3, 86.2, 85.1]


def test_paired_difference_matches_scipy():
    c = paired_difference(A, B)
    d = np.subtract(A, B)
    assert c.n == 5
    assert c.mean == pytest.approx(0.9)  # (1.1 + 0.5 - 0.4 + 1.8 + 1.5) / 5
    assert c.sd == pytest.approx(d.std(ddof=1))
    low, high = st.t.interval(0.95, 4, loc=d.mean(), scale=st.sem(d))
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
    assert c.half_width == pytest.approx((high - low) / 2)
    assert c.p == pytest.approx(st.ttest_rel(A, B).pvalue)
    assert c.p_adjusted is None and c.p_table == c.p


def test_confidence_level_changes_the_interval_only():
    wide, narrow = paired_difference(A, B, confidence=0.99), paired_difference(A, B, confidence=0.9)
    assert wide.p == narrow.p
    assert wide.half_width / narrow.half_width == pytest.approx(st.t.ppf(0.995, 4) / st.t.ppf(0.95, 4))


def test_zero_variance_rule():
    # Identical runs on every seed: p 1, and over 3 seeds no bound either: the inverted sign-flip test cannot
    # exclude any other shift (each leaves all 3 differences of one sign, p 0.25). Over 6 seeds it can (p 0.031).
    same = paired_difference([0.8, 0.9, 0.7], [0.8, 0.9, 0.7])
    assert (same.mean, same.low, same.high, same.p, same.detectable) == (0.0, -math.inf, math.inf, 1.0, math.inf)
    assert reading(same).startswith("identical in every seed; none excluded")
    same_six = paired_difference([0.8, 0.9, 0.7] * 2, [0.8, 0.9, 0.7] * 2)
    assert (same_six.low, same_six.high, same_six.p, same_six.detectable) == (0.0, 0.0, 1.0, 0.0)
    assert reading(same_six) == "no effect larger than 0.0 detected"
    # The same nonzero difference on every seed: the exact sign-flip test, p = 2^(1-n), and its interval, unbounded
    # while p > 0.05 (a t-test would say p 0: certainty).
    shifted = paired_difference([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert (shifted.mean, shifted.sd, shifted.p) == (0.5, 0.0, 0.25)
    assert (shifted.low, shifted.high, shifted.half_width, shifted.detectable) == (-math.inf, math.inf, math.inf, math.inf)
    assert reading(shifted).startswith("no effect detected, none excluded")
    five = paired_difference([1.5] * 5, [1.0] * 5)
    assert (five.p, five.low) == (0.0625, -math.inf)
    six = paired_difference([1.5] * 6, [1.0] * 6)  # 2^-5 = 0.031 < 0.05: the sign-flip test excludes every other shift
    assert (six.p, six.low, six.high, six.detectable) == (0.03125, 0.5, 0.5, 0.0) and reading(six) == "ahead by 0.5"
    # What it guards against, as it happened (the small CNN, MLC 2 % against CE at uniform 20 %, 5,000 test
    # images): three seeds 0.24 points apart each, by chance; the t-test's limit read that as p 0.
    chance = paired_difference([86.32, 87.10, 87.02], [86.56, 87.34, 87.26])
    assert chance.mean == pytest.approx(-0.24) and chance.p == 0.25 and adjust([chance])[0].p_adjusted == 0.25
    # Equal up to float rounding counts as equal, and as 0 (scipy reports t = 1, p = 0.42 on [5.6e-17, 0] here).
    rounded = paired_difference([0.1 + 0.2, 0.3], [0.3, 0.3])
    assert (rounded.p, rounded.sd, rounded.low, rounded.high) == (1.0, 0.0, -math.inf, math.inf)
    assert rounded.mean == pytest.approx(2.8e-17, abs=1e-18)
    # A constant difference that is not 0: 0.9 - 0.85 and 0.95 - 0.9 differ in the last bits only.
    constant = paired_difference([0.9, 0.95, 0.6], [0.85, 0.9, 0.55])
    assert (constant.p, constant.sd, constant.high) == (0.25, 0.0, math.inf) and constant.mean == pytest.approx(0.05)


# (a, b) per seed: the zero-variance cases (exact and up to rounding, zero and not), and an ordinary one.
RULE_CASES = [
    ([0.8, 0.9, 0.7], [0.8, 0.9, 0.7]),
    ([1.5, 2.5, 3.5], [1.0, 2.0, 3.0]),
    ([0.1 + 0.2, 0.3, 0.3], [0.3, 0.3, 0.3]),
    ([0.9, 0.95, 0.6], [0.85, 0.9, 0.55]),
    (A, B),
]


@pytest.mark.parametrize("a, b", RULE_CASES)
def test_compare_runs_follows_the_same_rule(a, b):
    """hf_lilaw's compare_runs and benchmarks/stats agree on every paired comparison, zero variance included."""
    c = paired_difference(a, b)
    per_seed = {s: {"base": {"accuracy": y}, "run": {"accuracy": x}} for s, (x, y) in enumerate(zip(a, b))}
    d = compare_runs(per_seed, baseline="base").metrics["accuracy"]["differences"]["run"]
    assert (d["mean"], d["sd"], d["ci_low"], d["ci_high"]) == pytest.approx((c.mean, c.sd, c.low, c.high), rel=1e-12)
    assert d["p_value"] == pytest.approx(c.p, rel=1e-9)


def test_paired_over_seeds_pairs_the_shared_seeds():
    a, b = {3: 0.7, 0: 0.9, 1: 0.8, 7: 0.1}, {1: 0.75, 0: 0.8, 3: 0.6, 5: 0.2}
    c = paired_over_seeds(a, b)
    assert c == paired_difference([0.9, 0.8, 0.7], [0.8, 0.75, 0.6])  # seeds 0, 1, 3; 5 and 7 are unpaired
    assert paired_over_seeds({0: 0.9, 1: 0.8}, {1: 0.7, 2: 0.6}) is None  # one shared seed: no comparison


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])


def test_minimum_detectable_effect_has_the_stated_power():
    sd, n = 1.3, 5
    mde = minimum_detectable_effect(sd, n)
    nc, df, crit = mde * math.sqrt(n) / sd, n - 1, st.t.ppf(0.975, n - 1)
    assert st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc) == pytest.approx(0.8, abs=1e-8)
    # Simulated paired t-tests with that true effect reject about 80 % of the time.
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(40_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert np.mean(np.abs(t) > crit) == pytest.approx(0.8, abs=0.01)
    # 5 pairs: d_z = 1.682; the normal approximation (z_0.975 + z_0.8) / sqrt(5) = 1.253 is a lower bound.
    assert minimum_detectable_effect(1.0, 5) == pytest.approx(1.682, abs=1e-3)
    normal = (st.norm.ppf(0.975) + st.norm.ppf(0.8)) / math.sqrt(1000)
    assert minimum_detectable_effect(1.0, 1000) == pytest.approx(normal, rel=2e-3)
    assert minimum_detectable_effect(1.0, 2) > minimum_detectable_effect(1.0, 3) > minimum_detectable_effect(1.0, 30)
    assert minimum_detectable_effect(0.0, 5) == 0.0
    sd = np.std(np.subtract(A, B), ddof=1)
    assert paired_difference(A, B).detectable == pytest.approx(minimum_detectable_effect(sd, 5))


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    p = [0.01, 0.04, 0.03, 0.2, 0.005, 0.9]
    assert benjamini_hochberg(p) == pytest.approx(st.false_discovery_control(p))
    # By hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2, 0.9 -> x6/rank = 0.03, 0.03, 0.06, 0.06, 0.24, 0.9.
    assert benjamini_hochberg(p) == pytest.approx([0.03, 0.06, 0.06, 0.24, 0.03, 0.9])
    with_nan = benjamini_hochberg([0.01, float("nan"), 0.04])
    assert math.isnan(with_nan[1])
    assert with_nan[[0, 2]] == pytest.approx([0.02, 0.04])  # m = 2, not 3
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.5, 1.5])


def test_adjust_and_readings():
    strong = paired_difference([90.0, 91.0, 90.5, 91.2, 90.8], [85.0, 85.5, 85.1, 86.0, 85.2])
    weak = paired_difference(A, B)
    worse = paired_difference([85.0, 85.5, 85.1, 86.0, 85.2], [90.0, 91.0, 90.5, 91.2, 90.8])
    strong, weak, worse = adjust([strong, weak, worse])
    assert [c.p_adjusted for c in (strong, weak, worse)] == pytest.approx(
        list(st.false_discovery_control([strong.p, weak.p, worse.p]))
    )
    assert reading(strong) == f"ahead by {strong.mean:.1f}"
    assert reading(worse) == f"behind by {-worse.mean:.1f}"
    assert reading(weak) == f"no effect larger than {max(abs(weak.low), abs(weak.high)):.1f} detected"
    assert format_interval(weak) == f"{weak.mean:+.1f} [{weak.low:+.1f}, {weak.high:+.1f}]"
    assert format_interval(strong).endswith(" ‡")
    # Unadjusted p below 0.05 whose adjusted p is not: dagger, and the reading follows the adjusted p.
    import dataclasses

    marginal = dataclasses.replace(weak, p=0.03, p_adjusted=0.09)
    assert format_interval(marginal).endswith(" †")
    assert reading(marginal).startswith("no effect larger than")
    assert format_p(0.0004) == "<0.001" and format_p(0.0123) == "0.012" and format_p(None) == ""


def test_power_at_or_below_the_level_is_refused():
    # scipy's brentq bracket error before: at power ≤ α a test "detects" a zero effect that often
    for power in (0.05, 0.04):
        with pytest.raises(ValueError, match=r"power must lie in .* = \(0.05, 1\)"):
            paired_difference([1.0, 2.0, 4.0], [0.0, 0.0, 0.0], power=power)
        with pytest.raises(ValueError, match=r"power must lie in \(alpha, 1\) = \(0.05, 1\)"):
            minimum_detectable_effect(1.0, 5, power=power)


def test_best_epoch_breaks_ties_to_the_latest():
    assert best_epoch([0.80, 0.85, 0.85, 0.84]) == 2
    assert best_epoch([0.85, 0.85, 0.85]) == 2
    assert best_epoch([0.9, 0.8, 0.7]) == 0
    assert best_epoch([0.5, float("nan"), 0.5]) == 2
    assert best_epoch([0.30, 0.20, 0.20, 0.25], higher_is_better=False) == 2
    # a NaN epoch tied the real ±inf score once mapped to −inf, and the latest-tie rule picked it
    assert best_epoch([-math.inf, float("nan")]) == 0
    assert best_epoch([math.inf, float("nan")], higher_is_better=False) == 0
    with pytest.raises(ValueError, match="non-NaN"):
        best_epoch([float("nan")])
    with pytest.raises(ValueError, match="non-NaN"):
        best_epoch([])
