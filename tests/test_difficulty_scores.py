"""Smoke test of benchmarks/difficulty_scores.py (the Table-16 evaluation) at toy scale."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "difficulty_scores.py"


def test_runs_and_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "3", "--early_epoch", "0", "--folds", "2", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| w_alpha |" in proc.stdout and "cleanlab (2-fold CV)" in proc.stdout
    rows = json.loads((out / "results.json").read_text())["rows"]
    methods = {r["method"] for r in rows}
    assert {"w_alpha", "w_beta", "aum", "el2n", "forgetting", "data_maps", "loss"} <= methods
    assert all(0.5 < r["late_auroc"] <= 1.0 for r in rows)  # 50 % noise is detectable even after 3 epochs
    assert (out / "data_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
