"""What LiLAW costs: time per optimizer step and peak memory of `LiLAWTrainer` against `Trainer`.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/cost.py

Same model (identical initial weights), data, batch size and seed for every arm:

- ``trainer``: `transformers.Trainer` with plain cross-entropy (`benchmarks.baselines.cross_entropy`);
- ``lilaw``: `LiLAWTrainer`, defaults (weights not detached), no warm-up so that every step is weighted and
  followed by a meta step, meta batch = training batch size, the meta set a 15 % split;
- ``lilaw_detached``: the same with ``lilaw_detach_weights=True``.

**Time** (one process, interleaved): each block runs ``--block-steps + 1`` optimizer steps of every arm in turn
(the arm order rotates from block to block) through ``trainer.train(max_steps=...)``; a callback times each step
from ``on_step_begin`` to ``on_step_end`` (forward, backward, clipping, optimizer; for LiLAW also the meta step of
the previous step, which runs at the start of ``training_step``). The first step of every block is dropped (no
meta step precedes it; lazy optimizer state), and so are the first ``--warmup-blocks`` blocks. Each block also
times, directly: the **floor**, one no-grad forward of a collated meta batch in eval mode
(``model(**batch)``), the meta batch fetch + collation, and LiLAW's whole meta step (``trainer._meta_step``).
The LiLAW overhead is the per-block difference of the step medians (LiLAW − Trainer, adjacent in time, so drift
cancels); the tables give the median over blocks and the IQR.

**Peak memory** (one fresh process per arm): the process builds the same model/data/trainer, records its resident
set (VmRSS) just before ``train()``, resets the peak (``/proc/self/clear_refs``), runs ``--memory-steps`` steps and
reads the peak (VmHWM). glibc's malloc is pinned with ``MALLOC_MMAP_THRESHOLD_=65536`` so that large tensors are
mmap'ed and returned to the OS when freed: the peak then follows the live tensors instead of heap high-water
marks. On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Data: scikit-learn's digits (hf_lilaw.data) upscaled to the model's input size, either a torch-formatted Arrow
`datasets.Dataset` (``arrow``: what a Trainer user has; LiLAW decodes each meta batch from it) or in-memory
tensors (``memory``: isolates the compute).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import baselines  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    StepTimer,
    TensorRows,
    build_model,
    command_line,
    count_parameters,
    hardware_info,
    image_collator,
    markdown_table,
    median_iqr,
    offline_environment,
    tensorise_images,
    write_json,
)

ARMS = ("trainer", "lilaw", "lilaw_detached")

# Input sizes chosen so that each model's interleaved timing takes about a minute on one CPU core.
MODELS: dict[str, dict[str, Any]] = {
    "small_cnn": {
        "spec": {"type": "small_cnn", "width": 16, "blocks": 2, "hidden": 128},
        "image_size": 32, "channels": 1, "batch_size": 64,
    },
    "resnet18": {
        "spec": {"type": "timm", "architecture": "resnet18"},
        "image_size": 32, "channels": 3, "batch_size": 32,
    },
    "vit_small": {
        "spec": {"type": "vit", "config": {"patch_size": 4, "hidden_size": 128, "num_hidden_layers": 4,
                                           "num_attention_heads": 4, "intermediate_size": 512}},
        "image_size": 32, "channels": 3, "batch_size": 32,
    },
    "toy_cnn": {  # for the smoke test
        "spec": {"type": "small_cnn", "width": 4, "blocks": 1, "hidden": 16},
        "image_size": 8, "channels": 1, "batch_size": 16,
    },
}  # fmt: skip

TARGET_TIME = 0.10  # overhead within 10 % of the floor: (LiLAW − Trainer) ≤ 1.10 × floor
TARGET_MEMORY = 0.05  # peak memory within 5 % of Trainer's


# ------------------------------------------------------------------------------------------------ set-up


def load_data(model_name: str, data_mode: str, seed: int) -> tuple[Any, Any]:
    """(train, meta) splits of digits at the model's input size, as Arrow (torch format) or in-memory rows."""
    from hf_lilaw import load_digits_images

    m = MODELS[model_name]
    size = None if m["image_size"] == 8 else m["image_size"]
    splits = load_digits_images(size=size, rgb=m["channels"] == 3, seed=seed)
    train, meta = (tensorise_images(splits[k], channels=m["channels"]) for k in ("train", "meta"))
    if data_mode == "memory":
        train, meta = TensorRows.from_dataset(train), TensorRows.from_dataset(meta)
    elif data_mode != "arrow":
        raise ValueError(f"--data must be 'arrow' or 'memory', got {data_mode!r}.")
    return train, meta


def make_model(model_name: str, seed: int) -> torch.nn.Module:
    from transformers import set_seed

    m = MODELS[model_name]
    set_seed(seed)
    return build_model(m["spec"], num_labels=10, in_channels=m["channels"], image_size=m["image_size"])


def make_trainer(arm: str, model: torch.nn.Module, train: Any, meta: Any, *, batch_size: int, steps: int,
                 seed: int, device: str, output_dir: str, callbacks: list[Any]) -> Any:  # fmt: skip
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from hf_lilaw import LiLAWConfig, LiLAWTrainer

    common = dict(
        output_dir=output_dir, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=1e-3,
        lr_scheduler_type="constant", logging_steps=10**9, save_strategy="no", eval_strategy="no", report_to=[],
        disable_tqdm=True, seed=seed, use_cpu=device == "cpu", remove_unused_columns=False,
        dataloader_num_workers=0,
    )  # fmt: skip
    if arm == "trainer":
        trainer = Trainer(
            model=model, args=TrainingArguments(**common), data_collator=image_collator, train_dataset=train,
            compute_loss_func=baselines.cross_entropy, callbacks=callbacks,
        )  # fmt: skip
    else:
        args = LiLAWConfig(**common, lilaw_warmup_steps=0, lilaw_detach_weights=arm == "lilaw_detached")
        trainer = LiLAWTrainer(
            model=model, args=args, data_collator=image_collator, train_dataset=train, meta_dataset=meta,
            callbacks=callbacks,
        )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    return trainer


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ time


def time_model(model_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved timing of every arm on one model, plus the floor and the meta-step parts."""
    m = MODELS[model_name]
    batch_size = args.batch_size or m["batch_size"]
    train, meta = load_data(model_name, args.data, args.seed)
    base = make_model(model_name, args.seed)
    timers = {arm: StepTimer(sync_cuda=args.device.startswith("cuda")) for arm in args.arms}
    tmp = tempfile.TemporaryDirectory()
    trainers = {
        arm: make_trainer(arm, copy.deepcopy(base), train, meta, batch_size=batch_size, steps=args.block_steps + 1,
                          seed=args.seed, device=args.device, output_dir=tmp.name, callbacks=[timers[arm]])
        for arm in args.arms
    }  # fmt: skip
    probe = trainers.get("lilaw") or trainers.get("lilaw_detached")
    device = torch.device(args.device)
    blocks: list[dict[str, float]] = []
    for block in range(args.warmup_blocks + args.blocks):
        order = list(args.arms[block % len(args.arms):]) + list(args.arms[: block % len(args.arms)])
        row: dict[str, float] = {}
        for arm in order:
            timer = timers[arm]
            timer.times.clear()
            trainers[arm].train()
            row[arm] = float(np.median(timer.times[1:]))  # the first step of a train() call has no meta step
        if probe is not None:
            row.update(_time_meta_parts(probe, args.block_steps, device, args.device))
        if block >= args.warmup_blocks:
            blocks.append(row)
        print(f"  {model_name} block {block}{' (warm-up)' if block < args.warmup_blocks else ''}: "
              + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in row.items()), flush=True)  # fmt: skip
    tmp.cleanup()
    result: dict[str, Any] = {
        "model": model_name,
        "parameters": count_parameters(base),
        "input": f"{m['channels']}×{m['image_size']}×{m['image_size']}",
        "batch_size": batch_size,
        "meta_batch_size": batch_size,
        "data": args.data,
        "blocks": blocks,
        "block_steps": args.block_steps,
    }
    for key in blocks[0]:
        med, iqr, q1, q3 = median_iqr([b[key] for b in blocks])
        result[f"{key}_ms"] = {"median": 1e3 * med, "iqr": 1e3 * iqr, "q1": 1e3 * q1, "q3": 1e3 * q3}
    for arm in args.arms:
        if arm == "trainer" or "trainer" not in blocks[0]:
            continue
        diffs = [b[arm] - b["trainer"] for b in blocks]
        ratios = [b[arm] / b["trainer"] for b in blocks]
        per_floor = [(b[arm] - b["trainer"]) / b["floor"] for b in blocks] if "floor" in blocks[0] else []
        med, iqr, _, _ = median_iqr(diffs)
        result[f"{arm}_overhead_ms"] = {"median": 1e3 * med, "iqr": 1e3 * iqr}
        med, iqr, _, _ = median_iqr(ratios)
        result[f"{arm}_ratio"] = {"median": med, "iqr": iqr}
        if per_floor:
            med, iqr, _, _ = median_iqr(per_floor)
            result[f"{arm}_overhead_per_floor"] = {"median": med, "iqr": iqr}
    return result


def _time_meta_parts(trainer: Any, repeats: int, device: torch.device, device_name: str) -> dict[str, float]:
    """Medians of: the floor (no-grad eval forward of a collated meta batch), fetch + collate, the whole meta step."""
    model = trainer.model
    collator = trainer.data_collator
    fetch, floor, step = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        batch = collator(trainer._next_meta_examples())
        fetch.append(time.perf_counter() - t0)
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for _ in range(repeats):
            _sync(device_name)
            t0 = time.perf_counter()
            model(**inputs)
            _sync(device_name)
            floor.append(time.perf_counter() - t0)
    model.train(was_training)
    for _ in range(repeats):
        _sync(device_name)
        t0 = time.perf_counter()
        trainer._meta_step(model)
        _sync(device_name)
        step.append(time.perf_counter() - t0)
    return {"floor": float(np.median(floor)), "meta_fetch": float(np.median(fetch)),
            "meta_step": float(np.median(step))}  # fmt: skip


# ------------------------------------------------------------------------------------------------ memory


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def memory_worker(model_name: str, arm: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs in a fresh process: peak memory of ``--memory-steps`` training steps of one arm."""
    batch_size = args.batch_size or MODELS[model_name]["batch_size"]
    train, meta = load_data(model_name, args.data, args.seed)
    model = make_model(model_name, args.seed)
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(arm, model, train, meta, batch_size=batch_size, steps=args.memory_steps,
                               seed=args.seed, device=args.device, output_dir=tmp, callbacks=[])  # fmt: skip
        if cuda:
            trainer.model.to(args.device)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = _proc_status_kib("VmRSS") * 1024
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        trainer.train()
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _proc_status_kib("VmHWM") * 1024
    return {"model": model_name, "arm": arm, "data": args.data, "device": args.device,
            "before_bytes": before, "peak_bytes": peak, "kind": "cuda_max_allocated" if cuda else "rss_hwm"}  # fmt: skip


def measure_memory(model_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh subprocess per arm (and ``--memory-repeats`` of them); medians of their peaks."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(args.threads))
    out: dict[str, Any] = {}
    for arm in args.arms:
        peaks, increases = [], []
        for _ in range(args.memory_repeats):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", model_name, arm,
                   "--data", args.data, "--device", args.device, "--seed", str(args.seed),
                   "--memory-steps", str(args.memory_steps), "--threads", str(args.threads)]  # fmt: skip
            if args.batch_size:
                cmd += ["--batch-size", str(args.batch_size)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"memory worker {model_name}/{arm} failed:\n{proc.stderr[-3000:]}")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            peaks.append(record["peak_bytes"])
            increases.append(record["peak_bytes"] - record["before_bytes"])
        out[arm] = {"peak_mib": float(np.median(peaks)) / 2**20, "increase_mib": float(np.median(increases)) / 2**20,
                    "peaks_mib": [p / 2**20 for p in peaks], "kind": record["kind"]}  # fmt: skip
        print(f"  {model_name} memory {arm}: peak {out[arm]['peak_mib']:.1f} MiB, "
              f"+{out[arm]['increase_mib']:.1f} MiB during training", flush=True)  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ report


def _ms(entry: dict[str, float]) -> str:
    return f"{entry['median']:.2f} [{entry['iqr']:.2f}]"


def report(results: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    lilaw_arms = [a for a in args.arms if a != "trainer"]
    time_rows, memory_rows = [], []
    for r in results:
        base = [r["model"], r["data"], f"{r['parameters'] / 1e6:.2f} M", r["input"], r["batch_size"]]
        for arm in lilaw_arms:
            if f"{arm}_ratio" not in r:
                continue
            per_floor = r.get(f"{arm}_overhead_per_floor", {"median": float("nan"), "iqr": float("nan")})
            met = "yes" if per_floor["median"] <= 1 + TARGET_TIME else "no"
            time_rows.append(base + [
                arm, _ms(r["trainer_ms"]), _ms(r[f"{arm}_ms"]),
                f"{r[f'{arm}_ratio']['median']:.3f} [{r[f'{arm}_ratio']['iqr']:.3f}]",
                _ms(r[f"{arm}_overhead_ms"]), _ms(r["floor_ms"]),
                f"{per_floor['median']:.2f} [{per_floor['iqr']:.2f}]", met,
                _ms(r["meta_step_ms"]), _ms(r["meta_fetch_ms"]),
            ])  # fmt: skip
        mem = r.get("memory")
        if mem and "trainer" in mem:
            for arm in lilaw_arms:
                if arm not in mem:
                    continue
                ratio = mem[arm]["peak_mib"] / mem["trainer"]["peak_mib"]
                inc_t, inc_a = mem["trainer"]["increase_mib"], mem[arm]["increase_mib"]
                memory_rows.append([
                    r["model"], r["data"], arm, f"{mem['trainer']['peak_mib']:.1f}", f"{mem[arm]['peak_mib']:.1f}",
                    f"{ratio:.3f}", f"{inc_t:.1f}", f"{inc_a:.1f}",
                    f"{inc_a / inc_t:.3f}" if inc_t > 0 else "–",
                    "yes" if ratio <= 1 + TARGET_MEMORY else "no",
                ])  # fmt: skip
    hw = meta["hardware"]
    lines = [
        "# Cost of LiLAW against `transformers.Trainer`",
        "",
        f"Command: `{meta['command']}`  ",
        f"Hardware: {hw['processor']} ({hw['logical_cpus']} logical CPUs, shared with other jobs), "
        f"{hw['torch_threads']} torch thread(s) (OMP_NUM_THREADS={hw['OMP_NUM_THREADS']}), device {hw['device']}"
        + (f" ({hw['gpu']})" if "gpu" in hw else "") + f"; torch {hw['torch']}, transformers {hw['transformers']}. "
        f"Wall time {meta['seconds'] / 60:.1f} min.",
        "",
        f"{args.blocks} timed blocks of {args.block_steps} steps per arm (after {args.warmup_blocks} warm-up "
        "blocks), interleaved; values are medians over blocks with the IQR in brackets. Times in ms per optimizer "
        "step. *ratio* = LiLAW / Trainer step time; *overhead* = LiLAW − Trainer (per block, then the median); "
        "*floor* = one no-grad forward of a meta batch (eval mode, already collated); *overhead / floor* is the "
        f"issue's target, met when ≤ {1 + TARGET_TIME:.2f}. *meta step* = `trainer._meta_step` timed alone "
        "(fetch + collate + forward + meta gradient + update); *fetch* = drawing and collating the meta batch.",
        "",
        "## Time per optimizer step",
        "",
        markdown_table(
            ["model", "data", "params", "input", "batch", "arm", "Trainer ms", "LiLAW ms", "ratio", "overhead ms",
             "floor ms", "overhead / floor", "target met", "meta step ms", "fetch ms"],
            time_rows,
        ),  # fmt: skip
    ]
    if memory_rows:
        kind = "peak RSS (VmHWM) of a fresh process" if hw["device"] == "cpu" else "max_memory_allocated"
        lines += [
            "",
            "## Peak memory",
            "",
            f"{kind}, MiB, median over {args.memory_repeats} process(es) per arm, {args.memory_steps} steps each. "
            "*during training* = peak minus the memory held just before `train()` (model, data, libraries). "
            f"Target: LiLAW's peak within {100 * TARGET_MEMORY:.0f} % of Trainer's.",
            "",
            markdown_table(
                ["model", "data", "arm", "Trainer peak", "LiLAW peak", "ratio", "Trainer during training",
                 "LiLAW during training", "ratio (during training)", "target met"],
                memory_rows,
            ),  # fmt: skip
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18", "vit_small"], choices=list(MODELS))
    parser.add_argument("--data", default="arrow", choices=["arrow", "memory"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, help="Override the per-model batch size.")
    parser.add_argument("--blocks", type=int, default=8, help="Timed blocks per arm.")
    parser.add_argument("--warmup-blocks", type=int, default=2)
    parser.add_argument("--block-steps", type=int, default=5, help="Timed steps per block (one more is run).")
    parser.add_argument("--memory", default="subprocess", choices=["subprocess", "none"])
    parser.add_argument("--memory-steps", type=int, default=8)
    parser.add_argument("--memory-repeats", type=int, default=1)
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    parser.add_argument("--name", default="cost", help="Output file stem.")
    parser.add_argument("--memory-worker", nargs=2, metavar=("MODEL", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "trainer" not in args.arms:
        parser.error("--arms must include 'trainer' (everything is compared with it).")
    return args


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
    results = []
    for model_name in args.models:
        print(f"{model_name} ({args.data} data):", flush=True)
        result = time_model(model_name, args)
        if args.memory == "subprocess":
            result["memory"] = measure_memory(model_name, args)
        results.append(result)
    meta = {"command": command_line(), "hardware": hardware_info(args.device), "seconds": time.perf_counter() - start,
            "settings": {k: v for k, v in vars(args).items() if k != "memory_worker"}}  # fmt: skip
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / f"{args.name}.md", "json": out_dir / f"{args.name}.json"}
    text = report(results, args, meta)
    paths["markdown"].write_text(text)
    write_json(paths["json"], {"meta": meta, "results": results})
    print(text)
    return paths


if __name__ == "__main__":
    main()
