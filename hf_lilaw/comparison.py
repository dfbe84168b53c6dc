"""Runs compared over seeds: mean ± sd of each run and the paired difference to a baseline, with its confidence
interval and t-test.

Train two or more runs per seed from the same initial weights, data and schedule (e.g. `transformers.Trainer`
and `LiLAWTrainer`), evaluate each on the same test set, and pass the metrics to `compare_runs`::

    per_seed = {0: {"Trainer": trainer.evaluate(test), "LiLAWTrainer": lilaw.evaluate(test)}, 1: {...}, 2: {...}}
    comparison = compare_runs(per_seed, baseline="Trainer")
    print(comparison.to_markdown())
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["RunComparison", "compare_runs"]

# Entries of Trainer.evaluate() that describe the evaluation, not the model.
_BOOKKEEPING_SUFFIXES = ("epoch", "_runtime", "_samples_per_second", "_steps_per_second")
_PREFIXES = ("eval_", "test_")
_LABELS = {"accuracy": "top-1 accuracy", "top5_accuracy": "top-5 accuracy", "roc_auc": "AUROC", "loss": "loss"}


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
            With fewer than two seeds sd, the interval and p are NaN. When every seed gives the same difference
            (up to float rounding) there is no spread to test against, and sd is 0: if that difference is 0 (up to
            rounding), p is 1 and the interval the point ``[0, 0]``; otherwise p is the exact sign-flip test's
            ``2¹⁻ⁿ`` over n seeds (a t-test would say 0: certainty, from what may be a coincidence of quantised
            accuracies) and the interval is unbounded while that p exceeds ``1 − confidence``, else the point
            ``[mean, mean]``.
    """

    seeds: list[Hashable]
    runs: list[str]
    baseline: str | None
    confidence: float
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays NaN, as `json.dump` writes it)."""
        return {
            "seeds": list(self.seeds),
            "runs": list(self.runs),
            "baseline": self.baseline,
            "confidence": self.confidence,
            "metrics": self.metrics,
        }

    def to_markdown(self, *, digits: int = 4) -> str:
        """A markdown table: one row per metric; mean ± sd of each run; for each run against the baseline the
        mean difference, its confidence interval and the paired t-test p-value."""
        others = [r for r in self.runs if r != self.baseline] if self.baseline is not None else []
        level = f"{self.confidence:.0%}".replace("%", " %")
        header = ["metric", *self.runs]
        for run in others:
            header += [f"Δ ({run} − {self.baseline})", f"{level} CI", "p (paired t)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for metric, entry in self.metrics.items():
            cells = [_label(metric), *(_mean_sd(entry["runs"][run], digits) for run in self.runs)]
            for run in others:
                d = entry["differences"][run]
                ci = "n/a" if math.isnan(d["ci_low"]) else f"[{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"
                p = "n/a" if math.isnan(d["p_value"]) else f"{d['p_value']:.3f}"
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
    confidence interval (n − 1 degrees of freedom) and the paired t-test p-value (`scipy.stats.ttest_rel`).
    Over few seeds the interval is wide: read a difference by its interval, not by whether p crosses 0.05.

    Args:
        per_seed: ``{seed: {run name: {metric: value}}}``, every seed with the same runs, e.g. the output of
            ``trainer.evaluate(test_set)`` per run. Non-numeric entries and Trainer's bookkeeping (epoch, runtime,
            throughput) are left out; metrics missing from any run or seed are left out.
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
    t_quantile = stats.t.ppf((1 + confidence) / 2, len(seeds) - 1) if len(seeds) > 1 else math.nan
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
            # Equal up to rounding (accuracies are multiples of 1/n, computed two ways): no spread, t is ±∞ or 0/0.
            rounding = 1e-12 * max(1.0, float(np.abs(diff).max()))
            if diff.size > 1 and np.ptp(diff) <= rounding:
                if abs(found["mean"]) <= rounding:
                    p, bound = 1.0, 0.0
                else:  # the sign-flip test: of 2^n equally likely sign patterns, this one and its mirror
                    p = 2.0 ** (1 - diff.size)
                    bound = math.inf if p > 1 - confidence else 0.0
                found.update(sd=0.0, ci_low=found["mean"] - bound, ci_high=found["mean"] + bound, p_value=p)
            elif diff.size > 1:
                half = t_quantile * found["sd"] / math.sqrt(diff.size)
                found.update(ci_low=found["mean"] - half, ci_high=found["mean"] + half)
                found["p_value"] = float(stats.ttest_rel(values[run], values[baseline]).pvalue)
            entry["differences"][run] = found
        metrics[name] = entry
    return RunComparison(seeds=seeds, runs=runs, baseline=baseline, confidence=confidence, metrics=metrics)


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
    return f"{entry['mean']:{sign}.{digits}f}{sd}"
