"""A real UCR set from scratch: the stacked LSTM under uniform label noise, CE vs LiLAW vs SCE over seeds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ucr_lstm.py --config benchmarks/configs/ucr_lstm.json
    .venv/bin/python benchmarks/ucr_lstm.py --summary benchmarks/results/ucr/ucr_lstm.jsonl

The UCR archive's ItalyPowerDemand (bundled with aeon, offline; the archive's own train/test split, 15 % of the
training split held out as the meta split) through `hf_lilaw.data.load_ucr`, with uniform label noise on the
training and meta splits (the test split stays clean). A 2-layer LSTM of 32 units is trained from scratch with

  ce     `transformers.Trainer`, cross-entropy
  lilaw  `LiLAWTrainer` with the paper's defaults; its meta set is the noisy meta split
  sce    `transformers.Trainer` with ``compute_loss_func=hf_lilaw.SymmetricCrossEntropy()``

Per seed every method starts from the same initial weights and sees the same noisy labels, data order and
schedule. After every epoch the run evaluates the test split and the noisy meta split (which doubles as the
validation split); each run appends ONE JSON line to the ``.jsonl`` (``method``, ``setting``, ``noise_type``,
``noise_rate``, ``seed``, ``test_accuracy`` at the last epoch, ``test_accuracy_early_stopped`` at the first
epoch with the best noisy-meta accuracy, wall-clock ``seconds`` and the per-epoch history). Runs already in
the file are skipped, so a stopped grid resumes.

The summary (``--summary FILE.jsonl``; also written after every grid) reads only the ``.jsonl`` and writes
``<stem>.md``: mean ± sd per method and noise rate, and Δ vs CE with the two-sided paired t-test over seeds.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import grid
from benchmarks.common import RECORD_KEYS  # noqa: F401  (the record format, named here too)
from benchmarks.common import RESULTS_DIR, LastValue, command_line, format_delta, load_config, load_records
from benchmarks.common import markdown_table, mean_std, paired_test, pct

SETTING = "ucr_lstm_scratch"
METHODS = ("ce", "lilaw", "sce")
METRICS = {"test_accuracy": "last epoch", "test_accuracy_early_stopped": "early-stopped"}


# ------------------------------------------------------------------------------------------------ runs


def validate(cfg: dict[str, Any]) -> None:
    """Raise, before any training, if the config names an unknown method or lacks a field."""
    for key in ("dataset", "seeds", "conditions", "methods", "model", "training"):
        if key not in cfg:
            raise ValueError(f"The config lacks {key!r}; see benchmarks/configs/ucr_lstm.json for the fields.")
    unknown = [m for m in cfg["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown} in the config; pick from {list(METHODS)}.")
    for noise_type, rate in cfg["conditions"]:
        if noise_type != "uniform" or not 0 <= rate < 1:
            raise ValueError(f"Condition {[noise_type, rate]}: this benchmark takes ['uniform', rate] with 0 <= rate < 1.")


def protocol(cfg: dict[str, Any]) -> dict[str, Any]:
    """The record fields naming what a run trained on and how: runs that differ in one are not one grid."""
    ds = cfg["dataset"]
    return {"dataset": ds["name"], "meta_fraction": ds.get("meta_fraction", 0.15), "epochs": cfg["training"]["epochs"],
            "model": cfg["model"], "training": cfg["training"]}  # fmt: skip


def check_records(cfg: dict[str, Any], out: Path) -> None:
    """Refuse an ``out`` holding runs of another protocol: they would count as done and be paired with this one's.
    Fields a record lacks (records written before they were) are not compared."""
    ours = protocol(cfg)
    for r in grid.read_records(out):
        differs = [f"{k} {r[k]!r}, not {v!r}" for k, v in ours.items() if k in r and r[k] != v]
        if differs:
            raise ValueError(
                f"{out} holds a run of another protocol ({r.get('method')} at {r.get('noise_type')} {r.get('noise_rate')}, "
                f"seed {r.get('seed')}: {'; '.join(differs)}); it would count as done and enter this grid's summary. "
                "Pass --out <another .jsonl>, or the config (and --epochs) that wrote it."
            )


def noisy_splits(cfg: dict[str, Any], *, noise_type: str, rate: float, seed: int):
    """The seed's train/meta/test splits with label noise in train and meta (test clean)."""
    from hf_lilaw import add_label_noise
    from hf_lilaw.data import load_ucr

    ds = cfg["dataset"]
    splits = load_ucr(ds["name"], meta_fraction=ds.get("meta_fraction", 0.15), seed=seed)
    for offset, name in enumerate(("train", "meta")):  # independent draws for the two noisy splits
        splits[name] = add_label_noise(splits[name], noise_type=noise_type, rate=rate, seed=seed + offset)
    return splits


def initial_model(cfg: dict[str, Any], splits, *, seed: int):
    """The seed's freshly initialised stacked LSTM, shared (deep-copied) by every method."""
    from transformers import set_seed

    from hf_lilaw.models import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification

    set_seed(seed)
    first = splits["train"][0]["series"]
    channels = len(first[0]) if isinstance(first[0], list) else 1
    config = LSTMClassifierConfig(
        input_size=channels, hidden_size=cfg["model"]["hidden_size"], num_layers=cfg["model"]["num_layers"],
        num_labels=splits["train"].features["label"].num_classes,
    )  # fmt: skip
    return StackedLSTMForTimeSeriesClassification(config)


def train_one(cfg: dict[str, Any], method: str, model, splits, *, seed: int, output_dir: str) -> dict[str, Any]:
    """Train ``method`` from ``model`` (copied) and return last-epoch and early-stopped test accuracy and history."""
    from transformers import PrinterCallback, Trainer, set_seed

    from hf_lilaw import LiLAWConfig, LiLAWTrainer, SymmetricCrossEntropy, compute_classification_metrics
    from hf_lilaw.data import vector_transform

    tr = cfg["training"]
    args = LiLAWConfig(
        output_dir=output_dir, seed=seed, num_train_epochs=tr["epochs"], learning_rate=tr["learning_rate"],
        per_device_train_batch_size=tr["batch_size"], per_device_eval_batch_size=tr.get("eval_batch_size", 512),
        eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none",
        remove_unused_columns=False, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    transform = vector_transform(input_column="series", keep_columns=())
    view = {name: split.with_transform(transform) for name, split in splits.items()}
    kwargs: dict[str, Any] = {}
    if method == "lilaw":
        trainer_cls, kwargs["meta_dataset"] = LiLAWTrainer, view["meta"]
    else:
        trainer_cls = Trainer
        if method == "sce":
            kwargs["compute_loss_func"] = SymmetricCrossEntropy()
    set_seed(seed)
    trainer = trainer_cls(
        model=copy.deepcopy(model), args=args, train_dataset=view["train"],
        eval_dataset={"meta": view["meta"], "test": view["test"]},
        compute_metrics=compute_classification_metrics, **kwargs,
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # per-epoch logs go to the record, not the console
    trainer.train()
    history = epoch_history(trainer.state.log_history)
    if len(history) != tr["epochs"]:
        raise RuntimeError(f"Expected {tr['epochs']} per-epoch evaluations, found {len(history)}.")
    return {"history": history, **select(history)}


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One entry per epoch: the noisy-meta and test accuracy that the per-epoch evaluations logged."""
    by_epoch: dict[float, dict[str, float]] = defaultdict(dict)
    for entry in log_history:
        for split in ("meta", "test"):
            if f"eval_{split}_accuracy" in entry:
                by_epoch[round(entry["epoch"], 6)][f"{split}_accuracy"] = float(entry[f"eval_{split}_accuracy"])
    return [{"epoch": e, **by_epoch[e]} for e in sorted(by_epoch)]


def select(history: list[dict[str, float]]) -> dict[str, Any]:
    """Last-epoch test accuracy, and test accuracy at the FIRST epoch with the best noisy-meta accuracy."""
    best = max(range(len(history)), key=lambda i: (history[i]["meta_accuracy"], -i))
    return {
        "test_accuracy": history[-1]["test_accuracy"],
        "test_accuracy_early_stopped": history[best]["test_accuracy"],
        "early_stopped_epoch": history[best]["epoch"],
    }


def grid_cells(cfg: dict[str, Any], *, seeds: list[int] | None = None, methods: list[str] | None = None) -> list[dict]:
    """The cells: conditions outermost, then seeds, then the config's methods (or those of them in ``methods``)."""
    seeds = [int(s) for s in (seeds if seeds is not None else cfg["seeds"])]
    methods = [m for m in cfg["methods"] if methods is None or m in methods]
    return grid.expand([{"setting": [SETTING], "noise_type": [nt], "noise_rate": [float(rate)], "seed": seeds,
                         "method": methods} for nt, rate in cfg["conditions"]])  # fmt: skip


def run(cfg: dict[str, Any], out: Path, *, seeds: list[int] | None = None, methods: list[str] | None = None) -> None:
    """Run every (condition, seed, method) of ``cfg`` not yet in ``out``, appending one record per run."""
    validate(cfg)
    check_records(cfg, out)
    cells = LastValue()  # the cell's splits and initial model, shared by its methods
    with tempfile.TemporaryDirectory() as tmp:

        def run_one(cell: dict[str, Any]) -> dict[str, Any]:
            noise_type, rate, seed = cell["noise_type"], cell["noise_rate"], cell["seed"]

            def make() -> tuple[Any, Any]:
                splits = noisy_splits(cfg, noise_type=noise_type, rate=rate, seed=seed)
                return splits, initial_model(cfg, splits, seed=seed)

            splits, model = cells.get((noise_type, rate, seed), make)
            t0 = time.perf_counter()
            result = train_one(cfg, cell["method"], model, splits, seed=seed, output_dir=tmp)
            return {
                "test_accuracy": result.pop("test_accuracy"),
                "test_accuracy_early_stopped": result.pop("test_accuracy_early_stopped"),
                "seconds": time.perf_counter() - t0,
                "config": cfg["name"], **protocol(cfg),
                "n_train": len(splits["train"]), "n_meta": len(splits["meta"]), "n_test": len(splits["test"]),
                **result,
            }  # fmt: skip

        grid.run_grid(grid_cells(cfg, seeds=seeds, methods=methods), run_one, out, log=lambda m: print(m, flush=True))


# ------------------------------------------------------------------------------------------------ summary


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell per (setting, noise type, rate, method): mean ± sd of both metrics and the paired Δ vs CE."""
    by: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by[(r["setting"], r["noise_type"], float(r["noise_rate"]), r["method"])][int(r["seed"])] = r
    order = {m: i for i, m in enumerate(METHODS)}
    cells = []
    for (setting, noise_type, rate, method) in sorted(by, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 99), k[3])):
        seeds = by[(setting, noise_type, rate, method)]
        ce = by.get((setting, noise_type, rate, "ce"), {})
        cell: dict[str, Any] = {"setting": setting, "noise_type": noise_type, "noise_rate": rate, "method": method,
                                "seeds": sorted(seeds), "seconds_mean": mean_std([r["seconds"] for r in seeds.values()])[0]}  # fmt: skip
        for metric in METRICS:
            values = {s: float(r[metric]) for s, r in seeds.items()}
            mean, sd = mean_std([values[s] for s in sorted(values)])
            cell[metric] = {"mean": mean, "sd": sd,
                            "vs_ce": None if method == "ce" else paired_test(values, {s: float(r[metric]) for s, r in ce.items()})}  # fmt: skip
        cells.append(cell)
    return cells


def report(cells: list[dict[str, Any]], *, source: str, records: list[dict[str, Any]] = ()) -> str:
    headers = ["setting", "noise", "method", "seeds"]
    for label in METRICS.values():
        headers += [f"{label} acc. %", f"{label} Δ vs CE (p)"]
    headers.append("s / run")
    rows = []
    for c in cells:
        row = [c["setting"], f"{c['noise_type']} {100 * c['noise_rate']:.0f} %", c["method"], len(c["seeds"])]
        for metric in METRICS:
            m = c[metric]
            row += [f"{pct(m['mean'])} ± {pct(m['sd'])}", format_delta(m["vs_ce"])]
        row.append(f"{c['seconds_mean']:.1f}")
        rows.append(row)
    names = sorted({str(r["dataset"]) for r in records if r.get("dataset")}) or ["(set not recorded)"]
    return (
        f"# UCR {', '.join(names)}, stacked LSTM from scratch, under uniform label noise\n\n"
        f"Recomputed from the `.jsonl` records alone (`python benchmarks/ucr_lstm.py --summary {source}`). "
        "Test accuracy on the clean test split, mean ± sample sd over seeds; *last epoch* is the final model, "
        "*early-stopped* the test accuracy at the first epoch with the best accuracy on the noisy meta split. "
        "Δ vs CE is the mean paired difference in points over the seeds both methods have (same initial "
        "weights, noisy labels, data order and schedule per seed), p the two-sided paired t-test "
        "(scipy's `ttest_rel`, or the exact sign-flip test where every seed gives the same difference; no correction for multiple comparisons; * p < 0.05).\n\n"
        + markdown_table(headers, rows)
        + "\n"
        + runs_note(records)
    )


def runs_note(records: list[dict[str, Any]]) -> str:
    """What the runs were (sizes, epochs, total time), from the records' optional fields."""
    if not records:
        return ""
    note = f"\n{len(records)} runs, {sum(r['seconds'] for r in records):.0f} s of training in all"
    sizes = {(r.get("n_train"), r.get("n_meta"), r.get("n_test"), r.get("epochs")) for r in records}
    if len(sizes) == 1 and None not in next(iter(sizes)):
        n_train, n_meta, n_test, epochs = next(iter(sizes))
        note += (f"; {epochs} epochs on {n_train} training series, early stopping on {n_meta} noisy meta series "
                 f"(a coarse signal: one series is {100 / n_meta:.0f} points), {n_test} clean test series")
    return note + ".\n"


def write_summary(records_path: Path) -> Path:
    records_path = Path(records_path)
    md = records_path.with_suffix(".md")
    try:
        source = records_path.resolve().relative_to(RESULTS_DIR.resolve().parent.parent)
    except ValueError:
        source = records_path
    records = load_records(records_path)
    md.write_text(report(summarise(records), source=str(source), records=records))
    return md


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="A benchmarks/configs/ucr_lstm*.json file.")
    parser.add_argument("--summary", metavar="JSONL", help="Only recompute the table from this .jsonl.")
    parser.add_argument("--out", help="Records file; default benchmarks/results/ucr/<config name>.jsonl.")
    parser.add_argument("--seeds", type=int, nargs="+", help="Override the config's seeds.")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="Run only these of the config's methods.")
    parser.add_argument("--epochs", type=int, help="Override the config's epochs (smoke tests).")
    args = parser.parse_args(argv)
    if args.summary:
        path = write_summary(Path(args.summary))
        print(path.read_text())
        return path
    if not args.config:
        parser.error("--config or --summary is required.")
    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg["training"]["epochs"] = args.epochs
    out = Path(args.out) if args.out else RESULTS_DIR / "ucr" / f"{cfg['name']}.jsonl"
    print(f"$ {command_line()}", flush=True)
    start = time.perf_counter()
    run(cfg, out, seeds=args.seeds, methods=args.methods)
    print(f"Grid wall time {time.perf_counter() - start:.0f} s", flush=True)
    path = write_summary(out)
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
