"""benchmarks/ucr_lstm.py: a 2-epoch smoke run checks the record fields; the summary is checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import ucr_lstm

CONFIG = Path(__file__).resolve().parent.parent / "benchmarks" / "configs" / "ucr_lstm.json"


def test_smoke_run_writes_one_complete_record_per_run(tmp_path):
    cfg = json.loads(CONFIG.read_text())
    cfg["conditions"] = [["uniform", 0.4]]
    config = tmp_path / "ucr_smoke.json"
    config.write_text(json.dumps(cfg))
    out = tmp_path / "ucr_smoke.jsonl"

    md = ucr_lstm.main(["--config", str(config), "--seeds", "0", "--methods", "ce", "lilaw", "--epochs", "2",
                        "--out", str(out)])  # fmt: skip

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["method"] for r in records] == ["ce", "lilaw"]
    for r in records:
        assert set(ucr_lstm.RECORD_KEYS) <= set(r)
        assert (r["setting"], r["noise_type"], r["noise_rate"], r["seed"], r["epochs"]) == ("ucr_lstm_scratch", "uniform", 0.4, 0, 2)
        assert (r["n_train"], r["n_test"]) == (67 - r["n_meta"], 1029)  # the archive's own split
        assert [h["epoch"] for h in r["history"]] == [1.0, 2.0]
        assert r["test_accuracy"] == r["history"][-1]["test_accuracy"]
        best = max(h["meta_accuracy"] for h in r["history"])
        first_best = next(h for h in r["history"] if h["meta_accuracy"] == best)
        assert r["test_accuracy_early_stopped"] == first_best["test_accuracy"]
        assert 0 < r["test_accuracy"] <= 1 and r["seconds"] > 0
    assert "| ucr_lstm_scratch | uniform 40 % | lilaw | 1 |" in md.read_text()

    # A second call finds both runs done and trains nothing.
    ucr_lstm.main(["--config", str(config), "--seeds", "0", "--methods", "ce", "lilaw", "--epochs", "2", "--out", str(out)])
    assert len(out.read_text().splitlines()) == 2


def test_select_takes_the_first_epoch_with_the_best_meta_accuracy():
    history = [
        {"epoch": 1.0, "meta_accuracy": 0.5, "test_accuracy": 0.1},
        {"epoch": 2.0, "meta_accuracy": 0.8, "test_accuracy": 0.2},
        {"epoch": 3.0, "meta_accuracy": 0.8, "test_accuracy": 0.3},
        {"epoch": 4.0, "meta_accuracy": 0.6, "test_accuracy": 0.4},
    ]
    assert ucr_lstm.select(history) == {"test_accuracy": 0.4, "test_accuracy_early_stopped": 0.2, "early_stopped_epoch": 2.0}


def _write(path: Path, rows: list[tuple[str, int, float, float]]) -> Path:
    with path.open("w") as f:
        for method, seed, last, early in rows:
            f.write(json.dumps({"method": method, "setting": "ucr_lstm_scratch", "noise_type": "uniform", "noise_rate": 0.2,
                                "seed": seed, "test_accuracy": last, "test_accuracy_early_stopped": early,
                                "seconds": 2.0 + seed}) + "\n")  # fmt: skip
    return path


def test_summary_matches_hand_computed_values(tmp_path):
    path = _write(tmp_path / "toy.jsonl", [
        ("ce", 0, 0.5, 0.4), ("ce", 1, 0.6, 0.5), ("ce", 2, 0.7, 0.6),
        ("lilaw", 0, 0.6, 0.4), ("lilaw", 1, 0.8, 0.5), ("lilaw", 2, 0.9, 0.6),
    ])  # fmt: skip
    ce, lilaw = ucr_lstm.summarise(ucr_lstm.load_records(path))
    assert (ce["method"], lilaw["method"]) == ("ce", "lilaw")
    assert ce["test_accuracy"]["mean"] == pytest.approx(0.6) and ce["test_accuracy"]["sd"] == pytest.approx(0.1)
    assert ce["test_accuracy"]["vs_ce"] is None and ce["seconds_mean"] == pytest.approx(3.0)
    # lilaw 0.6, 0.8, 0.9: mean 0.766667, sd sqrt(0.046667 / 2) = 0.152753.
    assert lilaw["test_accuracy"]["mean"] == pytest.approx(0.766667, abs=1e-6)
    assert lilaw["test_accuracy"]["sd"] == pytest.approx(0.152753, abs=1e-6)
    # Paired differences 0.1, 0.2, 0.2: mean 1/6, sd 0.057735, t = 5 on 2 df;
    # the t(2) CDF is 1/2 + t / (2 sqrt(2 + t²)), so p = 1 − 5 / sqrt(27).
    test = lilaw["test_accuracy"]["vs_ce"]
    assert test["delta"] == pytest.approx(1 / 6) and test["n"] == 3
    assert test["p"] == pytest.approx(1 - 5 / math.sqrt(27), rel=1e-9)
    # Identical early-stopped accuracies: Δ 0 and p 1.
    assert lilaw["test_accuracy_early_stopped"]["vs_ce"] == {"delta": 0.0, "p": 1.0, "n": 3}

    md = ucr_lstm.write_summary(path).read_text()
    assert "| ucr_lstm_scratch | uniform 20 % | lilaw | 3 | 76.7 ± 15.3 | +16.7 (p=0.038)* | 50.0 ± 10.0 | +0.0 (p=1.000) | 3.0 |" in md


def test_records_missing_a_field_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"method": "ce", "seed": 0}) + "\n")
    with pytest.raises(ValueError, match="lacks"):
        ucr_lstm.load_records(path)


def test_unknown_method_is_refused_before_training():
    cfg = json.loads(CONFIG.read_text())
    cfg["methods"] = ["ce", "mixup"]
    with pytest.raises(ValueError, match="Unknown methods"):
        ucr_lstm.validate(cfg)


def test_runs_of_another_protocol_in_the_records_are_refused(tmp_path):
    """A smoke run (--epochs 1) into a file counted as done for a later grid at other epochs: its cells were skipped
    and the summary paired 1-epoch CE with 60-epoch LiLAW, without a word."""
    cfg = json.loads(CONFIG.read_text())
    cfg.update(conditions=[["uniform", 0.2]], seeds=[0], methods=["ce"])
    out = _write(tmp_path / "mixed.jsonl", [("ce", 0, 0.5, 0.5)])
    record = json.loads(out.read_text())
    out.write_text(json.dumps({**record, "dataset": "ItalyPowerDemand", "epochs": 1}) + "\n")
    with pytest.raises(ValueError, match=r"another protocol \(ce at uniform 0.2, seed 0: epochs 1, not 60\).*--out"):
        ucr_lstm.run(cfg, out)
    # the recorded grid was written by the shipped config: no refusal
    ucr_lstm.check_records(json.loads(CONFIG.read_text()), CONFIG.parent.parent / "results" / "ucr" / "ucr_lstm.jsonl")


def test_summary_title_names_the_recorded_set(tmp_path):
    """The summary's title said ItalyPowerDemand whatever set the config named."""
    path = _write(tmp_path / "gun.jsonl", [("ce", 0, 0.5, 0.4), ("lilaw", 0, 0.6, 0.4)])
    path.write_text("".join(json.dumps({**json.loads(line), "dataset": "GunPoint"}) + "\n" for line in path.read_text().splitlines()))
    assert ucr_lstm.write_summary(path).read_text().startswith("# UCR GunPoint, stacked LSTM")
