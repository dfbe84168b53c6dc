"""What the meta label correction trainers' label-correction network outputs, on the accuracy grid's data.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
        .venv/bin/python benchmarks/mlc_diagnostic.py --config benchmarks/configs/digits_cpu.json

Trains EBOMLC, MLC-D and MLC once (one seed, one noise condition, the config's model and schedule, the grid's
2 % clean set) and, after training, feeds every training row through the main model and the meta model: how
often the corrected label's argmax equals the true label and the observed (noisy) label, its mean confidence
and entropy. It explains the grid's MLC/MLC-D numbers; writes ``<out>/mlc_diagnostic_<name>.md``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import training
from benchmarks.common import RESULTS_DIR, command_line, load_config, markdown_table, offline_environment

import numpy as np
import torch


def corrected_labels(trainer, cell) -> dict[str, float]:
    """Statistics of the meta model's corrected labels on every training row."""
    from hf_lilaw.mlc import PenultimateFeatures

    model, meta_model = trainer.model, trainer.meta_model
    x = cell.train.columns["pixel_values"]
    noisy = cell.train.columns["label"]
    true = cell.train.columns["clean_label"]
    model.eval()
    meta_model.eval()
    capture = PenultimateFeatures(model)
    try:
        with torch.no_grad(), capture.capturing():
            model(pixel_values=x)
            probs = meta_model(capture.pop(), noisy)
    finally:
        capture.remove()
    top = probs.argmax(1)
    entropy = -(probs.clamp_min(1e-12).log() * probs).sum(1)
    return {
        "corrected = true label %": 100 * float((top == true).float().mean()),
        "corrected = observed label %": 100 * float((top == noisy).float().mean()),
        "mean max prob": float(probs.max(1).values.mean()),
        "mean entropy (nats)": float(entropy.mean()),
        "uniform entropy (nats)": float(np.log(probs.shape[1])),
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).parent / "configs/digits_cpu.json"))
    parser.add_argument("--noise-type", default="none")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=["ebomlc", "mlc_d", "mlc"])
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    offline_environment(1)
    warnings.filterwarnings("ignore")
    import datasets

    datasets.disable_progress_bars()
    cfg = training.resolve_config(load_config(args.config))
    base = training.load_base(cfg, args.seed, None)
    cell = training.prepare_cell(cfg, base, args.noise_type, args.rate, args.seed)

    rows = []
    for method in args.methods:
        result = training.train_one(method, cfg, cell, args.seed, train_dataset=cell.train, device="cpu")
        stats = corrected_labels(result["trainer"], cell)
        history = result["history"]
        rows.append([training.METHOD_LABELS[method], f"{100 * history[0]['test_accuracy']:.1f}",
                     f"{100 * max(h['test_accuracy'] for h in history):.1f}", f"{100 * history[-1]['test_accuracy']:.1f}",
                     *(f"{v:.2f}" for v in stats.values())])  # fmt: skip
        print(rows[-1], flush=True)
    headers = ["method", "test acc. epoch 1 %", "best epoch %", "last epoch %", *stats.keys()]
    text = "\n".join([
        f"# Meta label correction diagnostic: `{cfg['name']}`, {training.condition_name(args.noise_type, args.rate)}, "
        f"seed {args.seed}",
        "",
        f"Command: `{command_line()}`",
        "",
        f"Training rows: {len(cell.train)}; clean set: {len(cell.clean)} rows. After training, every training row goes "
        "through the main model (penultimate features) and the label-correction network with its observed label.",
        "",
        markdown_table(headers, rows),
    ]) + "\n"  # fmt: skip
    out = Path(args.out_dir) / f"mlc_diagnostic_{cfg['name']}.md"
    out.write_text(text)
    print(text)
    return out


if __name__ == "__main__":
    main()
