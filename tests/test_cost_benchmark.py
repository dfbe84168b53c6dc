"""Smoke test of benchmarks/cost.py at toy scale: it runs and writes its tables with the documented columns.

No timing assertions: the numbers are meaningless at this scale. (Replaces test_benchmarks.py::test_cost_toy,
written for the script's former command line.)
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import cost  # noqa: E402

LILAW_COLUMNS = [
    "model", "params", "input", "batch", "Trainer ms", "LiLAW ms", "LiLAW / Trainer", "floor", "meta forward ms",
    "added ms beyond forward", "(LiLAW − Trainer) / forward", "meta fetch ms", "peak memory ratio",
    "target met (time, memory)", "load (1, 5, 15 min)",
]  # fmt: skip
MLC_COLUMNS = ["model", "params", "input", "batch", "method", "ms / step", "× CE", "peak MiB", "peak − before train() MiB", "load"]


def _header_after(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading)
    row = next(line for line in lines[start:] if line.startswith("| "))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_cost_lilaw_table_toy(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    paths = cost.main([
        "--models", "toy_probe", "--mlc-models", "--blocks", "1", "--warmup-blocks", "0", "--block-steps", "2",
        "--memory-steps", "2", "--out-dir", str(tmp_path), "--name", "toy",
    ])  # fmt: skip
    text = paths["markdown"].read_text()
    assert _header_after(text, "### cpu time per step") == LILAW_COLUMNS
    assert _header_after(text, "### wall time per step") == LILAW_COLUMNS
    record = json.loads(paths["json"].read_text())
    result = record["lilaw"][0]
    assert result["model"] == "toy_probe" and len(result["blocks"]) == 1 and record["mlc"] == []
    for clock in ("cpu", "wall"):
        for key in ("trainer_ms", "lilaw_ms", "forward_ms", "meta_fetch_ms", "lilaw_ratio", "lilaw_added_ms",
                    "lilaw_overhead_per_forward", "floor_ratio"):  # fmt: skip
            assert f"{clock}:{key}" in result, (clock, key)
        assert result[f"{clock}:forward_ms"]["median"] > 0
    assert result["memory"]["trainer"]["peak_mib"] > 0 and result["memory"]["lilaw"]["peak_mib"] > 0
    assert len(result["load_before"]) == 3


def test_cost_mlc_family_table_toy(tmp_path):
    paths = cost.main([
        "--models", "--mlc-models", "toy_cnn", "--blocks", "1", "--warmup-blocks", "0", "--block-steps", "1",
        "--memory", "none", "--out-dir", str(tmp_path), "--name", "toy_mlc",
    ])  # fmt: skip
    text = paths["markdown"].read_text()
    assert _header_after(text, "## Meta label correction family") == MLC_COLUMNS
    result = json.loads(paths["json"].read_text())["mlc"][0]
    for arm in cost.MLC_ARMS:
        assert result[f"cpu:{arm}_ms"]["median"] > 0, arm
    assert "EBOMLC" in text and "MLC-D" in text
