"""What LiLAW, ELR and the meta label correction trainers cost per step, against `transformers.Trainer`.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/cost.py
    .venv/bin/python benchmarks/cost.py --device cuda --bf16          # on a GPU machine
    .venv/bin/python benchmarks/cost.py --models --mlc-models --elr-models linear_probe small_cnn   # ELR only

Up to three tables, each from one process in which the arms run interleaved (block after block, the order rotating):

- **LiLAW** (``--models``, default: linear probe, small CNN, EfficientNet-Lite0): Trainer's time per optimizer
  step; the *floor* arm's, a Trainer that also runs what LiLAW's meta step cannot avoid (one no-grad eval forward
  of a random meta batch, from tensors collated once like LiLAW's cached meta set) before every training step;
  LiLAW's. Then LiLAW / Trainer, floor / Trainer, the milliseconds LiLAW adds beyond the floor
  (``LiLAW − floor``), ``(LiLAW − Trainer) / (floor − Trainer)`` (issue target: ≤ 1.10) and the peak memory ratio.
  The floor is timed in context on purpose: the same forward run back to back is 10–20 % faster on the CNNs
  (warm caches), which once made LiLAW look 6 ms costlier than it is.
- **Meta label correction** (``--mlc-models``, default: ResNet-18 and EfficientNet-Lite0, random init): time
  and peak memory per step of CE (`Trainer`), LiLAW, MLC, MLC-D and EBOMLC (`hf_lilaw.MLCTrainer`,
  `MLCDTrainer`, `EBOMLCTrainer`, default options, a 2 % clean set).
- **ELR** (``--elr-models``, default: none): Trainer's time per optimizer step and `hf_lilaw.ELRTrainer`'s (default
  λ, β; targets on the model's device), ELR / Trainer and ELR − Trainer per block, and the peak memory ratio.
  ELR's extra work per step is a softmax, reading and writing one row of targets per sample, a few reductions.

Every arm gets the same model (identical initial weights), data, collator (`transformers.default_data_collator`),
batch size and seed. LiLAW runs without warm-up, so every step is weighted and followed by a meta step; its
meta batch is the training batch size and its meta set a 15 % split. Only the public API is used: the floor arm
is built from the model, the collator and the meta set. *meta fetch* times reading, collating and moving a meta
batch the general way (what the tensor-cached meta set saves).

**Time**: each block runs ``--block-steps + 1`` optimizer steps of every arm through ``trainer.train()``; a
callback (`StepClock`) times each step from ``on_step_begin`` to ``on_step_end`` on two clocks, wall time and the
process's CPU time (on GPU: wall time after ``cuda.synchronize``); the first
step of a block is dropped (no meta step precedes it), and so are the first ``--warmup-blocks`` blocks. Each
block's figure is the median of its steps; tables give the median over blocks and the IQR. Differences and
ratios are taken per block (adjacent in time, so drift cancels), then the median.

**Peak memory**: one fresh process per arm: resident set (VmHWM) after a reset just before ``train()``, with
glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` so large tensors are returned to the OS when freed; on CUDA,
``torch.cuda.max_memory_allocated``.

The machine load (``os.getloadavg``) is recorded before and after each table: on a shared machine the figures
are only comparable with the load they were taken under.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks.common import RESULTS_DIR, command_line, count_parameters, hardware_info
from benchmarks.common import markdown_table, median_iqr, offline_environment, write_json
from benchmarks.step_setup import (
    ARM_LABELS,
    CLOCKS,
    ELR_ARMS,
    LILAW_BASE_ARMS,
    LILAW_VARIANTS,
    MLC_ARMS,
    MODELS,
    StepClock,
    load,
    load_data,
    make_model,
    make_trainer,
    sync_device,
)

import numpy as np
import torch

TARGET_OVERHEAD_PER_FORWARD = 1.10  # (LiLAW − Trainer) ≤ 1.10 × (floor − Trainer)
TARGET_PROBE_RATIO = 1.10  # linear probe: LiLAW / Trainer
TARGET_ADDED_MS = 1.0  # LiLAW − floor, CPU
TARGET_MEMORY = 1.05  # peak memory ratio to Trainer


# ------------------------------------------------------------------------------------------------ time


class MetaFetch:
    """Reading, collating and moving a random meta batch the general way (from public pieces), timed."""

    def __init__(self, meta: Any, *, batch_size: int, device: str, seed: int) -> None:
        from transformers import default_data_collator

        self.meta, self.device = meta, torch.device(device)
        self.collate = default_data_collator
        self.batch_size = min(batch_size, len(meta))
        self.generator = torch.Generator().manual_seed(seed)

    def inputs(self) -> dict[str, torch.Tensor]:
        indices = torch.randperm(len(self.meta), generator=self.generator)[: self.batch_size].tolist()
        batch = self.collate(self.meta.__getitems__(indices))
        batch.pop("labels")
        return {k: v.to(self.device) for k, v in batch.items()}

    def time(self, repeats: int, device_name: str) -> dict[str, float]:
        """Medians (seconds, per clock) of ``repeats`` meta reads."""
        samples: dict[str, list[float]] = {name: [] for name in CLOCKS}
        for _ in range(repeats):
            sync_device(device_name)
            start = {name: clock() for name, clock in CLOCKS.items()}
            self.inputs()
            sync_device(device_name)
            for name, clock in CLOCKS.items():
                samples[name].append(clock() - start[name])
        return {f"{name}:meta_fetch": float(np.median(values)) for name, values in samples.items()}


def time_arms(model_name: str, arms: tuple[str, ...], args: argparse.Namespace, *, fetch: bool) -> dict[str, Any]:
    """Interleaved timing of ``arms`` on one model (and, with ``fetch``, the general meta read every block)."""
    m = MODELS[model_name]
    batch_size = args.batch_size or m["batch_size"]
    data = load_data(model_name, args.seed, clean_fraction=0.02 if any(a in ("mlc", "mlc_d", "ebomlc") for a in arms) else 0.0)
    base = make_model(model_name, args.seed)
    timers = {arm: StepClock(sync_cuda=args.device.startswith("cuda")) for arm in arms}
    tmp = tempfile.TemporaryDirectory()
    trainers = {
        arm: make_trainer(arm, copy.deepcopy(base), data, batch_size=batch_size, steps=args.block_steps + 1,
                          args=args, output_dir=tmp.name, callbacks=[timers[arm]])
        for arm in arms
    }  # fmt: skip
    fetcher = MetaFetch(data["meta"], batch_size=batch_size, device=args.device, seed=args.seed) if fetch else None
    load_before = load()
    blocks: list[dict[str, float]] = []
    for block in range(args.warmup_blocks + args.blocks):
        order = list(arms[block % len(arms):]) + list(arms[: block % len(arms)])
        row: dict[str, float] = {}
        for arm in order:
            timers[arm].clear()
            trainers[arm].train()
            for clock, values in timers[arm].times.items():  # a train() call's first step has no meta step
                row[f"{clock}:{arm}"] = float(np.median(values[1:]))
        if fetcher is not None:
            row.update(fetcher.time(args.block_steps, args.device))
        if block >= args.warmup_blocks:
            blocks.append(row)
        print(f"  {model_name} block {block}{' (warm-up)' if block < args.warmup_blocks else ''}: "
              + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in row.items()) + f" ms  load {load()}", flush=True)  # fmt: skip
    tmp.cleanup()
    result: dict[str, Any] = {
        "model": model_name, "parameters": count_parameters(base), "batch_size": batch_size,
        "input": _input_shape(model_name), "blocks": blocks, "block_steps": args.block_steps,
        "load_before": load_before, "load_after": load(),
    }  # fmt: skip
    for key in blocks[0]:
        result[f"{key}_ms"] = _summary([1e3 * b[key] for b in blocks])
    for clock in CLOCKS:
        ref = f"{clock}:{arms[0]}"
        for arm in arms[1:]:
            a = f"{clock}:{arm}"
            result[f"{a}_ratio"] = _summary([b[a] / b[ref] for b in blocks])
            result[f"{a}_overhead_ms"] = _summary([1e3 * (b[a] - b[ref]) for b in blocks])
        if "floor" in arms:  # the meta forward in context: floor − Trainer; LiLAW's own cost: LiLAW − floor
            f = f"{clock}:floor"
            result[f"{clock}:meta_forward_ms"] = _summary([1e3 * (b[f] - b[ref]) for b in blocks])
            for a in (f"{clock}:{arm}" for arm in arms if arm in LILAW_VARIANTS):
                result[f"{a}_added_ms"] = _summary([1e3 * (b[a] - b[f]) for b in blocks])
                result[f"{a}_overhead_per_forward"] = _summary([(b[a] - b[ref]) / (b[f] - b[ref]) for b in blocks])
    return result


def _input_shape(model_name: str) -> str:
    m = MODELS[model_name]
    if m["spec"]["type"] == "linear_probe":
        return f"{m['spec']['features']}-d features"
    return f"{m['channels']}×{m['image_size']}×{m['image_size']}"


def _summary(values: list[float]) -> dict[str, float]:
    med, iqr, q1, q3 = median_iqr(values)
    return {"median": med, "iqr": iqr, "q1": q1, "q3": q3}


# ------------------------------------------------------------------------------------------------ memory


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def memory_worker(model_name: str, arm: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs in a fresh process: peak memory of ``--memory-steps`` training steps of one arm."""
    batch_size = args.batch_size or MODELS[model_name]["batch_size"]
    data = load_data(model_name, args.seed, clean_fraction=0.02 if arm in ("mlc", "mlc_d", "ebomlc") else 0.0)
    model = make_model(model_name, args.seed)
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(arm, model, data, batch_size=batch_size, steps=args.memory_steps, args=args,
                               output_dir=tmp, callbacks=[])  # fmt: skip
        if cuda:
            trainer.model.to(args.device)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = _proc_status_kib("VmRSS") * 1024
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        trainer.train()
        sync_device(args.device)
        peak = torch.cuda.max_memory_allocated() if cuda else _proc_status_kib("VmHWM") * 1024
    return {"model": model_name, "arm": arm, "device": args.device, "before_bytes": before, "peak_bytes": peak,
            "kind": "cuda_max_allocated" if cuda else "rss_hwm"}  # fmt: skip


def measure_memory(model_name: str, arms: tuple[str, ...], args: argparse.Namespace) -> dict[str, Any]:
    """One fresh subprocess per arm (``--memory-repeats`` of them); medians of their peaks."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(args.threads))
    out: dict[str, Any] = {}
    for arm in arms:
        peaks, increases = [], []
        for _ in range(args.memory_repeats):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", model_name, arm,
                   "--device", args.device, "--seed", str(args.seed), "--memory-steps", str(args.memory_steps),
                   "--threads", str(args.threads)] + (["--bf16"] if args.bf16 else [])  # fmt: skip
            if args.batch_size:
                cmd += ["--batch-size", str(args.batch_size)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"memory worker {model_name}/{arm} failed:\n{proc.stderr[-3000:]}")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            peaks.append(record["peak_bytes"])
            increases.append(record["peak_bytes"] - record["before_bytes"])
        out[arm] = {"peak_mib": float(np.median(peaks)) / 2**20, "increase_mib": float(np.median(increases)) / 2**20,
                    "kind": record["kind"]}  # fmt: skip
        print(f"  {model_name} memory {arm}: peak {out[arm]['peak_mib']:.1f} MiB, "
              f"+{out[arm]['increase_mib']:.1f} MiB during training", flush=True)  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ report


def _ms(entry: dict[str, float]) -> str:
    return f"{entry['median']:.2f} [{entry['iqr']:.2f}]"


def _x(entry: dict[str, float]) -> str:
    return f"{entry['median']:.3f} [{entry['iqr']:.3f}]"


def _memory_ratio(r: dict[str, Any], arm: str, reference: str) -> float | None:
    mem = r.get("memory")
    if not mem or arm not in mem or reference not in mem:
        return None
    return mem[arm]["peak_mib"] / mem[reference]["peak_mib"]


def lilaw_table(results: list[dict[str, Any]], clock: str) -> list[str]:
    rows = []
    for r in results:
        k = lambda name: r[f"{clock}:{name}"]  # noqa: E731
        for arm in (a for a in LILAW_VARIANTS if f"{clock}:{a}_ms" in r):
            mem_ratio = _memory_ratio(r, arm, "trainer")
            if MODELS[r["model"]]["spec"]["type"] == "linear_probe":
                met = k(f"{arm}_ratio")["median"] <= TARGET_PROBE_RATIO and k(f"{arm}_added_ms")["median"] <= TARGET_ADDED_MS
            else:
                met = k(f"{arm}_overhead_per_forward")["median"] <= TARGET_OVERHEAD_PER_FORWARD
            rows.append([
                r["model"], f"{r['parameters'] / 1e6:.2f} M", r["input"], r["batch_size"], ARM_LABELS[arm],
                _ms(k("trainer_ms")), _ms(k("floor_ms")), _ms(k(f"{arm}_ms")), _x(k(f"{arm}_ratio")),
                _x(k("floor_ratio")), _ms(k("meta_forward_ms")), _ms(k(f"{arm}_added_ms")),
                _x(k(f"{arm}_overhead_per_forward")), _ms(k("meta_fetch_ms")),
                "–" if mem_ratio is None else f"{mem_ratio:.3f}",
                ("yes" if met else "no") + ("" if mem_ratio is None else (", yes" if mem_ratio <= TARGET_MEMORY else ", no")),
                f"{r['load_before']} → {r['load_after']}",
            ])  # fmt: skip
    return [markdown_table(
        ["model", "params", "input", "batch", "arm", "Trainer ms", "floor ms", "LiLAW ms", "LiLAW / Trainer",
         "floor / Trainer", "meta forward ms", "added ms beyond the floor", "(LiLAW − Trainer) / (floor − Trainer)",
         "meta fetch ms", "peak memory ratio", "target met (time, memory)", "load (1, 5, 15 min)"],
        rows,
    )]  # fmt: skip


def mlc_table(results: list[dict[str, Any]], clock: str) -> list[str]:
    rows = []
    for r in results:
        mem = r.get("memory", {})
        for arm in MLC_ARMS:
            if f"{clock}:{arm}_ms" not in r:
                continue
            ratio = r.get(f"{clock}:{arm}_ratio")
            rows.append([
                r["model"], f"{r['parameters'] / 1e6:.2f} M", r["input"], r["batch_size"], ARM_LABELS[arm],
                _ms(r[f"{clock}:{arm}_ms"]), "1" if ratio is None else _x(ratio),
                f"{mem[arm]['peak_mib']:.1f}" if arm in mem else "–",
                f"{mem[arm]['increase_mib']:.1f}" if arm in mem else "–",
                f"{r['load_before']} → {r['load_after']}",
            ])  # fmt: skip
    return [markdown_table(
        ["model", "params", "input", "batch", "method", "ms / step", "× CE", "peak MiB", "peak − before train() MiB",
         "load"],
        rows,
    )]  # fmt: skip


def elr_table(results: list[dict[str, Any]], clock: str) -> list[str]:
    rows = []
    for r in results:
        mem_ratio = _memory_ratio(r, "elr", "trainer")
        rows.append([
            r["model"], f"{r['parameters'] / 1e6:.2f} M", r["input"], r["batch_size"], _ms(r[f"{clock}:trainer_ms"]),
            _ms(r[f"{clock}:elr_ms"]), _x(r[f"{clock}:elr_ratio"]), _ms(r[f"{clock}:elr_overhead_ms"]),
            "–" if mem_ratio is None else f"{mem_ratio:.3f}", f"{r['load_before']} → {r['load_after']}",
        ])  # fmt: skip
    return [markdown_table(
        ["model", "params", "input", "batch", "Trainer ms", "ELR ms", "ELR / Trainer", "ELR − Trainer ms",
         "peak memory ratio", "load (1, 5, 15 min)"],
        rows,
    )]  # fmt: skip


def _clocks(args: argparse.Namespace) -> tuple[str, ...]:
    return ("wall",) if args.device.startswith("cuda") else ("cpu", "wall")


def report(lilaw: list[dict[str, Any]], mlc: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any],
           elr: list[dict[str, Any]] | None = None) -> str:  # fmt: skip
    hw = meta["hardware"]
    kind = "peak RSS (VmHWM) of a fresh process" if args.device == "cpu" else "torch.cuda.max_memory_allocated"
    lines = [
        "# Cost per step: LiLAW, ELR and meta label correction against `transformers.Trainer`",
        "",
        f"Command: `{meta['command']}`  ",
        f"Hardware: {hw['processor']} ({hw['logical_cpus']} logical CPUs, shared with other jobs), "
        f"{hw['torch_threads']} torch thread(s), device {hw['device']}" + (f" ({hw['gpu']})" if "gpu" in hw else "")
        + f"{', bf16' if args.bf16 else ''}; torch {hw['torch']}, transformers {hw['transformers']}. "
        f"Wall time {meta['seconds'] / 60:.1f} min. Load averages are `os.getloadavg()` before → after each model.",
        "",
        f"{args.blocks} timed blocks of {args.block_steps} steps per arm (after {args.warmup_blocks} warm-up blocks), "
        "interleaved in one process; medians over blocks, IQR in brackets; ms per optimizer step. Peak memory: "
        f"{kind}, median of {args.memory_repeats} process(es) per arm, {args.memory_steps} steps.",
    ]  # fmt: skip
    if lilaw:
        lines += [
            "", "## LiLAW", "",
            "*floor* = Trainer plus one no-grad eval forward of a random meta batch before every step (indexed from "
            "tensors collated once): LiLAW's time if its meta step cost only that forward. *meta forward* = floor − "
            "Trainer; *added ms* = LiLAW − floor (per block). Targets (CPU): linear probe LiLAW / Trainer "
            f"≤ {TARGET_PROBE_RATIO} and added ≤ {TARGET_ADDED_MS} ms; other models (LiLAW − Trainer) / (floor − Trainer) "
            f"≤ {TARGET_OVERHEAD_PER_FORWARD}; peak memory ≤ {TARGET_MEMORY} × Trainer. *meta fetch* = reading, "
            "collating and moving a meta batch the general way (what a tensor-cached meta set saves).",
        ]  # fmt: skip
        for clock in _clocks(args):
            lines += ["", f"### {clock} time per step", ""] + lilaw_table(lilaw, clock)
    if mlc:
        lines += ["", "## Meta label correction family", "", "Default options of each trainer; 2 % clean set, "
                  "clean batch = training batch."]  # fmt: skip
        for clock in _clocks(args):
            lines += ["", f"### {clock} time per step", ""] + mlc_table(mlc, clock)
    if elr:
        lines += ["", "## ELR", "", "Default λ and β, targets on the model's device; *ELR / Trainer* and *ELR − Trainer* "
                  "are taken per block (adjacent in time), then the median."]  # fmt: skip
        for clock in _clocks(args):
            lines += ["", f"### {clock} time per step", ""] + elr_table(elr, clock)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["linear_probe", "small_cnn", "efficientnet_lite0"], choices=list(MODELS))
    parser.add_argument("--lilaw-arms", nargs="+", default=["lilaw"], choices=LILAW_VARIANTS,
                        help="LiLAW variants timed against Trainer and the floor (lilaw_compiled: lilaw_compile=True).")
    parser.add_argument("--mlc-models", nargs="*", default=["resnet18", "efficientnet_lite0"], choices=list(MODELS))
    parser.add_argument("--elr-models", nargs="*", default=[], choices=list(MODELS),
                        help="Models on which ELRTrainer is timed against Trainer (default: none).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="Mixed precision (TrainingArguments.bf16) for every arm.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, help="Override the per-model batch size.")
    parser.add_argument("--blocks", type=int, default=8, help="Timed blocks per arm.")
    parser.add_argument("--warmup-blocks", type=int, default=2)
    parser.add_argument("--block-steps", type=int, default=5, help="Timed steps per block (one more is run).")
    parser.add_argument("--memory", default="subprocess", choices=["subprocess", "none"])
    parser.add_argument("--memory-steps", type=int, default=6)
    parser.add_argument("--memory-repeats", type=int, default=1)
    parser.add_argument("--out-dir", default=str(RESULTS_DIR / "cost"))
    parser.add_argument("--name", default="cost", help="Output file stem.")
    parser.add_argument("--memory-worker", nargs=2, metavar=("MODEL", "ARM"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = parse_args(argv)
    offline_environment(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("transformers", "hf_lilaw", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()
    if args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker, args)))
        return {}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available.")

    start = time.perf_counter()
    lilaw_results: list[dict[str, Any]] = []
    mlc_results: list[dict[str, Any]] = []
    elr_results: list[dict[str, Any]] = []
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / f"{args.name}.md", "json": out_dir / f"{args.name}.json"}

    def write() -> str:  # after every model, so a long run interrupted late keeps what it measured
        meta = {"command": command_line(), "hardware": hardware_info(args.device), "seconds": time.perf_counter() - start,
                "settings": {k: v for k, v in vars(args).items() if k != "memory_worker"}}  # fmt: skip
        text = report(lilaw_results, mlc_results, args, meta, elr_results)
        paths["markdown"].write_text(text)
        write_json(paths["json"], {"meta": meta, "lilaw": lilaw_results, "mlc": mlc_results, "elr": elr_results})
        return text

    families = [(args.models, "LiLAW", LILAW_BASE_ARMS + tuple(args.lilaw_arms), True, lilaw_results),
                (args.mlc_models, "meta label correction family", MLC_ARMS, False, mlc_results),
                (args.elr_models, "ELR", ELR_ARMS, False, elr_results)]  # fmt: skip
    for model_names, family, arms, fetch, results in families:
        for model_name in model_names:
            print(f"{model_name} ({family}):", flush=True)
            result = time_arms(model_name, arms, args, fetch=fetch)
            if args.memory == "subprocess":
                result["memory"] = measure_memory(model_name, tuple(a for a in arms if a != "floor"), args)
            results.append(result)
            write()
    print(write())
    return paths


if __name__ == "__main__":
    main()
