"""How many rows `find_label_issues` flags with its defaults, on clean labels and under uniform noise.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_issue_thresholds.py \
        --datasets digits fashion_mnist --noise_rates 0 0.4 --dynamics_dir /tmp/label_issue_dynamics

Trains one `LiLAWTrainer` with a `TrainingDynamicsRecorder` per (data set, noise rate): an MLP on
scikit-learn's digits (1,527 training rows after a 15 % meta split) and on a Fashion-MNIST subset read from the
IDX files (`--fashion_dir`), the meta split noisy like the training split. Then, for every score in
`HARDNESS_SCORES`, it applies `find_label_issues` with its defaults (the automatic split) and, for comparison,
Otsu's two-class split alone (the default before the bimodality check): fraction of rows flagged, and under
noise their precision and recall against the injected flags. With ``--dynamics_dir`` the recorded dynamics are
kept and reused, so a change of the threshold rule is measured on the same runs.

Prints a markdown table and writes one JSON record per invocation to
``benchmarks/results/label_issues/<tag>.json``.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks.common import RESULTS_DIR, command_line, hardware_info, markdown_table, offline_environment, write_json

import datasets
import numpy as np
import torch
from torch import nn
from hf_lilaw import LiLAWConfig, LiLAWTrainer, TrainingDynamicsRecorder, add_label_noise, find_label_issues
from hf_lilaw.analysis import HARDNESS_SCORES, TrainingDynamics, otsu_threshold
from hf_lilaw.core import split_meta_set

OUT_DIR = RESULTS_DIR / "label_issues"


class MLP(nn.Module):
    def __init__(self, num_features: int, hidden: int, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x, labels=None):
        return {"logits": self.net(x)}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian dimension sizes after a 4-byte magic, then uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_data(name: str, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Features in [0, 1] and labels of the whole (sub)set used."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    if name == "fashion_mnist":
        directory = Path(args.fashion_dir)
        images = _read_idx(directory / "train-images-idx3-ubyte.gz")
        labels = _read_idx(directory / "train-labels-idx1-ubyte.gz").astype(np.int64)
        # A stratified-enough random subset: the training file is not ordered by class.
        keep = np.random.default_rng(args.seed).permutation(len(labels))[: args.fashion_rows]
        return (images[keep].reshape(len(keep), -1) / 255.0).astype(np.float32), labels[keep]
    raise ValueError(f"Unknown data set {name!r}; use digits or fashion_mnist.")


SETTINGS = {  # (hidden units, epochs, batch size); digits as benchmarks/difficulty_scores.py
    "digits": (128, 12, 32),
    "fashion_mnist": (256, 20, 64),
}


def record_dynamics(name: str, noise_rate: float, args: argparse.Namespace) -> tuple[TrainingDynamics, np.ndarray, dict]:
    """Dynamics of one LiLAW run and the injected noise flags of its training rows (cached in --dynamics_dir)."""
    hidden, epochs, batch = SETTINGS[name]
    if name == "fashion_mnist":
        epochs = args.fashion_epochs
    key = f"{name}_rows{args.fashion_rows if name == 'fashion_mnist' else 'all'}_noise{noise_rate}_e{epochs}_s{args.seed}"
    cache = Path(args.dynamics_dir) / key if args.dynamics_dir else None
    if cache is not None and (cache / "dynamics.npz").exists():
        meta = np.load(cache / "flags.npz")
        return TrainingDynamics.load(cache / "dynamics.npz"), meta["is_noisy"], {"cached": True, "key": key}

    x, y = load_data(name, args)
    data = datasets.Dataset.from_dict({"x": x, "label": y}).cast_column("label", datasets.ClassLabel(num_classes=10))
    train, meta = split_meta_set(data, fraction=0.15, seed=args.seed)
    if noise_rate > 0:
        train = add_label_noise(train, noise_type="uniform", rate=noise_rate, seed=args.seed)
        meta = add_label_noise(meta, noise_type="uniform", rate=noise_rate, seed=args.seed + 1)
        is_noisy = np.asarray(train["is_noisy"], dtype=bool)
    else:
        is_noisy = np.zeros(len(train), dtype=bool)
    torch.manual_seed(args.seed)
    recorder = TrainingDynamicsRecorder()
    config = LiLAWConfig(
        output_dir="/tmp/label_issue_thresholds", num_train_epochs=epochs, per_device_train_batch_size=batch,
        learning_rate=1e-3, weight_decay=0.0, save_strategy="no", report_to=[], disable_tqdm=True, seed=args.seed,
    )
    trainer = LiLAWTrainer(model=MLP(x.shape[1], hidden), args=config, train_dataset=train, meta_dataset=meta,
                           callbacks=[recorder])
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    dynamics = recorder.dynamics
    train_accuracy = float(np.nanmean(dynamics.correct[-1]))
    info = {"cached": False, "key": key, "train_seconds": round(seconds, 1), "train_rows": len(train),
            "epochs": epochs, "hidden": hidden, "last_epoch_train_accuracy": train_accuracy}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        dynamics.save(cache / "dynamics.npz")
        np.savez(cache / "flags.npz", is_noisy=is_noisy)
    return dynamics, is_noisy, info


def _flag_stats(mask: np.ndarray, is_noisy: np.ndarray, scored: np.ndarray) -> dict[str, float | int]:
    mask, is_noisy = mask[scored], is_noisy[scored]
    stats: dict[str, float | int] = {"flagged": int(mask.sum()), "flagged_fraction": float(mask.mean())}
    if is_noisy.any():
        stats["recall"] = float(mask[is_noisy].mean())
        stats["precision"] = float(is_noisy[mask].mean()) if mask.any() else float("nan")
    return stats


def evaluate(dynamics: TrainingDynamics, is_noisy: np.ndarray) -> list[dict]:
    rows = []
    for score, fn in HARDNESS_SCORES.items():
        values = np.asarray(fn(dynamics), dtype=np.float64)
        scored = ~np.isnan(values)
        notes: list[str] = []
        handler = _ListHandler(notes)
        logger = logging.getLogger("hf_lilaw.analysis.label_issues")
        logger.addHandler(handler)
        try:
            default = find_label_issues(dynamics=dynamics, score=score)
        finally:
            logger.removeHandler(handler)
        otsu = values > otsu_threshold(values)
        row = {"score": score, "default": _flag_stats(default, is_noisy, scored),
               "otsu": _flag_stats(otsu, is_noisy, scored)}
        if notes:
            row["note"] = notes[-1]
        rows.append(row)
    return rows


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    parser.add_argument("--noise_rates", nargs="+", type=float, default=[0.0, 0.4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fashion_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--fashion_rows", type=int, default=12000, help="Fashion-MNIST training images used.")
    parser.add_argument("--fashion_epochs", type=int, default=20,
                        help="Fewer leave more clean rows never learned (a group of their own for some scores).")
    parser.add_argument("--dynamics_dir", default=None, help="Keep and reuse the recorded dynamics here.")
    parser.add_argument("--tag", default=None, help="Name of the JSON record (default: commit and time).")
    args = parser.parse_args()
    offline_environment(int(os.environ["OMP_NUM_THREADS"]))
    logging.getLogger("hf_lilaw.analysis.label_issues").setLevel(logging.INFO)

    runs, table = [], []
    for name in args.datasets:
        for rate in args.noise_rates:
            dynamics, is_noisy, info = record_dynamics(name, rate, args)
            rows = evaluate(dynamics, is_noisy)
            runs.append({"dataset": name, "noise_rate": rate, "run": info, "scores": rows})
            for r in rows:
                d, o = r["default"], r["otsu"]
                table.append([name, f"{rate:.0%}", r["score"], _pct(d["flagged_fraction"]), _pct(d.get("recall")),
                              _pct(d.get("precision")), _pct(o["flagged_fraction"]), _pct(o.get("recall")),
                              _pct(o.get("precision"))])
    headers = ["data", "noise", "score", "default flagged %", "default recall %", "default precision %",
               "Otsu flagged %", "Otsu recall %", "Otsu precision %"]
    print(markdown_table(headers, table))
    tag = args.tag or f"{_git_commit()}_{time.strftime('%Y%m%d-%H%M%S')}"
    path = write_json(OUT_DIR / f"{tag}.json", {
        "command": command_line(), "commit": _git_commit(), "options": vars(args), "hardware": hardware_info(),
        "runs": runs,
    })
    print(f"\nwrote {path.relative_to(RESULTS_DIR.parent.parent)}")


if __name__ == "__main__":
    main()
