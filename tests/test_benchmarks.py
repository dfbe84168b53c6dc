"""Smoke test of the benchmark scripts at toy scale: they run and write tables with the documented columns.

No timing assertions: the numbers are meaningless at this scale.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, cost  # noqa: E402


@pytest.fixture(autouse=True)
def restore_globals():
    """The scripts set process-wide state for their own runs (threads, log levels, warnings, progress bars)."""
    import logging
    import os
    import warnings

    import datasets
    import torch

    threads = torch.get_num_threads()
    environ = dict(os.environ)
    levels = {name: logging.getLogger(name).level for name in ("transformers", "hf_lilaw", "datasets", "accelerate")}
    bars = datasets.is_progress_bar_enabled()
    with warnings.catch_warnings():
        yield
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(environ)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    if bars:
        datasets.enable_progress_bars()


def header(markdown: str, title: str) -> list[str]:
    """The column names of the first table after the heading ``title``."""
    lines = markdown.splitlines()
    start = lines.index(title)
    row = next(line for line in lines[start:] if line.startswith("| "))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_accuracy_toy_grid(tmp_path):
    paths = accuracy.main(["--config", str(ROOT / "benchmarks/configs/toy.json"), "--out-dir", str(tmp_path)])
    for key in ("markdown", "json", "plot_accuracy", "plot_params"):
        assert paths[key].exists() and paths[key].stat().st_size > 0, key
    runs = [json.loads(line) for line in (tmp_path / "accuracy_toy_runs.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in runs) == ["ce", "lilaw"]
    for r in runs:
        assert len(r["history"]) == 2  # evaluated every epoch
        assert {"test_accuracy", "meta_accuracy"} <= set(r["history"][0])
        assert 0 <= r["last_test_accuracy"] <= 1 and 0 <= r["selected_test_accuracy"] <= 1
        assert r["step_time_median"] > 0
    assert next(r for r in runs if r["method"] == "lilaw")["lilaw_trajectory"]

    text = paths["markdown"].read_text()
    assert header(text, "## Test accuracy at the last epoch") == ["method", "uniform 30 %"]
    assert header(text, "## Test accuracy at the epoch chosen by the noisy validation (meta) split") == [
        "method", "uniform 30 %"
    ]
    assert header(text, "## Time per optimizer step") == ["method", "ms / step", "× CE", "train s / run"]
    assert "| LiLAW |" in text and "| CE (Trainer) |" in text

    summary = json.loads(paths["json"].read_text())["summary"]
    entry = summary["conditions"][0]["methods"]["lilaw"]["last_test_accuracy"]
    assert {"mean", "std", "values"} <= set(entry)

    # Rebuilding the report from the runs file trains nothing and gives the same table.
    again = accuracy.main(["--config", str(ROOT / "benchmarks/configs/toy.json"), "--out-dir", str(tmp_path),
                           "--report-only"])  # fmt: skip
    assert again["markdown"].read_text() == text


def test_cost_toy(tmp_path):
    paths = cost.main([
        "--models", "toy_cnn", "--data", "memory", "--arms", "trainer", "lilaw",
        "--blocks", "2", "--warmup-blocks", "1", "--block-steps", "2", "--memory-steps", "2",
        "--out-dir", str(tmp_path), "--name", "cost_toy",
    ])  # fmt: skip
    text = paths["markdown"].read_text()
    assert header(text, "## Time per optimizer step") == [
        "model", "data", "params", "input", "batch", "arm", "Trainer ms", "LiLAW ms", "ratio", "overhead ms",
        "floor ms", "overhead / floor", "target met", "meta step ms", "fetch ms",
    ]
    assert header(text, "## Peak memory") == [
        "model", "data", "arm", "Trainer peak", "LiLAW peak", "ratio", "Trainer during training",
        "LiLAW during training", "ratio (during training)", "target met",
    ]
    result = json.loads(paths["json"].read_text())["results"][0]
    assert result["model"] == "toy_cnn" and len(result["blocks"]) == 2
    for key in ("trainer_ms", "lilaw_ms", "floor_ms", "meta_step_ms", "lilaw_ratio", "lilaw_overhead_per_floor"):
        assert key in result, key
    assert result["memory"]["trainer"]["peak_mib"] > 0 and result["memory"]["lilaw"]["peak_mib"] > 0


@pytest.mark.parametrize("bad", [{"methods": ["lilaw"]}, {"methods": ["ce", "nope"]}])
def test_config_validation(bad):
    raw = accuracy.load_config(ROOT / "benchmarks/configs/toy.json")
    with pytest.raises(ValueError):
        accuracy.resolve_config({**raw, **bad})
