"""Runs compared over seeds: mean ± sd of each run and the paired difference to a baseline, with its confidence
interval and t-test (`compare_runs`); the paired difference of two sequences of per-seed values
(`paired_difference`, which every benchmark table uses too).

Train two or more runs per seed from the same initial weights, data and schedule (e.g. `transformers.Trainer`
and `LiLAWTrainer`), evaluate each on the same test set, and pass the metrics to `compare_runs`::

    per_seed = {0: {"Trainer": trainer.evaluate(test), "LiLAWTrainer": lilaw.evaluate(test)}, 1: {...}, 2: {...}}
    comparison = compare_runs(per_seed, baseline="Trainer")
    print(comparison.to_markdown())
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["PairedDifference", "RunComparison", "compare_runs", "paired_difference"]

# Entries of Trainer.evaluate() that describe the evaluation, not the model: speed, and the memory deltas of
# skip_memory_metrics=False (named after the stage, "eval_", whatever the metric_key_prefix).
_BOOKKEEPING_SUFFIXES = (
    "epoch", "_runtime", "_samples_per_second", "_steps_per_second", "_tokens_per_second", "_model_preparation_time",
    "_alloc_delta", "_peaked_delta", "_mem_cpu", "_mem_gpu",
)  # fmt: skip
_PREFIXES = ("eval_", "test_")
_LABELS = {"accuracy": "top-1 accuracy", "top5_accuracy": "top-5 accuracy", "roc_auc": "AUROC", "loss": "loss"}


@dataclass(frozen=True)
class PairedDifference:
    """The paired difference of ``a`` against ``b`` over ``n`` seeds: the per-seed differences ``a_s − b_s``.

    Attributes:
        n: number of pairs.
        mean: mean difference.
        sd: sample standard deviation of the differences (n − 1 in the denominator).
        ci_low, ci_high: the confidence interval of the mean (Student t, n − 1 degrees of freedom), at level
            ``confidence``; ``half_width`` is its half width.
        p_value: the two-sided paired t-test p-value.

    With every difference equal (up to float rounding: within ``1e-12 · max(1, max |a|, max |b|)``, the scale of
    the rounding in ``a_s − b_s``) there is no spread to test against and the t statistic is 0/0 or ±∞. Then ``sd``
    is 0 and p is the exact sign-flip test's, which needs no spread (under a null symmetric about 0 each of the
    ``2ⁿ`` sign patterns is equally likely; the observed one and its mirror are the most extreme): 1 where every
    difference is 0 (e.g. two runs that train identically), else ``p = 2¹⁻ⁿ`` (0.25 over 3 seeds, 0.0625 over 5).
    The interval inverts the same test: any other shift leaves every difference of one sign, so it is unbounded
    while ``2¹⁻ⁿ`` exceeds ``1 − confidence`` (up to 5 seeds at 95 %), else the point ``[mean, mean]`` — identical
    runs over 3 seeds do not show that no difference exists. Accuracies on a finite test set are quantised, so three
    seeds can differ by the same amount by chance; the t-test's limit (p 0, or the interval [0, 0]) would call that
    certain.
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    half_width: float
    p_value: float
    confidence: float = 0.95


def paired_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> PairedDifference:
    """The paired difference of ``a`` against ``b``: equal-length sequences, element ``s`` of each from seed ``s``
    (same split, noise draw and initial weights), at least 2 pairs, all finite. See `PairedDifference`."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b must be 1-D and of equal length (one value per seed), got {a_arr.shape}, {b_arr.shape}.")
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("a and b must be finite: drop the seeds with a missing or failed run from both.")
    n = a_arr.size
    if n < 2:
        raise ValueError(f"A paired comparison needs at least 2 pairs (seeds), got {n}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}.")
    d = a_arr - b_arr
    mean = float(d.mean())
    # a_s - b_s is rounded at the scale of a and b, not of d: 30000.3 - 30000.2 is 0.1 give or take 4e-12.
    rounding = 1e-12 * max(1.0, float(np.abs(a_arr).max()), float(np.abs(b_arr).max()))
    if np.ptp(d) <= rounding:
        p = 1.0 if abs(mean) <= rounding else 2.0 ** (1 - n)
        # Inverting the sign-flip test: any other shift leaves every difference of one sign, p = 2^(1-n).
        bound = math.inf if 2.0 ** (1 - n) > 1 - confidence else 0.0
        return PairedDifference(n, mean, 0.0, mean - bound, mean + bound, bound, p, confidence)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return PairedDifference(n, mean, sd, mean - half, mean + half, half, p, confidence)


@dataclass(frozen=True)
class RunComparison:
    """What `compare_runs` found.

    Attributes:
        seeds: the seeds, in the order given.
        runs: the run names, in the order of the first seed.
        baseline: the run the others are compared with (``None``: no differences).
        confidence: level of the confidence intervals.
        metrics: per metric, ``{"runs": {run: {"mean", "sd"}}, "differences": {run: {"mean", "sd", "ci_low",
            "ci_high", "p_value"}}}``: the sample sd over seeds; the difference is run − baseline, seed by seed.
            With fewer than two seeds (or a non-finite value) sd, the interval and p are NaN. The interval and p
            are `paired_difference`'s: with every seed giving the same difference, sd is 0 and p is the exact
            sign-flip test's (1 where that difference is 0, and then the mean, and a bounded interval, exactly 0
            rather than the float rounding in ``a_s − b_s``), not the t-test's limit (see `PairedDifference`).
    """

    seeds: list[Hashable]
    runs: list[str]
    baseline: str | None
    confidence: float
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]

    def to_dict(self) -> dict[str, Any]:
        """A dict that `json.dump` writes as strict JSON: a value that is not finite becomes ``None`` (``null``),
        as strict parsers (JavaScript's, ``jq``) reject Python's ``NaN``/``Infinity``. An sd, interval or p that
        does not exist (fewer than two seeds) and an unbounded interval both read ``null``; they differ by the
        p-value, which the unbounded interval keeps (see `PairedDifference`)."""
        return {
            "seeds": list(self.seeds),
            "runs": list(self.runs),
            "baseline": self.baseline,
            "confidence": self.confidence,
            "metrics": _finite_or_none(self.metrics),
        }

    def to_markdown(self, *, digits: int = 4) -> str:
        """A markdown table: one row per metric; mean ± sd of each run; for each run against the baseline the
        mean difference, its confidence interval and p-value (`paired_difference`'s: the paired t-test's, or the
        sign-flip test's where every seed gives the same difference). An unbounded interval (every seed the same
        difference, over too few seeds to bound it) reads ``unbounded``; a mean that rounds to 0 at ``digits``
        reads ``0.0000`` (``+0.0000`` for a difference), not ``-0.0000``."""
        others = [r for r in self.runs if r != self.baseline] if self.baseline is not None else []
        level = f"{round(100 * self.confidence, 6):g} %"  # 97.5 %, not 98 % (nor 100 % for 0.995)
        header = ["metric", *self.runs]
        for run in others:
            header += [f"Δ ({run} − {self.baseline})", f"{level} CI", "p (paired t)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for metric, entry in self.metrics.items():
            cells = [_label(metric), *(_mean_sd(entry["runs"][run], digits) for run in self.runs)]
            for run in others:
                d = entry["differences"][run]
                ci = (
                    "n/a" if math.isnan(d["ci_low"])
                    else "unbounded" if math.isinf(d["ci_low"])
                    else f"[{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"
                )  # fmt: skip
                p = "n/a" if math.isnan(d["p_value"]) else "<0.001" if d["p_value"] < 0.0005 else f"{d['p_value']:.3f}"
                cells += [_mean_sd(d, digits, sign="+"), ci, p]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare_runs(
    per_seed: Mapping[Hashable, Mapping[str, Mapping[str, Any]]],
    *,
    baseline: str | None = None,
    confidence: float = 0.95,
) -> RunComparison:
    """Mean ± sd of every run's metrics over seeds, and each run's paired difference to ``baseline``.

    The difference is taken seed by seed (the runs of one seed share initial weights and data), with a Student-t
    confidence interval (n − 1 degrees of freedom) and the paired t-test p-value: `paired_difference`, which also
    says what happens when every seed gives the same difference.
    Over few seeds the interval is wide: read a difference by its interval, not by whether p crosses 0.05.

    Args:
        per_seed: ``{seed: {run name: {metric: value}}}``, every seed with the same runs, e.g. the output of
            ``trainer.evaluate(test_set)`` per run. Non-numeric entries and Trainer's bookkeeping (epoch, runtime,
            throughput, model preparation time, memory deltas) are left out; metrics missing from any run or seed are left out.
        baseline: the run every other run is compared with; ``None`` reports mean ± sd only.
        confidence: level of the confidence intervals, in (0, 1).
    """
    if not per_seed:
        raise ValueError("per_seed is empty: pass {seed: {run: {metric: value}}} for at least one seed.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}.")
    seeds = list(per_seed)
    runs = list(per_seed[seeds[0]])
    for seed in seeds:
        if set(per_seed[seed]) != set(runs):
            raise ValueError(
                f"Seed {seed!r} has runs {sorted(per_seed[seed])}, seed {seeds[0]!r} has {sorted(runs)}: every seed "
                "needs the same runs for a paired comparison."
            )
    if baseline is not None and baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not one of the runs {runs}.")
    names = [
        k for k, v in per_seed[seeds[0]][runs[0]].items()
        if _is_number(v) and not k.endswith(_BOOKKEEPING_SUFFIXES)
    ]  # fmt: skip
    names = [k for k in names if all(_is_number(per_seed[s][r].get(k)) for s in seeds for r in runs)]
    known = list(_LABELS)  # the usual metrics first, in a fixed order; others as given
    names.sort(key=lambda k: known.index(_strip(k)) if _strip(k) in known else len(known))
    if not names:
        raise ValueError(f"No numeric metric is shared by every run and seed (runs {runs}, seeds {seeds}).")
    metrics = {}
    for name in names:
        values = {run: np.array([float(per_seed[s][run][name]) for s in seeds]) for run in runs}
        entry: dict[str, dict[str, dict[str, float]]] = {"runs": {r: _summary(v) for r, v in values.items()}}
        entry["differences"] = {}
        for run in runs if baseline is not None else []:
            if run == baseline:
                continue
            diff = values[run] - values[baseline]
            found = {**_summary(diff), "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
            if diff.size > 1 and np.isfinite(diff).all():
                paired = paired_difference(values[run], values[baseline], confidence=confidence)
                # Every difference 0 up to rounding (p 1 without spread): the -5.6e-17 left is no difference.
                residue = paired.mean if paired.sd == 0 and paired.p_value == 1 else 0.0
                found.update(
                    mean=paired.mean - residue, sd=paired.sd, ci_low=paired.ci_low - residue,
                    ci_high=paired.ci_high - residue, p_value=paired.p_value,
                )  # fmt: skip
            entry["differences"][run] = found
        metrics[name] = entry
    return RunComparison(seeds=seeds, runs=runs, baseline=baseline, confidence=confidence, metrics=metrics)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else math.nan}


def _strip(metric: str) -> str:
    for prefix in _PREFIXES:
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def _label(metric: str) -> str:
    return _LABELS.get(_strip(metric), _strip(metric))


def _mean_sd(entry: Mapping[str, float], digits: int, sign: str = "") -> str:
    sd = "" if math.isnan(entry["sd"]) else f" ± {entry['sd']:.{digits}f}"
    mean = entry["mean"] if round(entry["mean"], digits) != 0 else 0.0  # no "-0.0000"
    return f"{mean:{sign}.{digits}f}{sd}"
