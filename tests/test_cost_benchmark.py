"""Smoke test of benchmarks/cost.py at toy scale: it runs and writes its tables with the documented columns.

No timing assertions: the numbers are meaningless at this scale. (Replaces test_benchmarks.py::test_cost_toy,
written for the script's former command line.)
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import cost  # noqa: E402

LILAW_COLUMNS = [
    "model", "params", "input", "batch", "arm", "Trainer ms", "floor ms", "LiLAW ms", "LiLAW / Trainer",
    "floor / Trainer", "meta forward ms", "added ms beyond the floor", "(LiLAW − Trainer) / (floor − Trainer)",
    "meta fetch ms", "peak memory ratio",
    "target met (time, memory)", "load (1, 5, 15 min)",
]  # fmt: skip
MLC_COLUMNS = ["model", "params", "input", "batch", "method", "ms / step", "× CE", "peak MiB", "peak − before train() MiB", "load"]


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip("|").split("|")]


def _header_after(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading)
    return _cells(next(line for line in lines[start:] if line.startswith("| ")))


def test_cost_lilaw_table_toy(tmp_path, monkeypatch):
    """Both LiLAW arms timed in one process; the memory column from the per-arm peaks (faked here: the subprocess
    measurement has its own test below, and a fresh process per arm is most of this script's toy-scale time)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    peaks = {"trainer": 100.0, "lilaw": 104.0, "lilaw_compiled": 110.0}
    memory = {arm: {"peak_mib": peak, "increase_mib": 1.0, "kind": "rss_hwm"} for arm, peak in peaks.items()}
    measured = []

    def fake_memory(model_name, arms, args):
        measured.append((model_name, arms))
        return {arm: memory[arm] for arm in arms}

    monkeypatch.setattr(cost, "measure_memory", fake_memory)
    paths = cost.main([
        "--models", "toy_probe", "--mlc-models", "--blocks", "1", "--warmup-blocks", "0", "--block-steps", "2",
        "--memory-steps", "2", "--out-dir", str(tmp_path), "--name", "toy", "--lilaw-arms", "lilaw", "lilaw_compiled",
    ])  # fmt: skip
    assert measured == [("toy_probe", ("trainer", "lilaw", "lilaw_compiled"))]  # the floor arm is not measured
    text = paths["markdown"].read_text()
    assert _header_after(text, "### cpu time per step") == LILAW_COLUMNS
    assert _header_after(text, "### wall time per step") == LILAW_COLUMNS
    record = json.loads(paths["json"].read_text())
    result = record["lilaw"][0]
    assert result["model"] == "toy_probe" and len(result["blocks"]) == 1 and record["mlc"] == []
    for clock in ("cpu", "wall"):
        for key in ("trainer_ms", "floor_ms", "lilaw_ms", "meta_forward_ms", "meta_fetch_ms", "lilaw_ratio",
                    "lilaw_added_ms", "lilaw_overhead_per_forward", "floor_ratio"):  # fmt: skip
            assert f"{clock}:{key}" in result, (clock, key)
        assert result[f"{clock}:meta_fetch_ms"]["median"] > 0
        block = result["blocks"][0]
        for arm in ("lilaw", "lilaw_compiled"):
            assert result[f"{clock}:{arm}_added_ms"]["median"] == 1e3 * (block[f"{clock}:{arm}"] - block[f"{clock}:floor"])
    assert result["memory"] == memory
    rows = [line for line in text.splitlines() if line.startswith("| toy_probe | 0.00 M | 32-d features | 16 |")]
    assert len(rows) == 4  # two arms, two clocks
    for row in rows:
        cells = dict(zip(LILAW_COLUMNS, _cells(row)))
        arm, ratio, met = cells["arm"], cells["peak memory ratio"], cells["target met (time, memory)"]
        if arm == "LiLAW":
            assert (ratio, met.split(", ")[1]) == ("1.040", "yes")  # within the 1.05 × Trainer target
        else:
            assert (arm, ratio, met.split(", ")[1]) == ("LiLAW (lilaw_compile)", "1.100", "no")
    assert len(result["load_before"]) == 3


def test_measure_memory_reads_a_fresh_process_peak():
    """One fresh process per arm, its peak RSS (VmHWM reset just before training) over the steps it trains."""
    args = cost.parse_args(["--memory-steps", "2"])
    memory = cost.measure_memory("toy_probe", ("lilaw",), args)
    assert set(memory) == {"lilaw"} and memory["lilaw"]["kind"] == "rss_hwm"
    # a Python process with torch and transformers imported holds well over 100 MiB; training adds to it
    assert memory["lilaw"]["peak_mib"] > 100 and 0 <= memory["lilaw"]["increase_mib"] < memory["lilaw"]["peak_mib"]


def test_cost_mlc_family_table_toy(tmp_path, monkeypatch):
    """The arms run interleaved, the order rotating by one each block, and every figure of the record and the table
    is computed from the recorded per-block timings."""
    ran = []
    make_trainer = cost.make_trainer

    def recording(arm, *args, **kwargs):
        trainer = make_trainer(arm, *args, **kwargs)
        train = trainer.train
        monkeypatch.setattr(trainer, "train", lambda *a, **k: (ran.append(arm), train(*a, **k))[1])
        return trainer

    monkeypatch.setattr(cost, "make_trainer", recording)
    paths = cost.main([
        "--models", "--mlc-models", "toy_cnn", "--blocks", "2", "--warmup-blocks", "0", "--block-steps", "1",
        "--memory", "none", "--out-dir", str(tmp_path), "--name", "toy_mlc",
    ])  # fmt: skip
    arms = list(cost.MLC_ARMS)  # ce, lilaw, mlc, mlc_d, ebomlc
    assert ran == arms + arms[1:] + arms[:1]
    text = paths["markdown"].read_text()
    assert _header_after(text, "## Meta label correction family") == MLC_COLUMNS
    result = json.loads(paths["json"].read_text())["mlc"][0]
    assert (result["model"], result["batch_size"], result["input"], result["block_steps"]) == ("toy_cnn", 16, "1×8×8", 1)
    assert result["parameters"] == cost.count_parameters(cost.make_model("toy_cnn", 0))
    blocks = result["blocks"]
    assert len(blocks) == 2 and set(blocks[0]) == {f"{c}:{a}" for c in ("cpu", "wall") for a in arms}
    for clock in ("cpu", "wall"):
        for arm in arms:
            times = sorted(1e3 * b[f"{clock}:{arm}"] for b in blocks)
            assert result[f"{clock}:{arm}_ms"]["median"] == pytest.approx(sum(times) / 2), (clock, arm)
            assert result[f"{clock}:{arm}_ms"]["iqr"] == pytest.approx((times[1] - times[0]) / 2), (clock, arm)
        for arm in arms[1:]:  # ratios and differences per block, against CE's time in the same block
            ratios = sorted(b[f"{clock}:{arm}"] / b[f"{clock}:ce"] for b in blocks)
            assert result[f"{clock}:{arm}_ratio"]["median"] == pytest.approx(sum(ratios) / 2), (clock, arm)
    mlc = result["cpu:mlc_ratio"]
    row = f"| toy_cnn | {result['parameters'] / 1e6:.2f} M | 1×8×8 | 16 | MLC | {cost._ms(result['cpu:mlc_ms'])} | "
    assert row + f"{mlc['median']:.3f} [{mlc['iqr']:.3f}] | – | – |" in text
    assert f"| toy_cnn | {result['parameters'] / 1e6:.2f} M | 1×8×8 | 16 | CE (Trainer) | {cost._ms(result['cpu:ce_ms'])} | 1 |" in text


def test_floor_arm_runs_one_eval_meta_forward_per_step(tmp_path):
    data = cost.load_data("toy_probe", 0)
    model = cost.make_model("toy_probe", 0)
    args = cost.parse_args(["--seed", "0"])
    trainer = cost.make_trainer("floor", model, data, batch_size=16, steps=3, args=args, output_dir=str(tmp_path), callbacks=[])
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(module.training))
    trainer.train()
    assert calls == [False, True] * 3  # the meta forward (eval), then the training forward
    assert model.training
