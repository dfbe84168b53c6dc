"""What the three examples share: script arguments, noisy splits, and `Trainer` vs `LiLAWTrainer` over seeds.

`run_seeds()` builds, for every seed of ``--seeds``, the noisy splits and the initial model, and `compare()` trains
that model on that data with that seed and schedule, once with plain `transformers.Trainer` (with `--compare`)
and once with `LiLAWTrainer`, and evaluates both on the untouched test split. With several seeds every seed's
files go to ``output_dir/seed_<seed>/``:

- ``lilaw/``: the LiLAW model, its README.md model card and ``lilaw_parameters.png`` (what `--push_to_hub` uploads),
- ``trainer/``: the plain Trainer's model (with `--compare`),
- ``lilaw_parameters.png``: α, β, δ over the optimizer steps,
- ``weight_histogram.png``: the final LiLAW weight W of every training sample, clean and noisy apart,

and ``output_dir/comparison.json`` holds ``model``, ``seeds``, ``per_seed`` (each seed's metrics for both
trainers) and ``summary`` (mean ± sd per trainer, the paired difference LiLAW − Trainer and its paired t-test
p-value); the summary table is printed at the end.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import DatasetDict
from scipy.stats import ttest_rel
from transformers import HfArgumentParser, Trainer, set_seed

from hf_lilaw import (
    INPUT_NOISE_TYPES,
    LABEL_NOISE_TYPES,
    LiLAWConfig,
    LiLAWTrainer,
    add_input_noise,
    add_label_noise,
    compute_classification_metrics,
    label_issue_metrics,
    load_classification_dataset,
    plot_lilaw_parameters,
    plot_weight_histogram,
)
from hf_lilaw.core.model_card import METRIC_LABELS, comparison_table

logger = logging.getLogger(__name__)


@dataclass
class ScriptArguments:
    """Arguments every example takes; each script subclasses this with its own defaults and extras."""

    dataset: str = field(
        default="digits",
        metadata={"help": "Data set name for hf_lilaw.load_classification_dataset (see hf_lilaw.available_datasets())."},
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Hub model id or local path to fine-tune; default: a small model initialised at random, offline."},
    )
    noise_type: str = field(
        default="uniform",
        metadata={"help": f"Noise put into the training and meta splits: one of {', '.join(LABEL_NOISE_TYPES + INPUT_NOISE_TYPES)}."},
    )
    noise_rate: float = field(default=0.4, metadata={"help": "Fraction of training (and meta) samples to corrupt."})
    compare: bool = field(
        default=False,
        metadata={"help": "Also train plain transformers.Trainer (same init, data, seed, schedule) and compare."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep this many training samples (the meta split shrinks in proportion)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep this many test samples."})
    seeds: list[int] | None = field(
        default=None,
        metadata={
            "help": "Run once per seed (noise, data order, new head, LiLAW's meta split) and report mean ± sd and the "
            "paired difference with a paired t-test; default: --seed alone."
        },
    )


@dataclass
class Experiment:
    """What one seed trains: the initial model (shared by both trainers), the noisy splits and the transforms."""

    model: Any
    splits: DatasetDict
    train_transform: Callable
    eval_transform: Callable
    processing_class: Any = None
    compute_metrics: Callable = compute_classification_metrics


def parse_args(script_class: type, **defaults: Any) -> tuple[Any, LiLAWConfig]:
    """Parses ``script_class`` and `LiLAWConfig` from the command line, with the script's own defaults."""
    parser = HfArgumentParser((script_class, LiLAWConfig))
    # The examples feed models through Dataset.set_transform, whose output columns (pixel_values, input_values)
    # do not exist before the transform runs: Trainer must not drop "unused" raw columns.
    parser.set_defaults(remove_unused_columns=False, report_to="none", save_strategy="no", **defaults)
    return parser.parse_args_into_dataclasses()


def load_noisy_splits(script_args: ScriptArguments, *, seed: int, **loader_kwargs: Any) -> DatasetDict:
    """``train``/``meta``/``test`` splits, optionally shortened, with noise in ``train`` and ``meta`` (not ``test``)."""
    splits = load_classification_dataset(script_args.dataset, seed=seed, **loader_kwargs)
    n_train, n_eval = script_args.max_train_samples, script_args.max_eval_samples
    if n_train is not None and n_train < len(splits["train"]):
        n_meta = max(2, round(len(splits["meta"]) * n_train / len(splits["train"])))
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(n_train))
        splits["meta"] = splits["meta"].shuffle(seed=seed).select(range(min(n_meta, len(splits["meta"]))))
    if n_eval is not None and n_eval < len(splits["test"]):
        splits["test"] = splits["test"].shuffle(seed=seed).select(range(n_eval))
    if script_args.noise_type in LABEL_NOISE_TYPES:
        add_noise = add_label_noise
    elif script_args.noise_type in INPUT_NOISE_TYPES:
        add_noise = add_input_noise
    else:
        raise ValueError(f"Unknown --noise_type {script_args.noise_type!r}; pick one of {LABEL_NOISE_TYPES + INPUT_NOISE_TYPES}.")
    for offset, name in enumerate(("train", "meta")):  # the meta set is noisy too: LiLAW needs no clean data
        splits[name] = add_noise(splits[name], noise_type=script_args.noise_type, rate=script_args.noise_rate, seed=seed + offset)
    return splits


def run_seeds(
    script_args: ScriptArguments,
    training_args: LiLAWConfig,
    *,
    build: Callable[[int], Experiment],
    model_description: str,
    dataset_description: str | None = None,
) -> dict[str, Any]:
    """Builds and compares one `Experiment` per seed, prints the summary table and writes ``comparison.json``."""
    seeds = list(script_args.seeds) if script_args.seeds else [training_args.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds has repeats ({seeds}); pass distinct seeds, e.g. --seeds 0 1 2.")
    if training_args.push_to_hub and len(seeds) > 1:
        raise ValueError("--push_to_hub uploads one model: pass a single seed (--seeds 0) with it.")
    out = training_args.output_dir
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    per_seed: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        seed_args = dataclasses.replace(
            training_args, seed=seed, output_dir=out if len(seeds) == 1 else os.path.join(out, f"seed_{seed}")
        )
        set_seed(seed)  # the initial weights (the new head), shared by both runs
        experiment = build(seed)
        per_seed[str(seed)] = compare(script_args, seed_args, experiment, dataset_description=dataset_description)
    summary = summarise({seed: record["metrics"] for seed, record in per_seed.items()})
    seconds = time.perf_counter() - start
    record = {
        "model": model_description,
        "dataset": dataset_description or script_args.dataset,
        "noise_type": script_args.noise_type,
        "noise_rate": script_args.noise_rate,
        "seeds": seeds,
        "per_seed": per_seed,
        "summary": summary,
        "wall_seconds": seconds,
    }
    with open(os.path.join(out, "comparison.json"), "w") as f:
        json.dump(record, f, indent=2)
    print(
        f"\n{model_description} on {dataset_description or script_args.dataset}, {script_args.noise_type} noise at "
        f"{script_args.noise_rate:.0%}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}):\n"
    )
    print(summary_table(summary))
    print(f"\nWall time {seconds:.0f} s; per-seed metrics, plots, models and model cards in {out}")
    return record


def summarise(per_seed: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per metric: mean and sample sd over seeds of each trainer, and the paired difference LiLAW − Trainer.

    The difference has a paired t-test p-value (`scipy.stats.ttest_rel`), NaN with fewer than two seeds.
    """
    runs = per_seed[next(iter(per_seed))]
    summary: dict[str, dict[str, Any]] = {}
    for metric in runs[next(iter(runs))]:
        entry: dict[str, Any] = {}
        values = {name: np.array([per_seed[s][name][metric] for s in per_seed], dtype=float) for name in runs}
        for name, v in values.items():
            entry[name] = _mean_sd(v)
        if set(values) == {"Trainer", "LiLAWTrainer"}:
            diff = values["LiLAWTrainer"] - values["Trainer"]
            entry["difference"] = _mean_sd(diff)
            p = float("nan")
            if diff.size > 1 and np.ptp(diff) > 0:
                p = float(ttest_rel(values["LiLAWTrainer"], values["Trainer"]).pvalue)
            entry["difference"]["p_value"] = p
        summary[metric] = entry
    return summary


def _mean_sd(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else float("nan")}


def summary_table(summary: dict[str, dict[str, Any]], *, digits: int = 4) -> str:
    """Markdown table: mean ± sd of each trainer, the paired difference and its p-value, one row per metric."""
    def fmt(entry: dict[str, float], sign: str = "") -> str:
        sd = "" if math.isnan(entry["sd"]) else f" ± {entry['sd']:.{digits}f}"
        return f"{entry['mean']:{sign}.{digits}f}{sd}"

    names = [n for n in ("Trainer", "LiLAWTrainer") if n in next(iter(summary.values()))]
    paired = "difference" in next(iter(summary.values()))
    header = ["metric", *names] + (["Δ (LiLAW − Trainer)", "p (paired t)"] if paired else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    metrics = [m for m in METRIC_LABELS if m in summary] + [m for m in summary if m not in METRIC_LABELS]
    for metric in metrics:
        entry = summary[metric]
        cells = [METRIC_LABELS.get(metric, metric), *(fmt(entry[n]) for n in names)]
        if paired:
            p = entry["difference"]["p_value"]
            cells += [fmt(entry["difference"], "+"), "n/a" if math.isnan(p) else f"{p:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(
    script_args: ScriptArguments,
    training_args: LiLAWConfig,
    experiment: Experiment,
    *,
    dataset_description: str | None = None,
) -> dict[str, Any]:
    """Trains ``experiment.model`` with `LiLAWTrainer` (and, with ``--compare``, plain `Trainer` from the same weights).

    Returns:
        ``{"metrics": {"Trainer": ..., "LiLAWTrainer": ...}, "train_seconds": ..., "lilaw_parameters": ...,
        "weights": ...}`` (only ``LiLAWTrainer`` without ``--compare``). Top-5 accuracy is dropped for five classes
        or fewer, where it is 1 by construction.
    """
    out = training_args.output_dir
    os.makedirs(out, exist_ok=True)
    splits = experiment.splits
    train, meta, test = splits["train"], splits["meta"], splits["test"]
    num_labels = train.features["label"].num_classes
    metrics: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name in ["Trainer", "LiLAWTrainer"] if script_args.compare else ["LiLAWTrainer"]:
        is_lilaw = name == "LiLAWTrainer"
        args = dataclasses.replace(
            training_args,
            output_dir=os.path.join(out, "lilaw" if is_lilaw else "trainer"),
            push_to_hub=training_args.push_to_hub and is_lilaw,
            hub_model_id=training_args.hub_model_id or os.path.basename(os.path.abspath(out)),  # not ".../lilaw"
        )
        set_seed(args.seed)
        extra = {"meta_dataset": meta.with_transform(experiment.eval_transform)} if is_lilaw else {}
        trainer = (LiLAWTrainer if is_lilaw else Trainer)(
            model=copy.deepcopy(experiment.model),  # the same initial weights for both runs
            args=args,
            train_dataset=train.with_transform(experiment.train_transform),
            eval_dataset=test.with_transform(experiment.eval_transform),
            compute_metrics=experiment.compute_metrics,
            processing_class=experiment.processing_class,  # saved (and pushed) with the model
            **extra,
        )
        start = time.perf_counter()
        trainer.train()
        seconds[name] = time.perf_counter() - start
        metrics[name] = {
            k.removeprefix("eval_"): v
            for k, v in trainer.evaluate().items()
            if k != "epoch" and not k.endswith(("_runtime", "_per_second"))
            and not (k == "eval_top5_accuracy" and num_labels <= 5)
        }
        trainer.save_model()

    lilaw = trainer  # the last run
    weights = _plots(lilaw, train.with_transform(experiment.eval_transform), np.asarray(train["is_noisy"]), out)
    card = {
        "model_name": os.path.basename(os.path.abspath(out)),
        "dataset": dataset_description or script_args.dataset,
        "noise_type": script_args.noise_type,
        "noise_rate": script_args.noise_rate,
        "comparison": metrics if script_args.compare else None,
    }
    if training_args.push_to_hub:
        lilaw.push_to_hub(**card)  # writes the model card too
    else:
        lilaw.create_model_card(**card)

    print(f"\nSeed {training_args.seed}: {script_args.dataset}, {script_args.noise_type} noise at {script_args.noise_rate:.0%}, {len(test)} test samples:\n")
    print(comparison_table(metrics))
    params = ", ".join(f"{k} = {v:.3f}" for k, v in lilaw.lilaw_parameters().items())
    print(f"LiLAW final {params}; training time " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return {"metrics": metrics, "train_seconds": seconds, "lilaw_parameters": lilaw.lilaw_parameters(), "weights": weights}


def _plots(trainer: LiLAWTrainer, train_view: Any, is_noisy: np.ndarray, out: str) -> dict[str, float]:
    """α, β, δ over training; histogram of the final weights W of the training samples, clean vs noisy."""
    try:
        plot_lilaw_parameters(trainer.state.log_history, os.path.join(out, "lilaw_parameters.png"))
    except ValueError:
        logger.warning("No LiLAW log entries (fewer steps than logging_steps?): no lilaw_parameters.png.")
    scores = trainer.score_samples(train_view)
    w, w_alpha = np.asarray(scores["w"]), np.asarray(scores["w_alpha"])
    plot_weight_histogram(w, os.path.join(out, "weight_histogram.png"), is_noisy=is_noisy)
    if not 0 < is_noisy.sum() < len(is_noisy):
        return {}
    found = label_issue_metrics(-w_alpha, is_noisy)
    print(
        f"Mean W: clean {w[~is_noisy].mean():.3f}, noisy {w[is_noisy].mean():.3f}; "
        f"W_α ranks the noisy training samples with AUROC {found['auroc']:.3f}"
    )
    return {"mean_w_clean": float(w[~is_noisy].mean()), "mean_w_noisy": float(w[is_noisy].mean()), "w_alpha_auroc": found["auroc"]}
