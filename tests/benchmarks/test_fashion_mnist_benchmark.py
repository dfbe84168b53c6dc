"""benchmarks/fashion_mnist.py end to end on small IDX files written here: runs, resume, config guard, summary."""

import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import fashion_mnist as fm  # noqa: E402
from benchmarks.fashion_mnist_data import PROBE_ARCHITECTURE  # noqa: E402
from benchmarks.grid import read_records  # noqa: E402
from benchmarks.stats import benjamini_hochberg, best_epoch, paired_difference  # noqa: E402


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """600 training and 200 test 28x28 images: a bright 4x4 patch whose place is the class, on noise."""
    directory = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("t10k", 200)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 90, size=(n, 28, 28))
        for i, y in enumerate(labels):
            r, c = divmod(int(y), 5)
            images[i, 4 + 10 * r : 8 + 10 * r, 2 + 5 * c : 6 + 5 * c] = 255
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


ARGS = ["--epochs", "2", "--batch-size", "64", "--val-rows", "100", "--seeds", "0", "1", "--methods", "ce", "lilaw", "elr",
        "--conditions", "clean", "uniform_40", "--name", "tiny"]  # fmt: skip


def test_parse_condition():
    assert fm.parse_condition("clean") == (None, 0.0)
    assert fm.parse_condition("uniform_40") == ("uniform", 0.4)
    assert fm.parse_condition("pair_flip_40") == ("pair_flip", 0.4)
    assert fm.parse_condition("rule_map_40") == ("rule_map", 0.4)
    for bad in ("uniform", "asymmetric_40", "uniform_140", "uniform_x"):
        with pytest.raises(ValueError, match="Unknown condition"):
            fm.parse_condition(bad)


def test_batched_read_equals_row_by_row():
    import torch

    rows = fm.Rows({"pixel_values": torch.randn(20, 6), "label": torch.arange(20) % 3, "sample_id": torch.arange(20)})
    indices = [7, 3, 19, 0]
    fast = rows.__getitems__(indices)
    assert len(fast) == 4 and fast[1]["label"] == 0 and int(fast[-1]["sample_id"]) == 0
    assert [r["label"] for r in fast[1:3]] == [0, 1]
    with pytest.raises(IndexError):
        fast[4]
    batch, slow = fm.collate(fast), fm.collate([rows[i] for i in indices])
    assert set(batch) == set(slow) == {"pixel_values", "labels", "sample_id"}
    assert all(torch.equal(batch[k], slow[k]) for k in batch)
    assert batch["labels"].tolist() == [1, 0, 1, 0] and batch["labels"].dtype == torch.long
    with pytest.raises(ValueError, match="different lengths"):
        fm.Rows({"pixel_values": torch.zeros(3, 2), "label": torch.zeros(2)})


def test_splits_depend_on_the_seed_only(data_dir):
    cfg = fm.Config(val_rows=100)
    clean, noisy = (fm.make_splits(0, c, cfg, str(data_dir)) for c in ("clean", "uniform_40"))
    # The same rows under every condition; only the labels differ.
    assert np.array_equal(clean.train_x, noisy.train_x) and np.array_equal(clean.val_x, noisy.val_x)
    assert np.array_equal(clean.train_y, clean.train_clean) and np.array_equal(noisy.train_clean, clean.train_y)
    flipped = np.concatenate([noisy.train_y != noisy.train_clean, noisy.val_y != noisy.val_clean])
    assert flipped.sum() == 240  # exactly 40 % of the 600 labels, spread over both splits
    assert len(noisy.train_y) == 500 and len(noisy.val_y) == 100 and len(noisy.test_y) == 200
    again, other = fm.make_splits(0, "uniform_40", cfg, str(data_dir)), fm.make_splits(1, "uniform_40", cfg, str(data_dir))
    assert np.array_equal(again.train_y, noisy.train_y) and not np.array_equal(other.train_x, noisy.train_x)
    assert fm.make_splits(0, "clean", fm.Config(val_rows=100, train_rows=50), str(data_dir)).train_x.shape == (50, 784)


def test_grid_resume_guard_and_summary(data_dir, tmp_path, capsys):
    import torch

    out = tmp_path / "out"
    base = [*ARGS, "--data-dir", str(data_dir), "--out-dir", str(out)]
    assert fm.main(base) == 0
    records = read_records(out / "tiny_runs.jsonl")
    assert len(records) == 12
    for r in records:
        h = r["history"]
        assert h["epoch"] == [1.0, 2.0] and len(h["test_accuracy"]) == len(h["train_loss"]) == 2
        stopped = best_epoch(h["val_accuracy"])
        assert r["early_stopped_epoch"] == stopped + 1 and r["early_stopped_test_accuracy"] == h["test_accuracy"][stopped]
        assert r["last_test_accuracy"] == h["test_accuracy"][-1] and r["best_test_accuracy"] == max(h["test_accuracy"])
        assert r["steps"] == 16 and r["train_rows"] == 500 and r["device"] == "cpu"  # 2 epochs of ceil(500 / 64)
        assert r["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and r["cpu_model"]
        expected_rate = 0.4 if r["condition"] == "uniform_40" else 0.0
        assert r["realised_noise_rate"] == pytest.approx(expected_rate, abs=0.06)
        if r["condition"] == "clean":
            assert h["val_accuracy"] == h["val_clean_accuracy"]
    assert {tuple(sorted(r["lilaw_parameters"])) for r in records if r["method"] == "lilaw"} == {("alpha", "beta", "delta")}
    # Learnt something (the patch is easy): well above the 10 % of chance.
    assert min(r["last_test_accuracy"] for r in records) > 0.3

    assert fm.main(base) == 0  # resumed: nothing left to run
    assert len(read_records(out / "tiny_runs.jsonl")) == 12
    with pytest.raises(SystemExit, match="another config"):
        fm.main([*base, "--learning-rate", "0.01"])

    capsys.readouterr()
    assert fm.main(["--summary", "--name", "tiny", "--out-dir", str(out)]) == 0
    text = (out / "tiny.md").read_text()
    assert "## Δ vs CE, last epoch" in text and "## Gap to the oracle" in text and "no effect larger than" in text
    # the command shown is the first run's, named as such: the grid's runs were launched with other flags too
    assert f"First run's command: `{records[0]['command']}` (each run's own is in its record)" in text
    assert (out / "tiny.png").stat().st_size > 0
    summary = json.loads((out / "tiny.json").read_text())
    assert summary["missing"] == [] and summary["seeds"] == [0, 1]
    # Each entry equals the paired difference recomputed from the records.
    acc = {(r["condition"], r["method"], r["seed"]): r for r in records}
    for family, key in (("vs_ce_early_stopped", "early_stopped_test_accuracy"), ("vs_oracle_last", "last_test_accuracy")):
        entries = summary["comparisons"][family]
        reference = "ce"
        assert len(entries) == (4 if family.startswith("vs_ce") else 3)
        for e in entries:
            base_condition = e["condition"] if family.startswith("vs_ce") else "clean"
            expected = paired_difference([100 * acc[(e["condition"], e["method"], s)][key] for s in (0, 1)],
                                         [100 * acc[(base_condition, reference, s)][key] for s in (0, 1)])  # fmt: skip
            assert e["mean"] == pytest.approx(expected.mean) and e["p"] == pytest.approx(expected.p)
            assert e["p_adjusted"] >= e["p"]
    assert [e["condition"] for e in summary["ce_last_minus_best"]] == ["clean", "uniform_40"]
    assert all(e["mean"] <= 0 for e in summary["ce_last_minus_best"])

    # A cell recorded twice (records merged by hand): the table would use whichever line came last. Refused.
    runs = out / "tiny_runs.jsonl"
    lines = runs.read_text().splitlines(keepends=True)
    runs.write_text("".join([*lines, lines[0]]))
    first = json.loads(lines[0])
    with pytest.raises(ValueError, match=f"{first['method']} under {first['condition']}, seed {first['seed']}, is recorded twice"):
        fm.main(["--summary", "--name", "tiny", "--out-dir", str(out)])


def test_bad_options(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="--bf16 needs --device cuda"):
        fm.main([*ARGS, "--bf16", "--out-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="Unknown condition"):
        fm.main([*ARGS, "--conditions", "asym_40", "--out-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="No records"):
        fm.main(["--summary", "--name", "none", "--out-dir", str(tmp_path)])


def test_probe_features_are_the_backbones_and_cached(data_dir, tmp_path, monkeypatch):
    import timm
    import torch
    from safetensors.torch import load_file

    from hf_lilaw.data import fashion_mnist_arrays
    from hf_lilaw.models import efficientnet_lite0_checkpoint

    monkeypatch.setenv("HF_LILAW_FEATURE_CACHE", str(tmp_path / "cache"))
    fm._ARRAYS.clear()
    cfg = fm.Config(model="effnet_probe", image_size=32, hidden=())
    x_train, y_train, x_test, y_test = fm.load_arrays(str(data_dir), cfg)
    assert x_train.shape == (600, 1280) and x_test.shape == (200, 1280) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train.mean(0), 0, atol=1e-3)  # standardised on the training images
    # The cached features are the pretrained backbone's pooled output for the resized, normalised images.
    raw = np.load(fm.feature_cache_path(32))["train"]
    model = timm.create_model(PROBE_ARCHITECTURE, num_classes=0).eval()
    weights = load_file(f"{efficientnet_lite0_checkpoint()}/model.safetensors")
    model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("classifier.")})
    pixels = fashion_mnist_arrays(data_dir=str(data_dir))[0]
    image = torch.nn.functional.interpolate(torch.from_numpy(pixels[:3].copy()).float()[:, None] / 255, size=(32, 32),
                                            mode="bilinear", align_corners=False)  # fmt: skip
    with torch.no_grad():
        expected = model(((image - 0.5) / 0.5).expand(-1, 3, -1, -1)).numpy()
    np.testing.assert_allclose(raw[:3].astype(np.float32), expected, rtol=2e-3, atol=2e-3)  # float16 on disk
    # A second process reads the cache: the same arrays, nothing recomputed.
    stamp = fm.feature_cache_path(32).stat().st_mtime_ns
    fm._ARRAYS.clear()
    again = fm.load_arrays(str(data_dir), cfg)
    assert fm.feature_cache_path(32).stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again[0], x_train)
    # One probe run end to end: a linear head on the features.
    out = tmp_path / "out"
    args = ["--model", "effnet_probe", "--image-size", "32", "--epochs", "2", "--batch-size", "64", "--val-rows", "100",
            "--seeds", "0", "--methods", "ce", "elr", "--conditions", "uniform_40", "--name", "probe",
            "--data-dir", str(data_dir), "--out-dir", str(out), "--max-minutes", "5"]  # fmt: skip
    assert fm.main(args) == 0
    records = read_records(out / "probe_runs.jsonl")
    assert [r["method"] for r in records] == ["ce", "elr"]
    assert all(r["config"]["model"] == "effnet_probe" and r["config"]["hidden"] == [] for r in records)
    fm._ARRAYS.clear()


def test_records_written_before_the_model_field_still_resume():
    old = {k: v for k, v in fm.Config().as_json().items() if k not in ("model", "image_size")}
    assert fm.Config().same_as(old)
    assert not fm.Config(model="effnet_probe", image_size=64, hidden=()).same_as(old)


def test_clean_set_is_class_balanced_true_labels_and_leaves_validation():
    labels = np.arange(500) % 10
    rows = fm.clean_set_rows(labels, 3, 10)  # 10 % of 500: 5 per class
    assert len(rows) == 50 and np.array_equal(np.bincount(labels[rows]), [5] * 10)
    assert np.array_equal(rows, np.sort(rows)) and len(set(rows.tolist())) == 50
    assert np.array_equal(rows, fm.clean_set_rows(labels, 3, 10)) and not np.array_equal(rows, fm.clean_set_rows(labels, 4, 10))
    assert len(fm.clean_set_rows(labels, 0, 2)) == 10  # 2 % of 500: 1 per class
    assert fm.clean_percent("ebomlc_10") == 10 and fm.clean_percent("ce_union_2") == 2 and fm.clean_percent("ce") is None
    # The MLC step's clean batch: the training batch unless --clean-batch-size, never more than the clean rows.
    assert fm.Config(batch_size=256).clean_batch(500) == 256 and fm.Config(batch_size=256).clean_batch(100) == 100
    assert fm.Config(batch_size=256, clean_batch_size=8).clean_batch(100) == 8


def test_summary_columns_are_ordered_by_noise_kind_then_rate():
    names = ["rule_map_40", "pair_flip_40", "uniform_80", "clean", "uniform_20", "uniform_50"]
    assert sorted(names, key=fm._condition_order) == [
        "clean", "uniform_20", "uniform_50", "uniform_80", "pair_flip_40", "rule_map_40"]


def test_missing_runs_are_a_methods_own_seed_gaps():
    def run(method, condition, seed):
        return {"method": method, "condition": condition, "seed": seed, "last_test_accuracy": 0.8,
                "early_stopped_test_accuracy": 0.8, "best_test_accuracy": 0.8}  # fmt: skip

    records = [run("ce", c, s) for c in ("clean", "uniform_40") for s in range(5)]
    records += [run("prune_one_run", c, s) for c in ("clean", "uniform_40") for s in range(3)]  # 3 seeds by choice
    records += [run("mlc_10", "uniform_40", s) for s in (0, 1, 2)] + [run("mlc_10", "clean", 0)]
    records += [run("sce", "clean", s) for s in (0, 1)]  # a base method is expected under every condition
    summary = fm.summarise(records)
    assert summary["seeds"] == [0, 1, 2, 3, 4]
    assert summary["missing"] == [("clean", "mlc_10", 1), ("clean", "mlc_10", 2),
                                  ("uniform_40", "sce", 0), ("uniform_40", "sce", 1)]  # fmt: skip


def test_comparisons_say_whether_each_pair_ran_on_one_machine():
    cpu = {"device": "cpu", "torch": "2.14.1", "cpu_model": "Intel(R) Xeon(R) Processor (cpu family 6, model 207, stepping 2)"}
    other_cpu = {**cpu, "cpu_model": "Intel(R) Xeon(R) Processor (cpu family 6, model 143, stepping 8)"}
    unnamed = {"device": "cpu", "torch": "2.14.1", "cpu_model": "Intel(R) Xeon(R) Processor"}  # no model numbers
    gpu = {"device": "cuda", "torch": "2.11.0", "gpu": "NVIDIA H200", "cpu_model": None}

    def runs(*machines):
        return {seed: {**m, "seed": seed} for seed, m in enumerate(machines)}

    assert fm.machine(cpu) == "Intel(R) Xeon(R) Processor (cpu family 6, model 207, stepping 2), torch 2.14.1"
    assert fm.machine(gpu) == "NVIDIA H200, torch 2.11.0" and fm.machine(unnamed) is None
    assert fm.machine({**cpu, "torch": "2.11.0"}) != fm.machine(cpu)  # another torch rounds differently too
    assert fm.machine_pairing(runs(cpu, other_cpu), runs(cpu, other_cpu)) == "same"  # per seed, not per grid
    assert fm.machine_pairing(runs(cpu, cpu), runs(cpu, other_cpu)) == "across"
    assert fm.machine_pairing(runs(cpu, unnamed), runs(cpu, unnamed)) == "unrecorded"
    assert fm.machine_pairing(runs(unnamed, unnamed), runs(gpu, unnamed)) == "across"  # CPU against GPU, known either way
    assert fm.machine_pairing(runs(cpu, cpu, gpu), runs(cpu, cpu)) == "same"  # only the seeds both sides ran

    def record(method, seed, machine_fields, accuracy):
        return {"method": method, "condition": "uniform_40", "seed": seed, "last_test_accuracy": accuracy,
                "early_stopped_test_accuracy": accuracy, "best_test_accuracy": accuracy, **machine_fields}  # fmt: skip

    records = [record("ce", s, cpu, 0.70 + 0.01 * s) for s in range(3)]
    records += [record("sce", s, cpu, 0.75 + 0.011 * s) for s in range(3)]
    records += [record("gce", s, gpu if s == 2 else cpu, 0.76 + 0.012 * s) for s in range(3)]
    family = {e["method"]: e["machines"] for e in fm.summarise(records)["families"]["vs_ce_last"]}
    assert family == {"sce": "same", "gce": "across"}


def test_a_summary_refuses_runs_of_another_config():
    """Records merged by hand from another launch (here one 64-px, 20-epoch run among 32-px, 10-epoch ones) would
    be paired as one protocol; the MLC settings split only the MLC family's runs."""
    config = fm.Config(epochs=10, model="effnet_last2", image_size=32).as_json()

    def record(method, seed, accuracy, **changed):
        return {"method": method, "condition": "uniform_40", "seed": seed, "config": {**config, **changed},
                "last_test_accuracy": accuracy, "early_stopped_test_accuracy": accuracy, "best_test_accuracy": accuracy}  # fmt: skip

    records = [record("ce", s, 0.70 + 0.01 * s) for s in range(3)] + [record("sce", s, 0.75 + 0.02 * s) for s in range(2)]
    records.append(record("sce", 2, 0.90, image_size=64, epochs=20))
    with pytest.raises(ValueError, match=r"sce under uniform_40, seed 2, ran with another config than the grid's first "
                       r"run \(epochs 20 against 10, image_size 64 against 32\)"):  # fmt: skip
        fm.summarise(records)
    with pytest.raises(ValueError, match="another config"):
        fm.write_summary(records, Path("/nonexistent"), "mixed")  # refused before anything is written
    # Another meta lr splits two MLC runs, not a CE run from the MLC family.
    mlc = [record("mlc_2", s, 0.6, mlc_meta_lr=3e-5) for s in range(2)]
    assert len(fm.summarise(records[:-1] + mlc)["families"]["vs_ce_last"]) == 2
    with pytest.raises(ValueError, match="mlc_2 under uniform_40, seed 2, .* first MLC-family run \\(mlc_meta_lr 1e-05 against 3e-05\\)"):
        fm.summarise(records[:-1] + mlc + [record("mlc_2", 2, 0.6)])


def test_the_grid_config_names_the_mlc_runs_settings_only_where_mlc_ran():
    before = {"epochs": 20, "model": "cnn"}  # a record written before the MLC settings were recorded
    settings = {"mlc_meta_lr": 3e-5, "mlc_skip_gate_init": 0.9, "mlc_lower_loss_weights": [1.0, 0.0]}
    ce = {"method": "ce", "config": before}
    assert fm.grid_config([ce, {"method": "sce", "config": {**before, **settings}}]) == before
    mlc = {"method": "ebomlc_2", "config": {**before, **settings}}
    assert fm.grid_config([ce, {"method": "ce_union_2", "config": before}, mlc]) == {**before, **settings}


NEW = [*fm.PRUNE_METHODS, *fm.MLC_METHODS, *fm.FAIR_BASELINES]


def test_new_methods_run_and_the_fair_baseline_family_is_recomputed(data_dir, tmp_path):
    out = tmp_path / "out"
    common = ["--epochs", "2", "--batch-size", "64", "--val-rows", "200", "--conditions", "uniform_40", "--name", "new",
              "--data-dir", str(data_dir), "--out-dir", str(out)]  # fmt: skip
    assert fm.main([*common, "--seeds", "0", "--methods", "ce", *NEW]) == 0
    # A second seed of the 2 % clean-set family and CE, for the paired comparisons.
    assert fm.main([*common, "--seeds", "1", "--methods", "mlc_2", "ebomlc_2", "ce_union_2", "ce_clean_2"]) == 0
    assert fm.main(["--summary", "--name", "new", "--out-dir", str(out)]) == 0
    records = read_records(out / "new_runs.jsonl")
    by = {(r["method"], r["seed"]): r for r in records}
    assert len(records) == 1 + len(NEW) + 4
    steps = by[("ce", 0)]["steps"]
    assert steps == 2 * 7  # 2 epochs of ceil(400 / 64)
    for r in records:
        assert r["history"]["epoch"] == [1.0, 2.0] and r["train_rows"] == 400 and r["last_test_accuracy"] > 0.2
    for method in fm.PRUNE_METHODS:
        r = by[(method, 0)]
        assert r["flagged"] + r["kept_rows"] == 400 and 0 <= r["flag_precision"] <= 1 and 0 <= r["flag_recall"] <= 1
        assert r["steps"] == 2 * -(-r["kept_rows"] // 64) and r["detect_seconds"] > 0
    assert by[("prune_cleanlab", 0)]["flagged"] > 0  # 40 % noise on an easy task: cleanlab finds some
    assert by[("prune_one_run_rate", 0)]["flagged"] == 160  # the nominal 40 % of 400 rows, whatever the split says
    for method in fm.MLC_METHODS + fm.FAIR_BASELINES:
        r = by[(method, 0)]
        size = 20 if method.endswith("_10") else 10  # 10 % / 2 % of 200 validation rows, at least 1 per class
        assert r["clean_rows"] == size and r["val_rows"] == 200 - size and r["clean_batch"] == size
        assert r["steps"] == steps  # the fair baselines run the MLC run's optimizer steps
        kept = r["history"].get("mlc/label_kept")
        if method in fm.MLC_METHODS:  # one epoch mean a metric, a probability on the given label
            assert len(kept) == len(r["history"]["mlc/upper_loss"]) == 2 and all(0 < v <= 1 for v in kept)
            # EBOMLC's upper loss is the mixture; the main model's own clean-batch CE is recorded beside it.
            assert ("mlc/clean_loss" in r["history"]) == method.startswith("ebomlc")
        else:
            assert kept is None
    summary = json.loads((out / "new.json").read_text())
    # The methods run with seed 0 only are not missing seed 1 (test_missing_runs_are_a_methods_own_seed_gaps); CE has
    # seed 0 only, so there is no comparison with it.
    assert summary["missing"] == [] and "vs_ce_last" not in summary["comparisons"]
    for when, key in (("last", "last_test_accuracy"), ("early_stopped", "early_stopped_test_accuracy")):
        entries = summary["comparisons"][f"mlc_vs_fair_{when}"]
        assert {(e["method"], e["reference"]) for e in entries} == {
            (m, r) for m in ("mlc_2", "ebomlc_2") for r in ("ce_union_2", "ce_clean_2")}
        p_values = []
        for e in entries:
            expected = paired_difference([100 * by[(e["method"], s)][key] for s in (0, 1)],
                                         [100 * by[(e["reference"], s)][key] for s in (0, 1)])  # fmt: skip
            assert e["mean"] == pytest.approx(expected.mean) and e["p"] == pytest.approx(expected.p)
            p_values.append(expected.p)
        np.testing.assert_allclose([e["p_adjusted"] for e in entries], benjamini_hochberg(p_values))
    text = (out / "new.md").read_text()
    assert "## The MLC family against its fair baselines, last epoch" in text and "MLC 2 % − CE∪clean 2 %" in text
    assert "## What the prune methods flagged" in text and "## Clean sets" in text
    assert "## The MLC family's corrected labels" in text
    first = by[("mlc_2", 0)]["history"]["mlc/label_kept"]
    assert f"| MLC 2 % | uniform_40 | 2 | {np.mean([first, by[('mlc_2', 1)]['history']['mlc/label_kept']], axis=0)[0]:.2f} → " in text
    clean = np.mean([by[("ebomlc_2", s)]["history"]["mlc/clean_loss"][-1] for s in (0, 1)])
    row = next(line for line in text.splitlines() if line.startswith("| EBOMLC 2 % | uniform_40 | 2 |"))
    assert row.endswith(f" | {clean:.2g} |")
    row = next(line for line in text.splitlines() if line.startswith("| MLC 2 % | uniform_40 | 2 |"))
    assert row.endswith(" |  |")  # MLC logs no mlc/clean_loss: blank


def test_the_recorded_command_is_the_launch_command():
    assert fm.launch_command("python benchmarks/fashion_mnist.py --name a --shard 1/2 --log-dir /tmp/x --seeds 0 1"
                             ) == "python benchmarks/fashion_mnist.py --name a --seeds 0 1"  # fmt: skip
    assert fm.launch_command("python b.py --log-dir=/tmp/x --epochs 2") == "python b.py --epochs 2"
    assert fm.launch_command("python b.py --max-minutes 85 --epochs 2 --max-minutes=3.5") == "python b.py --epochs 2"


def test_rule_map_condition_flips_look_alikes_only(data_dir):
    cfg = fm.Config(val_rows=100)
    splits = fm.make_splits(0, "rule_map_40", cfg, str(data_dir))
    labels = np.concatenate([splits.train_y, splits.val_y])
    clean = np.concatenate([splits.train_clean, splits.val_clean])
    flipped = labels != clean
    # Trouser (1) and Bag (8) have no rule: never flipped; the others are flipped to a look-alike only.
    assert not flipped[np.isin(clean, (1, 8))].any()
    from hf_lilaw.noise.labels import RULE_MAPS

    assert all(int(y) in RULE_MAPS["fashion_mnist"][int(c)] for c, y in zip(clean[flipped], labels[flipped]))
    assert 0.25 < flipped.mean() < 0.4  # 40 % of the 8 classes with a rule


def test_models_train_what_they_say(data_dir):
    import torch

    fm._ARRAYS.clear()
    cnn = fm.new_model(fm.Config(model="cnn", hidden=(128,)), 0, in_features=28)
    x = fm.make_splits(0, "clean", fm.Config(model="cnn", hidden=(128,), val_rows=100), str(data_dir)).train_x
    assert x.shape == (500, 1, 28, 28) and cnn(pixel_values=torch.from_numpy(x[:4]))["logits"].shape == (4, 10)
    # The same seed, the same initial weights (every method of a seed starts from them).
    again = fm.new_model(fm.Config(model="cnn", hidden=(128,)), 0, in_features=28)
    assert all((p == q).all() for p, q in zip(cnn.parameters(), again.parameters()))
    last2 = fm.new_model(fm.Config(model="effnet_last2", image_size=32, hidden=()), 0, in_features=32)
    full = fm.new_model(fm.Config(model="effnet_full", image_size=32, hidden=()), 0, in_features=32)
    trained = {n.split(".")[1] + ("." + n.split(".")[2] if n.split(".")[1] == "blocks" else "")
               for n, p in last2.named_parameters() if p.requires_grad}
    assert trained == {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}
    assert all(p.requires_grad for p in full.parameters())
    cfg = fm.Config(model="effnet_last2", image_size=32, hidden=(), val_rows=100, test_rows=50)
    splits = fm.make_splits(0, "clean", cfg, str(data_dir))
    # The images stay 28-px uint8 rows; the transform resizes a batch at a time (what collate and evaluation call).
    assert splits.train_x.shape == (500, 28, 28) and splits.test_x.shape == (50, 28, 28) and splits.train_x.dtype == np.uint8
    batch = fm.collate([{"pixel_values": torch.from_numpy(splits.train_x[i]), "label": 1} for i in range(3)],
                       transform=fm.input_transform(cfg))  # fmt: skip
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["pixel_values"].min() >= -1.0 and batch["pixel_values"].max() <= 1.0
    assert (batch["pixel_values"][:, 0] == batch["pixel_values"][:, 2]).all()  # a gray image on 3 channels
    assert fm.input_transform(fm.Config(model="cnn", hidden=(128,))) is None


def test_fine_tuning_runs_and_table14_is_recomputed(data_dir, tmp_path):
    out = tmp_path / "out"
    common = ["--image-size", "32", "--epochs", "2", "--batch-size", "16", "--val-rows", "20", "--train-rows", "48",
              "--test-rows", "40", "--seeds", "0", "1", "--methods", "ce", "lilaw", "--conditions", "clean", "uniform_50",
              "--data-dir", str(data_dir), "--out-dir", str(out), "--max-minutes", "10"]  # fmt: skip
    assert fm.main([*common, "--model", "effnet_last2", "--name", "ft2"]) == 0
    assert fm.main([*common, "--model", "effnet_full", "--name", "ftf", "--methods", "ce"]) == 0
    last2, full = read_records(out / "ft2_runs.jsonl"), read_records(out / "ftf_runs.jsonl")
    assert len(last2) == 8 and len(full) == 4 and all(r["steps"] == 6 for r in last2 + full)
    with pytest.raises(SystemExit, match="effnet_full"):
        fm.main(["--table14", "ft2", "ft2", "--out-dir", str(out)])
    other = {**last2[0], "condition": "uniform_40", "device": "cuda", "gpu": "NVIDIA H200", "cpu_model": None,
             "command": "python benchmarks/fashion_mnist.py --model effnet_last2 --conditions uniform_40 --name ft2"}
    other_method = {**other, "condition": "clean", "method": "sce"}  # a method the table does not show
    path = out / "ft2_runs.jsonl"  # cells outside Table 14, run elsewhere, first in the file: not in the table's
    path.write_text(json.dumps(other) + "\n" + json.dumps(other_method) + "\n" + path.read_text())  # Machines line
    assert fm.main(["--table14", "ft2", "ftf", "--out-dir", str(out)]) == 0
    text = (out / "table14_ft2.md").read_text()
    machines = next(line for line in text.splitlines() if line.startswith("Machines:"))
    assert "H200" not in machines and "12 runs" in machines, machines
    assert "uniform_40" not in text  # neither its command nor its machine
    by = {(r["condition"], r["method"], r["config"]["model"], r["seed"]): r for r in last2 + full}
    expected = paired_difference([100 * by[("uniform_50", "lilaw", "effnet_last2", s)]["last_test_accuracy"] for s in (0, 1)],
                                 [100 * by[("uniform_50", "ce", "effnet_full", s)]["last_test_accuracy"] for s in (0, 1)])
    row = next(line for line in text.splitlines() if line.startswith("| last epoch | uniform_50 | LiLAW last 2 − CE full"))
    assert f"{expected.mean:+.1f} [{expected.low:+.1f}, {expected.high:+.1f}]" in row
    assert "| clean | 88.56 | 89.67 (↑1.11) |" in text and "| uniform_50 | 71.06 | 79.41 (↑8.35) |" in text
    assert "32 × 32" in text and "48, validation split 20 (29%)" in text
    fm._ARRAYS.clear()


def test_the_runner_records_the_librarys_mlc_defaults_as_values():
    from hf_lilaw.mlc import MetaLabelCorrectionConfig

    args = MetaLabelCorrectionConfig(output_dir="unused", mlc_method="mlc")
    assert (fm.Config().mlc_meta_lr, fm.Config().mlc_skip_gate_init) == (args.mlc_meta_lr, args.resolved_skip_gate_init)


def test_the_clean_rows_can_be_kept_out_of_the_main_models_loss(data_dir, tmp_path, monkeypatch):
    import hf_lilaw

    made = []
    config = hf_lilaw.MetaLabelCorrectionConfig
    monkeypatch.setattr(hf_lilaw, "MetaLabelCorrectionConfig", lambda **kw: made.append(config(**kw)) or made[-1])
    out = tmp_path / "out"
    common = ["--epochs", "1", "--batch-size", "64", "--val-rows", "200", "--conditions", "clean", "--name", "m",
              "--methods", "mlc_2", "--data-dir", str(data_dir), "--out-dir", str(out)]  # fmt: skip
    assert fm.main([*common, "--seeds", "0", "--mlc-lower-loss-weights", "1", "0"]) == 0
    assert [c.mlc_lower_loss_weights for c in made] == [[1.0, 0.0]]
    records = read_records(out / "m_runs.jsonl")
    assert records[0]["config"]["mlc_lower_loss_weights"] == [1.0, 0.0]
    assert "`mlc_lower_loss_weights=[1, 0]`" in fm.mlc_settings_text(records)
    # Records from before the flag ran with the library's default (None: by batch size), and a grid keeps them apart.
    old = {k: v for k, v in fm.Config().as_json().items() if k != "mlc_lower_loss_weights"}
    assert fm.recorded_config(old)["mlc_lower_loss_weights"] is None and fm.Config().same_as(old)
    with pytest.raises(SystemExit, match="pass --name to keep them apart"):
        fm.main([*common, "--seeds", "1"])
    assert fm.main([*common, "--seeds", "1", "--mlc-lower-loss-weights", "1", "0"]) == 0
    assert len(read_records(out / "m_runs.jsonl")) == 2


def test_mlc_settings_reach_the_trainer_and_are_recorded(data_dir, tmp_path, monkeypatch):
    import hf_lilaw

    made = []
    config = hf_lilaw.MetaLabelCorrectionConfig
    monkeypatch.setattr(hf_lilaw, "MetaLabelCorrectionConfig", lambda **kw: made.append(config(**kw)) or made[-1])
    out = tmp_path / "out"
    assert fm.main(["--epochs", "1", "--batch-size", "64", "--val-rows", "200", "--conditions", "clean", "--name", "m",
                    "--seeds", "0", "--methods", "mlc_2", "--mlc-meta-lr", "3e-5", "--mlc-skip-gate-init", "0.98",
                    "--data-dir", str(data_dir), "--out-dir", str(out)]) == 0  # fmt: skip
    assert [(c.mlc_meta_lr, c.mlc_skip_gate_init) for c in made] == [(3e-5, 0.98)]
    (record,) = read_records(out / "m_runs.jsonl")
    assert record["config"]["mlc_meta_lr"] == 3e-5 and record["config"]["mlc_skip_gate_init"] == 0.98
    # Records written before these fields ran with the library's former defaults and read
    # as those; a grid of other settings refuses to mix with them.
    old = {k: v for k, v in fm.Config().as_json().items() if not k.startswith("mlc_")}
    assert fm.recorded_config(old)["mlc_meta_lr"] == 3e-4 and fm.recorded_config(old)["mlc_skip_gate_init"] == 0.5
    assert fm.Config(mlc_meta_lr=3e-4, mlc_skip_gate_init=0.5).same_as(old) and not fm.Config().same_as(old)
    assert fm.Config(mlc_meta_lr=3e-4, mlc_skip_gate_init=0.5).same_as({**old, "mlc_meta_lr": None})
    # A grid without MLC-family runs does not depend on them: its old records stay resumable with today's defaults.
    assert fm.Config().same_as(old, mlc=False) and not fm.Config(epochs=3).same_as(old, mlc=False)
    assert "the library's former defaults" in fm.mlc_settings_text([{"config": old}])
    today = fm.mlc_settings_text([{"config": fm.Config().as_json()}])
    assert today.startswith("the library's defaults `mlc_meta_lr=1e-05`, `mlc_skip_gate_init=0.98`")
    with pytest.raises(SystemExit, match="pass --name to keep them apart"):
        fm.main(["--epochs", "1", "--batch-size", "64", "--val-rows", "200", "--conditions", "clean", "--name", "m",
                 "--seeds", "1", "--methods", "mlc_2", "--data-dir", str(data_dir), "--out-dir", str(out)])
    common = ["--epochs", "1", "--batch-size", "64", "--val-rows", "200", "--conditions", "clean", "--name", "plain",
              "--methods", "ce", "--data-dir", str(data_dir), "--out-dir", str(out)]  # fmt: skip
    assert fm.main([*common, "--seeds", "0", "--mlc-meta-lr", "3e-4", "--mlc-skip-gate-init", "0.5"]) == 0
    assert fm.main([*common, "--seeds", "1"]) == 0  # no MLC run in the grid: the settings do not split it
    assert len(read_records(out / "plain_runs.jsonl")) == 2
    # Nor do they split CE runs from MLC runs joining them later, and the grid's MLC settings are its MLC runs'.
    mlc = ["mlc_2" if a == "ce" else a for a in common]
    assert fm.main([*mlc, "--seeds", "0"]) == 0
    assert fm.mlc_settings_text(read_records(out / "plain_runs.jsonl")).startswith("the library's defaults")
    with pytest.raises(SystemExit, match="pass --name to keep them apart"):
        fm.main([*mlc, "--seeds", "1", "--mlc-meta-lr", "3e-4", "--mlc-skip-gate-init", "0.5"])
    assert [r["method"] for r in read_records(out / "plain_runs.jsonl")] == ["ce", "ce", "mlc_2"]


def test_machine_spread_pairs_the_reruns_of_one_protocol(tmp_path):
    """Two grids' runs of the same cells and seeds (the second rerun elsewhere): per cell, second − first per seed,
    its paired interval (BH over the table) and the pooled spread; another config or no shared cell is refused."""
    config = fm.Config(epochs=10, model="effnet_last2", image_size=32).as_json()
    intel = {"device": "cpu", "torch": "2.14.1", "cpu_model": "Intel(R) Xeon(R) Processor (cpu family 6, model 207, stepping 2)"}
    amd = {**intel, "cpu_model": "AMD EPYC (cpu family 26, model 2, stepping 1)"}

    def record(machine, condition, seed, last, early, method="ce"):
        return {"method": method, "condition": condition, "seed": seed, "config": config, "history": {"loss": [last]},
                "last_test_accuracy": last, "early_stopped_test_accuracy": early, **machine}  # fmt: skip

    first = [record(intel, "uniform_80", s, 0.30 + 0.01 * s, 0.32) for s in range(3)]
    first += [record(intel, "pair_flip_40", s, 0.57, 0.58) for s in range(3)]
    first.append(record(intel, "uniform_80", 0, 0.5, 0.5, method="sce"))  # not rerun: not in the table
    first.append(record(intel, "uniform_80", 5, 0.5, 0.5))  # a seed not rerun: neither in the table nor the counts
    second = [record(amd, "uniform_80", s, 0.30 + 0.01 * s + d, 0.32 + e)
              for s, (d, e) in enumerate([(0.01, 0.0), (-0.02, 0.01), (0.004, -0.005)])]  # fmt: skip
    for name, records in (("a", first), ("b", second)):
        (tmp_path / f"{name}_runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert fm.main(["--machine-spread", "a", "b", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "spread_a_b.md").read_text()
    last = paired_difference([100 * r["last_test_accuracy"] for r in second], [100 * r["last_test_accuracy"] for r in first[:3]])
    row = next(line for line in text.splitlines() if line.startswith("| uniform_80 | ce | last epoch |"))
    assert "| 3 | +1.0 -2.0 +0.4 |" in row and f"{last.mean:+.1f} [{last.low:+.1f}, {last.high:+.1f}]" in row
    assert row.endswith("| 2.0 |") and "pair_flip_40" not in text and "| sce |" not in text
    pooled = np.array([1.0, -2.0, 0.4, 0.0, 1.0, -0.5])
    assert f"Over all 6 differences: sd {pooled.std(ddof=1):.2f} points, mean |Δ| {np.abs(pooled).mean():.2f}" in text
    assert "cpu family 6, model 207, stepping 2), torch 2.14.1 (3 runs)" in text and "cpu family 26, model 2" in text
    # seed 2's two runs computed the same history: counted as identical for that pair of machines
    second[2] = {**second[2], "last_test_accuracy": first[2]["last_test_accuracy"], "history": first[2]["history"]}
    (tmp_path / "b_runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in second))
    assert fm.main(["--machine-spread", "a", "b", "--out-dir", str(tmp_path)]) == 0
    pair = next(line for line in (tmp_path / "spread_a_b.md").read_text().splitlines() if line.startswith("| Intel"))
    assert pair.endswith("| 3 | 1 | 1.53 | 2.0 |"), pair

    (tmp_path / "c_runs.jsonl").write_text(json.dumps({**second[0], "config": {**config, "epochs": 20}}) + "\n")
    with pytest.raises(SystemExit, match="ce under uniform_80, seed 0, ran with another config"):
        fm.main(["--machine-spread", "a", "c", "--out-dir", str(tmp_path)])
    for other in ({**second[0], "condition": "clean"}, {**second[0], "seed": 7}):  # no shared cell, no shared seed
        (tmp_path / "d_runs.jsonl").write_text(json.dumps(other) + "\n")
        with pytest.raises(SystemExit, match="share no run"):
            fm.main(["--machine-spread", "a", "d", "--out-dir", str(tmp_path)])
