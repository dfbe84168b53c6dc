"""Smoke test of the benchmark scripts at toy scale: they run and write tables with the documented columns.

No timing assertions: the numbers are meaningless at this scale.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, training  # noqa: E402
from benchmarks.common import RECORD_KEYS, cpu_model, load_config  # noqa: E402


def header(markdown: str, title: str) -> list[str]:
    """The column names of the first table after the heading ``title``."""
    lines = markdown.splitlines()
    start = lines.index(title)
    row = next(line for line in lines[start:] if line.startswith("| "))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_cpu_model_names_the_generation_behind_a_generic_name(tmp_path):
    block = ("processor\t: {}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {}\n"
             "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 2\n")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(block.format(0, 207) + "\n" + block.format(1, 143))  # only the first processor is read
    assert cpu_model(cpuinfo=cpuinfo) == "Intel(R) Xeon(R) Processor (cpu family 6, model 207, stepping 2)"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Apple M2\n")
    assert cpu_model(cpuinfo=cpuinfo) == "Apple M2"


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
    # A second grid call finds every cell done (`benchmarks.grid` resume) and trains nothing.
    records = (tmp_path / "accuracy_toy_runs.jsonl").read_text()
    accuracy.main(["--config", str(ROOT / "benchmarks/configs/toy.json"), "--out-dir", str(tmp_path)])
    assert (tmp_path / "accuracy_toy_runs.jsonl").read_text() == records


@pytest.mark.parametrize("bad, message", [
    ({"methods": ["lilaw"]}, "The methods must include 'ce': every method is compared with it."),
    ({"methods": ["ce", "nope"]}, "Unknown methods ['nope']; pick from ['ce', 'focal', "),
    ({"seeds": None}, "The config needs a 'seeds' entry (see benchmarks/configs/digits_cpu.json)."),
])  # fmt: skip
def test_config_validation(bad, message):
    raw = load_config(ROOT / "benchmarks/configs/toy.json")
    raw = {k: v for k, v in {**raw, **bad}.items() if v is not None}
    with pytest.raises(ValueError, match=re.escape(message)):
        training.resolve_config(raw)


def test_accuracy_summary_pairs_each_method_with_ce_over_seeds():
    """The summary's Δ and p against CE: `benchmarks.stats` over the seeds both have, the zero-variance rule included."""
    cfg = training.resolve_config({**load_config(ROOT / "benchmarks/configs/toy.json"), "seeds": [0, 1, 2],
                                   "methods": ["ce", "lilaw", "sce"]})  # fmt: skip
    last = {"ce": [0.80, 0.70, 0.75], "lilaw": [0.82, 0.69, 0.80], "sce": [0.85, 0.75, 0.80]}
    runs = [{"noise_type": "uniform", "rate": 0.3, "seed": s, "method": m, "last_test_accuracy": v[s],
             "selected_test_accuracy": 0.5, "step_time_median": 0.01, "train_seconds": 1.0, "selected_epoch": 1.0,
             "realised_noise_rate": 0.3, "steps": 10} for m, v in last.items() for s in range(3)]  # fmt: skip
    runs.append({**runs[-1], "seed": 9})  # an SCE seed without a CE run: not paired
    methods = accuracy.summarise(runs, cfg)["conditions"][0]["methods"]
    lilaw = methods["lilaw"]["last_test_accuracy"]
    d = np.subtract(last["lilaw"], last["ce"])  # +0.02, −0.01, +0.05
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert (lilaw["delta_vs_ce"], lilaw["n_paired"]) == (pytest.approx(0.02), 3)
    assert lilaw["p_vs_ce"] == pytest.approx(1 - t / np.sqrt(2 + t**2))  # two-sided p of t on 2 df
    sce = methods["sce"]
    assert sce["n_seeds"] == 4 and sce["last_test_accuracy"]["n_paired"] == 3
    # SCE − CE is 0.05 on every seed (up to rounding): by the zero-variance rule the exact sign-flip test's p,
    # 2^(1−3) = 0.25, not the t-test's limit 0; identical early-stopped: p 1.
    assert (sce["last_test_accuracy"]["delta_vs_ce"], sce["last_test_accuracy"]["p_vs_ce"]) == (pytest.approx(0.05), 0.25)
    assert (sce["selected_test_accuracy"]["delta_vs_ce"], sce["selected_test_accuracy"]["p_vs_ce"]) == (0.0, 1.0)
    assert "delta_vs_ce" not in methods["ce"]["last_test_accuracy"]


# ------------------------------------------------------------------------------------------------ finetune_noise

from benchmarks import finetune_noise  # noqa: E402


def test_finetune_noise_toy(tmp_path):
    """Both kinds of setting run end to end on a tiny config; a second call resumes (runs nothing new)."""
    out = tmp_path / "toy.jsonl"
    argv = ["--config", str(ROOT / "benchmarks/configs/finetune_toy.json"), "--out", str(out)]
    paths = finetune_noise.main(argv)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["setting"], r["method"]) for r in records) == [
        ("last2", "ce"), ("last2", "lilaw"), ("linear_probe", "ce"), ("linear_probe", "lilaw"),
    ]
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert (r["noise_type"], r["noise_rate"], r["seed"]) == ("uniform", 0.4, 0)
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["test_accuracy_early_stopped"] <= 1 and r["seconds"] > 0
        # the early-stopped accuracy is the test accuracy of the first epoch with the best validation accuracy
        best = max(range(len(r["history"])), key=lambda i: (r["history"][i]["meta_accuracy"], -i))
        assert r["test_accuracy_early_stopped"] == r["history"][best]["test_accuracy"]
        assert r["test_accuracy"] == r["history"][-1]["test_accuracy"]
    assert len(next(r for r in records if r["setting"] == "linear_probe")["history"]) == 2
    for key in ("markdown", "json", "plot"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    finetune_noise.main(argv)
    assert len(out.read_text().splitlines()) == 4


def _record(setting, method, seed, last, early, noise_type="uniform", rate=0.4):
    return {"method": method, "setting": setting, "noise_type": noise_type, "noise_rate": rate, "seed": seed,
            "test_accuracy": last, "test_accuracy_early_stopped": early, "seconds": 1.0 + seed}  # fmt: skip


def test_finetune_summary_from_records(tmp_path):
    """Tables recomputed from a synthetic .jsonl: means, sds, paired differences and t-test p-values."""
    ce = [0.80, 0.82, 0.84]
    sce = [0.85, 0.88, 0.89]  # paired differences 0.05, 0.06, 0.05
    lilaw_last2 = [0.81, 0.82, 0.86]
    ce_last2 = [0.78, 0.81, 0.85]
    records = []
    for s in range(3):
        records += [
            _record("full", "ce", s, ce[s], ce[s]),
            _record("full", "sce", s, sce[s], sce[s] - 0.01),
            _record("last2", "ce", s, ce_last2[s], ce_last2[s]),
            _record("last2", "lilaw", s, lilaw_last2[s], lilaw_last2[s]),
        ]
    path = tmp_path / "synthetic.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    paths = finetune_noise.main(["--summary", str(path)])
    summary = json.loads(paths["json"].read_text())

    cell = next(c for c in summary["cells"] if (c["setting"], c["method"]) == ("full", "sce"))
    assert cell["test_accuracy"]["mean"] == pytest.approx(np.mean(sce))
    assert cell["test_accuracy"]["sd"] == pytest.approx(np.std(sce, ddof=1))
    test = cell["test_accuracy"]["vs_ce"]
    # paired t with 2 degrees of freedom: t = mean(d) / (sd(d) / sqrt(3)), two-sided p = 1 - |t| / sqrt(t² + 2)
    d = np.subtract(sce, ce)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert test["delta"] == pytest.approx(d.mean()) and test["n"] == 3
    assert test["p"] == pytest.approx(1 - abs(t) / np.sqrt(t**2 + 2))
    # the early-stopped metric is paired separately: SCE's early-stopped values are 0.01 lower
    assert cell["test_accuracy_early_stopped"]["vs_ce"]["delta"] == pytest.approx(d.mean() - 0.01)

    rec = next(r for r in summary["recommendation"] if r["setting"] == "full")
    assert (rec["best"], rec["significant"]) == ("sce", True)
    assert rec["gain"] == pytest.approx(d.mean() - 0.01)

    fig3 = next(r for r in summary["figure3"] if r["metric"] == "test_accuracy")
    paper = fig3["paper: LiLAW last-2 − CE full"]
    assert paper["delta"] == pytest.approx(np.mean(np.subtract(lilaw_last2, ce)))
    assert fig3["LiLAW − CE, both last-2"]["delta"] == pytest.approx(np.mean(np.subtract(lilaw_last2, ce_last2)))
    assert fig3["LiLAW − CE, both full"] is None  # no LiLAW run with full fine-tuning
    assert fig3["freezing: CE last-2 − CE full"]["delta"] == pytest.approx(np.mean(np.subtract(ce_last2, ce)))

    text = paths["markdown"].read_text()
    p = 1 - abs(t) / np.sqrt(t**2 + 2)
    assert f"| SCE (α=0.1, β=1) | {100 * np.mean(sce):.1f} ± {100 * np.std(sce, ddof=1):.1f} (+5.3 (p={p:.3f})*) [n=3] |" in text
    assert paths["plot"].stat().st_size > 0


def test_one_seed_has_no_spread_to_show():
    from benchmarks.common import mean_std, pct

    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1414213), abs=1e-6)
    mean, sd = mean_std([0.5])
    assert mean == 0.5 and np.isnan(sd) and f"{pct(mean)} ± {pct(sd)}" == "50.0 ± –"
