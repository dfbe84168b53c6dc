"""benchmarks/fashion_mnist_detection.py: its metrics on hand-computed cases, the paired summary on made-up records,
and a tiny grid end to end on synthetic features (no IDX files, no feature cache)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import fashion_mnist_detection as det  # noqa: E402
from benchmarks.grid import read_records  # noqa: E402


def test_top_k_precision_and_recall_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2])
    noisy = np.array([True, False, True, False, False])
    assert det.top_k(scores, noisy, 2) == {"k": 2, "precision": 0.5, "recall": 0.5}  # rows 0, 1
    assert det.top_k(scores, noisy, 3) == {"k": 3, "precision": pytest.approx(2 / 3), "recall": 1.0}  # rows 0-2
    empty = det.top_k(scores, noisy, 0)
    assert empty["recall"] == 0.0 and np.isnan(empty["precision"])


def test_detection_metrics_by_hand():
    # Noisy rows 0 and 2 against clean 1 and 3: 3 of the 4 (noisy, clean) pairs ranked right, so AUROC 0.75.
    m = det.detection_metrics(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0]), k_auto=1)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["at_oracle"] == {"k": 2, "precision": 0.5, "recall": 0.5}
    assert m["at_auto"] == {"k": 1, "precision": 1.0, "recall": 0.5}
    # Two separated groups: the automatic split flags exactly the upper one.
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 0.3, 300), rng.normal(5, 0.3, 100)])
    noisy = np.arange(400) >= 300
    own = det.detection_metrics(scores, noisy, k_auto=50)["auto_split"]
    assert own == {"flagged": 100, "fraction": 0.25, "precision": 1.0, "recall": 1.0}


def _record(seed, condition, w_alpha, loss, k_auto=10):
    def entry(auroc, precision):
        return {"auroc": auroc, "auprc": auroc, "at_oracle": {"k": 20, "precision": precision, "recall": precision},
                "at_auto": {"k": k_auto, "precision": precision if k_auto else float("nan"), "recall": precision / 2},
                "auto_split": {"flagged": 10, "fraction": 0.1, "precision": precision, "recall": 0.5}}  # fmt: skip

    return {"seed": seed, "condition": condition, "settings": det.SETTINGS, "train_rows": 100, "val_rows": 10,
            "realised_noise_rate": 0.2, "k_auto": k_auto, "command": "python x", "lilaw_test_accuracy": 0.8,
            "ce_test_accuracy": 0.8, "lilaw_train_seconds": 1.0, "ce_train_seconds": 1.0,
            "lilaw_parameters": {"alpha": 9.9},
            "scores": {"lilaw/w_alpha": entry(*w_alpha), "ce/loss": entry(*loss)}}  # fmt: skip


def test_summary_pairs_scores_over_seeds():
    records = [_record(0, "uniform_20", (0.90, 0.8), (0.88, 0.8)), _record(1, "uniform_20", (0.92, 0.9), (0.90, 0.7)),
               _record(2, "uniform_20", (0.94, 0.7), (0.90, 0.7), k_auto=0)]  # fmt: skip
    s = det.summarise(records)
    (auroc,) = s["families"]["AUROC"]
    assert auroc["score"] == "ce/loss"
    assert (auroc["c"].n, auroc["c"].mean) == (3, pytest.approx(8 / 3))  # differences 2, 2 and 4 points
    (oracle,) = s["families"]["precision at k = oracle"]
    assert oracle["c"].mean == pytest.approx(20 / 3)  # 0, 20 and 0 points
    (auto,) = s["families"]["precision at k = auto"]
    assert auto["c"].n == 2  # seed 2 flagged nothing automatically: no precision there
    text = det.report(records)
    assert "| W_α (LiLAW) | 92.0 ± 2.0 |" in text
    reference = [{"condition": "uniform_20", "seed": 0, "method": "lilaw", "last_test_accuracy": 0.8,
                  "lilaw_parameters": {"alpha": 9.9}},
                 {"condition": "uniform_20", "seed": 1, "method": "lilaw", "last_test_accuracy": 0.8,
                  "lilaw_parameters": {"alpha": 9.8}},
                 {"condition": "uniform_20", "seed": 0, "method": "ce", "last_test_accuracy": 0.8}]  # fmt: skip
    line = det.pairing(records, reference)
    assert "final α, β, δ equal in 1 of 2 runs" in line and "test accuracy in 1 of 1." in line
    assert det.pairing(records, []) == ""


def test_tiny_grid_end_to_end(tmp_path, monkeypatch):
    """Separable synthetic features: a run per cell, resume, and --summary recomputing the table from the records."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(10, 16))
    y, y_test = np.arange(600) % 10, np.arange(200) % 10
    x = (centres[y] + rng.normal(size=(600, 16))).astype(np.float32)
    x_test = (centres[y_test] + rng.normal(size=(200, 16))).astype(np.float32)
    monkeypatch.setattr(det, "load_features", lambda data_dir=None: (x, y, x_test, y_test))
    small = {"epochs": 4, "batch_size": 64, "learning_rate": 1e-2, "val_rows": 100}
    monkeypatch.setattr(det, "SETTINGS", {**det.SETTINGS, **small})
    args = ["--seeds", "0", "1", "--conditions", "uniform_40", "--out-dir", str(tmp_path)]
    assert det.main(args) == 0
    records = read_records(tmp_path / f"{det.NAME}_runs.jsonl")
    assert [(r["seed"], r["condition"]) for r in records] == [(0, "uniform_40"), (1, "uniform_40")]
    for r in records:
        train, _, noisy = det.make_split(r["seed"], "uniform_40", y, 100)
        assert r["noisy_rows"] == int((noisy[train] != y[train]).sum()) and r["train_rows"] == 500
        assert set(det.SCORES) <= set(r["scores"])
        for entry in r["scores"].values():
            assert entry["at_oracle"]["k"] == r["noisy_rows"]
            assert entry["at_oracle"]["precision"] == entry["at_oracle"]["recall"]
            assert entry["at_auto"]["k"] == r["k_auto"]
        assert r["scores"]["lilaw/w_alpha"]["auroc"] > 0.8  # the noisy rows of separable classes stand out
    written = (tmp_path / f"{det.NAME}.md").read_text()
    assert det.main(args) == 0  # resumed: nothing left to run
    assert len(read_records(tmp_path / f"{det.NAME}_runs.jsonl")) == 2
    (tmp_path / f"{det.NAME}.md").unlink()
    assert det.main(["--summary", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / f"{det.NAME}.md").read_text() == written
    summary = json.loads((tmp_path / f"{det.NAME}.json").read_text())
    mean = np.mean([100 * r["scores"]["ce/aum"]["auroc"] for r in records])
    assert summary["means"]["AUROC/uniform_40/ce/aum"] == pytest.approx(mean)
