"""Mislabel detection from one training run: the LiLAW paper's Table 16 at CPU scale.

Injects known label noise into scikit-learn's digits (offline), trains one `LiLAWTrainer` with a
`TrainingDynamicsRecorder`, scores every sample by every hardness score at an early and a late epoch, and prints
AUROC and AUPRC against the injected `is_noisy` flags. When cleanlab is installed it also runs cleanlab's
`find_label_issues` on K-fold cross-validated probabilities of the same model (K extra trainings) for comparison.
Writes a markdown table and a Data-Maps scatter (confidence vs variability, coloured by W_α, noisy samples marked).

    python benchmarks/difficulty_scores.py --noise_rate 0.5 --epochs 40 --early_epoch 2 --output_dir docs/difficulty_scores
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from torch import nn
from transformers import HfArgumentParser, Trainer, TrainingArguments

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import cpu_model
from hf_lilaw import LiLAWConfig, LiLAWTrainer, TrainingDynamicsRecorder, add_label_noise
from hf_lilaw.analysis import HARDNESS_SCORES, data_maps, label_issue_metrics, plot_data_map
from hf_lilaw.core import split_meta_set


@dataclass
class Options:
    noise_type: str = field(default="uniform", metadata={"help": "Label noise type (hf_lilaw.noise)."})
    noise_rate: float = field(default=0.5, metadata={"help": "Fraction of training labels flipped."})
    epochs: int = field(default=12, metadata={"help": "Training epochs."})
    early_epoch: int = field(default=2, metadata={"help": "0-based epoch of the 'early' scores (paper: epoch 3)."})
    seed: int = field(default=0, metadata={"help": "Seed of the noise, the split and the model."})
    folds: int = field(default=3, metadata={"help": "Folds of the cross-validated probabilities for cleanlab."})
    output_dir: str = field(default="docs/difficulty_scores", metadata={"help": "Where the table and plot go."})


class DigitsMLP(nn.Module):
    def __init__(self, num_features: int = 64, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x, labels=None):
        return {"logits": self.net(x)}


def training_args(output_dir: str, opts: Options, cls: type = TrainingArguments, **extra) -> TrainingArguments:
    return cls(output_dir=output_dir, num_train_epochs=opts.epochs, per_device_train_batch_size=32,
               learning_rate=1e-3, weight_decay=0.0, save_strategy="no", report_to=[], disable_tqdm=True,
               seed=opts.seed, **extra)


def cross_validated_probabilities(train: datasets.Dataset, opts: Options) -> np.ndarray:
    """Out-of-fold softmax probabilities of a plain `Trainer`, as cleanlab expects."""
    labels = np.asarray(train["label"])
    probs = np.zeros((len(train), 10), dtype=np.float32)
    folds = StratifiedKFold(opts.folds, shuffle=True, random_state=opts.seed)
    for k, (fit_idx, held_idx) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        torch.manual_seed(opts.seed)
        trainer = Trainer(model=DigitsMLP(), args=training_args(f"/tmp/cv{k}", opts),
                          train_dataset=train.select(fit_idx),
                          compute_loss_func=lambda out, y, num_items_in_batch=None: nn.functional.cross_entropy(
                              out["logits"], y, reduction="sum") / num_items_in_batch)
        trainer.train()
        logits = trainer.predict(train.select(held_idx)).predictions
        probs[held_idx] = torch.as_tensor(logits).softmax(-1).numpy()
    return probs


def main() -> None:
    (opts,) = HfArgumentParser(Options).parse_args_into_dataclasses()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    digits = load_digits()
    data = datasets.Dataset.from_dict({"x": (digits.data / 16.0).astype(np.float32), "label": digits.target})
    rest, meta = split_meta_set(data, fraction=0.15, seed=opts.seed)
    # The meta set is noisy too: the paper's setting, no trusted labels anywhere.
    train = add_label_noise(rest, noise_type=opts.noise_type, rate=opts.noise_rate, seed=opts.seed)
    meta = add_label_noise(meta, noise_type=opts.noise_type, rate=opts.noise_rate, seed=opts.seed + 1)
    is_noisy = np.asarray(train["is_noisy"])

    start = time.perf_counter()
    recorder = TrainingDynamicsRecorder()
    torch.manual_seed(opts.seed)
    trainer = LiLAWTrainer(model=DigitsMLP(), args=training_args("/tmp/difficulty", opts, LiLAWConfig),
                           train_dataset=train, meta_dataset=meta, callbacks=[recorder])
    trainer.train()
    lilaw_seconds = time.perf_counter() - start
    dynamics = recorder.dynamics

    rows = []
    for name, score in HARDNESS_SCORES.items():
        if name == "grand":  # needs per-sample gradients, which the recorder does not pay for
            continue
        early = label_issue_metrics(score(dynamics, epoch=opts.early_epoch), is_noisy)
        late = label_issue_metrics(score(dynamics, epoch=-1), is_noisy)
        rows.append({"method": name, "early_auroc": early["auroc"], "early_auprc": early["auprc"],
                     "late_auroc": late["auroc"], "late_auprc": late["auprc"], "trainings": 1})

    cleanlab_note, cleanlab_record = "cleanlab not installed", None
    try:
        with warnings.catch_warnings():  # importing cleanlab turns every warning off, process-wide, for good
            from cleanlab.filter import find_label_issues as cleanlab_find_label_issues
            from cleanlab.rank import get_label_quality_scores
    except ImportError:
        pass
    else:
        start = time.perf_counter()
        probs = cross_validated_probabilities(train, opts)
        cleanlab_seconds = time.perf_counter() - start
        labels = np.asarray(train["label"])
        quality = get_label_quality_scores(labels, probs)
        metrics = label_issue_metrics(-quality, is_noisy)
        mask = cleanlab_find_label_issues(labels, probs)
        rows.append({"method": f"cleanlab ({opts.folds}-fold CV)", "early_auroc": float("nan"),
                     "early_auprc": float("nan"), "late_auroc": metrics["auroc"], "late_auprc": metrics["auprc"],
                     "trainings": opts.folds})
        cleanlab_record = {"flagged": int(mask.sum()), "precision": float(is_noisy[mask].mean()),
                           "recall": float(mask[is_noisy].mean()), "seconds": cleanlab_seconds}
        cleanlab_note = (f"cleanlab find_label_issues flagged {mask.sum()} samples, precision "
                         f"{is_noisy[mask].mean():.3f}, recall {mask[is_noisy].mean():.3f}; its {opts.folds} "
                         f"trainings took {cleanlab_seconds:.0f} s against {lilaw_seconds:.0f} s for the one LiLAW run")

    os.makedirs(opts.output_dir, exist_ok=True)
    header = (f"Digits (1,797 images, 8x8), MLP 64-128-10, {opts.noise_type} label noise at {opts.noise_rate:.0%} on "
              f"train and meta sets, {len(train)} training samples, {opts.epochs} epochs, seed {opts.seed}. "
              f"Early = epoch {opts.early_epoch + 1}, late = epoch {opts.epochs}. Final α, β, δ = "
              + ", ".join(f"{v:.3f}" for v in trainer.lilaw_parameters().values()) + ".")
    lines = [header, "", "| method | AUROC early | AUPRC early | AUROC late | AUPRC late | trainings |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["late_auroc"]):
        lines.append(f"| {r['method']} | {r['early_auroc']:.3f} | {r['early_auprc']:.3f} | {r['late_auroc']:.3f} | "
                     f"{r['late_auprc']:.3f} | {r['trainings']} |")
    lines += ["", cleanlab_note + "."]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(opts.output_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(opts.output_dir, "results.json"), "w") as f:
        # The note's timings and counts too, so that every figure of table.md is in the record.
        json.dump({"options": vars(opts), "rows": rows, "lilaw": trainer.lilaw_parameters(),
                   "lilaw_seconds": lilaw_seconds, "cleanlab": cleanlab_record,
                   "machine": {"cpu_model": cpu_model(), "threads": torch.get_num_threads(),
                               "torch": torch.__version__}},
                  f, indent=2)  # fmt: skip

    maps = data_maps(dynamics)
    w_alpha = np.nanmean(dynamics.w_alpha, axis=0)
    plot_data_map(maps.confidence, maps.variability, os.path.join(opts.output_dir, "data_map.png"),
                  color=w_alpha, is_noisy=is_noisy, color_label="mean W_α",
                  title=f"Digits, {opts.noise_rate:.0%} {opts.noise_type} noise: Data Map coloured by LiLAW's W_α")


if __name__ == "__main__":
    main()
