"""What the three examples share: script arguments, noisy splits, and `Trainer` vs `LiLAWTrainer` side by side.

`compare()` trains the same initial model on the same data with the same seed and schedule, once with plain
`transformers.Trainer` (with `--compare`) and once with `LiLAWTrainer`, evaluates both on the untouched test
split, prints a table, and writes into ``output_dir``:

- ``lilaw/``: the LiLAW model, its README.md model card and ``lilaw_parameters.png`` (what `--push_to_hub` uploads),
- ``trainer/``: the plain Trainer's model (with `--compare`),
- ``lilaw_parameters.png``: α, β, δ over the optimizer steps,
- ``weight_histogram.png``: the final LiLAW weight W of every training sample, clean and noisy apart,
- ``comparison.json``: the evaluation metrics of each run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import DatasetDict
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
from hf_lilaw.core.model_card import comparison_table

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


def compare(
    script_args: ScriptArguments,
    training_args: LiLAWConfig,
    *,
    model: Any,
    splits: DatasetDict,
    train_transform: Callable,
    eval_transform: Callable,
    compute_metrics: Callable = compute_classification_metrics,
    processing_class: Any = None,
    dataset_description: str | None = None,
) -> dict[str, dict[str, float]]:
    """Trains ``model`` with `LiLAWTrainer` (and, with ``--compare``, plain `Trainer` from the same initial weights).

    Returns:
        ``{"Trainer": metrics, "LiLAWTrainer": metrics}`` (only ``LiLAWTrainer`` without ``--compare``).
    """
    out = training_args.output_dir
    os.makedirs(out, exist_ok=True)
    train, meta, test = splits["train"], splits["meta"], splits["test"]
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
        extra = {"meta_dataset": meta.with_transform(eval_transform)} if is_lilaw else {}
        trainer = (LiLAWTrainer if is_lilaw else Trainer)(
            model=copy.deepcopy(model),  # the same initial weights for both runs
            args=args,
            train_dataset=train.with_transform(train_transform),
            eval_dataset=test.with_transform(eval_transform),
            compute_metrics=compute_metrics,
            processing_class=processing_class,  # saved (and pushed) with the model
            **extra,
        )
        start = time.perf_counter()
        trainer.train()
        seconds[name] = time.perf_counter() - start
        metrics[name] = {
            k.removeprefix("eval_"): v
            for k, v in trainer.evaluate().items()
            if k != "epoch" and not k.endswith(("_runtime", "_per_second"))
        }
        trainer.save_model()

    lilaw = trainer  # the last run
    with open(os.path.join(out, "comparison.json"), "w") as f:
        json.dump({"metrics": metrics, "train_seconds": seconds, "lilaw_parameters": lilaw.lilaw_parameters()}, f, indent=2)
    _plots(lilaw, train.with_transform(eval_transform), np.asarray(train["is_noisy"]), out)
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

    print(f"\n{script_args.dataset}, {script_args.noise_type} noise at {script_args.noise_rate:.0%}, {len(test)} test samples:\n")
    print(comparison_table(metrics))
    params = ", ".join(f"{k} = {v:.3f}" for k, v in lilaw.lilaw_parameters().items())
    print(f"\nLiLAW final {params}; training time " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(f"Plots, models and the model card are in {out}")
    return metrics


def _plots(trainer: LiLAWTrainer, train_view: Any, is_noisy: np.ndarray, out: str) -> None:
    """α, β, δ over training; histogram of the final weights W of the training samples, clean vs noisy."""
    try:
        plot_lilaw_parameters(trainer.state.log_history, os.path.join(out, "lilaw_parameters.png"))
    except ValueError:
        logger.warning("No LiLAW log entries (fewer steps than logging_steps?): no lilaw_parameters.png.")
    scores = trainer.score_samples(train_view)
    w, w_alpha = np.asarray(scores["w"]), np.asarray(scores["w_alpha"])
    plot_weight_histogram(w, os.path.join(out, "weight_histogram.png"), is_noisy=is_noisy)
    if 0 < is_noisy.sum() < len(is_noisy):
        found = label_issue_metrics(-w_alpha, is_noisy)
        print(
            f"Mean W: clean {w[~is_noisy].mean():.3f}, noisy {w[is_noisy].mean():.3f}; "
            f"W_α ranks the noisy training samples with AUROC {found['auroc']:.3f}"
        )
