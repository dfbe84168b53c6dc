"""Finding the mislabelled rows of Fashion-MNIST: LiLAW's W_α against the plain per-sample loss and AUM, at equal
numbers of flagged rows, over seeds (the pretrained linear probe; CPU).

    # the grid (4 noise conditions x 5 seeds, one record per condition and seed), then the tables
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fashion_mnist_detection.py
    .venv/bin/python benchmarks/fashion_mnist_detection.py --summary

Setting: the linear probe of `benchmarks/fashion_mnist.py --model effnet_probe --image-size 64` (its README row
``probe64_e10``): a linear head on the frozen ImageNet EfficientNet-Lite0's pooled 1,280-d features of the 64-px
images, standardised with the 60,000 training images' mean and standard deviation, read from the feature cache
that script writes (``$HF_LILAW_FEATURE_CACHE`` or ``~/.cache/hf_lilaw/features``). The split and the noise are
drawn as there, so a run pairs with ``probe64_e10_runs.jsonl``: the seed's permutation of the 60,000 training
images holds out 5,000 as the validation split, the condition's noise (`hf_lilaw.noisy_labels`, same seed) covers
all 60,000 labels. AdamW, lr 1e-3, batch 256, 10 epochs, linear decay, weight decay 0.

Per condition and seed, two trainings, each with a `hf_lilaw.TrainingDynamicsRecorder`:

- ``lilaw``: `hf_lilaw.LiLAWTrainer` with the paper's defaults, its meta set the noisy validation split;
- ``ce``: plain cross-entropy, trained by `hf_lilaw.ELRTrainer` with ``elr_lambda=0`` (its loss is then
  ``ce + 0 · reg``: cross-entropy's gradient exactly), the plain trainer of the library that feeds a recorder.

Scores (higher = more likely mislabelled; `hf_lilaw.HARDNESS_SCORES` with their defaults): ``lilaw/w_alpha``
(−W_α at the last epoch), ``lilaw/loss`` and ``ce/loss`` (the per-sample loss averaged over the epochs),
``ce/aum`` (−AUM), ``ce/self_confidence`` (−p(given label) in the last epoch, in-sample: cleanlab's
self-confidence without its cross-validation). For each: AUROC and AUPRC (`hf_lilaw.label_issue_metrics`);
precision and recall of its top k rows (`hf_lilaw.find_label_issues(num_issues=k)`) at ``k = oracle`` (the true
number of noisy training rows, where precision = recall) and at ``k = auto`` (the number the default
``find_label_issues(dynamics=<LiLAW run>)`` flags: W_α's automatic split), so every score flags as many rows as
W_α does; and what ``find_label_issues`` flags with the score's own automatic split.

``--summary`` reads the records only and writes ``detection_probe64.md`` / ``.json``: means ± sd over seeds, and
W_α against every other score, paired over seeds (`benchmarks.stats`: 95 % t intervals, Benjamini–Hochberg per
table, "no effect larger than X detected" where the seeds cannot tell them apart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import grid, stats  # first: sets the thread and offline defaults
from benchmarks.common import markdown_table
from benchmarks.fashion_mnist_data import noisy_split, parse_condition, probe_features, recorded_rows

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist"
NAME = "detection_probe64"
CONDITIONS = ("uniform_20", "uniform_40", "uniform_60", "pair_flip_40")
SCORES = ("lilaw/w_alpha", "lilaw/loss", "ce/loss", "ce/aum", "ce/self_confidence")
REFERENCE = "lilaw/w_alpha"
PAIRED_WITH = "probe64_e10"  # benchmarks/fashion_mnist.py's records of the same trainings
LABELS = {"lilaw/w_alpha": "W_α (LiLAW)", "lilaw/loss": "loss (LiLAW run)", "ce/loss": "loss (CE run)",
          "ce/aum": "AUM (CE run)", "ce/self_confidence": "self-confidence (CE run)"}  # fmt: skip
IMAGE_SIZE = 64  # the probe64_e10 grid's features
SETTINGS = {"epochs": 10, "batch_size": 256, "learning_rate": 1e-3, "val_rows": 5000}


# ------------------------------------------------------------------------------------------------ data

_FEATURES: dict[str | None, tuple[np.ndarray, ...]] = {}


def load_features(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised probe features and labels: ``(x_train, y_train, x_test, y_test)``, read once per process
    (the features are computed and cached on the first call, as `benchmarks/fashion_mnist.py` does)."""
    if data_dir not in _FEATURES:
        from hf_lilaw.data import fashion_mnist_arrays

        pixels_train, y_train, pixels_test, y_test = fashion_mnist_arrays(data_dir=data_dir)
        x_train, x_test = probe_features(pixels_train, pixels_test, image_size=IMAGE_SIZE)
        _FEATURES[data_dir] = (x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    return _FEATURES[data_dir]  # type: ignore[return-value]


def make_split(seed: int, condition: str, labels: np.ndarray, val_rows: int) -> tuple[np.ndarray, ...]:
    """``(train rows, validation rows, noisy labels of all rows)``, drawn as `benchmarks/fashion_mnist.py` does."""
    return noisy_split(seed, condition, labels, val_rows=val_rows)


# ------------------------------------------------------------------------------------------------ metrics


def top_k(scores: np.ndarray, is_noisy: np.ndarray, k: int) -> dict[str, float]:
    """Precision and recall of the ``k`` highest scores (`find_label_issues`' ranking: ties in row order)."""
    from hf_lilaw import find_label_issues

    flagged = find_label_issues(scores=scores, num_issues=int(k))
    hits = int(is_noisy[flagged].sum())
    return {"k": int(k), "precision": hits / k if k else float("nan"), "recall": hits / int(is_noisy.sum())}


def detection_metrics(scores: np.ndarray, is_noisy: np.ndarray, *, k_auto: int) -> dict[str, Any]:
    """AUROC/AUPRC, precision/recall at the oracle count and at ``k_auto``, and the score's own automatic split."""
    import logging

    from hf_lilaw import find_label_issues
    from hf_lilaw.analysis import label_issue_metrics

    is_noisy = np.asarray(is_noisy, dtype=bool)
    out: dict[str, Any] = dict(label_issue_metrics(scores, is_noisy))
    out["at_oracle"] = top_k(scores, is_noisy, int(is_noisy.sum()))
    out["at_auto"] = top_k(scores, is_noisy, k_auto)
    logger = logging.getLogger("hf_lilaw.analysis.label_issues")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a refused split is recorded below (0 flagged), not logged per run
    try:
        own = find_label_issues(scores=scores)
    finally:
        logger.setLevel(level)
    n = int(own.sum())
    out["auto_split"] = {"flagged": n, "fraction": n / len(scores),
                         "precision": float(is_noisy[own].mean()) if n else float("nan"),
                         "recall": float(own[is_noisy].mean())}  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ one run


def _train(kind: str, x: np.ndarray, y: np.ndarray, meta: tuple[np.ndarray, np.ndarray], seed: int) -> dict[str, Any]:
    """One training with a recorder: its dynamics, trainer and seconds."""
    from transformers import PrinterCallback, set_seed

    import hf_lilaw
    from benchmarks.common import MLP

    set_seed(seed)  # the same initial weights for both trainings of a seed (and for probe64_e10's)
    model = MLP(num_labels=10, in_features=x.shape[1], hidden=())
    recorder = hf_lilaw.TrainingDynamicsRecorder()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = dict(
            output_dir=tmp, per_device_train_batch_size=SETTINGS["batch_size"], num_train_epochs=SETTINGS["epochs"],
            learning_rate=SETTINGS["learning_rate"], weight_decay=0.0, lr_scheduler_type="linear", seed=seed,
            use_cpu=True, save_strategy="no", eval_strategy="no", logging_strategy="epoch", report_to=[],
            disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        )  # fmt: skip
        common = dict(model=model, train_dataset=recorded_rows(x, y), callbacks=[recorder])
        if kind == "lilaw":
            args = hf_lilaw.LiLAWConfig(**values, lilaw_meta_cache="force")
            trainer = hf_lilaw.LiLAWTrainer(args=args, meta_dataset=recorded_rows(*meta), **common)
        else:  # elr_lambda=0: cross-entropy's loss and gradient, through a trainer that feeds the recorder
            trainer = hf_lilaw.ELRTrainer(args=hf_lilaw.ELRConfig(**values, elr_lambda=0.0), **common)
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    model.eval()
    return {"dynamics": recorder.dynamics, "trainer": trainer, "model": model, "seconds": seconds}


def run_one(cell: dict[str, Any], *, data_dir: str | None = None) -> dict[str, Any]:
    """Both trainings of one condition and seed, every score's detection metrics; the record's fields."""
    import torch

    from hf_lilaw import find_label_issues
    from hf_lilaw.analysis import HARDNESS_SCORES

    wall = time.perf_counter()
    seed, condition = cell["seed"], cell["condition"]
    x, y, x_test, y_test = load_features(data_dir)
    train, val, noisy = make_split(seed, condition, y, SETTINGS["val_rows"])
    is_noisy = noisy[train] != y[train]
    runs = {kind: _train(kind, x[train], noisy[train], (x[val], noisy[val]), seed) for kind in ("lilaw", "ce")}
    scores = {}
    for kind, run in runs.items():
        dyn = run["dynamics"]
        if dyn.num_samples != len(train) or np.isnan(dyn.loss).any():
            raise RuntimeError(f"{kind}: the recorder missed rows ({dyn}); every row is seen once per epoch.")
        for name in ("w_alpha", "loss", "aum"):
            if name != "w_alpha" or kind == "lilaw":
                scores[f"{kind}/{name}"] = np.asarray(HARDNESS_SCORES[name](dyn), dtype=np.float64)
        scores[f"{kind}/self_confidence"] = -dyn.prob_label[-1].astype(np.float64)
    k_auto = int(find_label_issues(dynamics=runs["lilaw"]["dynamics"]).sum())  # the default: W_α, automatic split
    record: dict[str, Any] = {
        "settings": SETTINGS, "noise_type": parse_condition(condition)[0], "noise_rate": parse_condition(condition)[1],
        "train_rows": len(train), "val_rows": len(val), "noisy_rows": int(is_noisy.sum()),
        "realised_noise_rate": float(is_noisy.mean()), "k_auto": k_auto,
        "scores": {name: detection_metrics(values, is_noisy, k_auto=k_auto) for name, values in scores.items()},
    }  # fmt: skip
    with torch.no_grad():
        test_x = torch.from_numpy(x_test)
        for kind, run in runs.items():
            pred = run["model"](pixel_values=test_x)["logits"].argmax(-1).numpy()
            record[f"{kind}_test_accuracy"] = float((pred == y_test).mean())
            record[f"{kind}_train_seconds"] = run["seconds"]
    record["lilaw_parameters"] = {k: float(v) for k, v in runs["lilaw"]["trainer"].lilaw_parameters().items()}
    record["wall_seconds"] = time.perf_counter() - wall
    record["threads"] = torch.get_num_threads()
    script = os.path.relpath(sys.argv[0], Path(__file__).resolve().parent.parent)
    record["command"] = "python " + " ".join([script, *sys.argv[1:]])
    return record


# ------------------------------------------------------------------------------------------------ summary

METRICS = {  # name in the tables -> how to read it off a score's entry
    "AUROC": lambda e: e["auroc"],
    "precision at k = oracle": lambda e: e["at_oracle"]["precision"],
    "precision at k = auto": lambda e: e["at_auto"]["precision"],
}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per condition and score, the per-seed metrics (in %), and W_α against every other score (BH per metric)."""
    cells: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        cells[r["condition"]][r["seed"]] = r
    conditions = [c for c in CONDITIONS if c in cells] + sorted(set(cells) - set(CONDITIONS))
    scores = [s for s in SCORES if any(s in r["scores"] for r in records)]
    values: dict[tuple[str, str, str], dict[int, float]] = {}
    for c in conditions:
        for s in scores:
            for metric, read in METRICS.items():
                per_seed = {seed: 100 * read(r["scores"][s]) for seed, r in cells[c].items() if s in r["scores"]}
                values[(metric, c, s)] = {k: v for k, v in per_seed.items() if np.isfinite(v)}  # k_auto = 0: no value
    families: dict[str, list[dict[str, Any]]] = {}
    for metric in METRICS:
        entries = []
        for c in conditions:
            for s in scores:
                if s == REFERENCE:
                    continue
                if cmp := stats.paired_over_seeds(values[(metric, c, REFERENCE)], values[(metric, c, s)]):
                    entries.append({"condition": c, "score": s, "c": cmp})
        for e, adjusted in zip(entries, stats.adjust([e["c"] for e in entries])):
            e["c"] = adjusted
        families[metric] = entries
    seeds = sorted({r["seed"] for r in records})
    missing = [(c, s) for c in conditions for s in seeds if s not in cells[c]]
    return {"conditions": conditions, "scores": scores, "seeds": seeds, "cells": cells, "values": values,
            "families": families, "missing": missing}  # fmt: skip


def _mean_sd(values: Sequence[float], digits: int = 1) -> str:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "—"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else f"{v[0]:.{digits}f}"


def pairing(records: list[dict[str, Any]], reference: list[dict[str, Any]]) -> str:
    """Whether each training reproduced the `benchmarks/fashion_mnist.py` run of its condition and seed (same
    split, noise, initial weights and batch order): equal test accuracy (and for LiLAW equal final α, β, δ)."""
    by = {(r["condition"], r["seed"], r["method"]): r for r in reference}
    counts = {"lilaw": [0, 0], "ce": [0, 0]}
    for r in records:
        for kind in counts:
            other = by.get((r["condition"], r["seed"], kind))
            if other is None:
                continue
            counts[kind][1] += 1
            same = other["last_test_accuracy"] == r[f"{kind}_test_accuracy"]
            if kind == "lilaw":
                same = same and other.get("lilaw_parameters") == r["lilaw_parameters"]
            counts[kind][0] += same
    if not any(total for _, total in counts.values()):
        return ""
    return (f"Paired with `{PAIRED_WITH}_runs.jsonl` (LiLAW and CE there, same condition and seed): LiLAW's test "
            f"accuracy and final α, β, δ equal in {counts['lilaw'][0]} of {counts['lilaw'][1]} runs, the CE run's "
            f"(`ELRTrainer(elr_lambda=0)` here, `Trainer` with cross-entropy there) test accuracy in "
            f"{counts['ce'][0]} of {counts['ce'][1]}.")


def report(records: list[dict[str, Any]], reference: list[dict[str, Any]] = ()) -> str:
    s = summarise(records)
    conditions, scores, cells, values = s["conditions"], s["scores"], s["cells"], s["values"]
    first = records[0]
    lines = [
        "# Fashion-MNIST, the linear probe on the frozen EfficientNet-Lite0: finding the mislabelled rows", "",
        f"Command: `{first['command']}`. Records: `{NAME}_runs.jsonl` ({len(records)} runs, one per condition and "
        f"seed; seeds {s['seeds']}). Summary: `python benchmarks/fashion_mnist_detection.py --summary`.", "",
        f"Settings: `{json.dumps(first['settings'])}`; {first['train_rows']:,} training rows scored, "
        f"{first['val_rows']:,} validation rows (noisy; LiLAW's meta set). Scores, higher = more likely "
        "mislabelled: " + "; ".join(f"`{k}` {v}" for k, v in LABELS.items() if k in scores) + ". The CE run is "
        "`ELRTrainer(elr_lambda=0)`: cross-entropy through a trainer that feeds the recorder.", "",
    ]  # fmt: skip
    if line := pairing(records, list(reference)):
        lines += [line, ""]
    if s["missing"]:
        lines += [f"**{len(s['missing'])} runs missing** (condition, seed): {s['missing']}", ""]
    lines += ["## Detection, mean ± sd over seeds (%)", "",
              "k = oracle: each score flags its top k rows, k the true number of noisy training rows (precision = "
              "recall there). k = auto: its top k, k the number `find_label_issues(dynamics=<LiLAW run>)` flags by "
              "default (W_α's automatic split), so every score flags as many rows as W_α does.", ""]  # fmt: skip
    for c in conditions:
        runs = cells[c].values()
        k_auto = [r["k_auto"] for r in runs]
        share = _mean_sd([100 * r["k_auto"] / r["train_rows"] for r in runs])
        none = sum(k == 0 for k in k_auto)
        refused = f"; W_α's automatic split flagged nothing in {none} of {len(k_auto)} seeds" if none else ""
        lines += [f"### {c} ({_mean_sd([100 * r['realised_noise_rate'] for r in runs])} % of the training rows noisy; "
                  f"k = auto: {min(k_auto):,}–{max(k_auto):,} rows, {share} %{refused})", ""]  # fmt: skip
        rows = []
        for sc in scores:
            entries = [r["scores"][sc] for r in runs if sc in r["scores"]]
            own = [e["auto_split"] for e in entries]
            rows.append([LABELS.get(sc, sc), *(_mean_sd(values[(m, c, sc)].values()) for m in METRICS),
                         _mean_sd([100 * e["at_auto"]["recall"] for e in entries]),
                         _mean_sd([100 * e["auprc"] for e in entries]),
                         _mean_sd([100 * o["fraction"] for o in own]), _mean_sd([100 * o["precision"] for o in own]),
                         _mean_sd([100 * o["recall"] for o in own])])  # fmt: skip
        lines += [markdown_table(["score", "AUROC", "precision = recall @ k oracle", "precision @ k auto", "recall @ k auto",
                          "AUPRC", "own automatic split: flagged", "its precision", "its recall"], rows), ""]  # fmt: skip
    marks = ("Each cell: W_α minus that score, mean paired difference over seeds in points [95 % t interval]; ‡: "
             "Benjamini–Hochberg-adjusted p < 0.05 over this table, †: unadjusted p < 0.05 only.")
    for metric, entries in s["families"].items():
        by = {(e["condition"], e["score"]): e["c"] for e in entries}
        others = [sc for sc in scores if sc != REFERENCE]
        rows = [[LABELS.get(sc, sc), *(stats.format_interval(by[(c, sc)], digits=2) if (c, sc) in by else "—"
                                       for c in conditions)] for sc in others]  # fmt: skip
        significant = sum(e["c"].p_table < 0.05 for e in entries)
        lines += [f"## W_α against the other scores: {metric}", "", marks, "",
                  f"{len(entries)} comparisons, {significant} with BH-adjusted p < 0.05.", "",
                  markdown_table(["W_α minus", *conditions], rows), ""]  # fmt: skip
    rows = [[c, *(_mean_sd([100 * r[f"{k}_test_accuracy"] for r in cells[c].values()]) for k in ("lilaw", "ce")),
             f"{np.median([r['lilaw_train_seconds'] for r in cells[c].values()]):.0f} / "
             f"{np.median([r['ce_train_seconds'] for r in cells[c].values()]):.0f}"] for c in conditions]  # fmt: skip
    lines += ["## The trainings", "", "Test accuracy (%) at the last epoch, and median training seconds.", "",
              markdown_table(["condition", "LiLAW test", "CE test", "s LiLAW / CE"], rows), ""]  # fmt: skip
    rows = []
    for metric, entries in s["families"].items():
        for e in entries:
            c = e["c"]
            rows.append([metric, e["condition"], LABELS.get(e["score"], e["score"]), c.n, f"{c.mean:+.2f}",
                         f"[{c.low:+.2f}, {c.high:+.2f}]", stats.format_p(c.p), stats.format_p(c.p_adjusted),
                         f"{c.detectable:.2f}", stats.reading(c, digits=2)])  # fmt: skip
    lines += ["<details><summary>Every comparison</summary>", "",
              "detectable: the smallest true difference the paired t-test finds with 80 % power at the observed "
              "spread.", "",
              markdown_table(["metric", "condition", "W_α minus", "seeds", "Δ (points)", "95 % CI", "p", "p (BH)",
                      "detectable", "reading"], rows), "", "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def write_summary(records: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    if not records:
        raise ValueError(f"No records in {out_dir / f'{NAME}_runs.jsonl'}: run the grid first.")
    s = summarise(records)
    data = {
        "settings": records[0]["settings"], "seeds": s["seeds"], "missing": s["missing"],
        "means": {f"{metric}/{c}/{sc}": float(np.mean(list(v.values()))) if v else None
                  for (metric, c, sc), v in s["values"].items()},
        "w_alpha_minus": {metric: [{"condition": e["condition"], "score": e["score"], **e["c"].as_dict(),
                                    "reading": stats.reading(e["c"], digits=2)} for e in entries]
                          for metric, entries in s["families"].items()},
    }  # fmt: skip
    paths = {"md": out_dir / f"{NAME}.md", "json": out_dir / f"{NAME}.json"}
    text = report(records, grid.read_records(out_dir / f"{PAIRED_WITH}_runs.jsonl"))
    paths["md"].write_text(text)
    paths["json"].write_text(json.dumps(data, indent=1) + "\n")
    print(text)
    return paths


# ------------------------------------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--data-dir", help="Folder of the IDX files (the labels; default: hf_lilaw's search).")
    parser.add_argument("--out-dir", default=str(RESULTS))
    grid.add_grid_arguments(parser)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    runs_path = out_dir / f"{NAME}_runs.jsonl"
    if args.summary:
        write_summary(grid.read_records(runs_path), out_dir)
        return 0
    if args.workers:
        raise SystemExit("--workers is not supported here: run shards (--shard i/n) in separate processes.")
    for c in args.conditions:
        parse_condition(c)
    import datasets
    import torch
    import transformers

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    load_features(args.data_dir)  # fail before the first run
    # Seeds outermost: with a deadline, every condition has the same seeds done.
    cells = grid.expand({"seed": args.seeds, "condition": args.conditions})
    grid.run_grid(cells, lambda cell: run_one(cell, data_dir=args.data_dir), runs_path, shard=args.shard,
                  max_minutes=args.max_minutes, log=lambda m: print(m, flush=True))  # fmt: skip
    write_summary(grid.read_records(runs_path), out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
