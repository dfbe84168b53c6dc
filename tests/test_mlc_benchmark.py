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

from test_benchmarks import restore_globals  # noqa: E402, F401  (autouse: the script sets process-wide state)


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
    runs = mlc_benchmark.read_jsonl(tmp_path / "mlc_toy_runs.jsonl")
    assert len(runs) == 2 * 2 * 3
    # CE never sees the clean set: one run per seed, filed under both clean-set sizes.
    ce = {(r["seed"], r["clean_fraction"]): r for r in runs if r["method"] == "ce"}
    assert ce[(0, 0.05)]["train_seconds"] == ce[(0, 0.1)]["train_seconds"]
    assert all(0.0 <= r["corrected_is_true"] <= 1.0 for r in runs if r["method"] != "ce")
    # Resuming skips what is there.
    mlc_benchmark.main(["--config", str(path), "--grid", "full", "--out-dir", str(tmp_path)])
    assert len(mlc_benchmark.read_jsonl(tmp_path / "mlc_toy_runs.jsonl")) == len(runs)

    mlc_benchmark.main(["--summary", str(path), "--out-dir", str(tmp_path), "--name", "toy_summary"])
    text = (tmp_path / "toy_summary.md").read_text()
    assert "| model | recipe | noise | CE acc. % | clean 5 % | clean 10 % |" in text
    assert "| mlc_toy | default | uniform 50 % |" in text
    cells = json.loads((tmp_path / "toy_summary.json").read_text())["mlc_toy"]
    assert {(c["method"], c["clean_fraction"]) for c in cells} == {(m, f) for m in ("mlc", "ebomlc") for f in (0.05, 0.1)}
    assert (tmp_path / "toy_summary.png").stat().st_size > 10_000
