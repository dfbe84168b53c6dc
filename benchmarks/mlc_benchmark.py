"""Meta label correction against CE: clean-set size x noise x recipe, paired over seeds, on two models.

    # the digits MLP and the pretrained EfficientNet-Lite0 linear probe (each grid: 2 recipes x 4 clean-set sizes x
    # 4 noise conditions x 6 methods x 5 seeds; --seeds splits a grid across processes)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_digits_cpu.json --grid full
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_effnet_probe_cpu.json --grid full
    # one table per config, then the table and plot over both: where a clean set pays
    .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_digits_cpu.json --report
    .venv/bin/python benchmarks/mlc_benchmark.py --summary benchmarks/configs/mlc_digits_cpu.json \
        benchmarks/configs/mlc_effnet_probe_cpu.json --name mlc_clean_set
    # fair baselines (CE on train ∪ clean, CE on the clean rows alone; the MLC records above are reused), their table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_digits_cpu.json --grid fair_baselines
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_effnet_probe_cpu.json --grid fair_baselines
    .venv/bin/python benchmarks/mlc_benchmark.py --fair benchmarks/configs/mlc_digits_cpu.json \
        benchmarks/configs/mlc_effnet_probe_cpu.json                                  # mlc_fair_baselines.md/.json
    # clean labels, clean batch 8-64 (a grid's "clean_batch_sizes"), and its table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_digits_clean_batch_cpu.json --grid sweep ungated
    .venv/bin/python benchmarks/mlc_benchmark.py --config benchmarks/configs/mlc_digits_clean_batch_cpu.json --report

Every run appends one JSON record to ``benchmarks/results/mlc/<config name>_runs.jsonl`` (runs already there are
skipped, so an interrupted grid continues). ``--report`` reads the records and writes
``benchmarks/results/mlc/<config name>.md``: test accuracy at the last epoch, mean ± std over seeds, and the paired
difference to CE on the same seed, data split, noise draw and initial weights with a two-sided paired t-test.

Data, model and splits are the accuracy grid's (``benchmarks/training.py``): scikit-learn digits, 20 % test, 15 % of
the rest as the meta split from which the class-balanced clean set is drawn (true labels); CE trains on the
training rows only, the MLC family on the same rows plus the clean set; the fair baselines (``ce_union``,
``ce_clean``, see `fair_baseline_data`) see the clean rows too. Recipes:

- ``default``: what `transformers.Trainer` users run: AdamW, linear decay to 0, gradient clipping at 1.0.
- ``authors``: MLC's released recipe: SGD with momentum 0.9 and weight decay 5e-4, constant learning rate, no
  clipping.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import baselines, grid, stats
from benchmarks.common import RESULTS_DIR, LastValue, TensorRows, command_line, image_collator, load_config
from benchmarks.common import former_defaults_mlc_config, markdown_table, offline_environment, predict_logits
from benchmarks.features import feature_cache, to_features
from benchmarks.training import load_base as load_splits
from benchmarks.training import new_model, prepare_cell, resolve_config

import numpy as np
import torch

# method -> (mlc_method or None for CE, extra MetaLabelCorrectionConfig fields)
METHODS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "ce": (None, {}),
    "mlc": ("mlc", {}),  # skip gate on
    "mlc_nogate": ("mlc", {"mlc_skip_gate": False}),
    "ebomlc": ("ebomlc", {"mlc_skip_gate": False}),  # the paper's EBOMLC (the library's default under SGD)
    "ebomlc_gate": ("ebomlc", {"mlc_skip_gate": True}),  # the library's default under AdamW
    "ebomlc_released": ("ebomlc", {"mlc_ebomlc_variant": "released"}),
    "mlc_d": ("mlc_d", {}),
    "ce_union": (None, {}),  # fair baseline: CE on the training rows and the clean rows (oversampled)
    "ce_clean": (None, {}),  # fair baseline: CE on the clean rows alone
}
# CE that sees the clean rows the MLC family gets, on the MLC run's schedule (`fair_baseline_data`).
FAIR_BASELINES = ("ce_union", "ce_clean")


def training_args(cfg: dict[str, Any], recipe: str, seed: int, output_dir: str) -> dict[str, Any]:
    t = cfg["training"]
    values = dict(
        output_dir=output_dir, per_device_train_batch_size=t["batch_size"], num_train_epochs=t["epochs"],
        seed=seed, save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False, logging_steps=10**6,
    )  # fmt: skip
    values.update(cfg["recipes"][recipe])
    return values


def clean_stats(trainer: Any, cell: Any) -> dict[str, float]:
    """How the meta model corrects every training row (its argmax vs the true label), through public API only."""
    from hf_lilaw.mlc import PenultimateFeatures

    model, meta_model = trainer.model, trainer.meta_model
    features = PenultimateFeatures(model)
    x, noisy, true = (cell.train.columns[k] for k in ("pixel_values", "label", "clean_label"))
    model.eval()
    meta_model.eval()
    with torch.no_grad(), features.capturing():
        model(pixel_values=x)
        probs = meta_model(features.pop(), noisy)
    return {
        "corrected_is_true": float((probs.argmax(1) == true).float().mean()),
        "corrected_max_prob": float(probs.max(1).values.mean()),
    }


_CELL = LastValue()  # the last cell's splits and noise: the methods of one cell run one after another


def load_base(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """The seed's splits; with a ``features`` entry, the pixels replaced by the frozen backbone's pooled features
    (a linear probe), computed once per image and kept under ``feature_cache`` when the config names one."""
    base = load_splits(cfg, seed, None)
    spec = cfg.get("features")
    if not spec:
        return base
    path = Path(cfg["feature_cache"]) if cfg.get("feature_cache") else None
    return to_features(base, feature_cache(spec, "cpu", path=path))


def fair_baseline_data(method: str, cell: Any, values: dict[str, Any], clean_batch: int) -> Any:
    """The training rows of a fair CE baseline; sets its batch size and step count in ``values``.

    Both run exactly the MLC run's number of optimizer steps (epochs × batches of the training rows), and every
    step sees the clean rows that an MLC step sees (``clean_batch`` of them, its clean batch). ``ce_union``: the
    training rows plus the clean rows repeated ``k = round(clean_batch × batches per epoch / clean rows)`` times
    (at least once), in batches of ``batch + clean_batch``, so that a step holds on average the MLC step's
    ``batch`` training rows and ``clean_batch`` clean rows. ``ce_clean``: the clean rows alone, in batches of
    ``clean_batch``.
    """
    batch = values["per_device_train_batch_size"]
    per_epoch = -(-len(cell.train) // batch)
    values["max_steps"] = int(values["num_train_epochs"] * per_epoch)
    if method == "ce_clean":
        values["per_device_train_batch_size"] = clean_batch
        return cell.clean
    repeats = max(1, round(clean_batch * per_epoch / len(cell.clean)))
    values["per_device_train_batch_size"] = batch + clean_batch
    train, clean = cell.train.columns, cell.clean.columns
    return TensorRows({k: torch.cat([train[k]] + [clean[k].to(train[k].dtype)] * repeats) for k in train})


def run_one_method(cfg: dict[str, Any], method: str, recipe: str, clean_fraction: float, noise: str, rate: float,
            seed: int, *, clean_batch_size: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One run; ``clean_batch_size`` overrides the config's clean batch (``None``: the config's)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from hf_lilaw.mlc import MetaLabelCorrectionTrainer

    cell_cfg = copy.deepcopy(cfg)
    cell_cfg["clean_fraction"] = clean_fraction
    cell = _CELL.get((cfg["name"], clean_fraction, noise, rate, seed),
                     lambda: prepare_cell(cell_cfg, load_base(cell_cfg, seed), noise, rate, seed))  # fmt: skip
    model = new_model(cell_cfg, cell, seed)
    mlc_method, extra = METHODS[method]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = training_args(cfg, recipe, seed, tmp)
        requested = clean_batch_size or cfg["clean_batch_size"]
        clean_bs = min(requested or values["per_device_train_batch_size"], len(cell.clean))
        if mlc_method is None:
            train = cell.train
            if method in FAIR_BASELINES:
                train = fair_baseline_data(method, cell, values, clean_bs)
            trainer = Trainer(model=model, args=TrainingArguments(**values), data_collator=image_collator,
                              train_dataset=train, compute_loss_func=baselines.make_loss("cross_entropy"))  # fmt: skip
        else:
            args = former_defaults_mlc_config(**values, mlc_method=mlc_method, mlc_clean_batch_size=clean_bs, **extra)
            trainer = MetaLabelCorrectionTrainer(model=model, args=args, data_collator=image_collator,
                                                 train_dataset=cell.train, clean_dataset=cell.clean)  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logits, labels = predict_logits(model, cell.test.batches("pixel_values", 512), torch.device("cpu"))
    record = {
        "config": cfg["name"], "method": method, "recipe": recipe, "clean_fraction": clean_fraction,
        "clean_rows": len(cell.clean), "train_rows": len(cell.train), "noise": noise, "rate": rate,
        "realised_rate": cell.realised_rate, "seed": seed, "steps": trainer.state.global_step,
        "test_accuracy": float((logits.argmax(1) == labels).mean()), "train_seconds": seconds,
    }  # fmt: skip
    if clean_batch_size is not None:
        record["clean_batch_size"] = clean_batch_size
    if mlc_method is not None or method in FAIR_BASELINES:
        record.update(clean_batch=clean_bs, batch_size=values["per_device_train_batch_size"])
    if method == "ce_union":
        record["union_rows"] = len(train)
    if mlc_method is not None:
        record.update(clean_stats(trainer, cell))
    return record


def runs_path(cfg: dict[str, Any], out_dir: str) -> Path:
    return Path(out_dir) / f"{cfg['name']}_runs.jsonl"


def grid_cells(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A named grid of the config as `benchmarks.grid` cells, seeds outermost (an interrupted grid is a complete
    grid over fewer seeds). ``clean_batch_sizes``: a sweep over the clean batch (its records carry
    ``clean_batch_size``); without it the field is ``None`` and the config's clean batch is used."""
    return [{"seed": seed, "recipe": recipe, "clean_fraction": fraction, "noise": noise, "rate": rate,
             "clean_batch_size": batch, "method": method}
            for seed in spec["seeds"] for recipe in spec["recipes"] for fraction in spec["clean_fractions"]
            for noise, rate in spec["conditions"] for batch in spec.get("clean_batch_sizes", [None])
            for method in spec["methods"]]  # fmt: skip


def run_grid(cfg: dict[str, Any], spec: dict[str, Any], out_dir: str) -> None:
    path = runs_path(cfg, out_dir)

    def run_one(cell: dict[str, Any]) -> dict[str, Any]:
        # CE does not see the clean set: one CE run per (recipe, condition, seed), filed under every fraction.
        record = None
        if cell["method"] == "ce":
            twin = next((r for r in grid.read_records(path) if r["method"] == "ce" and r["recipe"] == cell["recipe"]
                         and r["noise"] == cell["noise"] and r["rate"] == cell["rate"] and r["seed"] == cell["seed"]),
                        None)  # fmt: skip
            if twin is not None:
                record = dict(twin, clean_fraction=cell["clean_fraction"], clean_rows=None)
                record.pop("clean_batch_size", None)
        if record is None:
            record = run_one_method(cfg, cell["method"], cell["recipe"], cell["clean_fraction"], cell["noise"],
                                    cell["rate"], cell["seed"], clean_batch_size=cell["clean_batch_size"])  # fmt: skip
        record["command"] = command_line()
        return record

    grid.run_grid(grid_cells(spec), run_one, path, log=lambda m: print(m, flush=True))


def report(cfg: dict[str, Any], out_dir: str) -> Path:
    runs = grid.read_records(runs_path(cfg, out_dir))
    if any(r.get("clean_batch_size") is not None for r in runs):
        return clean_batch_report(cfg, runs, out_dir)
    groups: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in runs:
        groups[(r["recipe"], r["clean_fraction"], r["noise"], r["rate"], r["method"])][r["seed"]] = r
    rows = []
    order = list(METHODS)
    # CE never sees the clean set (its record is filed under every fraction): take the size from an MLC run.
    clean_rows = {r["clean_fraction"]: r["clean_rows"] for r in runs if r["method"] != "ce"}
    for (recipe, fraction, noise, rate, method), by_seed in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3], order.index(kv[0][4]))
    ):
        accs = np.array([100 * by_seed[s]["test_accuracy"] for s in sorted(by_seed)])
        cell = f"{accs.mean():.1f} ± {accs.std(ddof=1) if len(accs) > 1 else 0:.1f}"
        ce = groups.get((recipe, fraction, noise, rate, "ce"), {})
        c = None if method == "ce" else stats.paired_over_seeds(
            {s: 100 * r["test_accuracy"] for s, r in by_seed.items()}, {s: 100 * r["test_accuracy"] for s, r in ce.items()})
        delta, p = ("", "") if c is None else (f"{c.mean:+.1f}", f"{c.p:.3g}")
        any_run = next(iter(by_seed.values()))
        corrected = ""
        if "corrected_is_true" in any_run:
            corrected = f"{100 * np.mean([r['corrected_is_true'] for r in by_seed.values()]):.1f}"
        rows.append([recipe, f"{100 * fraction:.0f} % ({clean_rows.get(fraction, '?')})", f"{noise} {100 * rate:.0f} %",
                     method, len(accs), cell, delta, p, corrected])  # fmt: skip
    headers = ["recipe", "clean set (rows)", "noise", "method", "seeds", "test acc. %", "Δ vs CE", "p (paired t)",
               "corrected = true %"]  # fmt: skip
    text = "\n".join([
        f"# Meta label correction vs CE: `{cfg['name']}`",
        "",
        cfg["description"],
        "",
        "Recipes: " + "; ".join(f"`{k}` = {json.dumps(v)}" for k, v in cfg["recipes"].items()),
        "",
        "Test accuracy at the last epoch; Δ vs CE is the mean paired difference over the seeds both have (same split, "
        "noise draw and initial weights), p a two-sided paired t-test. `corrected = true` is the share of training "
        "rows whose corrected label (argmax of the meta model) is the true label.",
        "",
        markdown_table(headers, rows),
    ]) + "\n"  # fmt: skip
    out = Path(out_dir) / f"{cfg['name']}.md"
    out.write_text(text)
    print(text)
    return out


METHOD_LABELS = {"mlc": "MLC + gate", "mlc_nogate": "MLC", "ebomlc": "EBOMLC (spec)", "ebomlc_gate": "EBOMLC + gate",
                 "ebomlc_released": "EBOMLC (released)", "mlc_d": "MLC-D"}  # fmt: skip
CONDITION_ORDER = [("none", 0.0), ("uniform", 0.5), ("uniform", 0.7), ("asymmetric", 0.4)]


def paired_cells(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (recipe, clean fraction, condition, method): the paired difference to CE over the seeds both have."""
    groups: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in runs:
        groups[(r["recipe"], r["clean_fraction"], r["noise"], r["rate"], r["method"])][r["seed"]] = 100 * r["test_accuracy"]
    cells = []
    for (recipe, fraction, noise, rate, method), acc in groups.items():
        ce = groups.get((recipe, fraction, noise, rate, "ce"), {})
        c = None if method == "ce" else stats.paired_over_seeds(acc, ce)
        if c is None:
            continue
        seeds = sorted(set(acc) & set(ce))
        cells.append({"recipe": recipe, "clean_fraction": fraction, "noise": noise, "rate": rate, "method": method,
                      "seeds": c.n, "acc": float(np.mean([acc[s] for s in seeds])),
                      "ce": float(np.mean([ce[s] for s in seeds])), "delta": c.mean, "delta_se": float(c.sd / np.sqrt(c.n)),
                      "p": c.p})  # fmt: skip
    return cells


def _index(cells: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(c["recipe"], c["clean_fraction"], c["noise"], c["rate"], c["method"]): c for c in cells}


def _condition_rows(models: list[tuple], *, recipe: str | None = None):
    """The summary tables' row groups in table order: ``(model name, cells by key, recipe, noise, rate, CE
    accuracies)`` for every model, every recipe of its full grid (or only ``recipe``) and every condition."""
    for cfg, cells, _ in models:
        by = _index(cells)
        for r in [recipe] if recipe else cfg["grids"]["full"]["recipes"]:
            for noise, rate in CONDITION_ORDER:
                ce = [c["ce"] for c in cells if (c["recipe"], c["noise"], c["rate"]) == (r, noise, rate)]
                yield cfg["name"], by, r, noise, rate, ce


def _stars(cell: dict[str, Any] | None) -> str:
    return "" if cell is None else "‡" if cell["p"] < 0.01 else "†" if cell["p"] < 0.05 else ""


def summary(configs: list[str], out_dir: str, name: str) -> Path:
    """One table and one plot over several configs (models): where a clean set starts to pay, and how big it must be."""
    models = []
    for path in configs:
        cfg = load_config(path)
        runs = grid.read_records(runs_path(cfg, out_dir))
        full = cfg["grids"]["full"]
        methods = {m for grid in cfg["grids"].values() for m in grid["methods"]} - set(FAIR_BASELINES)
        runs = [r for r in runs if r["clean_fraction"] in full["clean_fractions"] and r["method"] in methods]
        models.append((cfg, paired_cells(runs), runs))
    lines = [f"# Where a clean set pays: meta label correction against CE (`{name}`)", ""]
    lines += [f"Command: `{command_line()}`", ""]
    for cfg, _, runs in models:
        seeds = sorted({r["seed"] for r in runs})
        lines.append(f"- `{cfg['name']}` ({len(runs)} runs, seeds {seeds}): {cfg['description']}")
    lines += ["", "Recipes: `default` = what `transformers.Trainer` runs (AdamW, linear decay, clipping 1.0); `authors` = "
              "MLC's released recipe (SGD, momentum 0.9, weight decay 5e-4, constant lr, no clipping). Each cell: the "
              "mean paired difference in test accuracy (points) to CE on the same seeds, splits, noise draw and "
              "initial weights; † p < 0.05, ‡ p < 0.01 (two-sided paired t-test). Bold: the best method of the "
              "cell when it beats CE with p < 0.05.", ""]  # fmt: skip
    fractions = sorted({c["clean_fraction"] for _, cells, _ in models for c in cells})
    headers = ["model", "recipe", "noise", "CE acc. %"] + [f"clean {100 * f:g} %" for f in fractions]
    rows = []
    for model, by, recipe, noise, rate, ce in _condition_rows(models):
        row = [model, recipe, f"{noise} {100 * rate:g} %", f"{np.mean(ce):.1f}" if ce else ""]
        for f in fractions:
            options = [by[k] for k in ((recipe, f, noise, rate, m) for m in METHOD_LABELS) if k in by]
            if not options:
                row.append("")
                continue
            best = max(options, key=lambda c: c["delta"])
            stars = _stars(best)
            text = f"{METHOD_LABELS[best['method']]} {best['delta']:+.1f}{stars}"
            row.append(f"**{text}**" if stars and best["delta"] > 0 else text)
        rows.append(row)
    lines += ["## Best method per cell (Δ vs CE, points)", "", markdown_table(headers, rows), ""]
    headers = ["model", "recipe", "noise", "method"] + [f"clean {100 * f:g} %" for f in fractions]
    rows = []
    for model, by, recipe, noise, rate, _ in _condition_rows(models):
        for m, label in METHOD_LABELS.items():
            cs = [by.get((recipe, f, noise, rate, m)) for f in fractions]
            if not any(cs):
                continue
            row = [model, recipe, f"{noise} {100 * rate:g} %", label]
            for c in cs:
                row.append("" if c is None else f"{c['delta']:+.1f}{_stars(c)} (n={c['seeds']})")
            rows.append(row)
    lines += ["## Every method (Δ vs CE, points; n = seeds)", "", markdown_table(headers, rows), ""]
    sizes = " / ".join(f"{100 * f:g}" for f in fractions)
    for recipe in ("default", "authors"):
        methods = [m for m in METHOD_LABELS if any(c["method"] == m and c["recipe"] == recipe
                                                   for _, cells, _ in models for c in cells)]  # fmt: skip
        headers = ["model", "noise", "CE acc. %"] + [f"{METHOD_LABELS[m]} ({sizes} % clean)" for m in methods]
        rows = []
        for model, by, _, noise, rate, ce in _condition_rows(models, recipe=recipe):
            if not ce:
                continue
            row = [model, f"{noise} {100 * rate:g} %", f"{np.mean(ce):.1f}"]
            for m in methods:
                parts = []
                for f in fractions:
                    c = by.get((recipe, f, noise, rate, m))
                    parts.append("–" if c is None else f"{c['delta']:+.1f}{_stars(c)}")
                row.append(" / ".join(parts))
            rows.append(row)
        lines += [f"## Recipe `{recipe}`: Δ vs CE by clean-set size", "", markdown_table(headers, rows), ""]
    out = Path(out_dir) / f"{name}.md"
    out.write_text("\n".join(lines))
    (Path(out_dir) / f"{name}.json").write_text(json.dumps({cfg["name"]: cells for cfg, cells, _ in models}, indent=1))
    plot_summary(models, fractions, Path(out_dir) / f"{name}.png")
    print(out.read_text())
    return out


def plot_summary(models: list[tuple], fractions: list[float], path: Path) -> Path:
    from matplotlib.figure import Figure

    panels = [(cfg, cells, recipe) for cfg, cells, _ in models for recipe in cfg["grids"]["full"]["recipes"]]
    fig = Figure(figsize=(4.0 * len(CONDITION_ORDER), 3.2 * len(panels) + 0.8))
    axes = fig.subplots(len(panels), len(CONDITION_ORDER), squeeze=False, sharex=True)
    x = [100 * f for f in fractions]
    for row, (cfg, cells, recipe) in enumerate(panels):
        by = _index(cells)
        for col, (noise, rate) in enumerate(CONDITION_ORDER):
            ax = axes[row][col]
            ax.axhline(0.0, color="black", linewidth=0.8)
            for i, (m, label) in enumerate(METHOD_LABELS.items()):
                pts = [(100 * f, by[k]["delta"], by[k]["delta_se"]) for f in fractions
                       if (k := (recipe, f, noise, rate, m)) in by]  # fmt: skip
                if pts:
                    xs, ys, es = zip(*pts)
                    ax.errorbar(xs, ys, yerr=es, marker="os^vDP"[i], capsize=2, color=f"C{i}", label=label)
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{v:g}" for v in x])
            ax.set_title(f"{cfg['name']}, {recipe}: {noise} {100 * rate:g} %", fontsize=8)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("Δ test acc. vs CE (points)")
            if row == len(panels) - 1:
                ax.set_xlabel("clean set (% of the training rows)")
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend), fontsize=8)
    fig.suptitle("Meta label correction minus CE, mean ± s.e. of the paired difference over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


# ------------------------------------------------------------------------------------------------ fair baselines


def _compare(a: list[float], b: list[float]) -> dict[str, Any]:
    """`stats.paired_difference` as a record (its fields; ``p_adjusted`` is set per table by `_adjust`)."""
    return stats.paired_difference(a, b).as_dict()


def _adjust(cells: list[dict[str, Any]]) -> None:
    """Benjamini–Hochberg over ``cells`` (one table's comparisons), in place."""
    for c, q in zip(cells, stats.benjamini_hochberg(c["p"] for c in cells)):
        c["p_adjusted"] = float(q)


def _comparison(cell: dict[str, Any]) -> stats.PairedComparison:
    return stats.PairedComparison(**{f.name: cell[f.name] for f in dataclasses.fields(stats.PairedComparison)})


def interval(cell: dict[str, Any]) -> str:
    return stats.format_interval(_comparison(cell))


def verdict(cell: dict[str, Any]) -> str:
    return stats.reading(_comparison(cell))


FAIR_METHODS = {"mlc": "MLC (gate on)", "ebomlc_gate": "EBOMLC (default: gate on under AdamW)"}
FAIR_REFERENCES = {"ce": "CE (train only)", "ce_union": "CE on train ∪ clean", "ce_clean": "CE on clean only"}


def fair_comparisons(runs: list[dict[str, Any]], recipe: str = "default") -> list[dict[str, Any]]:
    """Every (condition, clean fraction, MLC-family method, CE baseline) paired over the seeds both have, with
    Benjamini–Hochberg over all of them; then the fair baselines against CE (BH over those)."""
    acc: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in runs:
        if r["recipe"] == recipe and r.get("clean_batch_size") is None:
            acc[(r["noise"], r["rate"], r["clean_fraction"], r["method"])][r["seed"]] = 100 * r["test_accuracy"]
    fractions = sorted({k[2] for k in acc})
    families: dict[str, list[dict[str, Any]]] = {"mlc_family": [], "baselines": []}
    pairs = [("mlc_family", m, ref) for m in FAIR_METHODS for ref in FAIR_REFERENCES]
    pairs += [("baselines", m, "ce") for m in FAIR_BASELINES]
    for noise, rate in CONDITION_ORDER:
        for f in fractions:
            for family, method, ref in pairs:
                a, b = acc.get((noise, rate, f, method), {}), acc.get((noise, rate, f, ref), {})
                seeds = sorted(set(a) & set(b))
                if len(seeds) < 2:
                    continue
                c = _compare([a[s] for s in seeds], [b[s] for s in seeds])
                families[family].append({
                    "family": family, "noise": noise, "rate": rate, "clean_fraction": f, "method": method,
                    "reference": ref, "acc": float(np.mean([a[s] for s in seeds])),
                    "reference_acc": float(np.mean([b[s] for s in seeds])), **c,
                })  # fmt: skip
    for cells in families.values():
        _adjust(cells)
    return families["mlc_family"] + families["baselines"]


def fair_report(configs: list[str], out_dir: str, name: str) -> Path:
    """MLC and EBOMLC (the library's former MLC defaults, the default recipe) against CE, CE on train ∪ clean and CE
    on the clean rows alone: one table per model, BH over each model's comparisons."""
    lines = [f"# The MLC family against baselines that see the clean rows (`{name}`)", "",
             f"Command: `{command_line()}`", "",
             "Recipe `default` (AdamW, linear decay, clipping 1.0). Baselines, all plain cross-entropy with the MLC "
             "run's number of optimizer steps: **CE** on the noisy training rows only (the README's baseline); "
             "**CE on train ∪ clean**: the training rows plus the clean rows repeated k = round(c × batches per "
             "epoch / clean rows) times, in batches of B + c, so that every step sees on average B training rows "
             "and c clean rows as an MLC step does (B the batch, c the MLC clean batch = min(B, clean rows)); "
             "**CE on clean only**: the clean rows alone in batches of c. Δ = method − baseline in test-accuracy "
             "points at the last epoch, mean over 5 paired seeds (same split, noise draw, clean set and initial "
             "weights) with its 95 % t interval; ‡: Benjamini–Hochberg-adjusted p < 0.05 over the model's MLC-family "
             "comparisons (two-sided paired t-tests), †: unadjusted p < 0.05 only. Where nothing is marked, no "
             "effect larger than the interval's largest magnitude was detected (the reading column of the full "
             "list says so for each comparison). Statistics: `benchmarks/stats.py`.", ""]  # fmt: skip
    out: dict[str, Any] = {}
    for path in configs:
        cfg = load_config(path)
        runs = grid.read_records(runs_path(cfg, out_dir))
        cells = fair_comparisons(runs)
        out[cfg["name"]] = cells
        rows_of = {r["clean_fraction"]: r["clean_rows"] for r in runs if r.get("clean_rows")}
        mlc = [c for c in cells if c["family"] == "mlc_family"]
        lines += [f"## `{cfg['name']}`", "", cfg["description"], "",
                  f"{len(mlc)} comparisons; {sum(c['p_adjusted'] < 0.05 for c in mlc)} with BH-adjusted p < 0.05.", ""]
        by = {(c["noise"], c["rate"], c["clean_fraction"], c["method"], c["reference"]): c for c in cells}
        keys = sorted({(c["noise"], c["rate"], c["clean_fraction"]) for c in cells},
                      key=lambda k: (CONDITION_ORDER.index(k[:2]), k[2]))  # fmt: skip
        headers = ["noise", "clean set (rows)", *(f"{v} %" for v in FAIR_REFERENCES.values()),
                   *(f"{v} %" for v in FAIR_METHODS.values())]  # fmt: skip
        headers += [f"{FAIR_METHODS[m].split(' ')[0]} − {FAIR_REFERENCES[ref]}" for m in FAIR_METHODS
                    for ref in FAIR_REFERENCES]  # fmt: skip
        rows = []
        for noise, rate, f in keys:
            ref_cells = [by.get((noise, rate, f, "mlc", ref)) for ref in FAIR_REFERENCES]
            acc = [f"{c['reference_acc']:.1f}" if c else "" for c in ref_cells]
            acc += [f"{c['acc']:.1f}" if (c := by.get((noise, rate, f, m, "ce"))) else "" for m in FAIR_METHODS]
            deltas = [interval(c) if (c := by.get((noise, rate, f, m, ref))) else "" for m in FAIR_METHODS
                      for ref in FAIR_REFERENCES]  # fmt: skip
            rows.append([f"{noise} {100 * rate:g} %", f"{100 * f:g} % ({rows_of.get(f, '?')})", *acc, *deltas])
        lines += [markdown_table(headers, rows), ""]
        base = [c for c in cells if c["family"] == "baselines"]
        if base:
            lines += [f"Fair baselines against CE (BH over these {len(base)}):", ""]
            headers = ["noise", "clean set"] + [f"{FAIR_REFERENCES[m]} − CE" for m in FAIR_BASELINES]
            rows = []
            for noise, rate, f in keys:
                row = [f"{noise} {100 * rate:g} %", f"{100 * f:g} %"]
                row += [interval(c) if (c := by.get((noise, rate, f, m, "ce"))) else "" for m in FAIR_BASELINES]
                rows.append(row)
            lines += [markdown_table(headers, rows), ""]
        headers = ["noise", "clean set", "method", "baseline", "seeds", "Δ", "95 % CI", "p", "p (BH)",
                   "detectable (80 % power)", "reading"]  # fmt: skip
        rows = [[f"{c['noise']} {100 * c['rate']:g} %", f"{100 * c['clean_fraction']:g} %",
                 FAIR_METHODS.get(c["method"], FAIR_REFERENCES.get(c["method"])), FAIR_REFERENCES[c["reference"]],
                 c["n"], f"{c['mean']:+.2f}", f"[{c['low']:+.2f}, {c['high']:+.2f}]", stats.format_p(c["p"]),
                 stats.format_p(c["p_adjusted"]), f"{c['detectable']:.1f}", verdict(c)] for c in cells]  # fmt: skip
        lines += ["<details><summary>Every comparison</summary>", "", markdown_table(headers, rows), "", "</details>", ""]
    path = Path(out_dir) / f"{name}.md"
    path.write_text("\n".join(lines))
    (Path(out_dir) / f"{name}.json").write_text(json.dumps(out, indent=1))
    print(path.read_text())
    return path


def clean_batch_report(cfg: dict[str, Any], runs: list[dict[str, Any]], out_dir: str) -> Path:
    """A clean-batch sweep: every method against CE per (recipe, condition, clean fraction, clean batch), paired
    over seeds, BH over the table."""
    acc: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in runs:
        k = (r["recipe"], r["noise"], r["rate"], r["clean_fraction"], r["clean_batch_size"], r["method"])
        acc[k][r["seed"]] = 100 * r["test_accuracy"]
    rows_of = {r["clean_fraction"]: r["clean_rows"] for r in runs if r.get("clean_rows")}
    cells = []
    order = list(METHODS)
    for k, a in sorted(acc.items(), key=lambda kv: (*kv[0][:5], order.index(kv[0][5]))):
        b = acc.get((*k[:5], "ce"), {})
        seeds = sorted(set(a) & set(b))
        if k[5] == "ce" or len(seeds) < 2:
            continue
        c = _compare([a[s] for s in seeds], [b[s] for s in seeds])
        cells.append({"recipe": k[0], "noise": k[1], "rate": k[2], "clean_fraction": k[3], "clean_batch_size": k[4],
                      "method": k[5], "acc": float(np.mean([a[s] for s in seeds])),
                      "ce": float(np.mean([b[s] for s in seeds])), **c})  # fmt: skip
    _adjust(cells)
    headers = ["recipe", "noise", "clean set (rows)", "clean batch (used)", "method", "seeds", "CE %", "method %",
               "Δ vs CE [95 % CI]", "p", "p (BH)", "reading"]  # fmt: skip
    rows = []
    for c in cells:
        size, batch = rows_of.get(c["clean_fraction"], "?"), c["clean_batch_size"]
        rows.append([c["recipe"], f"{c['noise']} {100 * c['rate']:g} %", f"{100 * c['clean_fraction']:g} % ({size})",
                     f"{batch} ({min(batch, size) if isinstance(size, int) else '?'})", c["method"], c["n"],
                     f"{c['ce']:.1f}", f"{c['acc']:.1f}", interval(c), stats.format_p(c["p"]),
                     stats.format_p(c["p_adjusted"]), verdict(c)])  # fmt: skip
    text = "\n".join([
        f"# Clean-batch sweep: `{cfg['name']}`", "", f"Command: `{command_line()}`", "", cfg["description"], "",
        "Recipes: " + "; ".join(f"`{k}` = {json.dumps(v)}" for k, v in cfg["recipes"].items()), "",
        "Test accuracy at the last epoch; Δ vs CE the mean paired difference (points) over the seeds with its 95 % t "
        "interval, p a two-sided paired t-test, BH-adjusted over this table (‡: adjusted p < 0.05; †: unadjusted p "
        "< 0.05 only; `benchmarks/stats.py`); where no difference is shown, the largest effect the interval leaves "
        "possible. The clean batch "
        "used is the requested one capped at the clean set's size.", "",
        markdown_table(headers, rows), "",
    ])  # fmt: skip
    out = Path(out_dir) / f"{cfg['name']}.md"
    out.write_text(text)
    (Path(out_dir) / f"{cfg['name']}.json").write_text(json.dumps(cells, indent=1))
    print(text)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).parent / "configs/mlc_digits_cpu.json"))
    parser.add_argument("--grid", nargs="*", default=[], help="Named grids of the config to run, in order.")
    parser.add_argument("--report", action="store_true", help="Write the tables from the records.")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR / "mlc"))
    parser.add_argument("--name", help="Name of the records and tables (default: the config's name).")
    parser.add_argument("--seeds", nargs="+", type=int, help="Run only these seeds of the grids (e.g. one process each).")
    parser.add_argument("--summary", nargs="+", metavar="CONFIG",
                        help="Write one table and plot over these configs' 'full' grids (named by --name).")
    parser.add_argument("--fair", nargs="+", metavar="CONFIG",
                        help="Write the MLC family against the fair CE baselines over these configs (named by --name).")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.summary, args.out_dir, args.name or "mlc_clean_set")
        return
    if args.fair:
        fair_report(args.fair, args.out_dir, args.name or "mlc_fair_baselines")
        return
    offline_environment(1)
    import datasets

    datasets.disable_progress_bars()
    raw = load_config(args.config)
    extra = ("recipes", "grids", "clean_batch_size", "feature_cache")
    cfg = resolve_config({k: v for k, v in raw.items() if k not in extra})
    cfg.update({k: raw.get(k) for k in extra})
    if args.name:
        cfg["name"] = args.name
    for name in args.grid:
        spec = dict(cfg["grids"][name])
        if args.seeds:
            spec["seeds"] = [s for s in spec["seeds"] if s in args.seeds]
        run_grid(cfg, spec, args.out_dir)
    if args.report:
        report(cfg, args.out_dir)


if __name__ == "__main__":
    main()
