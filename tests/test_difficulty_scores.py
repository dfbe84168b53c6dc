"""benchmarks/difficulty_scores.py (the Table-16 evaluation) at toy scale: seeded, so its figures are pinned."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "difficulty_scores.py"

# (AUROC early, AUROC late, AUPRC early, AUPRC late) per score: digits, 50 % uniform noise on train and meta
# sets, 3 epochs, seed 0, one torch thread (about half of the 1527 training labels noisy: a score that ranks at
# random has AUROC and AUPRC near 0.5). Regenerate with the command in the test (an intended change to the
# training, noise or scores).
EXPECTED = {
    "w_alpha": (0.7388, 0.9761, 0.7196, 0.9773),
    "w_beta": (0.7450, 0.9815, 0.7339, 0.9827),
    "w_delta": (0.7406, 0.9778, 0.7231, 0.9791),
    "w": (0.7452, 0.9800, 0.7433, 0.9813),
    "aum": (0.7410, 0.9651, 0.7345, 0.9671),
    "el2n": (0.7377, 0.9758, 0.7182, 0.9769),
    "forgetting": (0.6049, 0.9159, 0.5595, 0.8618),
    "data_maps": (0.7359, 0.9511, 0.7148, 0.9522),
    "data_iq": (0.7359, 0.9511, 0.7148, 0.9522),
    "loss": (0.7359, 0.9472, 0.7148, 0.9485),
}


def _cell(value: float) -> str:
    return f"{value:.3f}"


def test_scores_table_json_and_plot(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "3", "--early_epoch", "0", "--folds", "2", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    for method, expected in EXPECTED.items():
        found = tuple(rows[method][k] for k in ("early_auroc", "late_auroc", "early_auprc", "late_auprc"))
        assert found == pytest.approx(expected, abs=2e-3), method
        assert rows[method]["trainings"] == 1
    assert list(result["lilaw"].values()) == pytest.approx([9.978, 2.030, 6.057], abs=2e-3)
    cleanlab = rows.pop("cleanlab (2-fold CV)")
    assert cleanlab["trainings"] == 2 and cleanlab["late_auroc"] == pytest.approx(0.914, abs=2e-3)
    assert cleanlab["late_auprc"] == pytest.approx(0.922, abs=2e-3)
    assert set(rows) == set(EXPECTED)

    # The markdown table (printed and written) holds the same figures, sorted by late AUROC, best first.
    table = (out / "table.md").read_text()
    assert table.strip() in proc.stdout
    assert table.startswith("Digits (1,797 images, 8x8), MLP 64-128-10, uniform label noise at 50% on train and meta sets, "
                            "1527 training samples, 3 epochs, seed 0.")  # fmt: skip
    body = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    expected = sorted(result["rows"], key=lambda r: -r["late_auroc"])
    assert [line.split(" | ")[0].removeprefix("| ") for line in body] == [r["method"] for r in expected]
    for line, r in zip(body, expected, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:5] == [_cell(r[k]) for k in ("early_auroc", "early_auprc", "late_auroc", "late_auprc")]
    assert "cleanlab find_label_issues flagged 611 samples, precision 0.885, recall 0.708" in table
    # Every figure of the note is in the record too: the counts, and the timings the table rounds.
    assert result["cleanlab"]["flagged"] == 611
    assert result["cleanlab"]["precision"] == pytest.approx(0.885, abs=5e-4)
    assert result["cleanlab"]["recall"] == pytest.approx(0.708, abs=5e-4)
    seconds = (result["cleanlab"]["seconds"], result["lilaw_seconds"])
    assert f"trainings took {seconds[0]:.0f} s against {seconds[1]:.0f} s for the one LiLAW run" in table
    assert "cpu family" in result["machine"]["cpu_model"] and result["machine"]["threads"] == 1
    assert (out / "data_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
