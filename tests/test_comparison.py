"""`compare_runs`: mean ± sd per run and the paired difference, checked against values computed by hand."""

import json
import math

import pytest

from hf_lilaw.comparison import compare_runs, paired_difference

# Three seeds; LiLAW − Trainer accuracy is +0.02, −0.01, +0.05 (mean 0.02, sd 0.03).
PER_SEED = {
    0: {"Trainer": {"test_accuracy": 0.80, "test_loss": 1.0, "test_runtime": 3.1, "epoch": 3.0},
        "LiLAWTrainer": {"test_accuracy": 0.82, "test_loss": 0.9, "test_runtime": 2.0, "epoch": 3.0}},
    1: {"Trainer": {"test_accuracy": 0.70, "test_loss": 1.2, "test_runtime": 3.0, "epoch": 3.0},
        "LiLAWTrainer": {"test_accuracy": 0.69, "test_loss": 1.1, "test_runtime": 2.0, "epoch": 3.0}},
    2: {"Trainer": {"test_accuracy": 0.75, "test_loss": 1.4, "test_runtime": 3.0, "epoch": 3.0},
        "LiLAWTrainer": {"test_accuracy": 0.80, "test_loss": 1.3, "test_runtime": 2.0, "epoch": 3.0}},
}  # fmt: skip


def test_paired_difference_interval_and_p_value_by_hand():
    result = compare_runs(PER_SEED, baseline="Trainer")
    assert result.seeds == [0, 1, 2] and result.runs == ["Trainer", "LiLAWTrainer"]
    assert list(result.metrics) == ["test_accuracy", "test_loss"]  # runtime and epoch are bookkeeping
    reordered = {s: {r: {"test_loss": m["test_loss"], "f1": 0.5, "test_accuracy": m["test_accuracy"]} for r, m in runs.items()}
                 for s, runs in PER_SEED.items()}  # fmt: skip
    assert list(compare_runs(reordered).metrics) == ["test_accuracy", "test_loss", "f1"]
    accuracy = result.metrics["test_accuracy"]
    assert accuracy["runs"]["Trainer"]["mean"] == pytest.approx(0.75)
    assert accuracy["runs"]["Trainer"]["sd"] == pytest.approx(0.05)  # sqrt(((.05)² + (.05)² + 0) / 2)
    diff = accuracy["differences"]["LiLAWTrainer"]
    assert diff["mean"] == pytest.approx(0.02) and diff["sd"] == pytest.approx(0.03)
    # t(0.975, 2 df) = 4.302652729749464; half width = t · 0.03 / √3
    half = 4.302652729749464 * 0.03 / math.sqrt(3)
    assert (diff["ci_low"], diff["ci_high"]) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    # with 2 df the two-sided p of t is 1 − t / √(2 + t²); here t = 0.02 / (0.03 / √3)
    t = 0.02 / (0.03 / math.sqrt(3))
    assert diff["p_value"] == pytest.approx(1 - t / math.sqrt(2 + t**2))
    assert "Trainer" not in accuracy["differences"]
    # the loss difference is −0.1 on every seed (up to rounding): no spread, so the zero-variance rule of
    # benchmarks/stats.py: sd 0, the exact sign-flip test's p = 2^(1−3), an unbounded interval (p > 0.05)
    loss = result.metrics["test_loss"]["differences"]["LiLAWTrainer"]
    assert loss["mean"] == pytest.approx(-0.1)
    assert (loss["sd"], loss["ci_low"], loss["ci_high"], loss["p_value"]) == (0.0, -math.inf, math.inf, 0.25)
    pairs = [(0.3, 0.1 + 0.2), (0.3, 0.3), (0.5, 0.5)]  # b − a: 5.6e-17, 0, 0
    same = compare_runs({s: {"a": {"x": x}, "b": {"x": y}} for s, (x, y) in enumerate(pairs)}, baseline="a")
    assert same.metrics["x"]["differences"]["b"]["p_value"] == 1.0  # all 0 up to rounding: p 1


def test_markdown_and_json():
    result = compare_runs(PER_SEED, baseline="Trainer", confidence=0.9)
    table = result.to_markdown(digits=3).splitlines()
    assert table[0] == "| metric | Trainer | LiLAWTrainer | Δ (LiLAWTrainer − Trainer) | 90 % CI | p (paired t) |"
    # t(0.95, 2 df) = 2.919986: 0.02 ± 2.919986 · 0.03 / √3 = [−0.0306, +0.0706]
    assert table[2] == "| top-1 accuracy | 0.750 ± 0.050 | 0.770 ± 0.070 | +0.020 ± 0.030 | [-0.031, +0.071] | 0.368 |"
    # the same difference on all 3 seeds: no interval bounds it (printed "[-inf, +inf]" before)
    assert table[3].endswith("| -0.100 ± 0.000 | unbounded | 0.250 |")
    back = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON: no NaN/Infinity
    assert back["baseline"] == "Trainer" and back["metrics"]["test_accuracy"]["differences"]["LiLAWTrainer"]["mean"] == pytest.approx(0.02)
    sure = {s: {"a": {"x": 0.5}, "b": {"x": 0.6 + 1e-3 * s}} for s in range(5)}  # p 1.5e-7 printed 0.000
    assert compare_runs(sure, baseline="a").to_markdown(digits=2).endswith("| <0.001 |")
    unbounded = back["metrics"]["test_loss"]["differences"]["LiLAWTrainer"]
    assert unbounded["ci_low"] is None and unbounded["ci_high"] is None and unbounded["p_value"] == 0.25
    assert result.metrics["test_loss"]["differences"]["LiLAWTrainer"]["ci_low"] == -math.inf  # the object keeps ∞
    one = json.loads(json.dumps(compare_runs({0: PER_SEED[0]}, baseline="Trainer").to_dict(), allow_nan=False))
    assert one["metrics"]["test_accuracy"]["differences"]["LiLAWTrainer"]["p_value"] is None


def test_markdown_names_the_confidence_level_exactly():
    # rounded to a whole percent before: 0.975 (Bonferroni over two comparisons) read "98 % CI", 0.995 "100 % CI"
    for confidence, level in ((0.975, "97.5 % CI"), (0.995, "99.5 % CI"), (0.9, "90 % CI")):
        header = compare_runs(PER_SEED, baseline="Trainer", confidence=confidence).to_markdown().splitlines()[0]
        assert f"| {level} |" in header


def test_one_seed_or_no_baseline():
    one = compare_runs({0: PER_SEED[0]}, baseline="Trainer")
    diff = one.metrics["test_accuracy"]["differences"]["LiLAWTrainer"]
    assert diff["mean"] == pytest.approx(0.02) and math.isnan(diff["sd"]) and math.isnan(diff["p_value"])
    assert "| 0.8000 | 0.8200 | +0.0200 | n/a | n/a |" in one.to_markdown()
    alone = compare_runs({s: {"LiLAWTrainer": r["LiLAWTrainer"]} for s, r in PER_SEED.items()})
    assert alone.metrics["test_accuracy"]["differences"] == {}
    assert alone.to_markdown().splitlines()[0] == "| metric | LiLAWTrainer |"


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="per_seed is empty"):
        compare_runs({})
    with pytest.raises(ValueError, match="baseline 'CE' is not one of the runs"):
        compare_runs(PER_SEED, baseline="CE")
    with pytest.raises(ValueError, match="every seed needs the same runs"):
        compare_runs({**PER_SEED, 3: {"Trainer": PER_SEED[0]["Trainer"]}}, baseline="Trainer")
    with pytest.raises(ValueError, match="confidence must be in"):
        compare_runs(PER_SEED, confidence=95)
    with pytest.raises(ValueError, match="No numeric metric"):
        compare_runs({0: {"a": {"epoch": 1.0}}})


def test_paired_difference_by_hand_and_without_spread():
    # LiLAW − Trainer accuracy of PER_SEED: +0.02, −0.01, +0.05
    d = paired_difference([0.82, 0.69, 0.80], [0.80, 0.70, 0.75])
    t = 0.02 / (0.03 / math.sqrt(3))
    half = 4.302652729749464 * 0.03 / math.sqrt(3)
    assert (d.n, d.mean, d.sd) == (3, pytest.approx(0.02), pytest.approx(0.03))
    assert (d.ci_low, d.ci_high, d.half_width) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half), pytest.approx(half))
    assert d.p_value == pytest.approx(1 - t / math.sqrt(2 + t**2))
    # the same nonzero difference on every seed: the sign-flip test's 2^(1-n); unbounded until it is below 0.05
    three = paired_difference([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert (three.sd, three.p_value, three.ci_low, three.ci_high) == (0.0, 0.25, -math.inf, math.inf)
    six = paired_difference([1.5] * 6, [1.0] * 6)
    assert (six.p_value, six.ci_low, six.ci_high, six.half_width) == (0.03125, 0.5, 0.5, 0.0)
    zero = paired_difference([0.1 + 0.2, 0.3], [0.3, 0.3])  # 0 up to rounding
    assert (zero.p_value, zero.half_width) == (1.0, math.inf)  # 2 seeds cannot bound a difference
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must be finite: drop the seeds"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence must be in"):
        paired_difference([1.0, 2.0], [1.5, 2.0], confidence=95)


def test_a_constant_difference_between_large_values_is_still_constant():
    # 30000.3 - 30000.2 rounds to 0.1 give or take 4e-12, more than 1e-12 of |d|: the t-test read that rounding as
    # spread, p 4e-23 and the interval [0.1, 0.1] (a regression loss, a perplexity, a sum over a test set)
    a = [10000.3, 20000.3, 30000.3]
    d = paired_difference(a, [x - 0.1 for x in a])
    assert (d.sd, d.p_value, d.ci_low, d.ci_high) == (0.0, 0.25, -math.inf, math.inf)
    assert d.mean == pytest.approx(0.1)
    same = paired_difference(a, [x - 0.1 + 0.1 for x in a])  # 0 up to rounding, at that scale too
    assert (same.sd, same.p_value) == (0.0, 1.0)


def test_a_non_finite_metric_gives_nan_not_an_error():
    per_seed = {s: {"a": {"loss": 1.0 + s}, "b": {"loss": float("nan") if s == 1 else 2.0}} for s in range(3)}
    diff = compare_runs(per_seed, baseline="a").metrics["loss"]["differences"]["b"]
    assert math.isnan(diff["p_value"]) and math.isnan(diff["ci_low"])


def test_memory_and_speed_bookkeeping_is_left_out():
    # Trainer.evaluate(test, metric_key_prefix="test") with skip_memory_metrics=False: the memory deltas are named
    # after the stage ("eval_"), and the first call after init also reports "before_init_mem_cpu"
    extra = {
        "test_tokens_per_second": 9.0, "test_model_preparation_time": 0.01, "eval_mem_cpu_alloc_delta": 339968,
        "eval_mem_cpu_peaked_delta": 4096, "eval_mem_gpu_alloc_delta": 0, "eval_mem_gpu_peaked_delta": 0,
        "before_init_mem_cpu": 1e9, "before_init_mem_gpu": 0,
    }  # fmt: skip
    per_seed = {s: {r: {**m, **extra} for r, m in runs.items()} for s, runs in PER_SEED.items()}
    result = compare_runs(per_seed, baseline="Trainer")
    assert list(result.metrics) == ["test_accuracy", "test_loss"]
    assert len(result.to_markdown().splitlines()) == 4  # header, rule, accuracy, loss


def test_no_difference_prints_as_zero_not_minus_zero():
    # b − a is 0.3 − (0.1 + 0.2) = −5.6e-17 on every seed: no difference, printed "-0.0000" before (and the
    # interval over 6 seeds "[-0.0000, -0.0000]")
    for seeds, ci in ((3, "unbounded"), (6, "[+0.0000, +0.0000]")):
        per_seed = {s: {"a": {"x": 0.1 + 0.2}, "b": {"x": 0.3}} for s in range(seeds)}
        result = compare_runs(per_seed, baseline="a")
        diff = result.metrics["x"]["differences"]["b"]
        assert (diff["mean"], diff["sd"], diff["p_value"]) == (0.0, 0.0, 1.0)
        assert result.to_markdown().splitlines()[2] == f"| x | 0.3000 ± 0.0000 | 0.3000 ± 0.0000 | +0.0000 ± 0.0000 | {ci} | 1.000 |"
    one = compare_runs({0: {"a": {"x": 0.1 + 0.2}, "b": {"x": 0.3}}}, baseline="a").to_markdown()  # one seed
    assert one.splitlines()[2] == "| x | 0.3000 | 0.3000 | +0.0000 | n/a | n/a |"
    # a real difference that rounds to 0 at the digits printed keeps its interval's signs
    small = {s: {"a": {"x": 0.5}, "b": {"x": 0.5 + d}} for s, d in enumerate((1e-5, -2e-5, 0.0))}
    assert "| +0.0000 ± 0.0000 | [-0.0000, +0.0000] |" in compare_runs(small, baseline="a").to_markdown()
