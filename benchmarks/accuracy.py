"""Accuracy under label noise: methods × noise types × rates × seeds, same model, epochs and schedule for all.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/accuracy.py --config benchmarks/configs/digits_cpu.json

Every run is evaluated on the test split and on the (noisy) meta/validation split after every epoch. The
report gives test accuracy at the last epoch and at the epoch with the best noisy-validation accuracy
(early stopping by a noisy validation set, available to every method), mean ± std over seeds, and a
paired t-test of each method against plain cross-entropy over seeds (same seed = same split, same noisy
labels, same initial weights and data order; `benchmarks.stats`). Each run is a cell of a `benchmarks.grid`
grid and appends one record to ``<out>/accuracy_<name>_runs.jsonl`` as it finishes, so an interrupted grid
resumes where it stopped (``--fresh`` starts over; ``--shard i/n`` runs every n-th cell); ``--report-only``
rebuilds the tables and plots from that file.

The methods (``methods`` in the config) are `benchmarks.training`'s: ce, focal, gce, sce, lilaw, lilaw_detached,
lilaw_sce, lilaw_clean2, lilaw_noisy2, clean_only, prune_cleanlab, prune_small_loss, prune_onerun, ebomlc,
mlc_d, mlc.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import grid, stats
from benchmarks.common import RESULTS_DIR, LastValue, command_line, hardware_info, load_config, markdown_table
from benchmarks.common import mean_std, offline_environment, pct, write_json
from benchmarks.training import LILAW_METHODS, METHOD_LABELS, apply_overrides, condition_name, has_cleanlab, load_base
from benchmarks.training import prepare_cell, resolve_config, run_method, transforms_model

import numpy as np

logger = logging.getLogger("benchmarks.accuracy")


# ------------------------------------------------------------------------------------------------ grid


def conditions(cfg: dict[str, Any]) -> list[tuple[str, float]]:
    """Table columns: the clean condition, then every (noise type, rate > 0), plus ``extra_conditions``."""
    rates = sorted(set(cfg["rates"]))
    out = [("none", 0.0)] if 0 in rates else []
    extra = [(t, float(r)) for t, r in cfg.get("extra_conditions", [])]
    for t in cfg["noise_types"]:
        out += sorted({(t, float(r)) for r in rates if r != 0} | {(e, r) for e, r in extra if e == t}, key=lambda c: c[1])
    return out


def grid_cells(cfg: dict[str, Any], methods: list[str]) -> list[dict[str, Any]]:
    """The grid's cells, seeds outermost, then the conditions (`conditions`), then ``methods``; rate 0 is one
    condition (noise type ``none``) shared by every noise type."""
    return grid.expand([{"noise_type": [t], "rate": [r], "seed": [int(s)], "method": methods}
                        for s in cfg["seeds"] for t, r in conditions(cfg)])  # fmt: skip


def runner(cfg: dict[str, Any], device: str) -> Any:
    """``run_one`` for `benchmarks.grid.run_grid`: the seed's splits and the cell's noisy data are built once and
    shared by the methods of the cell that run one after another (with the prune baselines' out-of-fold
    probabilities)."""
    bases, cells = LastValue(), LastValue()

    def run_one(cell: dict[str, Any]) -> dict[str, Any]:
        noise_type, rate, seed = cell["noise_type"], cell["rate"], cell["seed"]
        base = bases.get(seed, lambda: load_base(cfg, seed, transforms_model(cfg)))
        data, cache = cells.get((noise_type, rate, seed), lambda: (prepare_cell(cfg, base, noise_type, rate, seed), {}))
        record = run_method(cell["method"], cfg, data, seed, device, cache)
        return {"config": cfg["name"], "realised_noise_rate": data.realised_rate, **record}

    return run_one


def load_runs(runs_path: Path, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of the config's grid (other rates or methods in the file are left out)."""
    wanted = {grid.cell_key(c) for c in grid_cells(cfg, list(cfg["methods"]))}
    return [r for r in grid.read_records(runs_path) if grid.cell_key(r, ("noise_type", "rate", "seed", "method")) in wanted]


# ------------------------------------------------------------------------------------------------ report


def summarise(runs: list[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, Any]:
    by: dict[tuple[str, float, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in runs:
        by[(r["noise_type"], r["rate"], r["method"])][r["seed"]] = r
    methods = [m for m in cfg["methods"] if any(k[2] == m for k in by)]
    summary: dict[str, Any] = {"conditions": [], "methods": methods}
    for noise_type, rate in conditions(cfg):
        cond: dict[str, Any] = {"noise_type": noise_type, "rate": rate, "methods": {}}
        ce = by.get((noise_type, rate, "ce"), {})
        for method in methods:
            seeds = by.get((noise_type, rate, method), {})
            if not seeds:
                continue
            entry: dict[str, Any] = {"n_seeds": len(seeds)}
            for metric in ("last_test_accuracy", "selected_test_accuracy"):
                values = [seeds[s][metric] for s in sorted(seeds)]
                mean, std = mean_std(values)
                entry[metric] = {"mean": mean, "std": std, "values": values}
                c = None if method == "ce" else stats.paired_over_seeds(
                    {s: r[metric] for s, r in seeds.items()}, {s: r[metric] for s, r in ce.items()})  # fmt: skip
                if c is not None:
                    entry[metric].update(delta_vs_ce=c.mean, p_vs_ce=c.p, n_paired=c.n)
            for key in ("step_time_median", "train_seconds", "selected_epoch", "realised_noise_rate", "steps"):
                entry[key] = float(np.median([seeds[s][key] for s in seeds]))
            finals = [seeds[s]["lilaw_final"] for s in seeds if seeds[s].get("lilaw_final")]
            if finals:
                entry["lilaw_final"] = {k: float(np.mean([f[k] for f in finals])) for k in finals[0]}
            for key in ("flag_precision", "flag_recall", "flagged", "train_rows"):
                if key in next(iter(seeds.values())):
                    entry[key] = float(np.mean([seeds[s][key] for s in seeds]))
            cond["methods"][method] = entry
        summary["conditions"].append(cond)
    return summary


def report_markdown(summary: dict[str, Any], cfg: dict[str, Any], meta: dict[str, Any]) -> str:
    conds = summary["conditions"]
    headers = ["method"] + [condition_name(c["noise_type"], c["rate"]) for c in conds]
    parts = [
        f"# Accuracy under label noise: `{cfg['name']}`",
        "",
        f"Command: `{meta['command']}`  ",
        f"Config: `{meta['config_path']}`; grid wall time {meta.get('grid_seconds', float('nan')) / 60:.1f} min; "
        f"hardware: {meta['hardware']['processor']}, {meta['hardware']['torch_threads']} torch thread(s), "
        f"device {meta['hardware']['device']}.",
        "",
        f"Data `{cfg['dataset']['name']}`, model `{cfg['model']['type']}`, {cfg['training']['epochs']} epochs, "
        f"batch {cfg['training']['batch_size']}, lr {cfg['training']['learning_rate']} "
        f"({cfg['training']['optim']}, {cfg['training']['lr_scheduler_type']}), seeds {cfg['seeds']}. "
        "Test accuracy in %, mean ± std over seeds. Δ is the mean paired difference to CE in points; p is the "
        "two-sided paired t-test over seeds (scipy's `ttest_rel`, or the exact sign-flip test where every seed gives the same difference), not corrected for the number of comparisons; "
        "`*` marks p < 0.05.",
    ]
    for metric, title in (
        ("last_test_accuracy", "Test accuracy at the last epoch"),
        ("selected_test_accuracy", "Test accuracy at the epoch chosen by the noisy validation (meta) split"),
    ):
        rows, delta_rows = [], []
        for method in summary["methods"]:
            row, drow = [METHOD_LABELS[method]], [METHOD_LABELS[method]]
            for c in conds:
                e = c["methods"].get(method)
                if e is None:
                    row.append("–")
                    drow.append("–")
                    continue
                m = e[metric]
                row.append(f"{pct(m['mean'])} ± {pct(m['std'])}")
                if "delta_vs_ce" in m:
                    star = "*" if m["p_vs_ce"] < 0.05 else ""
                    p = "p<0.001" if m["p_vs_ce"] < 0.001 else f"p={m['p_vs_ce']:.3f}"
                    drow.append(f"{100 * m['delta_vs_ce']:+.1f} ({p}){star}")
                else:
                    drow.append("ref")
            rows.append(row)
            delta_rows.append(drow)
        parts += ["", f"## {title}", "", markdown_table(headers, rows)]
        parts += ["", f"Δ vs CE, {title.lower()}:", "", markdown_table(headers, delta_rows)]

    # cost per method
    rows = []
    ce_time = _median_over_conditions(conds, "ce", "step_time_median")
    for method in summary["methods"]:
        t = _median_over_conditions(conds, method, "step_time_median")
        s = _median_over_conditions(conds, method, "train_seconds")
        rows.append([METHOD_LABELS[method], f"{1e3 * t:.2f}", f"{t / ce_time:.2f}", f"{s:.1f}"])
    parts += [
        "",
        "## Time per optimizer step",
        "",
        "Median over the noise conditions of each condition's median over seeds of the runs' median step time "
        "(callback from `on_step_begin` to `on_step_end`: forward, backward, optimizer, plus LiLAW's meta step / "
        "the meta label correction's extra passes; LiLAW's warm-up epoch has no meta step); train seconds "
        "likewise. Train seconds include the cross-validation models of the prune baselines.",
        "",
        markdown_table(["method", "ms / step", "× CE", "train s / run"], rows),
    ]
    lilaw = [m for m in summary["methods"] if m in LILAW_METHODS]
    if lilaw:
        rows = []
        for method in lilaw:
            rows.append([METHOD_LABELS[method]] + [
                "{alpha:.3f} / {beta:.3f} / {delta:.3f}".format(**c["methods"][method]["lilaw_final"])
                if method in c["methods"] and "lilaw_final" in c["methods"][method] else "–"
                for c in conds
            ])  # fmt: skip
        parts += ["", "## LiLAW α / β / δ at the end of training (mean over seeds; start 10 / 2 / 6)", "",
                  markdown_table(headers, rows)]  # fmt: skip
    prune = [m for m in summary["methods"] if m.startswith("prune_")]
    if prune:
        rows = []
        for method in prune:
            for c in conds:
                e = c["methods"].get(method)
                if e and "flag_precision" in e:
                    recall = "–" if np.isnan(e["flag_recall"]) else pct(e["flag_recall"])
                    rows.append([METHOD_LABELS[method], condition_name(c["noise_type"], c["rate"]),
                                 f"{e['flagged']:.0f}", pct(e["flag_precision"]), recall])  # fmt: skip
        parts += ["", "## Pruning quality (mean over seeds)", "",
                  markdown_table(["method", "condition", "flagged rows", "precision %", "recall %"], rows)]  # fmt: skip
    parts += ["", "Realised noise rate (train ∪ meta, median over seeds): " + ", ".join(
        f"{condition_name(c['noise_type'], c['rate'])}: {pct(c['methods']['ce']['realised_noise_rate'])} %"
        for c in conds if "ce" in c["methods"]
    )]  # fmt: skip
    return "\n".join(parts) + "\n"


def _median_over_conditions(conds: list[dict[str, Any]], method: str, key: str) -> float:
    values = [c["methods"][method][key] for c in conds if method in c["methods"]]
    return float(np.median(values)) if values else float("nan")


def plot_accuracy(summary: dict[str, Any], cfg: dict[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    conds = summary["conditions"]
    types = list(cfg["noise_types"])
    fig = Figure(figsize=(4.2 * len(types), 7.5))
    axes = fig.subplots(2, len(types), squeeze=False, sharey="row")
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    colors = {m: palette(i % 20) for i, m in enumerate(summary["methods"])}
    markers = "os^vD<>pP*Xh"
    for row, (metric, label) in enumerate(
        (("last_test_accuracy", "last epoch"), ("selected_test_accuracy", "epoch by noisy validation"))
    ):
        for col, noise_type in enumerate(types):
            ax = axes[row][col]
            for i, method in enumerate(summary["methods"]):
                xs, ys, es = [], [], []
                for c in conds:
                    if c["noise_type"] not in ("none", noise_type) or method not in c["methods"]:
                        continue
                    m = c["methods"][method][metric]
                    xs.append(100 * c["rate"])
                    ys.append(100 * m["mean"])
                    es.append(100 * m["std"])
                if xs:
                    ax.errorbar(xs, ys, yerr=es, label=METHOD_LABELS[method], color=colors[method],
                                marker=markers[i % len(markers)], capsize=3, linestyle="-" if i < 10 else "--")  # fmt: skip
            ax.set(title=f"{noise_type} noise, {label}", xlabel="noise rate (%)")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("test accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8)
    fig.suptitle(f"{cfg['name']}: test accuracy vs noise rate (mean ± std over {len(cfg['seeds'])} seeds)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_parameters(runs: list[dict[str, Any]], cfg: dict[str, Any], path: Path) -> Path | None:
    """α, β, δ over training (mean ± std over seeds), one panel each, one line per noise rate (paper Figure 4)."""
    from matplotlib.figure import Figure

    spec = cfg["param_plot"]
    curves = []
    for rate in spec["rates"]:
        noise_type = "none" if rate == 0 else spec["noise_type"]
        chosen = [r for r in runs if r["method"] == spec["method"] and r["rate"] == rate
                  and r["noise_type"] == noise_type and r.get("lilaw_trajectory")]  # fmt: skip
        if chosen:
            length = min(len(r["lilaw_trajectory"]) for r in chosen)
            curves.append((noise_type, rate, np.asarray([r["lilaw_trajectory"][:length] for r in chosen])))
    if not curves:
        return None
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for j, (ax, name) in enumerate(zip(axes, ("α", "β", "δ"))):
        for i, (noise_type, rate, traj) in enumerate(curves):  # traj: seeds × points × (step, epoch, α, β, δ)
            epochs, values = traj[0, :, 1], traj[:, :, 2 + j]
            mean, std = values.mean(0), values.std(0)
            label = f"{condition_name(noise_type, rate)} ({len(traj)} seeds)"
            ax.plot(epochs, mean, color=f"C{i}", label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.axvline(cfg["lilaw"]["warmup_epochs"], color="grey", linestyle=":", label="end of warm-up")
        ax.set(title=name, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cfg['name']}: LiLAW α, β, δ during training ({METHOD_LABELS[spec['method']]}, mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_report(cfg: dict[str, Any], out_dir: Path, runs_path: Path, meta: dict[str, Any]) -> dict[str, Path]:
    runs = load_runs(runs_path, cfg)
    if not runs:
        raise SystemExit(f"No runs of {cfg['name']} in {runs_path}.")
    summary = summarise(runs, cfg)
    stem = f"accuracy_{cfg['name']}"
    paths = {
        "markdown": out_dir / f"{stem}.md",
        "json": out_dir / f"{stem}.json",
        "plot_accuracy": out_dir / f"{stem}_vs_rate.png",
    }
    paths["markdown"].write_text(report_markdown(summary, cfg, meta))
    write_json(paths["json"], {"meta": meta, "config": cfg, "summary": summary})
    plot_accuracy(summary, cfg, paths["plot_accuracy"])
    params = plot_parameters(runs, cfg, out_dir / f"{stem}_lilaw_params.png")
    if params:
        paths["plot_params"] = params
    return paths


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="JSON (or YAML) grid config, see benchmarks/configs/.")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR), help="Where the tables, plots and runs go.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU).")
    parser.add_argument("--methods", nargs="*", help="Run only these methods (default: the config's).")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="Override a config entry, e.g. --set dataset.name=tissuemnist --set seeds=[0,1] (VALUE is JSON or a string).",
    )  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="Discard earlier runs of this config.")
    parser.add_argument("--report-only", action="store_true", help="Rebuild the report from the runs file.")
    parser.add_argument("--shard", type=grid.parse_shard, default=(0, 1), metavar="I/N",
                        help="Run only every N-th cell from the I-th (0-based): N processes, one file.")  # fmt: skip
    parser.add_argument("--max-minutes", type=float, help="Start no run after this many minutes (resume later).")
    args = parser.parse_args(argv)

    offline_environment(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "hf_lilaw", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    import datasets

    datasets.disable_progress_bars()

    cfg = resolve_config(apply_overrides(load_config(args.config), args.set))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_path = out_dir / f"accuracy_{cfg['name']}_runs.jsonl"
    meta_path = out_dir / f"accuracy_{cfg['name']}_meta.json"
    if args.fresh and runs_path.exists():
        runs_path.unlink()
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and not args.fresh else {}
    if not args.report_only:
        methods = args.methods or list(cfg["methods"])
        start = time.perf_counter()
        cells = grid_cells(cfg, methods)
        if "prune_cleanlab" in methods and not has_cleanlab():
            logger.warning("cleanlab is not installed: skipping prune_cleanlab (pip install 'hf_lilaw[cleanlab]').")
            cells = [c for c in cells if c["method"] != "prune_cleanlab"]
        grid.run_grid(cells, runner(cfg, args.device), runs_path, shard=args.shard, max_minutes=args.max_minutes,
                      log=lambda m: print(m, flush=True))  # fmt: skip
        meta = {
            "command": command_line(),
            "config_path": os.path.relpath(args.config, Path(__file__).resolve().parent.parent),
            "hardware": hardware_info(args.device),
            "grid_seconds": meta.get("grid_seconds", 0.0) + time.perf_counter() - start,
        }
        write_json(meta_path, meta)
    if not meta:
        meta = {"command": command_line(), "config_path": args.config, "hardware": hardware_info(args.device)}
    paths = write_report(cfg, out_dir, runs_path, meta)
    print(paths["markdown"].read_text())
    return paths


if __name__ == "__main__":
    main()
