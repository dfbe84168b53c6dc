"""Fashion-MNIST from scratch on noisy labels: where cross-entropy memorises the noise, who keeps the early gains.

An MLP 784-512-512-10 trained from scratch on the 60,000 Fashion-MNIST training images (5,000 of them held out,
with their noisy labels, as the validation split a user would have), AdamW, batch 128, the Trainer's linear
schedule; test = the 10,000 clean test images. Each run records, per epoch, accuracy on the noisy validation
split and on the clean test split, so the summary gives the last epoch and the early-stopped epoch (best noisy
validation accuracy, ties to the latest epoch) side by side, and CE's peak (memorisation = peak − last).

Methods, every one through the public API on the same rows, noise, split and initial weights per seed (paired):
``ce`` (`Trainer` + `CrossEntropy`), ``sce``, ``gce`` (`Trainer(compute_loss_func=...)`), ``lilaw``
(`LiLAWTrainer`, the paper's settings, the noisy validation split as its meta set), ``elr`` (`ELRTrainer`,
its defaults). The clean-label oracle is ``ce`` under ``clean``.

Conditions: ``clean``, ``uniform_<r>`` (r of the rows get one of the other 9 classes), ``pair_flip_<r>`` (r of
the rows move to their partner class: T-shirt/top<->Shirt, Pullover<->Coat, Sneaker<->Ankle boot,
Trouser<->Dress, Sandal<->Bag).

Run (one JSON line per run, resumable; ``--workers N`` splits the grid over N processes)::

    python benchmarks/fmnist_scratch.py --out benchmarks/results/fmnist_scratch --workers 2
    python benchmarks/fmnist_scratch.py --summary benchmarks/results/fmnist_scratch
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ("ce", "sce", "gce", "lilaw", "elr")
CONDITIONS = ("clean", "uniform_0.2", "uniform_0.4", "uniform_0.6", "uniform_0.8", "pair_flip_0.4")
MEAN, STD = 0.2860, 0.3530


# ------------------------------------------------------------------------------------------------ data


def noisy(labels, condition: str, seed: int):
    from hf_lilaw import noisy_labels

    if condition == "clean":
        return labels.copy()
    kind, rate = condition.rsplit("_", 1)
    if kind == "uniform":
        return noisy_labels(labels, noise_type="uniform", rate=float(rate), seed=seed, num_classes=10)
    if kind == "pair_flip":
        return noisy_labels(labels, noise_type="pair_flip", rules="fashion_mnist", rate=float(rate), seed=seed,
                            num_classes=10)
    raise ValueError(f"unknown condition {condition!r}")


def to_dataset(x, y):
    import datasets
    import numpy as np
    import pyarrow as pa

    flat = ((x.reshape(len(x), -1).astype(np.float32) / 255.0) - MEAN) / STD
    table = pa.table({
        "pixel_values": pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1]),
        "label": pa.array(y.astype(np.int64)),
    })
    return datasets.Dataset(table).with_format("torch")


# ------------------------------------------------------------------------------------------------ one run


def run_one(cell: dict[str, Any], arrays, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import Trainer, TrainingArguments

    from hf_lilaw import CrossEntropy, GeneralizedCrossEntropy, LiLAWConfig, LiLAWTrainer, SymmetricCrossEntropy

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import MLP

    x_train, y_train, x_test, y_test = arrays
    seed, method, condition = cell["seed"], cell["method"], cell["condition"]
    if args.train_rows:
        x_train, y_train = x_train[: args.train_rows], y_train[: args.train_rows]
    if args.test_rows:
        x_test, y_test = x_test[: args.test_rows], y_test[: args.test_rows]
    labels = noisy(y_train, condition, seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    val_idx, train_idx = order[: args.val_rows], order[args.val_rows :]
    train = to_dataset(x_train[train_idx], labels[train_idx])
    val = to_dataset(x_train[val_idx], labels[val_idx])
    test = to_dataset(x_test, y_test)

    torch.manual_seed(seed)
    model = MLP(num_labels=10, in_features=784, hidden=(512, 512))
    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"fmnist-{method}-{condition}-{seed}-"),  # nothing is saved there
        num_train_epochs=args.epochs, learning_rate=args.lr, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2048, eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
        report_to=[], disable_tqdm=True, dataloader_num_workers=0, seed=seed, data_seed=seed,
        use_cpu=args.device == "cpu", bf16=args.bf16,
    )

    def accuracy(eval_pred):
        logits, y = eval_pred
        return {"accuracy": float((np.asarray(logits).argmax(-1) == np.asarray(y)).mean())}

    evals = {"val": val, "test": test}
    kwargs = dict(model=model, train_dataset=train, eval_dataset=evals, compute_metrics=accuracy)
    if method in ("ce", "sce", "gce"):
        loss = {"ce": CrossEntropy(), "sce": SymmetricCrossEntropy(), "gce": GeneralizedCrossEntropy()}[method]
        trainer = Trainer(args=TrainingArguments(**common), compute_loss_func=loss, **kwargs)
    elif method == "lilaw":
        trainer = LiLAWTrainer(args=LiLAWConfig(**common), meta_dataset=val, **kwargs)
    elif method == "elr":
        from hf_lilaw import ELRConfig, ELRTrainer

        trainer = ELRTrainer(args=ELRConfig(**common), **kwargs)
    else:
        raise ValueError(f"unknown method {method!r}")
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    val_acc = [h["eval_val_accuracy"] for h in trainer.state.log_history if "eval_val_accuracy" in h]
    test_acc = [h["eval_test_accuracy"] for h in trainer.state.log_history if "eval_test_accuracy" in h]
    record = {
        **cell, "val_accuracy": val_acc, "test_accuracy": test_acc, "seconds": seconds,
        "realised_noise": float((labels != y_train).mean()), "device": args.device,
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "train_rows": len(train_idx),
        "val_rows": len(val_idx), "test_rows": len(y_test),
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
    }
    if method == "lilaw":
        record["lilaw"] = trainer.lilaw_parameters()
    return record


# ------------------------------------------------------------------------------------------------ grid


def cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [
        {"seed": s, "condition": c, "method": m}
        for s, c, m in itertools.product(args.seeds, args.conditions, args.methods)
    ]


def key(cell: dict[str, Any]) -> tuple:
    return cell["seed"], cell["condition"], cell["method"]


def read_records(folder: str) -> list[dict[str, Any]]:
    records = []
    for path in sorted(Path(folder).glob("runs*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def work(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    done = {key(r) for r in read_records(args.out)}
    mine = [c for i, c in enumerate(cells(args)) if i % args.shards == args.shard and key(c) not in done]
    from hf_lilaw.data import fashion_mnist_arrays

    arrays = fashion_mnist_arrays(data_dir=args.data_dir)
    path = Path(args.out) / f"runs.{args.shard}.jsonl"
    for cell in mine:
        if args.deadline and time.time() > args.deadline:
            print(f"shard {args.shard}: deadline passed, {len(mine)} cells not all run", flush=True)
            break
        try:
            record = run_one(cell, arrays, args)
        except Exception as error:  # noqa: BLE001 — one failed cell must not stop the shard; it is recorded
            record = {**cell, "error": f"{type(error).__name__}: {error}"}
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: record.get(k) for k in ("seed", "condition", "method", "seconds", "error")}), flush=True)


def launch(args: argparse.Namespace) -> None:
    argv = sys.argv[1:]
    if "--workers" in argv:
        i = argv.index("--workers")
        del argv[i : i + 2]
    argv = [a for a in argv if not a.startswith("--workers=")]
    procs = [
        subprocess.Popen([sys.executable, __file__, *argv, "--shard", str(i), "--shards", str(args.workers)])
        for i in range(args.workers)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"worker exit codes: {codes}")


# ------------------------------------------------------------------------------------------------ summary


def early_stopped(record: dict[str, Any]) -> float:
    val = record["val_accuracy"]
    best = max(range(len(val)), key=lambda e: (val[e], e))  # ties go to the latest epoch
    return record["test_accuracy"][best]


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    import numpy as np
    from scipy import stats

    d = np.asarray(a) - np.asarray(b)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "p": math.nan, "n": n}
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    p = 1.0 if sd == 0 and mean == 0 else (0.0 if sd == 0 else float(stats.ttest_rel(a, b).pvalue))
    return {"mean": mean, "low": mean - half, "high": mean + half, "p": p, "n": n}


def bh(pvalues: list[float]) -> list[float]:
    import numpy as np

    p = np.asarray(pvalues, dtype=float)
    ok = ~np.isnan(p)
    out = np.full_like(p, np.nan)
    if ok.any():
        q = p[ok]
        order = np.argsort(q)
        ranked = q[order] * len(q) / np.arange(1, len(q) + 1)
        adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
        result = np.empty_like(q)
        result[order] = adjusted
        out[ok] = result
    return out.tolist()


def summary(folder: str) -> str:
    import numpy as np

    records = [r for r in read_records(folder) if "error" not in r]
    errors = [r for r in read_records(folder) if "error" in r]
    by = {key(r): r for r in records}
    seeds = sorted({r["seed"] for r in records})
    conditions = [c for c in CONDITIONS if any(r["condition"] == c for r in records)]
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    lines = [f"# Fashion-MNIST from scratch: MLP 784-512-512-10 ({len(records)} runs, seeds {seeds})", ""]
    if records:
        r0 = records[0]
        lines += [f"{r0['train_rows']} training rows, {r0['val_rows']} noisy validation rows, {r0['test_rows']} clean "
                  f"test rows; {r0['epochs']} epochs, AdamW lr {r0['lr']}, batch {r0['batch_size']}; device "
                  f"{r0['device']} {r0.get('gpu') or ''}. Accuracy in %, mean over seeds.", ""]
    table: dict[str, Any] = {"records": len(records), "errors": len(errors), "cells": []}
    for metric, pick in (("last epoch", lambda r: r["test_accuracy"][-1]), ("early-stopped", early_stopped)):
        rows, pvals = [], []
        for condition in conditions:
            for method in methods:
                ok = [s for s in seeds if (s, condition, method) in by and (s, condition, "ce") in by]
                if not ok:
                    continue
                values = [100 * pick(by[(s, condition, method)]) for s in ok]
                ce = [100 * pick(by[(s, condition, "ce")]) for s in ok]
                oracle = [s for s in ok if (s, "clean", "ce") in by]
                gap = paired([100 * pick(by[(s, condition, method)]) for s in oracle],
                             [100 * pick(by[(s, "clean", "ce")]) for s in oracle]) if oracle else None
                comparison = paired(values, ce) if method != "ce" else None
                rows.append((condition, method, values, comparison, gap))
                pvals.append(comparison["p"] if comparison else math.nan)
        adjusted = bh(pvals)
        lines += [f"## {metric}", "", "| condition | method | accuracy | Δ vs CE [95 % CI] | p (BH) | gap to oracle |",
                  "|---|---|---|---|---|---|"]
        for (condition, method, values, comparison, gap), q in zip(rows, adjusted):
            acc = f"{np.mean(values):.1f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.1f}"
            if comparison is None:
                delta, pq = "", ""
            else:
                delta = f"{comparison['mean']:+.1f} [{comparison['low']:+.1f}, {comparison['high']:+.1f}]"
                if q < 0.05:
                    pq = f"**{q:.3g}**"
                else:
                    width = max(abs(comparison["low"]), abs(comparison["high"]))
                    pq = f"{q:.2g} (no effect > {width:.1f} detected)"
            g = "" if gap is None or condition == "clean" else f"{gap['mean']:+.1f}"
            lines.append(f"| {condition} | {method} | {acc} | {delta} | {pq} | {g} |")
            table["cells"].append({"metric": metric, "condition": condition, "method": method,
                                   "accuracy": values, "vs_ce": comparison, "p_bh": q, "gap_to_oracle": gap})
        lines.append("")
    ce_rows = [(c, [r for r in records if r["condition"] == c and r["method"] == "ce"]) for c in conditions]
    lines += ["## Memorisation: CE's best epoch against its last (test accuracy, %)", "",
              "| condition | CE best epoch | CE last epoch | drop |", "|---|---|---|---|"]
    for condition, rs in ce_rows:
        if rs:
            best = np.mean([100 * max(r["test_accuracy"]) for r in rs])
            last = np.mean([100 * r["test_accuracy"][-1] for r in rs])
            lines.append(f"| {condition} | {best:.1f} | {last:.1f} | {last - best:+.1f} |")
    if errors:
        lines += ["", f"{len(errors)} runs failed: " + "; ".join(f"{key(e)}: {e['error'][:120]}" for e in errors[:5])]
    text = "\n".join(lines) + "\n"
    Path(folder, "summary.md").write_text(text)
    Path(folder, "summary.json").write_text(json.dumps(table, indent=1, default=float))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/fmnist_scratch")
    parser.add_argument("--summary", metavar="FOLDER", help="only print (and write) the tables of FOLDER's records")
    parser.add_argument("--data-dir", default=None, help="folder of the IDX files (default: as load_fashion_mnist finds them)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--epochs", type=float, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--val-rows", type=int, default=5000)
    parser.add_argument("--train-rows", type=int, default=0, help="first N training images only (0: all 60,000)")
    parser.add_argument("--test-rows", type=int, default=0, help="first N test images only (0: all 10,000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="split the grid over N processes and wait")
    parser.add_argument("--deadline", type=float, default=0,
                        help="Unix time after which a worker starts no new run (a run under way finishes)")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    if args.val_rows < 1:
        parser.error("--val-rows must be at least 1: the noisy validation split picks the early-stopped epoch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.summary:
        print(summary(args.summary))
    elif args.workers:
        launch(args)
        print(summary(args.out))
    else:
        work(args)


if __name__ == "__main__":
    main()
