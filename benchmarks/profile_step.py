"""Where a LiLAW step's time goes, against a Trainer step: pyinstrument profiles of both, interleaved in one process.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/profile_step.py
    .venv/bin/python benchmarks/profile_step.py --models resnet18 --arms ce mlc ebomlc   # the MLC family

For each model (`benchmarks.step_setup.MODELS`: by default the linear probe, the small CNN and EfficientNet-Lite0),
`Trainer` and `LiLAWTrainer` (no warm-up: every step has a meta step) run ``--blocks`` blocks of ``--steps``
optimizer steps each, alternately, under one sampling profiler per arm. The report gives each arm's wall time
per step and, for LiLAW, the time per step spent in the parts of its meta step and loss, found by function
name in the profile (outermost frame of each name; a part nested in another is counted in both, so the rows
don't add up): reading meta rows, collating, moving to the device, the global-RNG save/restore, the meta
forward, the meta gradient, the update, and the weighting inside the training loss. The load average is
printed with every figure: the machine is shared, so only differences measured side by side mean much.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import step_setup
from benchmarks.common import RESULTS_DIR, command_line, markdown_table, offline_environment, write_json

import numpy as np
import torch

# Parts of LiLAW's step, as (label, function names). Names are matched on the profile's frames.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("meta step (all)", ("meta_step",)),
    ("meta rows read (Arrow / __getitems__)", ("read_next",)),
    ("tensor-cached meta batch", ("batch",)),
    ("collate", ("default_data_collator", "torch_default_data_collator", "__call__collator")),
    ("to device (_prepare_inputs)", ("_prepare_inputs",)),
    ("global RNG save/restore", ("preserved_global_rng", "fork_rng", "getstate", "get_state", "set_state", "setstate")),
    ("train/eval mode switches", ("train",)),
    ("meta forward (model)", ("_call_impl",)),
    ("meta gradient", ("lilaw_meta_gradient", "meta_gradient")),
    ("update α, β, δ (with its finiteness guard)", ("guarded_meta_update", "lilaw_meta_update")),
    ("weighted training loss", ("_lilaw_loss",)),
)


# Parts of a meta label correction step (MLC, MLC-D, EBOMLC), by function name, inside ``training_step``.
MLC_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("training_step (all)", ("training_step",)),
    ("clean batch read + collate", ("_next_clean_batches",)),
    ("lower loss (forwards)", ("corrected_lower_loss",)),
    ("model forwards (all)", ("_forward",)),
    ("autograd.grad (backwards)", ("gradients",)),
    ("optimizer .step (EBOMLC inner main step; meta model)", ("step",)),
    ("gradient clipping", ("clip_grad_norm_",)),
    ("barrier coefficient", ("alignment_barrier_coefficient", "dynamic_barrier_coefficient")),
    ("set .grad (copies)", ("set_gradients",)),
    ("meta model step", ("step_meta_model",)),
    ("per-parameter list arithmetic", ("<listcomp>",)),
)

HF_LILAW_DIR = Path(__file__).resolve().parent.parent / "hf_lilaw"


def _walk(frame: Any) -> Iterator[Any]:
    yield frame
    for child in frame.children:
        yield from _walk(child)


def _outermost_time(root: Any, names: tuple[str, ...]) -> float:
    """Total time of frames named ``names``, not counting a frame inside another counted one."""
    total = 0.0
    stack = [root]
    while stack:
        frame = stack.pop()
        if frame.function in names:
            total += frame.time
            continue
        stack.extend(frame.children)
    return total


def _within(root: Any, outer: str) -> list[Any]:
    return [f for f in _walk(root) if f.function == outer]


def profile_model(model_name: str, args: argparse.Namespace) -> dict[str, Any]:
    from pyinstrument import Profiler

    m = step_setup.MODELS[model_name]
    batch_size = args.batch_size or m["batch_size"]
    data = step_setup.load_data(model_name, args.seed, clean_fraction=0.02)
    base = step_setup.make_model(model_name, args.seed)
    arms = tuple(args.arms)
    timers = {arm: step_setup.StepClock() for arm in arms}
    tmp = tempfile.TemporaryDirectory()
    trainers = {
        arm: step_setup.make_trainer(arm, copy.deepcopy(base), data, batch_size=batch_size, steps=args.steps + 1,
                               args=args, output_dir=tmp.name, callbacks=[timers[arm]])
        for arm in arms
    }  # fmt: skip
    for arm in arms:  # warm-up: lazy optimizer state, first-call costs
        trainers[arm].train()
    profilers = {arm: Profiler(interval=args.interval) for arm in arms}
    step_times: dict[str, list[float]] = {f"{clock}:{arm}": [] for arm in arms for clock in step_setup.CLOCKS}
    load_before = step_setup.load()
    for block in range(args.blocks):
        for arm in arms[block % len(arms):] + arms[: block % len(arms)]:
            timers[arm].clear()
            profilers[arm].start()
            trainers[arm].train()
            profilers[arm].stop()
            for clock, values in timers[arm].times.items():
                step_times[f"{clock}:{arm}"].append(float(np.median(values[1:])))
    tmp.cleanup()
    steps = args.blocks * (args.steps + 1)
    result: dict[str, Any] = {"model": model_name, "batch_size": batch_size, "load_before": load_before,
                              "load_after": step_setup.load(), "blocks": args.blocks, "steps_per_block": args.steps + 1}  # fmt: skip
    for key, values in step_times.items():
        result[f"{key}_step_ms"] = 1e3 * float(np.median(values))
    result["parts_ms_per_step"] = {}
    if "lilaw" in arms:
        root = profilers["lilaw"].last_session.root_frame()
        # Parts of the meta step are looked for inside it (the training batch is collated and moved too), the
        # weighting inside the loss.
        scopes = {"weighted training loss": "compute_loss"}
        parts = {
            label: 1e3 * sum(_outermost_time(f, names) for f in _within(root, scopes.get(label, "training_step"))
                             if label in scopes or f.file_path.startswith(str(HF_LILAW_DIR))) / steps
            for label, names in PARTS
        }  # fmt: skip
        meta = _within(root, "meta_step")
        for label, names in PARTS[1:-1]:
            parts[label] = 1e3 * sum(_outermost_time(f, names) for f in meta) / steps
        result["parts_ms_per_step"]["lilaw"] = parts
    for arm in arms:
        if arm not in ("mlc", "mlc_d", "ebomlc"):
            continue
        root = profilers[arm].last_session.root_frame()
        steps_frames = [f for f in _within(root, "training_step") if f.file_path.startswith(str(HF_LILAW_DIR))]
        result["parts_ms_per_step"][arm] = {
            label: 1e3 * sum(_outermost_time(f, names) for f in steps_frames) / steps for label, names in MLC_PARTS
        }
    if args.text:
        text_dir = Path(args.out_dir)
        text_dir.mkdir(parents=True, exist_ok=True)
        for arm in arms:
            (text_dir / f"{args.name}_{model_name}_{arm}.txt").write_text(
                profilers[arm].output_text(unicode=True, color=False, show_all=False)
            )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["linear_probe", "small_cnn", "efficientnet_lite0"],
                        choices=list(step_setup.MODELS))  # fmt: skip
    parser.add_argument("--arms", nargs="+", default=["trainer", "lilaw"], choices=list(step_setup.ARM_LABELS),
                        help="The first is the reference. E.g. --arms ce mlc ebomlc to see where EBOMLC's time goes.")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10, help="Steps per block (one more is run; it is not timed).")
    parser.add_argument("--interval", type=float, default=1e-4, help="pyinstrument's sampling interval (s).")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--text", action="store_true", help="Also write each arm's pyinstrument tree as text.")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR / "cost_profile"))
    parser.add_argument("--name", default="profile_step")
    args = parser.parse_args(argv)
    try:
        import pyinstrument  # noqa: F401
    except ImportError as error:
        raise SystemExit("benchmarks/profile_step.py samples the step with pyinstrument, which is not installed: "
                         "pip install -e '.[bench]' (or pip install pyinstrument).") from error
    offline_environment(args.threads)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("transformers", "hf_lilaw", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()
    start = time.perf_counter()
    results = [profile_model(name, args) for name in args.models]
    rows = []
    for r in results:
        first = True
        for clock in step_setup.CLOCKS:
            reference = r[f"{clock}:{args.arms[0]}_step_ms"]
            for arm in args.arms:
                ms = r[f"{clock}:{arm}_step_ms"]
                load = f"{r['load_before']} → {r['load_after']}" if first else ""
                first = False
                extra = f" (− {step_setup.ARM_LABELS[args.arms[0]]}: {ms - reference:+.2f})" if arm != args.arms[0] else ""
                rows.append([r["model"], f"{step_setup.ARM_LABELS[arm]} step, {clock}", f"{ms:.2f}{extra}", load])
        for arm, parts in r["parts_ms_per_step"].items():
            rows += [[r["model"], f"  {step_setup.ARM_LABELS[arm]}: {label}", f"{ms:.3f}", ""] for label, ms in parts.items()]
    text = "\n".join([
        "# Profile of one LiLAW step against one Trainer step", "",
        f"Command: `{command_line()}`  ",
        f"{args.blocks} blocks of {args.steps + 1} steps per arm, interleaved; step times are medians of per-block "
        f"medians (wall and process CPU time); parts are pyinstrument's sampled wall time per step (interval {args.interval * 1e3:.2f} ms). "
        f"Wall time {(time.perf_counter() - start) / 60:.1f} min.", "",
        markdown_table(["model", "part", "ms per step", "load (1, 5, 15 min) before → after"], rows),
    ]) + "\n"  # fmt: skip
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.md").write_text(text)
    write_json(out_dir / f"{args.name}.json", {"command": command_line(), "results": results})
    print(text)
    return {"results": results, "markdown": out_dir / f"{args.name}.md"}


if __name__ == "__main__":
    main()
