"""benchmarks/mlc_benchmark.py: the paired statistics on known records, and a toy grid through the summary."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import mlc_benchmark  # noqa: E402


def _record(method, seed, acc, *, recipe="default", fraction=0.1, noise="uniform", rate=0.5):
    return {"method": method, "seed": seed, "test_accuracy": acc, "recipe": recipe, "clean_fraction": fraction,
            "noise": noise, "rate": rate}  # fmt: skip


def test_paired_cells_reference_values():
    ce = [0.80, 0.82, 0.78, 0.85]
    ebomlc = [0.86, 0.85, 0.84, 0.88]
    runs = [_record("ce", s, a) for s, a in enumerate(ce)] + [_record("ebomlc", s, a) for s, a in enumerate(ebomlc)]
    runs.append(_record("ebomlc", 9, 0.99))  # no CE twin: not paired
    runs.append(_record("mlc", 0, 0.90))  # one paired seed: no test, no cell
    cells = mlc_benchmark.paired_cells(runs)
    assert [c["method"] for c in cells] == ["ebomlc"]
    cell = cells[0]
    d = 100 * (np.array(ebomlc) - np.array(ce))
    assert cell["seeds"] == 4
    assert cell["delta"] == pytest.approx(d.mean())
    assert cell["delta_se"] == pytest.approx(d.std(ddof=1) / 2)
    assert cell["p"] == pytest.approx(ttest_rel(100 * np.array(ebomlc), 100 * np.array(ce)).pvalue)
    assert cell["ce"] == pytest.approx(100 * np.mean(ce)) and cell["acc"] == pytest.approx(100 * np.mean(ebomlc))


def test_toy_grid_then_summary(tmp_path):
    config = json.loads((ROOT / "benchmarks/configs/mlc_digits_cpu.json").read_text())
    config.update(name="mlc_toy", training={"epochs": 1, "batch_size": 64}, model={"type": "mlp", "hidden": [16]})
    config["grids"] = {"full": {"recipes": ["default"], "clean_fractions": [0.05, 0.1], "conditions": [["uniform", 0.5]],
                                "seeds": [0, 1], "methods": ["ce", "mlc", "ebomlc"]}}  # fmt: skip
    path = tmp_path / "mlc_toy.json"
    path.write_text(json.dumps(config))
    mlc_benchmark.main(["--config", str(path), "--grid", "full", "--out-dir", str(tmp_path)])
    runs = mlc_benchmark.grid.read_records(tmp_path / "mlc_toy_runs.jsonl")
    assert len(runs) == 2 * 2 * 3
    # CE never sees the clean set: one run per seed, filed under both clean-set sizes.
    ce = {(r["seed"], r["clean_fraction"]): r for r in runs if r["method"] == "ce"}
    assert ce[(0, 0.05)]["train_seconds"] == ce[(0, 0.1)]["train_seconds"]
    assert all(0.0 <= r["corrected_is_true"] <= 1.0 for r in runs if r["method"] != "ce")
    # Resuming skips what is there.
    mlc_benchmark.main(["--config", str(path), "--grid", "full", "--out-dir", str(tmp_path)])
    assert len(mlc_benchmark.grid.read_records(tmp_path / "mlc_toy_runs.jsonl")) == len(runs)

    mlc_benchmark.main(["--summary", str(path), "--out-dir", str(tmp_path), "--name", "toy_summary"])
    text = (tmp_path / "toy_summary.md").read_text()
    assert "| model | recipe | noise | CE acc. % | clean 5 % | clean 10 % |" in text
    assert "| mlc_toy | default | uniform 50 % |" in text
    cells = json.loads((tmp_path / "toy_summary.json").read_text())["mlc_toy"]
    assert {(c["method"], c["clean_fraction"]) for c in cells} == {(m, f) for m in ("mlc", "ebomlc") for f in (0.05, 0.1)}
    assert (tmp_path / "toy_summary.png").stat().st_size > 10_000


def test_interval_and_reading_from_a_record():
    cell = mlc_benchmark._compare([90.0, 91.0, 92.0, 95.0], [91.0, 90.0, 92.0, 93.0])
    assert cell["mean"] == pytest.approx(0.5) and cell["p"] == pytest.approx(
        ttest_rel([90.0, 91.0, 92.0, 95.0], [91.0, 90.0, 92.0, 93.0]).pvalue
    )
    cell["p_adjusted"] = 0.6
    half = cell["high"] - cell["mean"]
    assert mlc_benchmark.interval(cell) == f"+0.5 [{0.5 - half:+.1f}, {0.5 + half:+.1f}]"
    assert mlc_benchmark.verdict(cell) == f"no effect larger than {0.5 + half:.1f} detected"
    shown = {**cell, "mean": -0.4, "low": -0.7, "high": -0.1, "p": 0.01, "p_adjusted": 0.03}
    assert (mlc_benchmark.interval(shown), mlc_benchmark.verdict(shown)) == ("-0.4 [-0.7, -0.1] ‡", "behind by 0.4")
    assert mlc_benchmark.interval({**shown, "p_adjusted": 0.2}) == "-0.4 [-0.7, -0.1] †"


def test_fair_comparisons_pair_each_method_with_each_baseline():
    accs = {"ce": [0.80, 0.82, 0.78], "ce_union": [0.84, 0.83, 0.80], "ce_clean": [0.60, 0.62, 0.65],
            "mlc": [0.86, 0.85, 0.84], "ebomlc_gate": [0.81, 0.80, 0.79]}  # fmt: skip
    runs = [_record(m, s, a) for m, values in accs.items() for s, a in enumerate(values)]
    runs.append(_record("mlc", 0, 0.1, recipe="authors"))  # another recipe: not compared
    cells = mlc_benchmark.fair_comparisons(runs)
    family = [c for c in cells if c["family"] == "mlc_family"]
    assert {(c["method"], c["reference"]) for c in family} == {
        (m, r) for m in ("mlc", "ebomlc_gate") for r in ("ce", "ce_union", "ce_clean")
    }
    union = next(c for c in family if (c["method"], c["reference"]) == ("mlc", "ce_union"))
    d = 100 * (np.array(accs["mlc"]) - np.array(accs["ce_union"]))
    assert union["mean"] == pytest.approx(d.mean()) and union["acc"] == pytest.approx(100 * np.mean(accs["mlc"]))
    # BH over the family of six, not over every comparison of the table.
    bh = mlc_benchmark.stats.benjamini_hochberg
    assert [c["p_adjusted"] for c in family] == pytest.approx(list(bh([c["p"] for c in family])))
    assert [c["p_adjusted"] for c in family] != pytest.approx(list(bh([c["p"] for c in cells])[:6]))
    baselines = [c for c in cells if c["family"] == "baselines"]
    assert {(c["method"], c["reference"]) for c in baselines} == {("ce_union", "ce"), ("ce_clean", "ce")}


def _toy_config(tmp_path, grids, name="mlc_toy"):
    config = json.loads((ROOT / "benchmarks/configs/mlc_digits_cpu.json").read_text())
    config.update(name=name, training={"epochs": 1, "batch_size": 64}, model={"type": "mlp", "hidden": [16]})
    config["grids"] = grids
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def test_fair_baselines_see_the_clean_rows_on_the_mlc_schedule(tmp_path):
    grid = {"recipes": ["default"], "clean_fractions": [0.05], "conditions": [["uniform", 0.5]], "seeds": [0],
            "methods": ["ce", "mlc", "ce_union", "ce_clean"]}  # fmt: skip
    path = _toy_config(tmp_path, {"full": grid})
    mlc_benchmark.main(["--config", str(path), "--grid", "full", "--out-dir", str(tmp_path)])
    runs = {r["method"]: r for r in mlc_benchmark.grid.read_records(tmp_path / "mlc_toy_runs.jsonl")}
    train_rows, clean_rows = runs["mlc"]["train_rows"], runs["mlc"]["clean_rows"]
    assert clean_rows == 70  # 7 per class
    per_epoch = -(-train_rows // 64)
    # The same optimizer steps as MLC; MLC's clean batch is the 64 of the batch (fewer than the 70 clean rows).
    assert runs["ce_union"]["steps"] == runs["ce_clean"]["steps"] == runs["mlc"]["steps"] == runs["ce"]["steps"] == per_epoch
    assert runs["mlc"]["clean_batch"] == runs["ce_union"]["clean_batch"] == 64
    repeats = round(64 * per_epoch / 70)
    assert runs["ce_union"]["union_rows"] == train_rows + repeats * 70
    assert runs["ce_union"]["batch_size"] == 128 and runs["ce_clean"]["batch_size"] == 64
    assert len({runs[m]["test_accuracy"] for m in runs}) > 1  # different data, different models


def test_clean_batch_sweep_records_and_report(tmp_path):
    grid = {"recipes": ["default"], "clean_fractions": [0.02], "conditions": [["none", 0.0]],
            "clean_batch_sizes": [8, 64], "seeds": [0, 1], "methods": ["ce", "mlc"]}  # fmt: skip
    path = _toy_config(tmp_path, {"sweep": grid}, name="mlc_toy_sweep")
    mlc_benchmark.main(["--config", str(path), "--grid", "sweep", "--out-dir", str(tmp_path), "--report"])
    runs = mlc_benchmark.grid.read_records(tmp_path / "mlc_toy_sweep_runs.jsonl")
    assert len(runs) == 2 * 2 * 2
    mlc = {(r["seed"], r["clean_batch_size"]): r for r in runs if r["method"] == "mlc"}
    assert mlc[(0, 8)]["clean_batch"] == 8 and mlc[(0, 64)]["clean_batch"] == 30  # capped at the 30 clean rows
    ce = {(r["seed"], r["clean_batch_size"]): r for r in runs if r["method"] == "ce"}
    assert ce[(0, 8)]["test_accuracy"] == ce[(0, 64)]["test_accuracy"]  # one CE run per seed, filed under both
    cells = json.loads((tmp_path / "mlc_toy_sweep.json").read_text())
    assert {(c["clean_batch_size"], c["n"]) for c in cells} == {(8, 2), (64, 2)}
    assert "| default | none 0 % | 2 % (30) | 64 (30) | mlc | 2 |" in (tmp_path / "mlc_toy_sweep.md").read_text()
