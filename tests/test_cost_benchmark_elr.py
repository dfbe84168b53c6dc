"""Smoke test of benchmarks/cost.py's ELR table at toy scale (no timing assertions: the numbers mean nothing here)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import cost  # noqa: E402

ELR_COLUMNS = ["model", "params", "input", "batch", "Trainer ms", "ELR ms", "ELR / Trainer", "ELR − Trainer ms",
               "peak memory ratio", "load (1, 5, 15 min)"]  # fmt: skip


def test_cost_elr_table_toy(tmp_path):
    paths = cost.main([
        "--models", "--mlc-models", "--elr-models", "toy_probe", "--blocks", "2", "--warmup-blocks", "0",
        "--block-steps", "2", "--memory", "none", "--out-dir", str(tmp_path), "--name", "toy_elr",
    ])  # fmt: skip
    text = paths["markdown"].read_text()
    lines = text.splitlines()
    header = next(line for line in lines[lines.index("## ELR"):] if line.startswith("| "))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ELR_COLUMNS
    record = json.loads(paths["json"].read_text())
    assert record["lilaw"] == [] and record["mlc"] == []
    result = record["elr"][0]
    assert result["model"] == "toy_probe" and len(result["blocks"]) == 2
    for clock in ("cpu", "wall"):
        ratios = sorted(b[f"{clock}:elr"] / b[f"{clock}:trainer"] for b in result["blocks"])
        assert result[f"{clock}:elr_ratio"]["median"] == sum(ratios) / 2  # per block, then the median
    assert "memory" not in result  # measured in fresh processes, as for LiLAW (tested there)
    assert "| toy_probe | 0.00 M | 32-d features | 16 |" in text and "| – |" in text
